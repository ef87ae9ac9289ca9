"""The sync itself, as plain functions: the Prefect flows call these, and so do the tests.

A record's path: `extract` pages it out of the API, `transform` turns the page into rows,
`load` upserts the rows together with the watermark they complete.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from extract.cozmox import floor_ms
from extract.http import ApiClient, RetryPolicy, SourceError
from extract.source import BackfillWalk, Fetched, ReadOptions, Source
from flows.accounts import Account, ConfigError, selected_accounts
from flows.progress import reporter
from flows.runtime import quick_handoffs, settle_heap
from flows.settings import Settings
from flows.sources import SOURCES
from load.errors import DatabaseBusy
from load.warehouse import AccountKey, TooManyDeletions, Warehouse, now_utc, record_missed_run
from transform.batch import Batch, odd_message_times

log = logging.getLogger("chatsync")


@dataclass
class RunSummary:
    """What one account's run did; also its `sync_runs` row and its line in the summary table."""

    account: str
    source: str
    mode: str
    org_id: str | None = None
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
    warnings: list[str] = field(default_factory=list)
    api_total: int | None = None
    api_seen: int | None = None
    odd_message_times: int = 0
    run_id: str = field(default="", repr=False)

    def counts(self) -> dict[str, Any]:
        keys = ("org_id", "chats_fetched", "chats_upserted", "messages_upserted", "rejected", "requests",
                "retries", "window_start", "window_end", "api_total", "api_seen")
        return {**{k: getattr(self, k) for k in keys}, "warnings": " | ".join(self.warnings) or None}

    @property
    def key(self) -> AccountKey:
        return AccountKey(self.source, self.org_id, self.account)


@dataclass
class LoadStep:
    """Rows to load together, and the watermark they complete (None: not yet one)."""

    batch: Batch
    fetched: int
    watermark: datetime | None = None
    deferred: dict[str, str] = field(default_factory=dict)  # chat id -> why it waits


def make_client(settings: Settings, account: Account) -> ApiClient:
    kind = SOURCES[account.source][0]
    return ApiClient(
        account.name,
        account.base_url,
        account.key(),
        timeout=settings.timeout_seconds,
        retry=RetryPolicy(attempts=settings.max_attempts, backoff=settings.retry_backoff_seconds),
        max_connections=max(8, settings.invent_concurrency),
        requests_per_minute=settings.invent_requests_per_minute if kind.rate_limited else None,
    )


def open_source(settings: Settings, account: Account) -> Source:
    options = ReadOptions(page_size=settings.page_size, concurrency=settings.invent_concurrency,
                          safety_margin_seconds=settings.safety_margin_seconds)
    return SOURCES[account.source][0](make_client(settings, account), account.org, options)


