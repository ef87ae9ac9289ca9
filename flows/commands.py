"""What the commands share: settings from options, running a flow with progress, its summary.

flows/cli.py declares the commands; flows/demo.py runs flows through the same functions.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, ValidationError
from rich.console import Console
from rich.table import Table

from flows import temporary_server
from flows.progress import live
from flows.settings import Settings

if TYPE_CHECKING:
    from flows.pipeline import RunSummary

# Piped output keeps whole table rows rather than the 80 columns rich assumes off a terminal.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


class CommandError(Exception):
    """A failure the user can act on; its message is the whole story."""


def variable(field: str) -> str:
    """The environment variable behind a setting (README, Configuration)."""
    alias = Settings.model_fields[field].validation_alias
    if not isinstance(alias, AliasChoices) or not isinstance(alias.choices[0], str):
        raise TypeError(f"the setting {field!r} is not read from the environment")
    return alias.choices[0]


def default(field: str) -> str:
    """A setting's default as a user writes it."""
    value = Settings.model_fields[field].default
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
        return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"
    return str(value)


def load_settings(**options: str | None) -> Settings:
    """Settings from the environment and .env, with the command line's options on top.

    Options are written into the environment, so that flow runs, which read their settings
    themselves to keep keys out of Prefect's parameters, see them too.
    """
    for field, value in options.items():
        if value == "-" and field.endswith("_api_key"):
            # Read it at a prompt instead: a key on the command line is visible to every user.
            import typer

            value = typer.prompt(variable(field), hide_input=True)
        if value is not None:
            os.environ[variable(field)] = value
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise CommandError(f"configuration: {first['loc'][0] if first['loc'] else 'value'}: {first['msg']}") from None


def check_accounts(settings: Settings, source: str | None, account: str | None) -> None:
    """Fails fast, before Prefect starts, on a source or account that is unknown, or none at all."""
    from flows.accounts import ConfigError, selected_accounts

    try:
        selected_accounts(settings, source, account)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None


def server_ready() -> None:
    from flows.prefect_env import one_shot_runs

    try:
        temporary_server.wait_until_ready()
    except RuntimeError as exc:
        raise CommandError(str(exc)) from None
    one_shot_runs()


def run_sync_flow(source: str | None, full_refresh: bool, settings: Settings, account: str | None = None) -> list:
    from flows.sync_flow import sync_flow

    return _run_flow(sync_flow, settings, source, account, full_refresh=full_refresh)


def run_backfill_flow(source: str | None, since: datetime, until: datetime | None, window: timedelta,
                      settings: Settings, account: str | None = None) -> list:
    from flows.sync_flow import backfill_flow

    return _run_flow(backfill_flow, settings, source, account, since=since, until=until,
                     window_seconds=window.total_seconds())


def run_reconcile_flow(source: str | None, force: bool, settings: Settings, account: str | None = None) -> list:
    from flows.sync_flow import reconcile_flow

    return _run_flow(reconcile_flow, settings, source, account, force=force)


def _run_flow(flow: Any, settings: Settings, source: str | None, account: str | None, **parameters: Any) -> list:
    """Runs one of the flows over the chosen accounts, with live progress; its summaries."""
    check_accounts(settings, source, account)
    server_ready()
    with live(out):
        state = flow(source=source, database=settings.database, account=account, return_state=True, **parameters)
    return outcome(state)


def outcome(state: Any) -> list:
    """The run's summaries, printed; a failed run raises with the accounts' errors."""
    from prefect.exceptions import MissingResult

    try:
        summaries = state.result(raise_on_failure=False)
    except MissingResult:
        # The run's last state as the server holds it, without the result: seen once, under load,
        # after the flow had finished (a request that set it retried and was answered so).
        summaries = []
        out.print("The run's summary did not come back from Prefect; `chatsync status` shows what it did.")
    if isinstance(summaries, list):
        print_summary(summaries)
    if not state.is_completed():
        raise CommandError(state.message or "the run failed")
    return summaries


def print_summary(summaries: list[RunSummary]) -> None:
    """A row per account; the errors and warnings, which are long, under the table."""
    from flows.sync_flow import summary_table

    rows = summary_table(summaries)
    if not rows:
        return
    table = Table(title="chatsync summary")
    # The org is in the account's name already; the account's name is never cut short.
    columns = [c for c in rows[0] if c not in ("org", "error", "warnings")]
    for column in columns:
        table.add_column(column, no_wrap=True,
                         min_width=max(len(str(row[column])) for row in rows) if column == "account" else None,
                         justify="left" if column in ("account", "mode", "status") else "right")
    for row in rows:
        table.add_row(*(str(row[c]) for c in columns))
    out.print(table)
    for summary in summaries:
        if summary.error:
            out.print(f"  {summary.error}", soft_wrap=True, markup=False)
        for warning in summary.warnings:
            out.print(f"  {summary.account}: warning: {warning}", soft_wrap=True, markup=False)
