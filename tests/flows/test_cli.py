"""The `chatsync` command as users run it: the real Prefect flow, exit codes, what lands on stderr."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import httpx
import pytest
from helpers import assert_warehouse_matches, query, watermark
from test_startup import prefect_servers

from flows import temporary_server
from flows.cli import main
from simulator import Fault


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_sync_runs_as_a_flow_and_status_reports_it(sim, settings, cli_env, capsys):
    code, out, err = run(capsys, "sync")

    assert (code, err) == (0, "")
    assert "chatsync summary" in out and "cozmox" in out
    assert_warehouse_matches(sim, settings.database)

    code, out, err = run(capsys, "status")
    assert (code, err) == (0, "")
    mark = watermark(settings.database)
    assert mark.isoformat() in out
    assert "success" in out and "chats" in out


def test_a_first_run_waits_for_a_slow_temporary_server():
    """A fresh Prefect home migrates as the server boots; Prefect's own 20 s limit failed first
    runs on a busy 2-core machine."""
    from prefect.settings import get_current_settings

    assert get_current_settings().server.ephemeral.startup_timeout_seconds >= 120


def test_a_rejected_key_exits_non_zero_with_one_line_and_keeps_state(sim, settings, cli_env, capsys, monkeypatch):
    assert run(capsys, "sync")[0] == 0
    state_before = query(settings.database, "select * from sync_state")
    sim.touch("cozmox", sim.cozmox_chats()[0]["id"])

    monkeypatch.setenv("COZMOX_API_KEY", "wrong-key")
    code, out, err = run(capsys, "sync")

    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "cozmox" in lines[0] and "key was rejected" in lines[0] and "401" in lines[0]
    assert "wrong-key" not in err + out
    assert query(settings.database, "select * from sync_state") == state_before
    last = query(settings.database, "select status, error from sync_runs order by started_at desc limit 1")[0]
    assert last[0] == "failed" and "rejected" in last[1]


def test_an_unreachable_api_names_the_source(settings, cli_env, capsys, monkeypatch):
    monkeypatch.setenv("COZMOX_BASE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("CHATSYNC_MAX_ATTEMPTS", "2")

    code, _, err = run(capsys, "sync", "--source", "cozmox")

    assert code == 1
    assert err.count("\n") == 1 and err.startswith("chatsync: cozmox:") and "connect" in err
    assert watermark(settings.database) is None


@pytest.mark.parametrize(
    "argv, words",
    [
        (["sync", "--source", "nowhere"], ["--source", "nowhere", "is not one of"]),
        (["sync", "--no-such-option"], ["no such option"]),
        (["sync", "--source", "invent"], ["invent", "no API key"]),
    ],
)
def test_bad_options_get_one_plain_line(cli_env, capsys, argv, words):
    code, _, err = run(capsys, *argv)
    assert code != 0
    assert err.count("\n") == 1, err
    assert all(w.lower() in err.lower() for w in words), err


def test_no_configured_source_is_an_error(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("COZMOX_API_KEY", raising=False)
    code, _, err = run(capsys, "sync", "--database", str(tmp_path / "w.duckdb"))
    assert code == 1 and "no source is configured" in err


def test_a_dotenv_file_is_read(sim, server, tmp_path, capsys, monkeypatch):
    (tmp_path / ".env").write_text(
        f"COZMOX_BASE_URL={server.cozmox_url}\nCOZMOX_API_KEY=sim-key\n"
        f"CHATSYNC_DATABASE={tmp_path / 'env.duckdb'}\nCHATSYNC_SAFETY_MARGIN_SECONDS=0\n"
    )
    for name in ("COZMOX_BASE_URL", "COZMOX_API_KEY", "CHATSYNC_DATABASE"):
        monkeypatch.delenv(name, raising=False)

    code, _, err = run(capsys, "sync")

    assert (code, err) == (0, "")
    assert_warehouse_matches(sim, str(tmp_path / "env.duckdb"))


def test_the_installed_command_keeps_stderr_to_one_line(sim, settings, cli_env, tmp_path):
    """The acceptance run drives the installed entry point; Prefect starts in that process."""
    exe = shutil.which("chatsync", path=str(Path(sys.executable).parent)) or shutil.which("chatsync")
    assert exe, "the chatsync command is not installed"
    env = dict(os.environ, COZMOX_API_KEY="bad-key", PREFECT_HOME=str(tmp_path / "prefect"))

    done = subprocess.run([exe, "sync", "--source", "cozmox"], env=env, capture_output=True, text=True, timeout=180)

    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "cozmox" in done.stderr and "rejected" in done.stderr
    assert "bad-key" not in done.stdout + done.stderr
    assert watermark(settings.database) is None


@pytest.mark.parametrize("sim_options", [{"cozmox_chats": 40, "invent_chats": 30}])
def test_one_sync_command_loads_both_sources(sim, settings, cli_env, capsys, monkeypatch):
    monkeypatch.setenv("INVENT_API_KEY", "sim-key")
    monkeypatch.setenv("CHATSYNC_INVENT_REQUESTS_PER_MINUTE", "0")

    code, _out, err = run(capsys, "sync")

    assert (code, err) == (0, "")
    counts = dict(query(settings.database, "select source, count(*) from chats group by 1"))
    assert counts == {"cozmox": 40, "invent": 30}
    assert {s for (s,) in query(settings.database, "select source from sync_state")} == {"cozmox", "invent"}


def test_status_shows_a_failed_runs_error(sim, settings, cli_env, capsys):
    sim.add_fault(Fault(kind="status", status=503, times=-1, source="cozmox"))
    code, _, err = run(capsys, "sync")
    assert code == 1 and "503" in err

    code, out, _ = run(capsys, "status")

    assert code == 0
    assert "failed" in out and "HTTP 503 from /chat" in out


def test_backfill_command_and_bad_dates(sim, settings, cli_env, capsys):
    since = (sim.history_start - timedelta(days=1)).date().isoformat()
    code, _out, err = run(capsys, "backfill", "--since", since, "--window", "1w")
    assert (code, err) == (0, "")
    assert_warehouse_matches(sim, settings.database)
    assert watermark(settings.database) is None

    for argv, words in ((["backfill", "--since", "last tuesday"], "--since"),
                        (["backfill", "--since", "2024-01-01", "--window", "soon"], "--window"),
                        (["backfill", "--since", "2024-01-02", "--until", "2024-01-01"], "--until")):
        code, _, err = run(capsys, *argv)
        assert code == 1 and err.count("\n") == 1 and words in err


def test_demo_runs_end_to_end(tmp_path, capsys):
    database = str(tmp_path / "demo.duckdb")
    code, out, err = run(capsys, "demo", "--database", database, "--chats", "60")
    assert (code, err) == (0, "")
    assert "Top models by spend" in out
    assert query(database, "select count(*) > 0 from chats where source = 'invent'") == [(True,)]


def _runs(database: str) -> list[tuple]:
    try:
        return query(database, "select status from sync_runs")
    except (duckdb.IOException, duckdb.CatalogException):
        return []  # not created yet, or a scheduled run holds the file right now


def test_serve_fires_a_scheduled_sync_and_stops_cleanly(sim, settings, cli_env, tmp_path):
    """A real local Prefect server, a deployment every 3 s, stopped by SIGTERM as a service manager would."""
    exe = shutil.which("chatsync", path=str(Path(sys.executable).parent)) or shutil.which("chatsync")
    env = dict(os.environ, CHATSYNC_PREFECT_HOME=str(tmp_path / "prefect-home"),
               PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="1", PREFECT_RUNNER_POLL_FREQUENCY="1")
    env.pop("PREFECT_API_URL", None)
    served = subprocess.Popen([exe, "serve", "--interval", "3"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 150
        while ("success",) not in _runs(settings.database):
            assert served.poll() is None, served.communicate()
            assert time.monotonic() < deadline, "no scheduled run synced in time"
            time.sleep(0.5)
    finally:
        served.send_signal(signal.SIGTERM)
        out, err = served.communicate(timeout=60)

    assert served.returncode == 0, err
    assert "UI at http://127.0.0.1:" in out
    assert_warehouse_matches(sim, settings.database)
    port = int(out.split("UI at http://127.0.0.1:")[1].split()[0])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_reconcile_command_marks_deleted_chats(sim, settings, cli_env, capsys):
    assert run(capsys, "sync")[0] == 0
    gone = sim.chat_ids("cozmox")[0]
    sim.delete("cozmox", gone)

    code, _out, err = run(capsys, "reconcile")

    assert (code, err) == (0, "")
    assert query(settings.database, "select chat_id from chats where deleted_at is not null") == [(gone,)]


def test_a_killed_serve_takes_its_prefect_server_with_it(settings, cli_env, tmp_path):
    exe = shutil.which("chatsync", path=str(Path(sys.executable).parent)) or shutil.which("chatsync")
    env = dict(os.environ, CHATSYNC_PREFECT_HOME=str(tmp_path / "prefect-home"))
    env.pop("PREFECT_API_URL", None)
    served = subprocess.Popen([exe, "serve"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = served.stdout.readline()
        assert "UI at http://127.0.0.1:" in line, line
        port = int(line.split("UI at http://127.0.0.1:")[1].split()[0])
    finally:
        served.kill()
        served.wait()
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            break  # the server is gone
        assert time.monotonic() < deadline, "the Prefect server outlived chatsync serve"
        time.sleep(0.2)


def test_the_installed_command_runs_its_flow_on_chatsync_s_local_prefect_server(sim, settings, cli_env, tmp_path):
    exe = shutil.which("chatsync", path=str(Path(sys.executable).parent)) or shutil.which("chatsync")
    home = tmp_path / "chatsync-prefect"
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), CHATSYNC_PREFECT_HOME=str(home))
    env.pop("PREFECT_API_URL", None)
    try:
        done = subprocess.run([exe, "sync", "--source", "cozmox"], env=env, capture_output=True, text=True,
                              timeout=180)

        assert (done.returncode, done.stderr) == (0, "")
        assert_warehouse_matches(sim, settings.database)
        state = temporary_server.read_state(home)
        assert prefect_servers(home) == [state["pid"]], "one server, the recorded one, left for the next command"
        assert (home / "prefect.db").exists(), "its history is in chatsync's Prefect home, beside serve's"
        assert not (tmp_path / "prefect" / "prefect.db").exists(), "no temporary server of Prefect's ran"
        runs = httpx.post(f"{state['url']}/flow_runs/filter", json={}, timeout=30).json()
        assert [(r["name"], r["state_type"]) for r in runs] == [("sync-cozmox", "COMPLETED")]
    finally:
        temporary_server.stop_server(home)
    assert prefect_servers(home) == []


def test_a_killed_command_leaves_no_server_but_the_shared_one_which_stops_once_idle(sim, settings, cli_env, tmp_path):
    """Killed with its whole process group, as a terminal's Ctrl-C or a service manager would:
    the shared server is in a session of its own and outlives it, and with the command gone
    nobody holds it, so it stops after its idle limit."""
    exe = shutil.which("chatsync", path=str(Path(sys.executable).parent)) or shutil.which("chatsync")
    home = tmp_path / "chatsync-prefect"
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), CHATSYNC_PREFECT_HOME=str(home),
               CHATSYNC_PREFECT_SERVER_IDLE="1s")
    env.pop("PREFECT_API_URL", None)
    command = subprocess.Popen([exe, "sync", "--source", "cozmox"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while (pid := temporary_server.read_state(home).get("pid")) not in prefect_servers(home):
            assert command.poll() is None and time.monotonic() < deadline, "no server was started"
            time.sleep(0.05)
    finally:
        os.killpg(command.pid, signal.SIGKILL)
        command.wait()

    assert prefect_servers(home) in ([pid], []), "no server of the command's own was left behind"
    deadline = time.monotonic() + 120
    while prefect_servers(home):
        assert time.monotonic() < deadline, "the shared server did not stop once idle"
        time.sleep(0.2)


def test_a_prefect_server_named_in_the_active_profile_is_left_to_prefect(tmp_path, monkeypatch):
    profiles = tmp_path / "profiles.toml"
    profiles.write_text('active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://prefect.internal:4200/api"\n')
    monkeypatch.setenv("PREFECT_PROFILES_PATH", str(profiles))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.chdir(tmp_path)

    monkeypatch.setenv("CHATSYNC_PREFECT_HOME", str(tmp_path / "chatsync-prefect"))

    temporary_server.start()

    assert temporary_server._clients_lock is None
    assert "PREFECT_API_URL" not in os.environ
    assert not (tmp_path / "chatsync-prefect").exists()


def test_version_and_help_that_names_each_variable_and_default(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("chatsync 0.")
    code, out, _ = run(capsys, "sync", "--help")
    flat = " ".join(out.split())
    assert code == 0
    for words in ("env var: CHATSYNC_DATABASE", "default: (chatsync.duckdb)", "env var: CHATSYNC_WAIT",
                  "default: (3m)", "env var: INVENT_ORG_ID", "<cozmox|invent>"):
        assert words in flat, words


def test_status_max_age_exits_non_zero_for_a_stale_account(sim, settings, cli_env, capsys):
    from flows.pipeline import run_sync

    run_sync(settings.model_copy(update={"safety_margin_seconds": 7200}))  # reads up to two hours ago
    assert run(capsys, "status", "--max-age", "3h")[0] == 0
    code, out, err = run(capsys, "status", "--max-age", "1h")
    assert code == 1 and "accounts" in out
    assert err.startswith("chatsync: older than --max-age 1h: cozmox: watermark 2h ago") and err.count("\n") == 1


def test_the_summary_prints_each_warning_under_the_table(sim, settings, cli_env, capsys, monkeypatch):
    from simulator import app

    real = app.SimulatorApp._cozmox_chats

    def capped(self, params, delta, bare):  # an API that serves at most 7 and says nothing of it
        return real(self, {**params, "limit": str(min(7, int(params.get("limit", 100))))}, delta, bare)

    monkeypatch.setattr(app.SimulatorApp, "_cozmox_chats", capped)
    code, out, _ = run(capsys, "sync")

    assert code == 0
    table_end = out.index("└")
    assert "  cozmox: warning: " in out[table_end:] and "reading on with pages of 7" in out[table_end:]
    assert_warehouse_matches(sim, settings.database)


def test_a_completed_run_whose_result_prefect_lost_still_succeeds(capsys):
    # Prefect answers a state without its data when the server's copy is all it has (a retried
    # request that set the run's last state); the run itself finished.
    from prefect.states import Completed, Failed

    from flows.commands import CommandError, outcome

    assert outcome(Completed()) == []
    assert "`chatsync status` shows what it did" in capsys.readouterr().out
    with pytest.raises(CommandError, match="all accounts failed"):
        outcome(Failed(message="all accounts failed"))
