"""The `chatsync` command: the commands and their options, nothing else.

Every failure ends the same way: one line on standard error naming the source and the cause, and
a non-zero exit. Logs and tables go to standard output. What commands share is in
flows/commands.py.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from enum import Enum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

from flows.prefect_env import configure

configure()  # Prefect reads its settings once, at import: before anything imports it

import typer
from typer._click.exceptions import ClickException  # typer vendors click

from flows import runtime, temporary_server
from flows.commands import (
    CommandError,
    check_accounts,
    default,
    err,
    load_settings,
    out,
    run_backfill_flow,
    run_reconcile_flow,
    run_sync_flow,
    variable,
)
from flows.settings import parse_duration as parse_duration_text

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help text is shown as written: "[default: ...]" is not markup
    help="Keeps a DuckDB warehouse in step with the chats of Cozmox and Invent.",
)


class SourceName(str, Enum):
    cozmox = "cozmox"
    invent = "invent"


class QueryFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


class ExportFormat(str, Enum):
    parquet = "parquet"
    csv = "csv"


def _setting(flag: str, field: str, text: str, show_default: bool = True) -> Any:
    """An option backed by a setting: its variable and default shown in the help."""
    return typer.Option(flag, envvar=variable(field), show_envvar=True, help=text,
                        show_default=default(field) if show_default else False)


Source = Annotated[SourceName | None, typer.Option("--source", help="Only this source's accounts.")]
AccountName = Annotated[str | None, typer.Option(
    "--account", help="Only this account: cozmox, invent, invent:ORG, or a name from the accounts file.")]
Database = Annotated[str | None, _setting("--database", "database", "DuckDB file, or md:NAME for MotherDuck.")]

# The options every command that reaches the APIs takes, declared once (see `reaching_apis`).
CONNECTION: dict[str, Any] = {
    "cozmox_base_url": _setting("--cozmox-base-url", "cozmox_base_url", "Cozmox API root."),
    "cozmox_api_key": _setting("--cozmox-api-key", "cozmox_api_key", "'-' asks for it at a prompt; prefer the "
                               "environment or .env, since command lines are visible to other users.", False),
    "invent_base_url": _setting("--invent-base-url", "invent_base_url", "Invent API root."),
    "invent_api_key": _setting("--invent-api-key", "invent_api_key", "'-' asks for it at a prompt.", False),
    "invent_org_id": _setting("--invent-org-id", "invent_org_id", "One org, or several separated by commas."),
}
WAIT = _setting("--wait", "wait", "How long to wait while another process holds the warehouse: 30s, 5m ...")


def reaching_apis(*, wait: bool = True) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Gives a command the connection options (and `--wait`), and hands it the settings they
    make as `settings`."""
    extra = {**CONNECTION, **({"wait": WAIT} if wait else {})}

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "settings"]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                   annotation=Annotated[str | None, option]) for name, option in extra.items()]

        @functools.wraps(command)
        def with_settings(**kwargs: Any) -> None:
            options = {name: kwargs.pop(name) for name in extra}
            if "database" in kwargs:
                options["database"] = kwargs["database"]
            command(**kwargs, settings=load_settings(**options))

        with_settings.__signature__ = signature.replace(parameters=own + added)  # type: ignore[attr-defined]
        with_settings.__annotations__ = {p.name: p.annotation for p in own + added}
        return with_settings

    return decorate


def _source(source: SourceName | None) -> str | None:
    return source.value if source else None


def parse_time(value: str, option: str) -> Any:
    from extract.times import parse_time as parse

    try:
        return parse(value)
    except ValueError:
        raise CommandError(f"{option}: {value!r} is not a date (YYYY-MM-DD) or an ISO date-time") from None


def parse_duration(value: str, option: str) -> Any:
    try:
        duration = parse_duration_text(value)
    except ValueError as exc:
        raise CommandError(f"{option}: {exc}") from None
    if not duration:
        raise CommandError(f"{option}: the duration must be positive")
    return duration


def _version(show: bool) -> None:
    if show:
        try:
            out.print(f"chatsync {version('chatsync')}")
        except PackageNotFoundError:
            out.print("chatsync (not installed)")
        raise typer.Exit


@app.callback()
def main_options(
    show_version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False,
) -> None:
    """Keeps a DuckDB warehouse in step with the chats of Cozmox and Invent."""


@app.command()
@reaching_apis()
def sync(
    source: Source = None,
    account: AccountName = None,
    database: Database = None,
    full_refresh: Annotated[bool, typer.Option(
        "--full-refresh", help="Ignore the saved watermark and read everything.")] = False,
    *, settings: Any,
) -> None:
    """One incremental sync of every configured account (or some) from its saved watermark."""
    run_sync_flow(_source(source), full_refresh, settings, account)


@app.command()
@reaching_apis()
def backfill(
    since: Annotated[str, typer.Option("--since", help="Start of the updated-at range: a date or date-time (UTC).")],
    until: Annotated[str | None, typer.Option(
        "--until", help="End of the range, exclusive; default: now less the safety margin.")] = None,
    source: Source = None,
    account: AccountName = None,
    window: Annotated[str, typer.Option("--window", help="Window size: 6h, 1d, 1w ...")] = "1d",
    database: Database = None,
    *, settings: Any,
) -> None:
    """Loads an updated-at range in windows, resumably, without moving the incremental watermark."""
    start = parse_time(since, "--since")
    end = parse_time(until, "--until") if until else None
    if end is not None and end <= start:
        raise CommandError("--until must come after --since")
    run_backfill_flow(_source(source), start, end, parse_duration(window, "--window"), settings, account)


