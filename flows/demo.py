"""`chatsync demo`: the whole pipeline against the built-in simulator, with no keys and no network.

It serves a seeded simulator on a free loopback port, backfills its history in windows, lets some
chats change and new ones arrive, syncs, and answers three questions from the warehouse,
which it leaves behind for the user to query.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from rich.console import Console
from rich.table import Table

from flows import temporary_server
from load.read_copy import open_for_reading, read_copy_path

QUESTIONS = {
    "Top models by spend (both sources)": """
        select spend_rank, source, model, chats, total_tokens, round(cost, 2) as cost
        from model_spend order by spend_rank limit 8""",
    "Top assistants by spend": """
        select spend_rank, source, assistant_id, chats, total_tokens, round(cost, 2) as cost
        from assistant_spend order by spend_rank limit 5""",
    "Chats per day, by source and channel (last 5 days)": """
        select day, source, coalesce(channel, '-') as channel, sum(chats) as chats,
               sum(messages) as messages, round(avg(avg_duration_seconds)) as avg_seconds
        from daily_chats where day > current_date - 5 group by all order by day desc, source, channel""",
}


def answer(database: str, out: Console) -> None:
    with open_for_reading(database, None) as opened:
        for title, sql in QUESTIONS.items():
            result = opened.con.execute(sql)
            table = Table(title=title, title_justify="left")
            for column in result.description:
                table.add_column(column[0])
            for row in result.fetchall():
                table.add_row(*("-" if v is None else str(v) for v in row))
            out.print(table)


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """The demo's settings for the flows it runs, and the caller's environment back after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_demo(database: str, chats: int, out: Console) -> None:
    from flows.commands import load_settings, run_backfill_flow, run_sync_flow
    from simulator import Simulator, SimulatorServer

    # The simulator's clock runs two minutes behind, as a replica might: the activity it makes
    # is then older than the sync's safety margin, and the second sync sees it at once.
    invent_chats = max(1, chats // 4)
    sim = Simulator(seed=7, cozmox_chats=chats, invent_chats=invent_chats, api_key="demo-key",
                    lag=timedelta(minutes=2))
    with SimulatorServer(sim) as server, _environment(
        COZMOX_BASE_URL=server.cozmox_url, COZMOX_API_KEY="demo-key",
        INVENT_BASE_URL=server.invent_url, INVENT_API_KEY="demo-key",
        # The simulator has no rate limit to respect.
        CHATSYNC_INVENT_REQUESTS_PER_MINUTE="0", CHATSYNC_DATABASE=database,
    ):
        settings = load_settings(database=database)
        out.rule(f"1. backfill of {chats} Cozmox and {invent_chats} Invent chats, simulated at {server.url}")
        run_backfill_flow(None, sim.history_start, None, timedelta(days=7), settings)

        rng = random.Random(7)
        changed = added = 0
        for source in ("cozmox", "invent"):
            existing = sim.chat_ids(source)
            for chat_id in rng.sample(existing, k=max(1, len(existing) // 20)):
                sim.touch(source, chat_id)
                changed += 1
            added += len(sim.add_chats(source, max(1, len(existing) // 40)))
        out.rule(f"2. {changed} chats changed and {added} arrived: sync (what is already held is not written again)")
        run_sync_flow(None, False, settings)
    out.rule("3. what the warehouse answers")
    answer(database, out)
    out.print(f"\nThe warehouse is in {database}. Try:\n"
              f"  .venv/bin/chatsync query \"select * from model_spend\" --database {database}\n"
              f"  .venv/bin/chatsync status --database {database}\n"
              f"Notebooks and BI tools open its read copy, which every sync that changes it replaces:\n"
              f"  duckdb.connect(\"{read_copy_path(database)}\", read_only=True)", markup=False)
    ui = temporary_server.local_ui()
    if ui:
        out.print(f"The runs are in the local Prefect server's UI at {ui}; it stops itself after "
                  f"{os.environ.get(temporary_server.IDLE_VARIABLE, temporary_server.DEFAULT_IDLE)} idle "
                  "(python -m flows.local_server stop stops it now).", markup=False)
