"""The `chatsync` command (CONTRACT.md).

Every failure ends the same way: one line on standard error naming the source and the cause, and
a non-zero exit. Logs and tables go to standard output.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Optional

from flows.prefect_env import configure

configure()

import typer  # noqa: E402
from pydantic import ValidationError  # noqa: E402
from typer._click.exceptions import ClickException  # noqa: E402  (typer vendors click)
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from flows import runtime, temporary_server  # noqa: E402
from flows.progress import live  # noqa: E402
from flows.settings import Settings  # noqa: E402

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Keeps a DuckDB warehouse in step with the chats of Cozmox and Invent.",
)
# Piped output keeps whole table rows rather than the 80 columns rich assumes off a terminal.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


class CommandError(Exception):
    """A failure the user can act on; its message is the whole story."""


Source = Annotated[Optional[str], typer.Option("--source", help="Only this source's accounts: cozmox or invent.")]
AccountName = Annotated[Optional[str], typer.Option("--account", help="Only this account: cozmox, invent, invent:ORG, or a name from the accounts file.")]
Database = Annotated[Optional[str], typer.Option("--database", help="DuckDB file, or md:NAME for MotherDuck. [env: CHATSYNC_DATABASE]")]
CozmoxUrl = Annotated[Optional[str], typer.Option("--cozmox-base-url", help="[env: COZMOX_BASE_URL]")]
CozmoxKey = Annotated[Optional[str], typer.Option("--cozmox-api-key", help="'-' asks for it at a prompt; prefer the environment or .env, since command lines are visible to other users. [env: COZMOX_API_KEY]")]
InventUrl = Annotated[Optional[str], typer.Option("--invent-base-url", help="[env: INVENT_BASE_URL]")]
InventKey = Annotated[Optional[str], typer.Option("--invent-api-key", help="'-' asks for it at a prompt; prefer the environment or .env. [env: INVENT_API_KEY]")]
InventOrg = Annotated[Optional[str], typer.Option("--invent-org-id", help="One org, or several separated by commas. [env: INVENT_ORG_ID]")]
Wait = Annotated[Optional[str], typer.Option("--wait", help="How long to wait while another process holds the warehouse: 30s, 5m ... [env: CHATSYNC_WAIT] [default: 3m]")]


def load_settings(**overrides: Optional[str]) -> Settings:
    """Settings from the environment and .env, with the command line's options on top.

    Options are written into the environment, so that flow runs, which read their settings
    themselves to keep keys out of Prefect's parameters, see them too.
    """
    names = {
        "database": "CHATSYNC_DATABASE",
        "cozmox_base_url": "COZMOX_BASE_URL",
        "cozmox_api_key": "COZMOX_API_KEY",
        "invent_base_url": "INVENT_BASE_URL",
        "invent_api_key": "INVENT_API_KEY",
        "invent_org_id": "INVENT_ORG_ID",
        "wait": "CHATSYNC_WAIT",
    }
    for field, value in overrides.items():
        if value == "-" and field.endswith("_api_key"):
            # Read it at a prompt instead: a key on the command line is visible to every user.
            value = typer.prompt(names[field], hide_input=True)
        if value is not None:
            os.environ[names[field]] = value
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        raise CommandError(f"configuration: {err['loc'][0] if err['loc'] else 'value'}: {err['msg']}") from None


def connection(options: dict[str, object]) -> dict[str, Optional[str]]:
    """The settings options a command was given (every command takes the same ones)."""
    names = ("database", "cozmox_base_url", "cozmox_api_key", "invent_base_url", "invent_api_key", "invent_org_id",
             "wait")
    return {name: options.get(name) for name in names}  # type: ignore[misc]


def _summary(summaries: list) -> None:
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
    for row in rows:
        if row["error"]:
            out.print(f"  {row['error']}", soft_wrap=True, markup=False)
        for warning in filter(None, row["warnings"].split(" | ")):
            out.print(f"  {row['account']}: warning: {warning}", soft_wrap=True, markup=False)


def run_sync_flow(source: Optional[str], full_refresh: bool, settings: Settings, account: Optional[str] = None) -> list:
    _check_accounts(settings, source, account)
    from flows.sync_flow import sync_flow

    _server_ready()
    with live(out):
        state = sync_flow(source=source, database=settings.database, full_refresh=full_refresh, account=account,
                          return_state=True)
    return _outcome(state)


def _server_ready() -> None:
    from flows.prefect_env import one_shot_runs

    try:
        temporary_server.wait_until_ready()
    except RuntimeError as exc:
        raise CommandError(str(exc)) from None
    one_shot_runs()


def _check_accounts(settings: Settings, source: Optional[str], account: Optional[str]) -> None:
    """Fails fast, before Prefect starts, on a source or account that is unknown, or none at all."""
    from flows.accounts import ConfigError, selected_accounts

    try:
        selected_accounts(settings, source, account)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None


def _outcome(state) -> list:  # noqa: ANN001 - a Prefect State
    summaries = state.result(raise_on_failure=False)
    if isinstance(summaries, list):
        _summary(summaries)
    if not state.is_completed():
        raise CommandError(state.message or "the sync failed")
    return summaries


def run_backfill_flow(source: Optional[str], since: datetime, until: Optional[datetime], window: timedelta,
                      settings: Settings, account: Optional[str] = None) -> list:
    _check_accounts(settings, source, account)
    from flows.sync_flow import backfill_flow

    _server_ready()
    with live(out):
        state = backfill_flow(since=since, until=until, source=source, window_seconds=window.total_seconds(),
                              database=settings.database, account=account, return_state=True)
    return _outcome(state)


@app.command()
def sync(
    source: Source = None,
    account: AccountName = None,
    database: Database = None,
    full_refresh: Annotated[bool, typer.Option("--full-refresh", help="Ignore the saved watermark and read everything.")] = False,
    cozmox_base_url: CozmoxUrl = None,
    cozmox_api_key: CozmoxKey = None,
    invent_base_url: InventUrl = None,
    invent_api_key: InventKey = None,
    invent_org_id: InventOrg = None,
    wait: Wait = None,
) -> None:
    """One incremental sync of every configured account (or some) from its saved watermark."""
    settings = load_settings(**connection(locals()))
    run_sync_flow(source, full_refresh, settings, account)


def parse_time(value: str, option: str) -> datetime:
    """A date (midnight UTC) or an ISO date-time; naive ones are UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"{option}: {value!r} is not a date (YYYY-MM-DD) or an ISO date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_duration(value: str, option: str) -> timedelta:
    from flows.settings import parse_duration as parse

    try:
        duration = parse(value)
    except ValueError as exc:
        raise CommandError(f"{option}: {exc}") from None
    if not duration:
        raise CommandError(f"{option}: the duration must be positive")
    return duration


