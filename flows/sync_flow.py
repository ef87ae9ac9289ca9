"""The Prefect flows around the sync: one task per account, a summary artifact at the end.

With no `PREFECT_API_URL`, Prefect runs it on a temporary local server; nothing to start by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from prefect import Flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from flows import runtime
from flows.accounts import Account, selected_accounts
from flows.pipeline import RunSummary, backfill_account, open_warehouse, reconcile_account, sync_account
from flows.settings import Settings
from load.errors import DatabaseError
from load.warehouse import Warehouse

Done = set[tuple[str, str]]


class PlainParametersFlow(Flow[Any, State]):
    """A flow whose run's parameters, when all are plain values, are stored as they are.

    Prefect turns them into JSON with FastAPI's encoder, and importing FastAPI for it costs about
    0.15 s of every command (a tenth of its start-up); for text, numbers, flags and nulls that
    encoder gives back the values unchanged. Other values (a backfill's times) still go through it.
    """

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        if all(value is None or isinstance(value, (str, int, float)) for value in parameters.values()):
            return dict(parameters)
        return super().serialize_parameters(parameters)


def flow(name: str, flow_run_name: Callable[[], str]) -> Callable[[Callable[..., State]], PlainParametersFlow]:
    """Prefect's `@flow`, for the options these flows use, making a `PlainParametersFlow`."""
    return lambda fn: PlainParametersFlow(fn, name=name, flow_run_name=flow_run_name)


def _tags(account: Account) -> list[str]:
    return [f"source:{account.source}", f"account:{account.name}"]


@task(name="sync-account", cache_policy=NO_CACHE)
def sync_account_task(settings: Settings, warehouse: Warehouse, account: Account, full_refresh: bool,
                      done: Done) -> RunSummary:
    return sync_account(settings, warehouse, account, full_refresh=full_refresh, done=done)


@task(name="reconcile-account", cache_policy=NO_CACHE)
def reconcile_account_task(settings: Settings, warehouse: Warehouse, account: Account, done: Done,
                           force: bool) -> RunSummary:
    return reconcile_account(settings, warehouse, account, done, force)


@task(name="backfill-window", cache_policy=NO_CACHE)
def backfill_window_task(work: Callable[[], None]) -> None:
    work()


def summary_table(summaries: list[RunSummary]) -> list[dict[str, Any]]:
    return [
        {
            "account": s.account,
            "org": s.org_id or "",
            "mode": s.mode,
            "status": s.status,
            "fetched": s.chats_fetched,
            "chats upserted": s.chats_upserted,
            "messages upserted": s.messages_upserted,
            "rejected": s.rejected,
            "requests": s.requests,
            "retries": s.retries,
            "seconds": s.seconds,
            "listed/API": "" if s.api_total is None else f"{s.api_seen}/{s.api_total}",
            "error": s.error or "",
            "warnings": " | ".join(s.warnings),
        }
        for s in summaries
    ]


def flow_settings(database: str | None, invent_org_id: str | None) -> Settings:
    """Settings from the run's environment; a deployment may name the database and the org."""
    overrides: dict[str, Any] = {k: v for k, v in (("database", database), ("invent_org_id", invent_org_id)) if v}
    return Settings(**overrides)


def _finish(summaries: list[RunSummary], key: str, description: str) -> State:
    create_table_artifact(key=key, table=summary_table(summaries), description=description)
    failed = [s for s in summaries if s.status not in ("success", "skipped")]
    if failed:
        return Failed(message="; ".join(s.error or f"{s.account}: failed" for s in failed), data=summaries)
    return Completed(data=summaries)


def _run_name(verb: str) -> Callable[[], str]:
    """Flow runs named for what they cover: `sync-acme`, `sync-invent`, `sync-all`."""
    def name() -> str:
        parameters = flow_run.parameters
        return f"{verb}-{parameters.get('account') or parameters.get('source') or 'all'}"
    return name


@flow(name="chatsync-sync", flow_run_name=_run_name("sync"))
def sync_flow(source: str | None = None, database: str | None = None, full_refresh: bool = False,
              invent_org_id: str | None = None, account: str | None = None) -> State:
    """Syncs every configured account (or those of one source, or one account) into the warehouse.

    Settings come from the environment inside the run, never as parameters, so that API keys
    stay out of the Prefect database. Ends Failed, with the accounts' errors as its message,
    when any account failed; the accounts that worked keep what they loaded.
    """
    logger = get_run_logger()
    runtime.apply()
    settings = flow_settings(database, invent_org_id)
    done: Done = set()
    try:
        accounts = selected_accounts(settings, source, account)
        with open_warehouse(settings, accounts, "full_refresh" if full_refresh else "incremental") as warehouse:
            summaries = [
                sync_account_task.with_options(task_run_name=f"sync-{a.name}", tags=_tags(a))(
                    settings, warehouse, a, full_refresh, done)
                for a in accounts
            ]
    except (DatabaseError, ValueError) as exc:
        return Failed(message=str(exc), data=[])
    logger.info("synced %s", ", ".join(f"{s.account}: {s.status}" for s in summaries))
    return _finish(summaries, "chatsync-sync-summary", f"chatsync sync into {settings.database}")


@flow(name="chatsync-backfill", flow_run_name=_run_name("backfill"))
def backfill_flow(since: datetime, until: datetime | None = None, source: str | None = None,
                  window_seconds: float = 86400, database: str | None = None,
                  invent_org_id: str | None = None, account: str | None = None) -> State:
    """Loads an updated-at range in windows, each read a task of its own; watermarks stay put."""
    runtime.apply()
    settings = flow_settings(database, invent_org_id)
    done: Done = set()
    try:
        accounts = selected_accounts(settings, source, account)
        with open_warehouse(settings, accounts, "backfill") as warehouse:
            summaries = []
            for a in accounts:
                def run_window(name: str, work: Callable[[], None], a: Account = a) -> None:
                    backfill_window_task.with_options(task_run_name=name, tags=_tags(a))(work)

                summaries.append(backfill_account(settings, warehouse, a, since, until,
                                                  timedelta(seconds=window_seconds), run_window, done))
    except (DatabaseError, ValueError) as exc:
        return Failed(message=str(exc), data=[])
    return _finish(summaries, "chatsync-backfill-summary", f"chatsync backfill into {settings.database}")


@flow(name="chatsync-reconcile", flow_run_name=_run_name("reconcile"))
def reconcile_flow(source: str | None = None, database: str | None = None, invent_org_id: str | None = None,
                   account: str | None = None, force: bool = False) -> State:
    """Marks chats deleted upstream with deleted_at, account by account; rows are never deleted.
    `force` marks even where the listing looks partial or would mark more than a tenth."""
    runtime.apply()
    settings = flow_settings(database, invent_org_id)
    done: Done = set()
    try:
        accounts = selected_accounts(settings, source, account)
        with open_warehouse(settings, accounts, "reconcile") as warehouse:
            summaries = [
                reconcile_account_task.with_options(task_run_name=f"reconcile-{a.name}", tags=_tags(a))(
                    settings, warehouse, a, done, force)
                for a in accounts
            ]
    except (DatabaseError, ValueError) as exc:
        return Failed(message=str(exc), data=[])
    return _finish(summaries, "chatsync-reconcile-summary", f"chatsync reconcile of {settings.database}")
