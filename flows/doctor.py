"""`chatsync doctor`: what each configured API does, against what chatsync assumes of it.

A handful of plain requests per account, and nothing else: no Prefect run, no warehouse, nothing
written. Worth running before the first real sync, and whenever a sync starts to warn.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from extract.doctor import Check, Verdict
from extract.http import SourceError
from flows.accounts import ConfigError, selected_accounts
from flows.settings import Settings

STYLES = {Verdict.OK: "green", Verdict.VIOLATED: "bold red", Verdict.UNKNOWN: "yellow"}


def line(account: str, check: Check) -> Text:
    """One assumption on one line; Text, so that nothing an API sent is read as markup."""
    return Text.assemble(f"{account}  ", (f"{check.verdict.value:<8}", STYLES[check.verdict]),
                         f"  {check.assumption}: {check.evidence}")


def run_doctor(settings: Settings, account: str | None, out: Console) -> str | None:
    """Prints every account's checks and a line of counts; returns what went wrong, in one
    sentence, or None when nothing was violated and every account could be probed."""
    from flows.pipeline import open_source

    try:
        accounts = selected_accounts(settings, account=account)
    except ConfigError as exc:
        return str(exc)
    counts = dict.fromkeys(Verdict, 0)
    violated: list[str] = []
    failures: list[str] = []
    requests = 0
    for chosen in accounts:
        try:
            source = open_source(settings, chosen)
        except ConfigError as exc:
            failures.append(str(exc))
            continue
        try:
            checks = source.doctor()
        except SourceError as exc:
            failures.append(str(exc))
            continue
        finally:
            requests += source.client.stats.requests
            source.client.close()
        for check in checks:
            counts[check.verdict] += 1
            out.print(line(chosen.name, check), soft_wrap=True)
            if check.verdict is Verdict.VIOLATED:
                violated.append(f"{chosen.name}: {check.assumption}")
    out.print(f"doctor: {counts[Verdict.OK]} OK, {counts[Verdict.VIOLATED]} VIOLATED, {counts[Verdict.UNKNOWN]} "
              f"UNKNOWN across {len(accounts) - len(failures)} of {len(accounts)} account(s), {requests} requests",
              markup=False, soft_wrap=True)
    if violated:
        failures.append(f"{len(violated)} assumption(s) violated ({'; '.join(violated)})")
    return "; ".join(failures) or None
