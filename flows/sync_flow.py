"""The Prefect flow around the sync: one task per source, a summary artifact at the end.

With no `PREFECT_API_URL`, Prefect runs it on a temporary local server; nothing to start by hand.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State

from datetime import datetime, timedelta

from flows.pipeline import SourceSummary, backfill_source, reconcile_source, selected_sources, sync_source
from flows.settings import Settings
from load.warehouse import DatabaseError, Warehouse


@task(name="sync-source", cache_policy=NO_CACHE, task_run_name="sync-{source}")
def sync_source_task(settings: Settings, warehouse: Warehouse, source: str, full_refresh: bool) -> SourceSummary:
    return sync_source(settings, warehouse, source, full_refresh=full_refresh)


def summary_table(summaries: list[SourceSummary]) -> list[dict]:
    return [
        {
            "source": s.source,
            "mode": s.mode,
            "status": s.status,
            "fetched": s.chats_fetched,
            "chats upserted": s.chats_upserted,
            "messages upserted": s.messages_upserted,
            "rejected": s.rejected,
            "requests": s.requests,
            "retries": s.retries,
            "seconds": s.seconds,
            "error": s.error or "",
        }
        for s in summaries
    ]


def flow_settings(database: str | None, invent_org_id: str | None) -> Settings:
    """Settings from the run's environment; a deployment may name the database and the org."""
    overrides = {k: v for k, v in (("database", database), ("invent_org_id", invent_org_id)) if v}
    return Settings(**overrides)


def _finish(summaries: list[SourceSummary], key: str, description: str) -> State:
    create_table_artifact(key=key, table=summary_table(summaries), description=description)
    failed = [s for s in summaries if s.status != "success"]
    if failed:
        return Failed(message="; ".join(s.error or f"{s.source}: failed" for s in failed), data=summaries)
    return Completed(data=summaries)


@flow(name="chatsync-sync")
def sync_flow(source: str | None = None, database: str | None = None, full_refresh: bool = False,
              invent_org_id: str | None = None) -> State:
    """Syncs every configured source (or one) into the warehouse.

    Settings come from the environment inside the run, never as parameters, so that API keys
    stay out of the Prefect database. Ends Failed, with the sources' errors as its message, when
    any source failed; the sources that worked keep what they loaded.
    """
    logger = get_run_logger()
    settings = flow_settings(database, invent_org_id)
    try:
        with Warehouse(settings.database) as warehouse:
            summaries = [
                sync_source_task(settings, warehouse, name, full_refresh)
                for name in selected_sources(settings, source)
            ]
    except (DatabaseError, ValueError) as exc:
        return Failed(message=str(exc), data=[])
    logger.info("synced %s", ", ".join(f"{s.source}: {s.status}" for s in summaries))
    return _finish(summaries, "chatsync-sync-summary", f"chatsync sync into {settings.database}")


@task(name="backfill-window", cache_policy=NO_CACHE)
def backfill_window_task(work) -> None:  # noqa: ANN001 - a closure over the run's state
    work()


@flow(name="chatsync-backfill")
def backfill_flow(since: datetime, until: datetime | None = None, source: str | None = None,
                  window_seconds: float = 86400, database: str | None = None,
                  invent_org_id: str | None = None) -> State:
    """Loads an updated-at range in windows, each a task of its own; the watermark stays put."""
    settings = flow_settings(database, invent_org_id)

    def run_window(name: str, work) -> None:  # noqa: ANN001
        backfill_window_task.with_options(task_run_name=name)(work)

    try:
        with Warehouse(settings.database) as warehouse:
            summaries = [
                backfill_source(settings, warehouse, name, since, until, timedelta(seconds=window_seconds), run_window)
                for name in selected_sources(settings, source)
            ]
    except (DatabaseError, ValueError) as exc:
        return Failed(message=str(exc), data=[])
    return _finish(summaries, "chatsync-backfill-summary", f"chatsync backfill into {settings.database}")


@flow(name="chatsync-reconcile")
def reconcile_flow(source: str | None = None, database: str | None = None, invent_org_id: str | None = None) -> State:
    """Marks chats deleted upstream with deleted_at; rows are never deleted."""
    settings = flow_settings(database, invent_org_id)
    try:
        with Warehouse(settings.database) as warehouse:
            summaries = [reconcile_source(settings, warehouse, name) for name in selected_sources(settings, source)]
    except (DatabaseError, ValueError) as exc:
        return Failed(message=str(exc), data=[])
    return _finish(summaries, "chatsync-reconcile-summary", f"chatsync reconcile of {settings.database}")