@app.command()
def backfill(
    since: Annotated[str, typer.Option("--since", help="Start of the updated-at range: a date or date-time (UTC).")],
    until: Annotated[Optional[str], typer.Option("--until", help="End of the range, exclusive; default: now less the safety margin.")] = None,
    source: Source = None,
    account: AccountName = None,
    window: Annotated[str, typer.Option("--window", help="Window size: 6h, 1d, 1w ...")] = "1d",
    database: Database = None,
    cozmox_base_url: CozmoxUrl = None,
    cozmox_api_key: CozmoxKey = None,
    invent_base_url: InventUrl = None,
    invent_api_key: InventKey = None,
    invent_org_id: InventOrg = None,
    wait: Wait = None,
) -> None:
    """Loads an updated-at range in windows, resumably, without moving the incremental watermark."""
    start = parse_time(since, "--since")
    end = parse_time(until, "--until") if until else None
    if end is not None and end <= start:
        raise CommandError("--until must come after --since")
    size = parse_duration(window, "--window")
    settings = load_settings(**connection(locals()))
    run_backfill_flow(source, start, end, size, settings, account)


@app.command()
def serve(
    cron: Annotated[Optional[str], typer.Option("--cron", help="When to sync, as a cron expression. [default: */15 * * * *]")] = None,
    interval: Annotated[Optional[float], typer.Option("--interval", min=1, help="Or every this many seconds.")] = None,
    source: Source = None,
    account: AccountName = None,
    database: Database = None,
    cozmox_base_url: CozmoxUrl = None,
    cozmox_api_key: CozmoxKey = None,
    invent_base_url: InventUrl = None,
    invent_api_key: InventKey = None,
    invent_org_id: InventOrg = None,
) -> None:
    """Serves the sync as a scheduled Prefect deployment (with a local Prefect server if none is set)."""
    import signal

    from flows.serve import ServeError, serve as serve_deployment

    if cron and interval:
        raise CommandError("--cron and --interval: give one schedule, not both")
    settings = load_settings(**connection(locals()))
    _check_accounts(settings, source, account)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        database = settings.database if settings.database.startswith("md:") else str(Path(settings.database).resolve())
        serve_deployment(out, source, account, database, cron, interval)
    except ServeError as exc:
        raise CommandError(f"serve: {exc}") from None
    out.print("Stopped serving.")