def run_account(settings: Settings, warehouse: Warehouse, account: Account, mode: str,
                work: Callable[[RunSummary, Source], None], done: set[tuple[str, str]] | None = None) -> RunSummary:
    """One account's run, recorded in `sync_runs` whatever its outcome.

    The API is first asked which organisation the account reaches, since all state is kept by
    organisation: the shorthand `c` and the org's id are one account, and an organisation met
    twice in one command (`done`) is read once. An account that cannot be read ends as a failed
    summary and leaves every other account alone; anything else (a bug, a full disk) is
    recorded and raised.
    """
    summary = RunSummary(account.name, account.source, mode)
    settle_heap()
    warehouse.bound_memory()
    summary.run_id = warehouse.start_run(summary.key, mode)
    reporter().start(account.name)
    began = time.monotonic()
    source: Source | None = None
    try:
        source = open_source(settings, account)
        summary.org_id = source.org_id()
        seen = (account.source, summary.org_id or "")
        if done is not None and summary.org_id is not None and seen in done:
            summary.status = "skipped"
            log.info("%s: org %s was synced by another account of this command; skipped", account.name,
                     summary.org_id)
            return summary
        work(summary, source)
        if done is not None and summary.org_id is not None:
            done.add(seen)
        if summary.status == "running":
            summary.status = "success"
    except (SourceError, ConfigError) as exc:
        summary.status, summary.error = "failed", str(exc)
        log.error("%s", exc)
    except Exception as exc:
        summary.status, summary.error = "failed", f"{account.name}: {type(exc).__name__}: {exc}"
        raise
    finally:
        if source is not None:
            source.client.close()
            summary.requests, summary.retries = source.client.stats.requests, source.client.stats.retries
            summary.api_total, summary.api_seen = source.completeness()
            summary.warnings += source.warnings
        if summary.odd_message_times:
            summary.warnings.append(f"{summary.odd_message_times} message(s) are dated more than a day outside "
                                    "their chat's life (seconds sent as milliseconds?); loaded as sent")
            log.warning("%s: %s", account.name, summary.warnings[-1])
        summary.seconds = round(time.monotonic() - began, 3)
        warehouse.finish_run(summary.run_id, summary.status, summary.counts(), summary.error)
        log.info("%s: %s %s: fetched %d chats, upserted %d chats and %d messages, rejected %d, "
                 "%d requests (%d retries) in %.1fs", account.name, mode, summary.status, summary.chats_fetched,
                 summary.chats_upserted, summary.messages_upserted, summary.rejected,
                 summary.requests, summary.retries, summary.seconds)
    return summary


# Pages are loaded a group at a time, since a transaction costs more than the rows of one page;
# two groups are alive at once (one loading, one being built), so groups stay small.
GROUP_CHATS = 500
GROUP_RAW_BYTES = 8 * 2**20


def grouped(steps: Iterator[LoadStep]) -> Iterator[LoadStep]:
    """Consecutive steps as one, up to a group's size; the watermark is the last one reached."""
    pending: LoadStep | None = None
    for step in steps:
        if pending is None:
            pending = step
        else:
            pending.batch.merge(step.batch)
            pending.fetched += step.fetched
            pending.watermark = step.watermark or pending.watermark
            pending.deferred.update(step.deferred)
        if pending.batch.chat_count >= GROUP_CHATS or pending.batch.raw_bytes >= GROUP_RAW_BYTES:
            yield pending
            pending = None
    if pending is not None:
        yield pending


def steps_of(reads: Iterator[Fetched], account: Account, org_id: str | None) -> Iterator[LoadStep]:
    """What a source reads, as rows: the one place a record turns from sent JSON into rows."""
    flatten = SOURCES[account.source][1]
    for fetched in reads:
        batch = flatten(fetched.records, fetched.children, now_utc(), org_id) if fetched.records else Batch()
        yield LoadStep(batch, fetched.listed, fetched.watermark, fetched.deferred)


def _load_steps(warehouse: Warehouse, summary: RunSummary, steps: Iterator[LoadStep], *,
                force: bool = False, keep_watermark: bool = False, rebuild: bool = False) -> dict[str, str]:
    """Loads the steps a group at a time; returns the chats left behind (id -> why).

    Each group loads in a thread of its own while the next one is fetched and transformed:
    DuckDB lets go of the interpreter while it works, so the two share the machine's cores.
    One load at a time, in order, so watermarks still only follow their rows.
    """
    deferred: dict[str, str] = {}

    def load(step: LoadStep) -> None:
        with quick_handoffs():
            result = warehouse.load(step.batch, account=summary.key, run_id=summary.run_id,
                                    watermark=None if keep_watermark else step.watermark, force=force,
                                    rebuild=rebuild)
        reporter().advance(summary.account, step.fetched, result.messages_upserted)
        summary.chats_fetched += step.fetched
        summary.chats_upserted += result.chats_upserted
        summary.messages_upserted += result.messages_upserted
        summary.rejected += result.rejected
        summary.odd_message_times += odd_message_times(step.batch)
        deferred.update(step.deferred)
        if result.rejected:
            log.warning("%s: %d record(s) could not be read and went to rejected_records",
                        summary.account, result.rejected)

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


