"""The Prefect flow around the sync: one task per source, a summary artifact at the end.

With no `PREFECT_API_URL`, Prefect runs it on a temporary local server; nothing to start by hand.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State

from flows.pipeline import SourceSummary, selected_sources, sync_source
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


@flow(name="chatsync-sync")
def sync_flow(source: str | None = None, database: str | None = None, full_refresh: bool = False) -> State:
    """Syncs every configured source (or one) into the warehouse.

    Settings come from the environment inside the run, never as parameters, so that API keys
    stay out of the Prefect database. Ends Failed, with the sources' errors as its message, when
    any source failed; the sources that worked keep what they loaded.
    """
    logger = get_run_logger()
    settings = Settings(database=database) if database else Settings()
    try:
        with Warehouse(settings.database) as warehouse:
            summaries = [
                sync_source_task(settings, warehouse, name, full_refresh)
                for name in selected_sources(settings, source)
            ]
    except (DatabaseError, ValueError) as exc:
        return Failed(message=str(exc), data=[])
    create_table_artifact(
        key="chatsync-sync-summary",
        table=summary_table(summaries),
        description=f"chatsync sync into {settings.database}",
    )
    failed = [s for s in summaries if s.status != "success"]
    if failed:
        return Failed(message="; ".join(s.error or f"{s.source}: failed" for s in failed), data=summaries)
    logger.info("synced %s", ", ".join(s.source for s in summaries))
    return Completed(data=summaries)
