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

from load.warehouse import Warehouse

QUESTIONS = {
    "Cost and tokens per model": """
        select model, count(distinct chat_id) as chats, sum(prompt_tokens) as prompt_tokens,
               sum(completion_tokens) as completion_tokens, round(sum(cost), 2) as cost
        from costs where model is not null group by model order by cost desc""",
    "Spend per assistant": """
        select assistant_id, count(*) as chats, round(sum(cost), 2) as cost,
               round(avg(cost), 4) as cost_per_chat
        from chats group by assistant_id order by cost desc limit 6""",
    "Chats and messages per day (last 7 days)": """
        select c.updated_at::date as day, count(distinct c.chat_id) as chats, count(m.message_id) as messages
        from chats c left join messages m using (source, chat_id)
        group by day order by day desc limit 7""",
}


def answer(database: str, out: Console) -> None:
    with Warehouse(database) as wh:
        for title, sql in QUESTIONS.items():
            result = wh.con.execute(sql)
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
    from flows.cli import load_settings, run_backfill_flow, run_sync_flow
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
    out.print(f"\nThe warehouse is in [bold]{database}[/bold]; try: "
              f"duckdb {database} \"select * from chats limit 5\" or chatsync status --database {database}")
