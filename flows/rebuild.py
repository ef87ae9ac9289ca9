"""`chatsync rebuild`: every table derived again from the raw records the warehouse keeps.

No request reaches an API, so a release that reads a new field (tool calls, cached tokens)
fills it in for the whole history. Each organisation's chats are read back in id order, a
group at a time, flattened by today's code and loaded as a sync loads them, one transaction
per group, except that every chat and all its children are written again. Watermarks, backfill windows and
`deleted_at` stay as they are. A chat today's code cannot read keeps its rows and is recorded
in rejected_records; an Invent chat whose messages were stored without their raw JSON (by a
release before it was kept) is left as it is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import duckdb
import orjson

from flows.pipeline import LoadStep, RunSummary, _load_steps, open_warehouse
from flows.progress import reporter
from flows.runtime import settle_heap
from flows.settings import Settings
from flows.sources import SOURCES
from load.warehouse import AccountKey, Warehouse, now_utc

log = logging.getLogger("chatsync")

GROUP = 500


def stored_accounts(warehouse: Warehouse, source: str | None, account: str | None) -> list[AccountKey]:
    """Each organisation the warehouse holds chats of, named as its last run named it."""
    rows = warehouse.con.execute(
        """
        select c.source, c.org_id,
               coalesce((select arg_max(r.account, r.started_at) from sync_runs r
                         where r.source = c.source and r.org_id is not distinct from c.org_id),
                        c.source || coalesce(':' || c.org_id, '')) as name
        from (select distinct source, org_id from chats) c
        where (? is null or c.source = ?)
        order by 1, 2
        """, [source, source]).fetchall()
    return [AccountKey(s, org, name) for s, org, name in rows if account is None or name == account]


def stored_steps(warehouse: Warehouse, key: AccountKey, skipped: list[str]) -> Iterator[LoadStep]:
    """The organisation's chats as stored, a group at a time, as rows again."""
    flatten = SOURCES[key.source][1]
    reader = warehouse.cursor()  # reads between the loads, which the main connection runs
    after = ""
    while True:
        chats = reader.execute(
            "select chat_id, raw::varchar from chats where source = ? and org_id is not distinct from ?"
            " and chat_id > ? order by chat_id limit ?", [key.source, key.org_id, after, GROUP]).fetchall()
        if not chats:
            return
        after = chats[-1][0]
        children: dict[str, list[object]] = {}
        if key.source == "invent":
            children, unrecoverable = _stored_messages(reader, [chat_id for chat_id, _ in chats])
            skipped += unrecoverable
            chats = [c for c in chats if c[0] not in unrecoverable]
        records = [raw.encode() for _, raw in chats]
        batch = flatten(records, children, now_utc(), key.org_id)
        yield LoadStep(batch, len(chats))


def _stored_messages(reader: duckdb.DuckDBPyConnection,
                     chat_ids: list[str]) -> tuple[dict[str, list[object]], set[str]]:
    rows = reader.execute(
        "select chat_id, raw::varchar from messages where source = 'invent' and chat_id in (select unnest(?))"
        " order by chat_id, seq", [chat_ids]).fetchall()
    messages: dict[str, list[object]] = {}
    unrecoverable: set[str] = set()
    for chat_id, raw in rows:
        if raw is None:
            unrecoverable.add(chat_id)
        else:
            messages.setdefault(chat_id, []).append(orjson.loads(raw))
    return messages, unrecoverable


def run_rebuild(settings: Settings, source: str | None = None, account: str | None = None) -> list[RunSummary]:
    """Rebuilds each stored organisation in turn; returns a summary per organisation."""
    with open_warehouse(settings, [], "rebuild") as warehouse:
        warehouse.bound_memory()
        return [_rebuild(warehouse, key) for key in stored_accounts(warehouse, source, account)]


def _rebuild(warehouse: Warehouse, key: AccountKey) -> RunSummary:
    summary = RunSummary(key.name, key.source, "rebuild", org_id=key.org_id)
    settle_heap()
    summary.run_id = warehouse.start_run(key, "rebuild")
    reporter().start(key.name)
    began = time.monotonic()
    skipped: list[str] = []
    try:
        _load_steps(warehouse, summary, stored_steps(warehouse, key, skipped), keep_watermark=True, rebuild=True)
        summary.status = "success"
        if skipped:
            summary.warnings.append(f"{len(skipped)} chat(s) kept as they were: their messages were stored "
                                    f"without raw JSON (first {skipped[0]})")
    except Exception as exc:
        summary.status, summary.error = "failed", f"{key.name}: {type(exc).__name__}: {exc}"
        raise
    finally:
        summary.seconds = round(time.monotonic() - began, 3)
        warehouse.finish_run(summary.run_id, summary.status, summary.counts(), summary.error)
        log.info("%s: rebuild %s: %d chats read back, %d chats and %d messages rewritten, %d rejected in %.1fs",
                 key.name, summary.status, summary.chats_fetched, summary.chats_upserted,
                 summary.messages_upserted, summary.rejected, summary.seconds)
    return summary
