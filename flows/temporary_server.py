"""Prefect's local server for the one-shot commands, kept warm between them.

With no `PREFECT_API_URL`, Prefect would start a temporary server for every command: 3-4 s of
booting (most of it importing the server's code) before the first flow run could begin. Instead
the first flow command starts a local Prefect server of chatsync's own, detached from the
command, under `CHATSYNC_PREFECT_HOME` (the home `chatsync serve` uses, so that one UI shows
every run), and the commands after it find that server and use it at once. The server stops
itself once no command has used it for `CHATSYNC_PREFECT_SERVER_IDLE` (default 30m; `0s` stops
it as soon as the last command ends): see flows/local_server.py.

Three files in the home tie them together:

- `server.json`: the running server's PID, API URL and Prefect version (and the port it last
  used, which the next server tries first, so that links to the UI keep working);
- `server.lock`: held exclusively by whoever finds, starts or stops the server, so that two
  commands starting at once never start two servers on one SQLite file;
- `clients.lock`: held shared by every command for as long as it runs; the server stops only
  once it can hold it exclusively, so never under a running command.

A user's own `PREFECT_API_URL` wins: then nothing is started.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import BinaryIO

from flows.prefect_env import DEFAULTS

try:
    import fcntl
except ImportError:  # not POSIX: Prefect starts its own temporary server, as it would by default
    fcntl = None  # type: ignore[assignment]

IDLE_VARIABLE = "CHATSYNC_PREFECT_SERVER_IDLE"
DEFAULT_IDLE = "30m"
STATE_FILE = "server.json"
START_LOCK = "server.lock"
CLIENTS_LOCK = "clients.lock"
LOG_FILE = "local-server.log"
APP = "flows.local_server:create_app"
# How long a server may take to answer: as long as Prefect waits for a temporary server of its own.
STARTUP_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"

# This process's hold on the server: its lock files, and a server it waits for.
_start_lock = None
_clients_lock = None
_pending: dict | None = None  # the state of a server not answering yet
_process: subprocess.Popen | None = None  # a server this process started
_error: str | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def die_with_parent() -> None:
    """In a server's process: end with the chatsync process that started it, even killed outright."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _api_configured() -> bool:
    """Whether the user points Prefect at a server of their own, in any place Prefect reads:
    the environment, the active profile, or a settings file in this folder. Then it is theirs."""
    if os.environ.get("PREFECT_API_URL"):
        return True
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    try:
        data = tomllib.loads(profiles.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        data = {}
    active = os.environ.get("PREFECT_PROFILE") or data.get("active")
    if (data.get("profiles", {}).get(active) or {}).get("PREFECT_API_URL"):
        return True
    for name, marker in ((".env", "PREFECT_API_URL"), ("prefect.toml", "[api]"), ("pyproject.toml", "[tool.prefect")):
        try:
            if marker in Path(name).read_text():
                return True
        except (OSError, UnicodeDecodeError):
            pass
    return False


def home() -> Path:
    """`chatsync serve`'s Prefect home, made absolute: the server runs in it, and finds it again
    in its environment."""
    return Path(os.path.abspath(prefect_home()))


def prefect_home() -> Path:
    return Path(os.environ.get("CHATSYNC_PREFECT_HOME", Path.home() / ".chatsync" / "prefect")).expanduser()


def idle_seconds() -> float:
    from flows.durations import parse_duration

    value = os.environ.get(IDLE_VARIABLE) or DEFAULT_IDLE
    try:
        return parse_duration(value).total_seconds()
    except ValueError as exc:
        raise ValueError(f"{IDLE_VARIABLE}: {exc}") from None


def prefect_version() -> str:
    """The installed Prefect's version, read without importing Prefect (which takes a second)."""
    import importlib.util

    spec = importlib.util.find_spec("prefect")
    try:
        text = (Path(spec.origin).parent / "_build_info.py").read_text()  # type: ignore[union-attr, arg-type]
    except (AttributeError, TypeError, OSError):
        return ""
    found = re.search(r'__version__ = "([^"]+)"', text)
    return found.group(1) if found else ""


def read_state(where: Path) -> dict:
    try:
        state = json.loads((where / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def write_state(where: Path, state: dict) -> None:
    """Replaces the file whole, so that a reader never sees half of it."""
    partial = where / f".{STATE_FILE}.{os.getpid()}"
    partial.write_text(json.dumps(state))
    partial.replace(where / STATE_FILE)


def lock(path: Path, kind: int, wait: bool = True) -> BinaryIO | None:
    """The file at `path`, open and locked (fcntl.LOCK_EX or LOCK_SH); None if `wait` is false and
    another process holds it. The lock goes with the file: closed, or the process gone."""
    handle = open(path, "a+b")  # noqa: SIM115 - held open: the lock lives as long as the file
    try:
        fcntl.flock(handle, kind if wait else kind | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    except BaseException:
        handle.close()
        raise
    return handle


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def is_server(pid: int, where: Path) -> bool:
    """Whether `pid` is a local server of chatsync's for this home, rather than a process that
    took over the PID of one that is gone."""
    if not pid or not alive(pid):
        return False
    if not Path("/proc/self").exists():  # no /proc here: only its answer tells
        return True
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:  # gone, or another user's
        return False
    return APP.encode() in command and f"CHATSYNC_PREFECT_HOME={where}".encode() in environ


def healthy(url: str, timeout: float) -> bool:
    """Whether the API answers its health check. http.client rather than httpx: no TLS context to
    build, which costs more than the request."""
    match = re.match(r"http://([^:/]+):(\d+)(/.*)?$", url or "")
    if not match:
        return False
    connection = http.client.HTTPConnection(match.group(1), int(match.group(2)), timeout=timeout)
    try:
        connection.request("GET", f"{match.group(3) or ''}/health")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def end_process(process: subprocess.Popen, grace_seconds: float) -> None:
    """SIGTERM, then SIGKILL if it is still there after the grace period."""
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def end_pid(pid: int, grace_seconds: float) -> None:
    """The same for a process that may not be this one's child (a server another command started)."""
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    return
            except ChildProcessError:  # another's child: it reaps it
                if not alive(pid):
                    return
            time.sleep(0.05)


def _server_env(where: Path, port: int, idle: float) -> dict[str, str]:
    """The server's environment: the user's, less chatsync's own settings and keys (it outlives
    the command, and needs none of them), pointed at chatsync's Prefect home."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CHATSYNC_", "COZMOX_", "INVENT_")) and k not in ("PREFECT_API_URL", "PREFECT_UI_URL")}
    env.pop("PREFECT__SERVER_EPHEMERAL", None)
    url = f"http://127.0.0.1:{port}"
    env.update(PREFECT_HOME=str(where), CHATSYNC_PREFECT_HOME=str(where), PREFECT__SERVER_FINAL="1",
               PREFECT_SERVER_API_HOST="127.0.0.1", PREFECT_SERVER_API_PORT=str(port),
               PREFECT_UI_API_URL=f"{url}/api", CHATSYNC_PREFECT_SERVER_IDLE_SECONDS=repr(idle))
    return env


def _spawn(where: Path, previous: dict, idle: float) -> dict:
    """Starts a server in a session of its own, so that it outlives the command (and the
    terminal's Ctrl-C), and records it."""
    global _process
    port = previous.get("port")
    if not isinstance(port, int) or not _port_free(port):
        port = free_port()
    with open(where / LOG_FILE, "wb") as log:
        command = [sys.executable, "-m", "uvicorn", "--factory", APP, "--host", "127.0.0.1", "--port", str(port),
                   "--log-level", "warning", "--lifespan", "on", "--timeout-graceful-shutdown", "5"]
        _process = subprocess.Popen(command, env=_server_env(where, port, idle), cwd=where, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    state = {"pid": _process.pid, "url": f"http://127.0.0.1:{port}/api", "port": port, "ui": _ui_enabled(),
             "prefect": prefect_version(), "started": time.time()}
    write_state(where, state)
    return state


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _use(state: dict) -> None:
    os.environ["PREFECT_API_URL"] = state["url"]
    if not state.get("ui", True):
        os.environ["PREFECT_UI_URL"] = ""  # it serves no UI: no "View at" links to it


def local_ui() -> str | None:
    """The UI address of the local server this command uses, where it serves one."""
    if _clients_lock is None and _pending is None:
        return None
    state = read_state(home())
    url = str(state.get("url") or "")
    return url.removesuffix("/api") if url and state.get("ui", True) else None


def _ui_enabled() -> bool:
    ui = os.environ.get("PREFECT_SERVER_UI_ENABLED", os.environ.get("PREFECT_UI_ENABLED", "true"))
    return ui.strip().lower() not in ("0", "false", "no", "off")


def _in_use(where: Path) -> bool:
    """Whether a running command holds the server (asked before this one holds it too)."""
    probe = lock(where / CLIENTS_LOCK, fcntl.LOCK_EX, wait=False)
    if probe is None:
        return True
    probe.close()
    return False


def _release_start_lock() -> None:
    global _start_lock
    if _start_lock is not None:
        _start_lock.close()
        _start_lock = None


def start() -> None:
    """Finds chatsync's local Prefect server, or starts it, and points Prefect at it; unless a
    server is configured already. Returns at once: `wait_until_ready` waits for a server that
    is still booting, while the command imports and reads its settings.

    Must run before Prefect is imported: Prefect reads `PREFECT_API_URL` once, at import.
    """
    global _start_lock, _clients_lock, _pending, _error
    if _clients_lock is not None or fcntl is None or _api_configured():
        return
    try:
        idle = idle_seconds()
        where = home()
        where.mkdir(parents=True, exist_ok=True)
        _start_lock = lock(where / START_LOCK, fcntl.LOCK_EX)
        state = read_state(where)
        pid = state.get("pid")
        if state.get("url") and isinstance(pid, int) and is_server(pid, where):
            # Another Prefect version's server is replaced, but never under a running command.
            in_use = _in_use(where)
            if in_use or state.get("prefect") == prefect_version():
                # Taken while holding the start lock, which a stopping server takes first: a
                # server found here cannot decide to stop before this command holds it.
                _clients_lock = lock(where / CLIENTS_LOCK, fcntl.LOCK_SH)
                _use(state)
                if healthy(str(state["url"]), timeout=2):
                    _release_start_lock()
                    return
                startup = float(os.environ.get(STARTUP_SETTING, DEFAULTS[STARTUP_SETTING]))
                if in_use or time.time() - float(state.get("started") or 0) < startup:
                    _pending = state  # still booting (its starter went before it answered), or busy
                    return
            # Another Prefect version's, or stuck, and nobody on it: one SQLite file cannot take
            # two servers.
            end_pid(state["pid"], grace_seconds=20)
        if _clients_lock is None:
            _clients_lock = lock(where / CLIENTS_LOCK, fcntl.LOCK_SH)
        _pending = _spawn(where, state, idle)
        _use(_pending)
    except (OSError, ValueError) as exc:
        release()
        _error = f"Prefect's local server: {exc}"


def wait_until_ready() -> None:
    """Returns once the server found or started by `start` answers; at once when it answered
    then, or when none was started here. Waits as long as Prefect would for a temporary server
    of its own: a fresh home migrates its SQLite as the server boots."""
    global _pending, _error
    if _error:
        message, _error = _error, None
        raise RuntimeError(message)
    if _pending is None:
        return
    state, _pending = _pending, None
    timeout = float(os.environ.get(STARTUP_SETTING, DEFAULTS[STARTUP_SETTING]))
    deadline = time.monotonic() + timeout
    log = home() / LOG_FILE
    try:
        while time.monotonic() < deadline:
            if _process is not None and _process.pid == state["pid"] and _process.poll() is not None:
                raise RuntimeError(f"Prefect's local server exited with status {_process.returncode}; see {log}")
            if not alive(state["pid"]):
                raise RuntimeError(f"Prefect's local server stopped as it started; see {log}")
            if healthy(state["url"], timeout=2):
                return
            time.sleep(0.05)
        end_pid(state["pid"], grace_seconds=5)
        raise RuntimeError(f"Prefect's local server did not answer within {timeout:.0f} s; see {log}")
    finally:
        _release_start_lock()


def release() -> None:
    """Lets go of the server (it may stop once idle). A command holds it until it exits, when
    the system lets go for it, even of a killed one; tests call this."""
    global _clients_lock, _pending
    _release_start_lock()
    if _clients_lock is not None:
        _clients_lock.close()
        _clients_lock = None
    _pending = None


def stop_server(where: Path | None = None, grace_seconds: float = 20) -> int | None:
    """Stops the local server of `where` (chatsync's Prefect home by default) now, as if idle;
    returns its PID, or None when none was running. Waits for commands that are starting one."""
    where = where or home()
    if fcntl is None or not (where / STATE_FILE).exists():
        return None
    held = lock(where / START_LOCK, fcntl.LOCK_EX)
    assert held is not None  # a lock waited for is always taken
    with held:
        state = read_state(where)
        pid = state.get("pid")
        if not isinstance(pid, int) or not is_server(pid, where):
            return None
        end_pid(pid, grace_seconds)
        return pid
