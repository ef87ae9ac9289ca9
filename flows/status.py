"""`chatsync status`: what a person on call wants to see first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
from rich.console import Console
from rich.table import Table

from flows.query import reading
from flows.settings import Settings
from load.errors import DatabaseError
from load.warehouse import latest_migration, missed_runs_path, missed_runs_query, one_row

TABLES = ("chats", "messages", "usage", "costs", "chat_members", "rejected_records", "sync_runs")


def _age(ts: datetime | None) -> str:
    if ts is None:
        return "-"
    seconds = int((datetime.now(UTC) - ts).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _table(title: str, columns: list[str], rows: list[tuple[Any, ...]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("-" if v is None else str(v) for v in row))
    return table


ACCOUNTS = """
with
runs as (
    select
        source,
        coalesce(account, source) as account,
        arg_max(org_id, started_at) filter (where org_id is not null) as org_id,
        max(finished_at) filter (where status = 'success') as last_success_at,
        arg_max(status, started_at) as last_run_status,
        arg_max(error, started_at) as last_error
    from sync_runs
    group by all
),
state as (
    select source, org_id, account, watermark from sync_state where stream = 'chats'
)
select
    coalesce(r.account, s.account) as account,
    coalesce(r.source, s.source) as source,
    coalesce(r.org_id, s.org_id) as org_id,
    s.watermark,
    r.last_success_at,
    r.last_run_status,
    r.last_error
from runs r
full join state s on s.source = r.source and s.org_id = r.org_id
order by 2, 1
"""


def print_status(settings: Settings, out: Console, err: Console, account: str | None = None,
                 max_age: timedelta | None = None) -> list[str]:
    """One row per account (its organisation, watermark and last run), the last runs, table
    sizes and what waits in rejected_records. Read-only: the read copy while a sync writes.
    Returns the accounts whose watermark is older than `max_age` (or missing), each in words."""
    with reading(settings.database, settings.read_copy, err) as opened:
        con = opened.con
        version, expected = one_row(con.execute("select max(version) from schema_migrations"))[0], latest_migration()
        if version < expected:
            raise DatabaseError(f"{opened.path} was written by an older chatsync (schema {version}, this one "
                                f"reads {expected}): the next sync, backfill or reconcile upgrades it")
        _with_missed_runs(con, settings.database)
        accounts = [r for r in con.execute(ACCOUNTS).fetchall() if account is None or r[0] == account]
        out.print(_table(
            "accounts",
            ["account", "source", "org", "watermark", "age", "last success", "last run", "error"],
            [(name, source, org, w.isoformat() if w else None, _age(w), _age(ok), last, error)
             for name, source, org, w, ok, last, error in accounts],
        ))
        runs = con.execute(
            """select coalesce(account, source), mode, status, started_at, round(epoch(finished_at - started_at), 1),
                      chats_fetched, chats_upserted, messages_upserted, rejected, requests, retries,
                      api_seen || '/' || api_total, concat_ws(' | ', error, warnings)
               from sync_runs where ? is null or coalesce(account, source) = ?
               order by started_at desc limit 10""", [account, account]
        ).fetchall()
        out.print(_table(
            "last runs",
            ["account", "mode", "status", "started", "seconds", "fetched", "chats", "messages",
             "rejected", "requests", "retries", "listed/API", "error or warnings"],
            [(r[0], r[1], r[2], r[3].strftime("%Y-%m-%d %H:%M:%S"), *r[4:]) for r in runs],
        ))
        sizes = [(t, one_row(con.execute(f"select count(*) from {t}"))[0]) for t in TABLES]
        out.print(_table("tables", ["table", "rows"], sizes))
        waiting = con.execute(
            "select source, stream, count(*) from rejected_records group by all order by 1, 2"
        ).fetchall()
        if waiting:
            out.print(_table("rejected records", ["source", "stream", "records"], waiting))
    if max_age is None:
        return []
    now = datetime.now(UTC)
    return [f"{name}: {'never synced' if w is None else 'watermark ' + _age(w)}"
            for name, _, _, w, _, _, _ in accounts if w is None or now - w > max_age]


def _with_missed_runs(con: duckdb.DuckDBPyConnection, database: str) -> None:
    """Runs that never got to open the warehouse wait beside it until the next writer records
    them; shown here already, by a temporary view that shadows sync_runs for this connection."""
    pending = [p for p in (missed_runs_path(database, taking=True), missed_runs_path(database)) if p.exists()]
    if not pending:
        return
    catalog = one_row(con.execute("select current_database()"))[0].replace('"', '""')
    con.execute(f'create temp view sync_runs as select * from "{catalog}".main.sync_runs '
                f"union all by name {missed_runs_query(pending)}")
