"""`chatsync status`: what a person on call wants to see first."""

from __future__ import annotations

from datetime import datetime, timezone

from rich.console import Console
from rich.table import Table

from flows.settings import Settings
from load.warehouse import Warehouse

TABLES = ("chats", "messages", "usage", "costs", "chat_members", "rejected_records", "sync_runs")


def _age(ts: datetime | None) -> str:
    if ts is None:
        return "-"
    seconds = int((datetime.now(timezone.utc) - ts).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _table(title: str, columns: list[str], rows: list[tuple]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("-" if v is None else str(v) for v in row))
    return table


def print_status(settings: Settings, out: Console) -> None:
    with Warehouse(settings.database) as wh:
        con = wh.con
        state = con.execute("select source, stream, watermark from sync_state order by 1, 2").fetchall()
        out.print(_table("watermarks", ["source", "stream", "watermark", "age"],
                         [(s, st, w.isoformat() if w else None, _age(w)) for s, st, w in state]))
        runs = con.execute(
            """select source, mode, status, started_at, round(epoch(finished_at - started_at), 1),
                      chats_fetched, chats_upserted, messages_upserted, rejected, requests, retries, error
               from sync_runs order by started_at desc limit 10"""
        ).fetchall()
        out.print(_table(
            "last runs",
            ["source", "mode", "status", "started", "seconds", "fetched", "chats", "messages",
             "rejected", "requests", "retries", "error"],
            [(r[0], r[1], r[2], r[3].strftime("%Y-%m-%d %H:%M:%S"), *r[4:]) for r in runs],
        ))
        sizes = [(t, con.execute(f"select count(*) from {t}").fetchone()[0]) for t in TABLES]
        out.print(_table("tables", ["table", "rows"], sizes))
        waiting = con.execute(
            "select source, stream, count(*) from rejected_records group by all order by 1, 2"
        ).fetchall()
        if waiting:
            out.print(_table("rejected records", ["source", "stream", "records"], waiting))
