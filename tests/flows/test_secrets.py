"""API keys never appear in logs, errors, sync_runs, rejected_records or Prefect's records."""

from __future__ import annotations

import asyncio
import logging

import pytest
from helpers import query

from flows.cli import main
from simulator import Fault

KEY = "sk-live-SECRET-4f9a2c"
WRONG = "sk-live-WRONG-77e1b0"

pytestmark = pytest.mark.parametrize("sim_options", [{"api_key": KEY, "cozmox_chats": 30}])


def warehouse_text(database: str) -> str:
    tables = [t for (t,) in query(database, "select table_name from duckdb_tables()")]
    return "\n".join(str(query(database, f"select * from {t}")) for t in tables)


async def prefect_text() -> str:
    from prefect.client.orchestration import get_client

    # Straight to the REST API: this Prefect's client sends nulls its server refuses here.
    async with get_client() as client:
        found = []
        for path in ("/flow_runs/filter", "/artifacts/filter", "/logs/filter"):
            response = await client._client.post(path, json={"limit": 200, "offset": 0})
            response.raise_for_status()
            found.append(response.text)
    assert '"parameters"' in found[0] and "chats upserted" in found[1] and '"message"' in found[2]
    return "\n".join(found)


def test_keys_stay_out_of_everything_we_write(sim, settings, cli_env, capsys, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("COZMOX_API_KEY", KEY)
    sim.corrupt("cozmox", sim.chat_ids("cozmox")[0], "updatedAt", "broken")
    sim.add_fault(Fault(kind="status", status=503, times=2, source="cozmox"))
    assert main(["sync"]) == 0

    monkeypatch.setenv("COZMOX_API_KEY", WRONG)
    assert main(["sync"]) == 1
    monkeypatch.setattr("typer.prompt", lambda *a, **k: WRONG)
    assert main(["sync", "--cozmox-api-key", "-"]) == 1

    captured = capsys.readouterr()
    written = "\n".join([captured.out, captured.err, caplog.text, warehouse_text(settings.database),
                         asyncio.run(prefect_text())])
    assert "rejected" in captured.err and "broken" in written  # the places checked do hold the run
    for secret in (KEY, WRONG, KEY[8:], WRONG[8:]):
        assert secret not in written