def _report_deferred(summary: RunSummary, deferred: dict[str, str]) -> None:
    if deferred:
        chat_id, cause = next(iter(deferred.items()))
        summary.status = "partial"
        summary.error = (f"{summary.account}: the messages of {len(deferred)} chat(s) could not be read "
                         f"(first {chat_id}: {cause}); the next run reads them again")
        log.error("%s", summary.error)


def sync_account(settings: Settings, warehouse: Warehouse, account: Account, *, full_refresh: bool = False,
                 done: set[tuple[str, str]] | None = None) -> RunSummary:
    """One incremental (or full) sync of one account.

    The run's end is fixed when it starts, a safety margin before now, so chats updated while it
    pages wait for the next run. It starts a lookback before the account's saved watermark (an
    account with none reads its whole history); the watermark moves in the same transaction as
    the rows it covers.
    """
    mode = "full_refresh" if full_refresh else "incremental"

    def work(summary: RunSummary, source: Source) -> None:
        end = floor_ms(now_utc() - timedelta(seconds=settings.safety_margin_seconds))
        saved = warehouse.watermark(summary.key)
        start = None if full_refresh or saved is None else saved - timedelta(seconds=settings.lookback_seconds)
        summary.window_start, summary.window_end = start, end
        log.info("%s: %s sync of org %s, chats updated %s to %s", account.name, mode,
                 summary.org_id or "(no chats yet)", start.isoformat() if start else "from the beginning",
                 end.isoformat())
        reads = source.changes(start, end, full_refresh, partial(warehouse.versions, account.source))
        deferred = _load_steps(warehouse, summary, steps_of(reads, account, summary.org_id), force=full_refresh)
        _report_deferred(summary, deferred)

    return run_account(settings, warehouse, account, mode, work, done)


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


def backfill_account(settings: Settings, warehouse: Warehouse, account: Account, since: datetime,
                     until: datetime | None = None, window: timedelta = timedelta(days=1),
                     run_window: WindowRunner = _inline, done: set[tuple[str, str]] | None = None) -> RunSummary:
    """Loads one account's chats updated in [since, until) window by window; its watermark is
    never touched.

    Each finished window is recorded with its last rows, so a killed backfill resumes after it
    and a finished one run again reads nothing. `run_window` lets the flow make each of the
    source's reads a Prefect task of its own.
    """
    until = until or floor_ms(now_utc() - timedelta(seconds=settings.safety_margin_seconds))
    windows = backfill_windows(since, until, window)

    def work(summary: RunSummary, source: Source) -> None:
        summary.window_start, summary.window_end = since, until
        todo = [w for w in windows if not warehouse.window_finished(summary.key, *w)]
        log.info("%s: backfill of %s to %s: %d windows, %d already finished", account.name,
                 since.isoformat(), until.isoformat(), len(windows), len(windows) - len(todo))
        deferred: dict[str, str] = {}
        for walk in source.backfill(todo, partial(warehouse.versions, account.source)):
            def read_walk(walk: BackfillWalk = walk) -> None:
                left = _load_steps(warehouse, summary, steps_of(walk.read(), account, summary.org_id),
                                   keep_watermark=True)
                deferred.update(left)
                # A chat left behind keeps its walk's windows open: it cannot be placed in one.
                for finished in ([] if left else walk.windows):
                    warehouse.load(Batch(), account=summary.key, run_id=summary.run_id, finished_window=finished)
            run_window(f"{account.name} {walk.name}", read_walk)
        _report_deferred(summary, deferred)

    return run_account(settings, warehouse, account, "backfill", work, done)


# Runs that write much of the history, as opposed to a scheduled sync's few changes.
BULK_MODES = frozenset({"full_refresh", "backfill", "rebuild"})