@app.command()
@reaching_apis()
def reconcile(
    source: Source = None,
    account: AccountName = None,
    database: Database = None,
    force: Annotated[bool, typer.Option("--force", help="Mark even more than a tenth of an account's chats, or "
                                        "when the listing falls short of the API's count.")] = False,
    *, settings: Any,
) -> None:
    """Marks chats deleted upstream with deleted_at (rows are never deleted)."""
    run_reconcile_flow(_source(source), force, settings, account)


@app.command()
def rebuild(
    source: Source = None,
    account: AccountName = None,
    database: Database = None,
    wait: Annotated[str | None, WAIT] = None,
) -> None:
    """Derives every table again from the raw records the warehouse keeps, with no request to
    any API: what a new release reads (a new field) is filled in for the whole history."""
    from flows.commands import print_summary
    from flows.progress import live
    from flows.rebuild import run_rebuild

    settings = load_settings(database=database, wait=wait)
    with live(out):
        summaries = run_rebuild(settings, _source(source), account)
    print_summary(summaries)
    if not summaries:
        raise CommandError(f"nothing to rebuild: {settings.database} holds no chats"
                           + (f" of account {account}" if account else ""))


@app.command()
@reaching_apis(wait=False)
def serve(
    cron: Annotated[str | None, typer.Option(
        "--cron", help="When to sync, as a cron expression.", show_default="*/15 * * * *")] = None,
    interval: Annotated[float | None, typer.Option("--interval", min=1, help="Or every this many seconds.")] = None,
    source: Source = None,
    account: AccountName = None,
    database: Database = None,
    *, settings: Any,
) -> None:
    """Serves the sync as a scheduled Prefect deployment (with a local Prefect server if none is set)."""
    import signal

    from flows.serve import ServeError
    from flows.serve import serve as serve_deployment

    if cron and interval:
        raise CommandError("--cron and --interval: give one schedule, not both")
    check_accounts(settings, _source(source), account)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        path = settings.database if settings.database.startswith("md:") else str(Path(settings.database).resolve())
        serve_deployment(out, _source(source), account, path, cron, interval)
    except ServeError as exc:
        raise CommandError(f"serve: {exc}") from None
    out.print("Stopped serving.")


@app.command()
@reaching_apis(wait=False)
def doctor(account: AccountName = None, *, settings: Any) -> None:
    """Checks what chatsync assumes of each API with a few requests; exits 1 when one is violated."""
    from flows.doctor import run_doctor

    problem = run_doctor(settings, account, out)
    if problem:
        raise CommandError(problem)


@app.command()
def query(
    sql: Annotated[str, typer.Argument(
        help="One SQL statement that reads, e.g. \"select * from daily_spend limit 10\".")],
    fmt: Annotated[QueryFormat, typer.Option("--format")] = QueryFormat.table,
    database: Database = None,
) -> None:
    """Answers one reading SQL statement from the warehouse (or its read copy while a sync
    writes it)."""
    import duckdb

    from flows.query import run_query

    settings = load_settings(database=database)
    try:
        run_query(settings.database, settings.read_copy, sql, fmt.value, out, err)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise CommandError(f"query: {first}") from None


@app.command()
def export(
    directory: Annotated[str, typer.Argument(help="Folder to write the warehouse into.")],
    fmt: Annotated[ExportFormat, typer.Option("--format")] = ExportFormat.parquet,
    database: Database = None,
) -> None:
    """Writes the whole warehouse (a Parquet or CSV file per table, and the schema and views as
    SQL) for other engines, or for `IMPORT DATABASE`."""
    from flows.query import export as export_database

    settings = load_settings(database=database)
    tables = export_database(settings.database, settings.read_copy, directory, fmt.value, err)
    out.print(f"Wrote {tables} tables and the schema to {directory}")


@app.command()
def status(
    database: Database = None,
    account: AccountName = None,
    max_age: Annotated[str | None, typer.Option(
        "--max-age",
        help="Exit 1 when an account's watermark is older than this (30m, 6h ...), as a freshness check.")] = None,
) -> None:
    """Watermarks per account and their age, the last runs and their counts, table sizes."""
    from flows.status import print_status

    limit = parse_duration(max_age, "--max-age") if max_age else None
    stale = print_status(load_settings(database=database), out, err, account, limit)
    if stale:
        raise CommandError(f"older than --max-age {max_age}: {'; '.join(stale)}")


@app.command()
def demo(
    database: Annotated[str, typer.Option(
        "--database", help="Where the demo warehouse goes.")] = "chatsync-demo.duckdb",
    chats: Annotated[int, typer.Option("--chats", min=1, help="Cozmox chats in the simulator.")] = 400,
) -> None:
    """Runs the whole pipeline against the built-in API simulator, on loopback, with no keys."""
    from flows.demo import run_demo

    run_demo(database, chats, out)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status instead of exiting, so tests can call it."""
    from extract.http import SourceError
    from load.errors import DatabaseError

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
