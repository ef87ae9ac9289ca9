"""chatsync's local Prefect server: started by the first flow command, found by the next ones,
one per home however many start at once, and gone by itself once nobody uses it."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import assert_warehouse_matches

from flows import temporary_server
from flows.local_server import Watchdog
from flows.temporary_server import CLIENTS_LOCK, START_LOCK, lock, read_state, write_state

EXE = shutil.which("chatsync", path=str(Path(sys.executable).parent)) or shutil.which("chatsync")


def prefect_servers(home: Path) -> list[int]:
    """PIDs of the Prefect servers (chatsync's local one, or a temporary one of Prefect's) whose
    Prefect home is `home`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes()
            if b"flows.local_server:create_app" not in command and b"prefect.server.api.server:create_app" not in command:
                continue
            if f"PREFECT_HOME={home}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


def start_here() -> dict:
    """What a flow command does as it begins, done in this process: the server's record."""
    os.environ.pop("PREFECT_API_URL", None)
    temporary_server.start()
    temporary_server.wait_until_ready()
    assert os.environ["PREFECT_API_URL"]
    return read_state(Path(os.environ["CHATSYNC_PREFECT_HOME"]))


def flow_runs(api: str) -> list[tuple[str, str]]:
    runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=30).json()
    return sorted((run["name"], run["state_type"]) for run in runs)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    """A home whose Prefect database is built: a fresh one migrates for 10-15 s as its first
    server boots, which each test would pay again."""
    home = tmp_path_factory.mktemp("migrated")
    saved = dict(os.environ)
    os.environ["CHATSYNC_PREFECT_HOME"] = str(home)
    try:
        start_here()
    finally:
        temporary_server.release()
        temporary_server.stop_server(home)
        os.environ.clear()
        os.environ.update(saved)
    return home


@pytest.fixture
def home(migrated, tmp_path, monkeypatch) -> Iterator[Path]:
    """A chatsync Prefect home of the test's own; whatever server it starts there is stopped."""
    home = tmp_path / "chatsync-prefect"
    home.mkdir()
    for name in ("prefect.db", "prefect.db-wal"):
        if (migrated / name).exists():
            shutil.copy(migrated / name, home / name)
    monkeypatch.setenv("CHATSYNC_PREFECT_HOME", str(home))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    yield home
    temporary_server.release()
    temporary_server.stop_server(home)
    assert prefect_servers(home) == []


def test_a_second_command_reuses_the_server_the_first_left(sim, settings, cli_env, home):
    first = subprocess.run([EXE, "sync"], env=dict(os.environ), capture_output=True, text=True, timeout=300)

    assert (first.returncode, first.stderr) == (0, "")
    state = read_state(home)
    assert prefect_servers(home) == [state["pid"]], "the server outlived the command that started it"
    assert os.getsid(state["pid"]) == state["pid"], "in a session of its own: a terminal's Ctrl-C spares it"
    assert (home / "prefect.db").exists()

    sim.touch("cozmox", sim.cozmox_chats()[0]["id"])
    second = subprocess.run([EXE, "sync"], env=dict(os.environ), capture_output=True, text=True, timeout=300)

    assert (second.returncode, second.stderr) == (0, "")
    assert read_state(home) == state
    assert prefect_servers(home) == [state["pid"]]
    assert flow_runs(state["url"]) == [("sync-all", "COMPLETED")] * 2


