"""The sync itself, as plain functions: the Prefect flows call these, and so do the tests.

A record's path: `extract` pages it out of the API, `transform` turns the page into rows,
`load` upserts the rows together with the watermark they complete.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from extract.cozmox import CozmoxChats, chat_key, floor_ms
from extract.invent import InventChats
from extract.http import ApiClient, RetryPolicy, SourceError
from flows.progress import reporter
from flows.settings import SOURCES, Settings
from flows.sources import STEPS, Step, cozmox_steps, invent_range_steps
from load.warehouse import Warehouse, now_utc
from transform.batch import Batch

log = logging.getLogger("chatsync")


@dataclass
class SourceSummary:
    """What one source's run did; also its `sync_runs` row and its line in the summary table."""

    source: str
    mode: str
    status: str = "running"
    chats_fetched: int = 0
    chats_upserted: int = 0
    messages_upserted: int = 0
    rejected: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    window_start: datetime | None = None
    window_end: datetime | None = None
    error: str | None = None
    run_id: str = field(default="", repr=False)

    def counts(self) -> dict[str, Any]:
        keys = ("chats_fetched", "chats_upserted", "messages_upserted", "rejected", "requests",
                "retries", "window_start", "window_end")
        return {k: getattr(self, k) for k in keys}



def make_client(settings: Settings, source: str) -> ApiClient:
    return ApiClient(
        source,
        settings.base_url(source),
        settings.api_key(source) or "",
        timeout=settings.timeout_seconds,
        retry=RetryPolicy(attempts=settings.max_attempts, backoff=settings.retry_backoff_seconds),
        max_connections=max(8, settings.invent_concurrency),
        requests_per_minute=settings.invent_requests_per_minute if source == "invent" else None,
    )


def settle_heap() -> None:
    """Moves what is alive now (Prefect, pydantic, DuckDB: a large heap) out of the garbage
    collector's sight. Pages make millions of short-lived objects that reference counting frees;
    each collection they set off would otherwise walk that whole heap again (a third of the
    time spent parsing a large history). Even the young objects a page keeps alive for a moment
    cost a collection every 10,000 of them, and a sync makes almost nothing cyclic (httpx's
    responses were, see extract/http.py), so collections wait for 100,000."""
    gc.freeze()
    gc.set_threshold(100_000, 10, 10)


@contextmanager
def recorded_run(settings: Settings, warehouse: Warehouse, source: str, mode: str) -> Iterator[tuple[SourceSummary, ApiClient]]:
    """A `sync_runs` row and an API client around one source's run, whatever its outcome.

    A source that cannot be read ends as a failed summary; anything else (a bug, a full disk)
    is recorded and raised.
    """
    summary = SourceSummary(source, mode)
    settle_heap()
    warehouse.bound_memory()
    summary.run_id = warehouse.start_run(source, mode)
    reporter().start(source)
    began = time.monotonic()
    client = make_client(settings, source)
    try:
        yield summary, client
        if summary.status == "running":
            summary.status = "success"
    except SourceError as exc:
        summary.status, summary.error = "failed", str(exc)
        log.error("%s", exc)
    except Exception as exc:
        summary.status, summary.error = "failed", f"{source}: {type(exc).__name__}: {exc}"
        raise
    finally:
        client.close()
        summary.requests, summary.retries = client.stats.requests, client.stats.retries
        summary.seconds = round(time.monotonic() - began, 3)
        warehouse.finish_run(summary.run_id, summary.status, summary.counts(), summary.error)
        log.info("%s: %s %s: fetched %d chats, upserted %d chats and %d messages, rejected %d, "
                 "%d requests (%d retries) in %.1fs", source, mode, summary.status, summary.chats_fetched,
                 summary.chats_upserted, summary.messages_upserted, summary.rejected,
                 summary.requests, summary.retries, summary.seconds)


# Pages are loaded a group at a time: a transaction per thousand chats once took 30-45% less
# time than one per page (pages hold 100 to 250 chats). Since loads run beside the next fetch,
# groups of 500 take the same time as 1,000 and peak 50-100 MB lower (two groups are alive at
# once: one loading, one being built).
GROUP_CHATS = 500
GROUP_RAW_BYTES = 8 * 2**20
LOAD_SWITCH_INTERVAL = 0.0002


def grouped(steps: Iterator[Step]) -> Iterator[Step]:
    """Consecutive steps as one, up to a group's size; the watermark is the last one reached."""
    pending: Step | None = None
    for step in steps:
        if pending is None:
            pending = step
        else:
            pending.batch.merge(step.batch)
            pending.fetched += step.fetched
            pending.watermark = step.watermark or pending.watermark
            pending.deferred.update(step.deferred)
        if len(pending.batch.chats) >= GROUP_CHATS or pending.batch.raw_bytes >= GROUP_RAW_BYTES:
            yield pending
            pending = None
    if pending is not None:
        yield pending