def open_warehouse(settings: Settings, accounts: list[Account], mode: str) -> Warehouse:
    """The writer's connection, after waiting its turn; it publishes the read copy on closing.
    A run that never gets its turn is still recorded, for `status` to show. A first sync is a
    bulk load too."""
    started_at = now_utc()
    bulk = mode in BULK_MODES or not Path(settings.database).expanduser().exists()
    try:
        return Warehouse(settings.database, settings.wait.total_seconds(), settings.read_copy, bulk)
    except DatabaseBusy as exc:
        record_missed_run(settings.database, [(a.source, a.name) for a in accounts], mode, started_at, str(exc))
        raise


def run_sync(settings: Settings, source: str | None = None, *, full_refresh: bool = False,
             account: str | None = None) -> list[RunSummary]:
    """Syncs each selected account in turn; one account failing does not stop the others."""
    accounts = selected_accounts(settings, source, account)
    done: set[tuple[str, str]] = set()
    with open_warehouse(settings, accounts, "full_refresh" if full_refresh else "incremental") as warehouse:
        return [sync_account(settings, warehouse, a, full_refresh=full_refresh, done=done) for a in accounts]


def run_backfill(settings: Settings, since: datetime, until: datetime | None = None, source: str | None = None,
                 window: timedelta = timedelta(days=1), account: str | None = None) -> list[RunSummary]:
    accounts = selected_accounts(settings, source, account)
    done: set[tuple[str, str]] = set()
    with open_warehouse(settings, accounts, "backfill") as warehouse:
        return [backfill_account(settings, warehouse, a, since, until, window, done=done) for a in accounts]


RECONCILE_MAX_SHARE = 0.10  # of an account's chats, marked deleted in one run without --force


def reconcile_account(settings: Settings, warehouse: Warehouse, account: Account,
                      done: set[tuple[str, str]] | None = None, force: bool = False) -> RunSummary:
    """Marks the account's chats the API no longer lists with deleted_at, and clears it for
    chats back again; other accounts' chats are out of its reach.

    A listing that falls short of the API's own count, or that would mark more than a tenth of
    the account's chats at once, is far more often a broken or partial API than a purge: it
    marks nothing unless forced.
    """

    def refuse(why: str) -> SourceError:
        return SourceError(account.name, f"{why}; nothing marked deleted (reconcile --force marks them)")

    def work(summary: RunSummary, source: Source) -> None:
        if summary.org_id is None:
            # The API lists nothing, so it names no org: the one this account reached before
            # tells whether chats are live that this would mark.
            live = warehouse.live_chats(replace(summary.key, org_id=warehouse.last_org(summary.key)))
            if live:
                raise SourceError(account.name, f"the API listed no chats at all; refusing to mark {live} deleted")
            return
        ids = source.listed_ids(now_utc())
        summary.chats_fetched = len(ids)
        live = warehouse.live_chats(summary.key)
        if not ids and live:
            # A wrong org or a broken API far more often than every chat deleted at once.
            raise SourceError(account.name, f"the API listed no chats at all; refusing to mark {live} deleted")
        if not force and source.api_total is not None and source.api_seen < source.api_total:
            raise refuse(f"the listing returned {source.api_seen} chats where the API counts {source.api_total}")
        at_most = None if force else int(live * RECONCILE_MAX_SHARE)
        try:
            deleted, restored = warehouse.mark_deleted(summary.key, ids, at_most)
        except TooManyDeletions as exc:
            raise refuse(f"{exc.count} of {live} chats are no longer listed, more than the "
                         f"{RECONCILE_MAX_SHARE:.0%} one run marks") from None
        summary.chats_upserted = deleted + restored
        log.info("%s: the API lists %d chats of org %s; %d newly marked deleted, %d back again",
                 account.name, len(ids), summary.org_id, deleted, restored)

    return run_account(settings, warehouse, account, "reconcile", work, done)


def run_reconcile(settings: Settings, source: str | None = None, account: str | None = None,
                  force: bool = False) -> list[RunSummary]:
    accounts = selected_accounts(settings, source, account)
    done: set[tuple[str, str]] = set()
    with open_warehouse(settings, accounts, "reconcile") as warehouse:
        return [reconcile_account(settings, warehouse, a, done, force) for a in accounts]
