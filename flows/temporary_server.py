"""Prefect's temporary server, started as the command begins instead of when a flow first asks.

With no `PREFECT_API_URL`, Prefect starts this same server (uvicorn serving
`prefect.server.api.server:create_app` in ephemeral mode, UI off) when the first flow runs:
only after chatsync has imported everything, and only after importing the whole server into
the command's own process as well (about 2.4 s). Started here, it boots in its own process
while the command imports and reads its settings, and the command never imports it.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx

from flows.prefect_env import DEFAULTS

_server: subprocess.Popen | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def die_with_parent() -> None:
    """In a server's process: end with the chatsync process that started it, even killed outright."""
    import ctypes
    import signal

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


def start() -> None:
    """Starts the server and points Prefect at it, unless a server is configured already.

    Must run before Prefect is imported: Prefect reads `PREFECT_API_URL` once, at import.
    """
    global _server
    if _server is not None or _api_configured():
        return
    port = free_port()
    env = dict(os.environ, PREFECT_UI_ENABLED="0", PREFECT__SERVER_EPHEMERAL="1", PREFECT__SERVER_FINAL="1")
    command = [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"]
    _server = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                               preexec_fn=die_with_parent if sys.platform == "linux" else None)
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_UI_URL"] = ""  # it serves no UI: no "View at" links to it
    atexit.register(stop)


def wait_until_ready() -> None:
    """Returns once the server started here answers; at once when none was started here.
    Waits as long as Prefect would for a temporary server of its own."""
    if _server is None:
        return
    setting = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
    timeout = float(os.environ.get(setting, DEFAULTS[setting]))
    health = os.environ["PREFECT_API_URL"] + "/health"
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if _server.poll() is not None:
                raise RuntimeError(f"Prefect's temporary server exited with status {_server.returncode}")
            try:
                if client.get(health).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise RuntimeError(f"Prefect's temporary server did not answer within {timeout:.0f} s")


def stop() -> None:
    global _server
    if _server is None:
        return
    end_process(_server, grace_seconds=5)
    _server = None


def end_process(process: subprocess.Popen, grace_seconds: float) -> None:
    """SIGTERM, then SIGKILL if it is still there after the grace period."""
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
