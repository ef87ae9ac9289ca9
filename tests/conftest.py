"""Shared fixtures: a simulator on loopback and settings pointing at it. pytest applies this file
to every folder under tests/; the plain helpers the tests import are in helpers.py.

Prefect runs on one temporary server for the whole session, under a PREFECT_HOME of its own.
The installed command, which tests run too, keeps chatsync's local Prefect server under a
CHATSYNC_PREFECT_HOME of the session's; the session stops that server as it ends.
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta

_prefect_home = tempfile.mkdtemp(prefix="chatsync-prefect-")
os.environ["PREFECT_HOME"] = _prefect_home
os.environ.setdefault("PREFECT_SERVER_UI_ENABLED", "false")
_chatsync_prefect_home = os.path.join(_prefect_home, "chatsync")
os.environ["CHATSYNC_PREFECT_HOME"] = _chatsync_prefect_home
# A session killed before its end leaves that server for two minutes, not half an hour.
os.environ["CHATSYNC_PREFECT_SERVER_IDLE"] = "2m"
# Prefect binds its console handler to the stdout of the moment, which pytest swaps per test;
# tests read logs through pytest's own capture instead.
os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "CRITICAL"
for _name in ("COZMOX_API_KEY", "INVENT_API_KEY", "CHATSYNC_DATABASE", "COZMOX_BASE_URL", "INVENT_BASE_URL"):
    os.environ.pop(_name, None)

from flows.prefect_env import configure

configure()

import pytest
from helpers import API_KEY, HISTORY_END

from flows.settings import Settings
from simulator import Simulator, SimulatorServer


@pytest.fixture(autouse=True, scope="session")
def _runtime_tweaks():
    """The tweaks the command applies, so that tests run the pipeline as users do."""
    from flows import runtime

    runtime.apply()


@pytest.fixture(autouse=True, scope="session")
def _no_local_prefect_server_left():
    yield
    from pathlib import Path

    from flows import temporary_server

    temporary_server.stop_server(Path(_chatsync_prefect_home))


@pytest.fixture(autouse=True, scope="session")
def _quiet_prefect_shutdown():
    """Prefect says goodbye when the session ends, after pytest has closed the captured stdout."""
    yield
    import logging

    logging.getLogger("prefect").setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def _no_dotenv(tmp_path, monkeypatch):
    """Tests run where no .env can leak settings in, and leave the environment as they found it
    (the command writes its options into the environment for the flows it starts)."""
    monkeypatch.chdir(tmp_path)
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def sim_options() -> dict:
    return {}


@pytest.fixture
def sim(sim_options) -> Simulator:
    options = dict(seed=11, cozmox_chats=120, invent_chats=0, api_key=API_KEY, history_days=20,
                   history_end=HISTORY_END, lag=timedelta(seconds=1))
    options.update(sim_options)
    return Simulator(**options)


@pytest.fixture
def server(sim):
    with SimulatorServer(sim) as running:
        yield running


@pytest.fixture
def settings(server, tmp_path) -> Settings:
    return Settings(
        database=str(tmp_path / "warehouse.duckdb"),
        cozmox_base_url=server.cozmox_url,
        cozmox_api_key=API_KEY,
        invent_base_url=server.invent_url,
        page_size=20,
        safety_margin_seconds=0,
        lookback_seconds=600,
        timeout_seconds=5,
        max_attempts=4,
        retry_backoff_seconds=0.01,
    )


@pytest.fixture
def cli_env(settings, monkeypatch):
    """The same settings, as the environment the `chatsync` command reads."""
    values = {
        "CHATSYNC_DATABASE": settings.database,
        "COZMOX_BASE_URL": settings.cozmox_base_url,
        "COZMOX_API_KEY": API_KEY,
        "INVENT_BASE_URL": settings.invent_base_url,
        "CHATSYNC_PAGE_SIZE": str(settings.page_size),
        "CHATSYNC_SAFETY_MARGIN_SECONDS": "0",
        "CHATSYNC_MAX_ATTEMPTS": str(settings.max_attempts),
        "CHATSYNC_RETRY_BACKOFF_SECONDS": "0.01",
        "CHATSYNC_TIMEOUT_SECONDS": "5",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def invent_settings(settings) -> Settings:
    """Invent alone, with no request-rate limit: the simulator has none."""
    return settings.model_copy(update={"cozmox_api_key": None, "invent_api_key": API_KEY,
                                       "invent_requests_per_minute": 0})