@contextmanager
def quick_handoffs() -> Iterator[None]:
    """Has the interpreter lock change hands within 0.2 ms rather than Python's 5 ms while a
    load runs. A call into DuckDB lets go of the lock and waits to take it back while the main
    thread, building the next group, holds it: at 5 ms, the loads of a large Cozmox sync took
    12-13 s for 4.5 s of work; at 0.2 ms, 7.5-9.5 s."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(LOAD_SWITCH_INTERVAL)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def _load_steps(warehouse: Warehouse, summary: SourceSummary, steps: Iterator[Step], *,
                force: bool = False, keep_watermark: bool = False) -> dict[str, str]:
    """Loads the steps a group at a time; returns the chats left behind (id -> why).

    Each group loads in a thread of its own while the next one is fetched and transformed:
    DuckDB lets go of the interpreter while it works, so the two share the machine's cores.
    One load at a time, in order, so watermarks still only follow their rows.
    """
    deferred: dict[str, str] = {}

    def load(step: Step) -> None:
        with quick_handoffs():
            result = warehouse.load(step.batch, source=summary.source, run_id=summary.run_id,
                                    watermark=None if keep_watermark else step.watermark, force=force)
        reporter().advance(summary.source, step.fetched, result.messages_upserted)
        summary.chats_fetched += step.fetched
        summary.chats_upserted += result.chats_upserted
        summary.messages_upserted += result.messages_upserted
        summary.rejected += result.rejected
        deferred.update(step.deferred)
        if result.rejected:
            log.warning("%s: %d record(s) could not be read and went to rejected_records",
                        summary.source, result.rejected)

    with ThreadPoolExecutor(1, thread_name_prefix="chatsync-load") as loader:
        loading: Future[None] | None = None
        try:
            for step in grouped(steps):
                step.batch.tables()  # Arrow, here: building it needs the interpreter
                if loading is not None:
                    loading.result()
                loading = loader.submit(load, step)
        finally:
            if loading is not None:
                loading.result()
    return deferred


def _report_deferred(summary: SourceSummary, deferred: dict[str, str]) -> None:
    if deferred:
        chat_id, cause = next(iter(deferred.items()))
        summary.status = "partial"
        summary.error = (f"{summary.source}: the messages of {len(deferred)} chat(s) could not be read "
                         f"(first {chat_id}: {cause}); the next run reads them again")
        log.error("%s", summary.error)


def sync_source(settings: Settings, warehouse: Warehouse, source: str, *, full_refresh: bool = False) -> SourceSummary:
    """One incremental (or full) sync of one source.

    The run's end is fixed when it starts, a safety margin before now, so chats updated while it
    pages wait for the next run. It starts a lookback before the saved watermark; the watermark
    moves in the same transaction as the rows it covers.
    """
    mode = "full_refresh" if full_refresh else "incremental"
    with recorded_run(settings, warehouse, source, mode) as (summary, client):
        end = floor_ms(now_utc() - timedelta(seconds=settings.safety_margin_seconds))
        saved = warehouse.watermark(source)
        start = None if full_refresh or saved is None else saved - timedelta(seconds=settings.lookback_seconds)
        summary.window_start, summary.window_end = start, end
        log.info("%s: %s sync of chats updated %s to %s", source, mode,
                 start.isoformat() if start else "from the beginning", end.isoformat())
        steps = STEPS[source](client, settings, warehouse, start, end, full_refresh)
        _report_deferred(summary, _load_steps(warehouse, summary, steps, force=full_refresh))
    return summary


def backfill_windows(since: datetime, until: datetime, size: timedelta) -> list[tuple[datetime, datetime]]:
    """[since, until) cut into windows of `size`, oldest first."""
    bounds = []
    start = since
    while start < until:
        bounds.append((start, min(start + size, until)))
        start += size
    return bounds


WindowRunner = Callable[[str, Callable[[], None]], None]


def _inline(name: str, work: Callable[[], None]) -> None:
    work()


def backfill_source(settings: Settings, warehouse: Warehouse, source: str, since: datetime,
                    until: datetime | None = None, window: timedelta = timedelta(days=1),
                    run_window: WindowRunner = _inline) -> SourceSummary:
    """Loads chats updated in [since, until) window by window; the watermark is never touched.

    Each finished window is recorded with its last rows, so a killed backfill resumes after it
    and a finished one run again reads nothing. `run_window` lets the flow make each window a
    Prefect task of its own.
    """
    until = until or floor_ms(now_utc() - timedelta(seconds=settings.safety_margin_seconds))
    windows = backfill_windows(since, until, window)
    with recorded_run(settings, warehouse, source, "backfill") as (summary, client):
        summary.window_start, summary.window_end = since, until
        todo = [w for w in windows if not warehouse.window_finished(source, *w)]
        log.info("%s: backfill of %s to %s: %d windows, %d already finished", source,
                 since.isoformat(), until.isoformat(), len(windows), len(windows) - len(todo))
        if not todo:
            return summary
        deferred: dict[str, str] = {}
        if source == "cozmox":
            for start, end in todo:
                def one(start: datetime = start, end: datetime = end) -> None:
                    steps = cozmox_steps(client, settings, warehouse, start, end, False)
                    deferred.update(_load_steps(warehouse, summary, steps, keep_watermark=True))
                    warehouse.load(Batch(), source=source, run_id=summary.run_id, finished_window=(start, end))
                run_window(f"{source} {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}", one)
        else:
            # The list can only be walked newest first: one walk covers every window.
            def walk() -> None:
                steps = invent_range_steps(client, settings, warehouse, since, until)
                deferred.update(_load_steps(warehouse, summary, steps, keep_watermark=True))
                # A chat left behind keeps every window open: the walk cannot place it in one.
                for start, end in ([] if deferred else todo):
                    warehouse.load(Batch(), source=source, run_id=summary.run_id, finished_window=(start, end))
            run_window(f"{source} {since:%Y-%m-%d} to {until:%Y-%m-%d}", walk)
        _report_deferred(summary, deferred)
    return summary


def selected_sources(settings: Settings, source: str | None) -> list[str]:
    """The sources a command works on: the one named, or every one with a key."""
    if source is not None:
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}: choose one of {', '.join(SOURCES)}")
        if not settings.api_key(source):
            raise ValueError(f"{source}: no API key is set ({source.upper()}_API_KEY)")
        return [source]
    found = settings.configured_sources()
    if not found:
        raise ValueError("no source is configured: set COZMOX_API_KEY or INVENT_API_KEY")
    return found


def run_sync(settings: Settings, source: str | None = None, *, full_refresh: bool = False) -> list[SourceSummary]:
    """Syncs each selected source in turn; one source failing does not stop the others."""
    with Warehouse(settings.database) as warehouse:
        return [
            sync_source(settings, warehouse, name, full_refresh=full_refresh)
            for name in selected_sources(settings, source)
        ]


def run_backfill(settings: Settings, since: datetime, until: datetime | None = None, source: str | None = None,
                 window: timedelta = timedelta(days=1)) -> list[SourceSummary]:
    with Warehouse(settings.database) as warehouse:
        return [
            backfill_source(settings, warehouse, name, since, until, window)
            for name in selected_sources(settings, source)
        ]


def listed_ids(client: ApiClient, settings: Settings, source: str, started: datetime) -> set[str]:
    """Every chat id the API has now: ids only, no messages.

    Cozmox windows run oldest first up to a day ahead, so a chat updated during the walk is seen
    at its old place or its new one. Invent's walk is newest first, so it ends by re-reading the
    top of the list down to where it began, where chats updated meanwhile went.
    """
    ids: set[str] = set()

    def take(records: list[Any]) -> None:
        ids.update(r["id"] for r in records if isinstance(r, dict) and isinstance(r.get("id"), str))

    if source == "cozmox":
        for page in CozmoxChats(client, settings.page_size).pages(None, started + timedelta(days=1)):
            ids.update(key for key in (chat_key(text).id for text in page.records) if isinstance(key, str))
    else:
        reader = InventChats(client, settings.invent_org_id, take=settings.page_size)
        for page in reader.walk(None):
            take(page.records)
        for page in InventChats(client, settings.invent_org_id, take=settings.page_size).walk(
                started - timedelta(seconds=settings.safety_margin_seconds)):
            take(page.records)
    return ids


def reconcile_source(settings: Settings, warehouse: Warehouse, source: str) -> SourceSummary:
    """Marks chats the API no longer lists with deleted_at, and clears it for chats back again."""
    with recorded_run(settings, warehouse, source, "reconcile") as (summary, client):
        ids = listed_ids(client, settings, source, now_utc())
        summary.chats_fetched = len(ids)
        held = warehouse.scalar("select count(*) from chats where source = ? and deleted_at is null", [source])
        if not ids and held:
            # A wrong org or a broken API far more often than every chat deleted at once.
            raise SourceError(source, f"the API listed no chats at all; refusing to mark {held} deleted")
        deleted, restored = warehouse.mark_deleted(source, ids)
        summary.chats_upserted = deleted + restored
        log.info("%s: the API lists %d chats; %d newly marked deleted, %d back again",
                 source, len(ids), deleted, restored)
    return summary


def run_reconcile(settings: Settings, source: str | None = None) -> list[SourceSummary]:
    with Warehouse(settings.database) as warehouse:
        return [reconcile_source(settings, warehouse, name) for name in selected_sources(settings, source)]
