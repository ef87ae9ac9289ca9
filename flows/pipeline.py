"""The sync itself, as plain functions: the Prefect flows call these, and so do the tests.

A record's path: `extract` pages it out of the API, `transform` turns the page into rows,
`load` upserts the rows together with the watermark they complete.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from extract.cozmox import floor_ms
from extract.http import ApiClient, RetryPolicy, SourceError
from flows.settings import SOURCES, Settings
from flows.sources import STEPS
from load.warehouse import Warehouse, now_utc

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

    def row(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("run_id")
        return out


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


def sync_source(
    settings: Settings,
    warehouse: Warehouse,
    source: str,
    *,
    full_refresh: bool = False,
) -> SourceSummary:
    """One incremental (or full) sync of one source, committed window by window.

    A source that cannot be read ends as a failed summary, its watermark where the last finished
    window left it; anything else (a bug, a full disk) is recorded and raised.

    The run's end is fixed when it starts, a safety margin before now, so chats updated while it
    pages wait for the next run. It starts a lookback before the saved watermark and moves the
    watermark to the end of each window in the same transaction as the window's rows.
    """
    mode = "full_refresh" if full_refresh else "incremental"
    summary = SourceSummary(source, mode)
    summary.run_id = warehouse.start_run(source, mode)
    began = time.monotonic()
    end = floor_ms(now_utc() - timedelta(seconds=settings.safety_margin_seconds))
    saved = warehouse.watermark(source)
    start = None if full_refresh or saved is None else saved - timedelta(seconds=settings.lookback_seconds)
    summary.window_start, summary.window_end = start, end
    log.info("%s: %s sync of chats updated %s to %s", source, mode,
             start.isoformat() if start else "from the beginning", end.isoformat())
    client = make_client(settings, source)
    deferred: dict[str, str] = {}
    try:
        for step in STEPS[source](client, settings, warehouse, start, end, full_refresh):
            result = warehouse.load(step.batch, source=source, run_id=summary.run_id,
                                    watermark=step.watermark, force=full_refresh)
            summary.chats_fetched += step.fetched
            summary.chats_upserted += result.chats_upserted
            summary.messages_upserted += result.messages_upserted
            summary.rejected += result.rejected
            deferred.update(step.deferred)
            if result.rejected:
                log.warning("%s: %d record(s) could not be read and went to rejected_records",
                            source, result.rejected)
        if deferred:
            chat_id, cause = next(iter(deferred.items()))
            summary.status = "partial"
            summary.error = (f"{source}: the messages of {len(deferred)} chat(s) could not be read "
                             f"(first {chat_id}: {cause}); the next run reads them again")
            log.error("%s", summary.error)
        else:
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
        log.info("%s: %s: fetched %d chats, upserted %d chats and %d messages, rejected %d, "
                 "%d requests (%d retries) in %.1fs", source, summary.status, summary.chats_fetched,
                 summary.chats_upserted, summary.messages_upserted, summary.rejected,
                 summary.requests, summary.retries, summary.seconds)
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