@app.command()
def reconcile(
    source: Source = None,
    account: AccountName = None,
    database: Database = None,
    cozmox_base_url: CozmoxUrl = None,
    cozmox_api_key: CozmoxKey = None,
    invent_base_url: InventUrl = None,
    invent_api_key: InventKey = None,
    invent_org_id: InventOrg = None,
    wait: Wait = None,
    force: Annotated[bool, typer.Option("--force", help="Mark even more than a tenth of an account's chats, or "
                                        "when the listing falls short of the API's count.")] = False,
) -> None:
    """Marks chats deleted upstream with deleted_at (rows are never deleted)."""
    from flows.sync_flow import reconcile_flow

    settings = load_settings(**connection(locals()))
    _check_accounts(settings, source, account)
    _server_ready()
    with live(out):
        state = reconcile_flow(source=source, database=settings.database, account=account, force=force,
                               return_state=True)
    _outcome(state)


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="One SQL statement, e.g. \"select * from daily_spend limit 10\".")],
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    database: Database = None,
) -> None:
    """Answers one reading SQL statement from the warehouse (or its read copy while a sync
    writes it)."""
    import duckdb

    from flows.query import FORMATS, run_query

    if fmt not in FORMATS:
        raise CommandError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    settings = load_settings(database=database)
    try:
        run_query(settings.database, settings.read_copy, sql, fmt, out, err)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise CommandError(f"query: {first}") from None


@app.command()
def export(
    directory: Annotated[str, typer.Argument(help="Folder to write one file per table into.")],
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    database: Database = None,
) -> None:
    """Writes the whole warehouse (a Parquet or CSV file per table, and the schema and views as
    SQL) for other engines, or for `IMPORT DATABASE`."""
    from flows.query import export as export_database

    if fmt not in ("parquet", "csv"):
        raise CommandError(f"--format: {fmt!r} is not parquet or csv")
    settings = load_settings(database=database)
    paths = export_database(settings.database, settings.read_copy, directory, fmt, err)
    tables = sum(1 for p in paths if p.suffix == f".{fmt}")
    out.print(f"Wrote {tables} tables and the schema to {directory}")


@app.command()
def status(database: Database = None, account: AccountName = None) -> None:
    """Watermarks per account and their age, the last runs and their counts, table sizes."""
    from flows.status import print_status

    print_status(load_settings(database=database), out, err, account)


@app.command()
def demo(
    database: Annotated[str, typer.Option("--database", help="Where the demo warehouse goes.")] = "chatsync-demo.duckdb",
    chats: Annotated[int, typer.Option("--chats", min=1, help="Cozmox chats in the simulator.")] = 400,
) -> None:
    """Runs the whole pipeline against the built-in API simulator, on loopback, with no keys."""
    from flows.demo import run_demo

    run_demo(database, chats, out)


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point; returns the exit status instead of exiting, so tests can call it."""
    from extract.http import SourceError
    from load.warehouse import DatabaseError

    args = sys.argv[1:] if argv is None else argv
    runtime.apply()
    try:
        app(args=args or ["--help"], standalone_mode=False, prog_name="chatsync")
        return 0
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("chatsync: aborted", file=sys.stderr)
        return 130
    except ClickException as exc:
        print(f"chatsync: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code
    except (CommandError, SourceError, DatabaseError) as exc:
        print(f"chatsync: {exc}", file=sys.stderr)
        return 1


# Commands that run flows: the installed command starts Prefect's temporary server for them
# before anything else, so that it boots while the command gets ready.
FLOW_COMMANDS = {"sync", "backfill", "reconcile", "demo"}


def run() -> None:
    """The installed `chatsync` command."""
    args = sys.argv[1:]
    if args and args[0] in FLOW_COMMANDS and not {"--help", "-h"} & set(args):
        temporary_server.start()
    sys.exit(main(args))


if __name__ == "__main__":
    run()