def test_two_commands_starting_at_once_start_one_server(sim, settings, cli_env, home, tmp_path):
    commands = [subprocess.Popen([EXE, "sync"], env=dict(os.environ, CHATSYNC_DATABASE=str(tmp_path / f"w{i}.duckdb")),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(2)]
    errors = [command.communicate(timeout=300)[1] for command in commands]

    assert [command.returncode for command in commands] == [0, 0], errors
    state = read_state(home)
    assert prefect_servers(home) == [state["pid"]]
    assert flow_runs(state["url"]) == [("sync-all", "COMPLETED")] * 2


@pytest.mark.parametrize("recorded", ["a process that is gone", "a process that is no server"])
def test_a_stale_record_is_replaced(home, recorded):
    if recorded == "a process that is gone":
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        pid = gone.pid
    else:
        pid = os.getpid()  # this test's own process, which must be left alone
    port = temporary_server.free_port()
    write_state(home, {"pid": pid, "url": f"http://127.0.0.1:{port}/api", "port": port,
                       "prefect": temporary_server.prefect_version(), "started": time.time()})

    state = start_here()

    assert state["pid"] != pid
    assert prefect_servers(home) == [state["pid"]]
    assert temporary_server.healthy(state["url"], timeout=5)


def test_a_server_of_another_prefect_version_is_replaced_once_no_command_runs_on_it(sim, settings, cli_env, home):
    old = start_here()  # a command of an older install, still running
    write_state(home, dict(old, prefect="3.0.0"))

    done = subprocess.run([EXE, "sync"], env=dict(os.environ), capture_output=True, text=True, timeout=300)

    assert (done.returncode, done.stderr) == (0, "")
    assert read_state(home)["pid"] == old["pid"], "not stopped under a running command"

    temporary_server.release()  # that command ends
    new = start_here()

    assert new["pid"] != old["pid"] and new["prefect"] == temporary_server.prefect_version()
    assert not temporary_server.alive(old["pid"])
    assert prefect_servers(home) == [new["pid"]]


def test_a_server_idle_past_its_limit_stops_by_itself(home, monkeypatch):
    monkeypatch.setenv("CHATSYNC_PREFECT_SERVER_IDLE", "1s")
    state = start_here()
    server = temporary_server._process
    assert server is not None and server.pid == state["pid"]

    temporary_server.release()  # the command ends

    # uvicorn ends by raising again the SIGTERM it shut down on
    assert server.wait(timeout=120) in (0, -signal.SIGTERM)
    assert read_state(home) == {"port": state["port"]}, "off the record, its port kept for the next"
    again = start_here()
    assert again["pid"] != state["pid"] and again["port"] == state["port"], "links to the UI keep working"


def test_the_watchdog_stops_a_server_only_once_nobody_holds_it(home):
    write_state(home, {"pid": 4242, "url": "http://127.0.0.1:1/api", "port": 1})
    watchdog = Watchdog(home, idle_seconds=0, pid=4242)

    command = lock(home / CLIENTS_LOCK, fcntl.LOCK_SH)  # a command running on it
    assert not watchdog.should_stop()
    command.close()
    starting = lock(home / START_LOCK, fcntl.LOCK_EX)  # a command finding it
    assert not watchdog.should_stop()
    starting.close()
    watchdog.began()  # a request in flight: the UI, say
    assert not watchdog.should_stop()
    watchdog.ended()

    assert watchdog.should_stop()
    assert read_state(home) == {"port": 1}
    assert lock(home / START_LOCK, fcntl.LOCK_EX, wait=False) is None, "no command starts the next one meanwhile"
    for held in watchdog.held:
        held.close()


def test_the_watchdog_waits_out_the_idle_limit_unless_the_server_is_not_the_recorded_one(home):
    write_state(home, {"pid": 4242, "url": "http://127.0.0.1:1/api", "port": 1})

    assert not Watchdog(home, idle_seconds=3600, pid=4242).should_stop()
    orphan = Watchdog(home, idle_seconds=3600, pid=4343)  # its starter died before recording it
    assert orphan.should_stop()
    assert read_state(home)["pid"] == 4242, "the record is not the orphan's to change"
    for held in orphan.held:
        held.close()


def test_a_prefect_api_url_of_the_users_starts_no_server(sim, settings, cli_env, home, tmp_path):
    theirs = start_here()  # stands for the user's own Prefect server
    unused = tmp_path / "unused-home"
    env = dict(os.environ, PREFECT_API_URL=theirs["url"], CHATSYNC_PREFECT_HOME=str(unused))

    done = subprocess.run([EXE, "sync"], env=env, capture_output=True, text=True, timeout=300)

    assert (done.returncode, done.stderr) == (0, "")
    assert not unused.exists()
    assert prefect_servers(unused) == []
    assert flow_runs(theirs["url"]) == [("sync-all", "COMPLETED")]


def test_a_runs_plain_parameters_are_stored_as_prefect_stores_them_without_importing_fastapi():
    # In a fresh process: whether FastAPI is imported is process-wide.
    code = """
import sys
from datetime import UTC, datetime
from prefect import Flow
from flows.sync_flow import backfill_flow, sync_flow
plain = {"source": "cozmox", "database": "w.duckdb", "full_refresh": True, "account": None, "window_seconds": 60.5}
print(sync_flow.serialize_parameters(plain) == plain, "fastapi" in sys.modules)
print(Flow.serialize_parameters(sync_flow, plain) == plain)
timed = {"since": datetime(2026, 1, 1, tzinfo=UTC), "source": None}
print(backfill_flow.serialize_parameters(timed) == Flow.serialize_parameters(backfill_flow, timed)
      == {"since": "2026-01-01T00:00:00+00:00", "source": None})
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "False", "True", "True"]


# -- warm start (flows/warm_start.py) ---------------------------------------------------------

def waiting_process(home: Path, nth: int = 1) -> int:
    """The PID of the `nth` process that waited for commands in `home`, once it waits."""
    deadline = time.monotonic() + 120
    log = home / "warm-start.log"
    while not (log.exists() and log.read_text().count("waiting for commands") >= nth):
        assert time.monotonic() < deadline, "no process waits for commands"
        time.sleep(0.05)
    line = [line for line in log.read_text().splitlines() if "waiting for commands" in line][nth - 1]
    return int(line.split("[", 1)[1].split("]")[0])


def warm_runs(home: Path) -> list[str]:
    return [line.split("] ", 1)[1] for line in (home / "warm-start.log").read_text().splitlines()
            if "] ran `" in line or "] declined `" in line]


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_commands_after_the_first_run_warm_and_load_what_a_cold_one_would(sim, settings, cli_env, home):
    first = subprocess.run([EXE, "sync"], env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert (first.returncode, first.stderr) == (0, "")
    waiting = waiting_process(home)

    for chat in sim.cozmox_chats()[:5]:
        sim.touch("cozmox", chat["id"])
    second = subprocess.run([EXE, "sync"], env=dict(os.environ), capture_output=True, text=True, timeout=300)
    wrong_key = subprocess.run([EXE, "sync"], env=dict(os.environ, COZMOX_API_KEY="wrong"), capture_output=True,
                               text=True, timeout=300)

    assert (second.returncode, second.stderr) == (0, "")
    assert "chatsync summary" in second.stdout  # the copy wrote to the caller's standard output
    assert_warehouse_matches(sim, settings.database)
    assert wrong_key.returncode == 1
    assert wrong_key.stderr.startswith("chatsync: ") and "cozmox" in wrong_key.stderr.lower()
    assert len(wrong_key.stderr.strip().splitlines()) == 1
    assert [line.split(" (PID")[0] for line in warm_runs(home)] == ["ran `sync`"] * 2
    assert [line.split(", ")[0].rsplit(" ", 1)[1] for line in warm_runs(home)] == ["0", "1"]
    assert waiting_process(home) == waiting, "one process took both"
    assert flow_runs(read_state(home)["url"]).count(("sync-all", "COMPLETED")) == 2

    full = subprocess.run([EXE, "sync", "--full-refresh"], env=dict(os.environ), capture_output=True, timeout=300)
    assert full.returncode == 0
    assert [line.split(" (PID")[0] for line in warm_runs(home)][2:] == ["ran `sync --full-refresh`"]
    assert_warehouse_matches(sim, settings.database)


def test_a_command_whose_environment_prefect_reads_differs_runs_cold_and_waits_next(sim, settings, cli_env, home):
    subprocess.run([EXE, "sync"], env=dict(os.environ), capture_output=True, timeout=300, check=True)
    waiting = waiting_process(home)

    other = dict(os.environ, PREFECT_LOGGING_LEVEL="DEBUG")  # read by Prefect as it is imported
    done = subprocess.run([EXE, "sync"], env=other, capture_output=True, text=True, timeout=300)

    assert (done.returncode, done.stderr) == (0, "")
    assert warm_runs(home) == ["declined `sync`: another environment (PREFECT_LOGGING_LEVEL)"]
    assert waiting_process(home, nth=2) != waiting, "the cold command left a process for its environment"
    deadline = time.monotonic() + 30
    while temporary_server.alive(waiting):
        assert time.monotonic() < deadline, "the replaced process did not stop"
        time.sleep(0.05)


def test_a_warm_command_gets_the_callers_signals_and_ends_with_it(sim, settings, cli_env, home):
    """Ctrl-C reaches the copy that runs the command; a caller killed outright takes it along."""
    subprocess.run([EXE, "sync"], env=dict(os.environ), capture_output=True, timeout=300, check=True)
    waiting = waiting_process(home)
    import duckdb

    holder = duckdb.connect(settings.database)  # the commands wait for the warehouse meanwhile
    try:
        for signum in (signal.SIGINT, signal.SIGKILL):
            command = subprocess.Popen([EXE, "sync"], env=dict(os.environ), stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 60
            while not (copies := children_of(waiting)):
                assert time.monotonic() < deadline, "the command did not start"
                time.sleep(0.05)
            command.send_signal(signum)
            command.wait(timeout=60)
            deadline = time.monotonic() + 30
            while any(temporary_server.alive(pid) for pid in copies):
                assert time.monotonic() < deadline, f"the copy outlived a caller that got {signum!r}"
                time.sleep(0.05)
            if signum == signal.SIGINT:
                assert command.returncode == 130
    finally:
        holder.close()
    statuses = [line.split(", ")[0].rsplit(" ", 1)[1] for line in warm_runs(home)]
    assert statuses == ["130", str(128 + signal.SIGIO)]  # Ctrl-C, then the kernel's signal for a caller gone


def test_a_waiting_process_whose_code_changed_stops_and_the_command_runs_cold(sim, settings, cli_env, home):
    subprocess.run([EXE, "sync"], env=dict(os.environ), capture_output=True, timeout=300, check=True)
    waiting = waiting_process(home)
    changed = Path(temporary_server.__file__)
    stamp = changed.stat()
    os.utime(changed, (stamp.st_atime, stamp.st_mtime + 1))  # as an upgrade in place would
    try:
        done = subprocess.run([EXE, "sync"], env=dict(os.environ), capture_output=True, text=True, timeout=300)
    finally:
        os.utime(changed, (stamp.st_atime, stamp.st_mtime))

    assert (done.returncode, done.stderr) == (0, "")
    assert warm_runs(home) == [f"declined `sync`: {changed} changed"]
    deadline = time.monotonic() + 30
    while temporary_server.alive(waiting):
        assert time.monotonic() < deadline, "the stale process did not stop"
        time.sleep(0.05)
    assert waiting_process(home, nth=2) != waiting, "the cold command left a fresh one"


def test_only_scheduled_commands_that_ask_nothing_at_a_prompt_start_warm(home):
    from flows.warm_start import eligible

    assert eligible(["sync"]) and eligible(["sync", "--source", "cozmox"]) and eligible(["reconcile"])
    assert eligible(["sync", "--full-refresh"]) and not eligible(["backfill", "--since", "30d"])
    assert not eligible(["sync", "--cozmox-api-key", "-"]) and not eligible(["sync", "--cozmox-api-key=-"])
    assert not eligible(["query", "select 1"]) and not eligible(["sync", "--help"])
