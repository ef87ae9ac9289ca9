"""`chatsync query` and `chatsync export`: answers and copies, read-only, without a DuckDB shell."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import duckdb
import orjson
from rich.console import Console
from rich.table import Table

from load.read_copy import Reading, open_for_reading, refuse_writes
from load.views import VIEWS
from load.warehouse import one_row, sql_literal

FORMATS = ("table", "csv", "json")


def reading(database: str, read_copy: str | None, err: Console) -> Reading:
    """The warehouse opened read-only (its read copy while a sync writes it, said on stderr)."""
    opened = open_for_reading(database, read_copy)
    if opened.note:
        err.print(f"chatsync: {opened.note}", markup=False, highlight=False, soft_wrap=True)
    return opened


def run_query(database: str, read_copy: str | None, sql: str, fmt: str, out: Console, err: Console) -> int:
    """Prints the result of one reading statement; returns the number of rows."""
    with reading(database, read_copy, err) as opened:
        refuse_writes(opened.con, sql)
        result = opened.con.execute(sql)
        columns = [d[0] for d in result.description]
        rows = result.fetchall()
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    elif fmt == "json":
        records = [dict(zip(columns, row, strict=True)) for row in rows]
        sys.stdout.write(orjson.dumps(records, default=str, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*("NULL" if v is None else str(v) for v in row))
        out.print(table)
    return len(rows)


def export(database: str, read_copy: str | None, directory: str, fmt: str, err: Console) -> int:
    """The whole warehouse as DuckDB's EXPORT DATABASE writes it: a file per table, and the
    schema and views as SQL (`schema.sql`, `load.sql`), so `IMPORT DATABASE` rebuilds it.
    Returns the number of tables."""
    target = Path(directory)
    with reading(database, read_copy, err) as opened:
        target.mkdir(parents=True, exist_ok=True)
        opened.con.execute(f"export database {sql_literal(str(target))} (format {fmt})")
        _views_in_dependency_order(opened.con, target / "schema.sql")
        tables = opened.con.execute("select count(*) from duckdb_tables() where database_name = current_database()")
        return int(one_row(tables)[0])


def _views_in_dependency_order(con: duckdb.DuckDBPyConnection, schema: Path) -> None:
    """EXPORT DATABASE writes views in name order, and IMPORT DATABASE fails on one that reads
    a view created after it: put them in the order the warehouse creates them."""
    statements = [s.query.strip() for s in con.extract_statements(schema.read_text())]
    order: dict[str | None, int] = {name: i for i, name in enumerate(VIEWS)}

    def view(statement: str) -> str | None:
        words = statement.split(None, 3)
        return words[2].strip('"') if words[:2] == ["CREATE", "VIEW"] else None

    others = [s for s in statements if view(s) is None]
    views = sorted((s for s in statements if view(s) is not None), key=lambda s: order.get(view(s), len(order)))
    schema.write_text("".join(f"{s};\n" for s in others + views))
