"""The same job written idiomatically with dlt's rest_api source into DuckDB: what users would
write instead of chatsync. Benchmark-only; needs `pip install "dlt[duckdb]"`.

    python bench/dlt_pipeline.py COZMOX_BASE_URL INVENT_BASE_URL API_KEY DATABASE
"""

from __future__ import annotations

import sys

import dlt
from dlt.sources.rest_api import rest_api_source


def main(cozmox: str, invent: str, key: str, database: str) -> None:
    auth = {"type": "bearer", "token": key}
    cozmox_source = rest_api_source({
        "client": {"base_url": cozmox, "auth": auth},
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
        "resources": [{
            "name": "cozmox_chats",
            "endpoint": {
                "path": "chat",
                "params": {"limit": 100, "sortOrder": "ASC"},
                "data_selector": "results",
                "paginator": {"type": "page_number", "base_page": 1, "page_param": "page",
                              "total_path": "metadata.totalItems", "maximum_page": None},
            },
        }],
    }, name="cozmox")
    invent_source = rest_api_source({
        "client": {"base_url": invent, "auth": auth},
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
        "resources": [
            {
                "name": "invent_chats",
                "endpoint": {"path": "orgs/c/chats", "params": {"take": 100},
                             "paginator": {"type": "page_number", "base_page": 1, "page_param": "page",
                                           "total_path": None, "stop_after_empty_page": True}},
            },
            {
                "name": "invent_messages",
                "endpoint": {"path": "chats/{resources.invent_chats.id}/messages", "params": {"take": 100},
                             "paginator": {"type": "page_number", "base_page": 1, "page_param": "page",
                                           "total_path": None, "stop_after_empty_page": True}},
            },
        ],
    }, name="invent")
    pipeline = dlt.pipeline(pipeline_name="chats_bench", destination=dlt.destinations.duckdb(database),
                            dataset_name="chats", pipelines_dir=database + ".dlt")
    pipeline.run([cozmox_source, invent_source])
    print("loaded")


if __name__ == "__main__":
    main(*sys.argv[1:5])
