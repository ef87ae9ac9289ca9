"""`chatsync query` and `chatsync export`: answers and copies without opening a DuckDB shell."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from load.warehouse import Warehouse

FORMATS = ("table", "csv", "json")


def run_query(database: str, sql: str, fmt: str, out: Console) -> int:
    """Prints the result of one statement; returns the number of rows."""
    with Warehouse(database) as wh:
        result = wh.con.execute(sql)
        if result.description is None:
            return 0
        columns = [d[0] for d in result.description]
        rows = result.fetchall()
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    elif fmt == "json":
        records = [dict(zip(columns, row)) for row in rows]
        sys.stdout.write(orjson.dumps(records, default=str, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*("NULL" if v is None else str(v) for v in row))
        out.print(table)
    return len(rows)


def export(database: str, directory: str, fmt: str = "parquet") -> list[Path]:
    """Every table as one file in `directory`, for other engines."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    with Warehouse(database) as wh:
        tables = [name for (name,) in wh.con.execute(
            "select table_name from duckdb_tables() where database_name = current_database() order by 1"
        ).fetchall()]
        for name in tables:
            path = target / f"{name}.{fmt}"
            literal = str(path).replace("'", "''")
            wh.con.execute(f"copy (select * from {name}) to '{literal}' (format {fmt})")
            written.append(path)
    return written
