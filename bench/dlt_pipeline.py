"""The same job written with dlt's rest_api source into DuckDB: what users would write instead
of chatsync. Benchmark-only; needs `pip install "dlt[duckdb]"`.

    python bench/dlt_pipeline.py [--tuned] COZMOX_BASE_URL INVENT_BASE_URL API_KEY DATABASE

Without --tuned, dlt as it comes: the `insert_values` loader, gzip-compressed load files, one
resource extracted at a time, and page-number paging that stops on an empty page (so one
request more per listing, and per Invent chat for its messages).

With --tuned, what a user who cares about speed sets with dlt's own documented knobs:
`parallelized` on every resource (each chat's messages fetched as a deferred call in dlt's
thread pool), `[extract] workers = 8`, `loader_file_format="jsonl"`,
`[data_writer] disable_compression = true`, and a page-number paginator that also stops on a
short page, so that it asks for exactly the pages chatsync and the floor ask for.

Both load the same rows: each chat (`cozmox_chats`, `invent_chats`) and each message
(`cozmox_chats__messages`, nested in a Cozmox chat; `invent_messages`), in dataset `chats`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

PAGE_SIZE = 100

# dlt's anonymous usage telemetry is on by default; a benchmark should not call out of the
# machine. Not a speed knob, so the default pipeline goes without it too.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt
from dlt.sources.helpers.rest_client.paginators import PageNumberPaginator
from dlt.sources.rest_api import rest_api_source


class ShortPagePaginator(PageNumberPaginator):
    """Page numbers from 1, stopping after an empty page (as dlt does) or a short one: a page
    with fewer records than were asked for is the last."""

    def __init__(self, page_size: int = PAGE_SIZE) -> None:
        super().__init__(base_page=1, page_param="page", total_path=None, stop_after_empty_page=True)
        self.page_size = page_size

    def update_state(self, response: Any, data: list[Any] | None = None) -> None:
        super().update_state(response, data)
        if data is not None and len(data) < self.page_size:
            self._has_next_page = False


def paginator(tuned: bool, **default: Any) -> Any:
    if tuned:
        return ShortPagePaginator(PAGE_SIZE)
    return {"type": "page_number", "base_page": 1, "page_param": "page", **default}


def sources(cozmox: str, invent: str, key: str, tuned: bool) -> list[Any]:
    auth = {"type": "bearer", "token": key}
    defaults: dict[str, Any] = {"primary_key": "id", "write_disposition": "merge"}
    if tuned:
        defaults["parallelized"] = True
    cozmox_source = rest_api_source({
        "client": {"base_url": cozmox, "auth": auth},
        "resource_defaults": defaults,
        "resources": [{
            "name": "cozmox_chats",
            "endpoint": {
                "path": "chat",
                "params": {"limit": PAGE_SIZE, "sortOrder": "ASC"},
                "data_selector": "results",
                # `metadata.totalItems` counts chats, not pages: with dlt's default paginator
                # it is only a bound, and the empty page past the end stops it.
                "paginator": paginator(tuned, total_path="metadata.totalItems", maximum_page=None),
            },
        }],
    }, name="cozmox")
    invent_source = rest_api_source({
        "client": {"base_url": invent, "auth": auth},
        "resource_defaults": defaults,
        "resources": [
            {
                "name": "invent_chats",
                "endpoint": {"path": "orgs/c/chats", "params": {"take": PAGE_SIZE},
                             "paginator": paginator(tuned, total_path=None, stop_after_empty_page=True)},
            },
            {
                "name": "invent_messages",
                "endpoint": {"path": "chats/{resources.invent_chats.id}/messages", "params": {"take": PAGE_SIZE},
                             "paginator": paginator(tuned, total_path=None, stop_after_empty_page=True)},
            },
        ],
    }, name="invent")
    return [cozmox_source, invent_source]


def main(argv: list[str]) -> None:
    tuned = "--tuned" in argv
    cozmox, invent, key, database = [a for a in argv if a != "--tuned"][:4]
    if tuned:
        # The environment's spelling of config.toml's `[extract] workers = 8` and
        # `[data_writer] disable_compression = true`.
        os.environ["EXTRACT__WORKERS"] = "8"
        os.environ["DATA_WRITER__DISABLE_COMPRESSION"] = "true"
    pipeline = dlt.pipeline(pipeline_name="chats_bench", destination=dlt.destinations.duckdb(database),
                            dataset_name="chats", pipelines_dir=database + ".dlt")
    pipeline.run(sources(cozmox, invent, key, tuned), loader_file_format="jsonl" if tuned else None)
    print("loaded")


if __name__ == "__main__":
    main(sys.argv[1:])
