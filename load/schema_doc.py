"""docs/schema.md, written from a database's own comments, so the reference cannot drift.

    python -m load.schema_doc > docs/schema.md
"""

from __future__ import annotations

import sys

from load.warehouse import Warehouse


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def render(warehouse: Warehouse) -> str:
    con = warehouse.con
    keys: dict[str, list[str]] = {}
    for table, columns in con.execute(
        "select table_name, constraint_column_names from duckdb_constraints()"
        " where constraint_type = 'PRIMARY KEY' and database_name = current_database()"
    ).fetchall():
        keys[table] = list(columns)
    relations = con.execute(
        "select table_name, 'table', comment from duckdb_tables() where database_name = current_database()"
        " union all select view_name, 'view', comment from duckdb_views()"
        " where not internal and database_name = current_database() order by 2, 1"
    ).fetchall()
    out = ["# Warehouse reference", "",
           "Generated from the database's own comments by `python -m load.schema_doc`; "
           "a test keeps it equal to what the schema files create.", ""]
    for name, kind, comment in relations:
        out.append(f"## `{name}` ({kind})")
        out.append("")
        out.append(comment or "")
        if name in keys:
            out.append("")
            out.append(f"Key: `({', '.join(keys[name])})`")
        out += ["", "| column | type | meaning |", "|---|---|---|"]
        for column, data_type, column_comment in con.execute(
            "select column_name, data_type, comment from duckdb_columns()"
            " where table_name = ? and database_name = current_database() order by column_index", [name]
        ).fetchall():
            out.append(f"| `{column}` | {data_type} | {_cell(column_comment)} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    with Warehouse(":memory:") as wh:
        sys.stdout.write(render(wh))
