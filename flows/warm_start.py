"""Warm start: a command that runs on a copy of a process which has imported everything already.

Before its first request, every flow command spends about 1.8 s of CPU importing Prefect and
chatsync (a third of that building Prefect's pydantic models), which is most of an incremental
sync from cron. So beside chatsync's local Prefect server waits one process that has done those
imports once and does nothing else. A command from a scheduler (`sync`, with or without
`--full-refresh`, and `reconcile`) connects to its socket and hands it the command line, the
environment, the working folder and its own standard input, output and error; the process forks,
and the copy runs the command exactly as the installed command would (flows/cli.py), writing to
the caller's terminal or files. The caller waits, passes on the signals it gets (Ctrl-C, a
kill), and exits with the copy's status. A caller that dies ends its copy at once (the kernel's
SIGIO, as its socket closes).

The waiting process only takes commands it can run as a fresh one would, and otherwise the
command runs cold, as before:
- the same Python, the same installed code (it stops once any file it imported changes), the
  same environment but for chatsync's own settings (read when a command starts, never at
  import), and the same Prefect files in the working folder (`.env`, `prefect.toml`,
  `pyproject.toml`, which Prefect reads at import);
- chatsync's local Prefect server in use, the same one it imported with: a user's own
  `PREFECT_API_URL` turns warm start off, as does `CHATSYNC_PREFECT_SERVER_IDLE=0s`;
- output and errors not to a terminal (as from cron or a scheduler; at a terminal the command
  runs cold, so its colours and widths are the terminal's), and no key asked for at a prompt.

A cold flow command that could have run warm starts the waiting process as it ends, for the
next. It stops once idle as long as the local server would, when the server it imported with is
gone, or when a newer one takes its socket (`python -m flows.local_server stop` stops both). Its
socket is its user's alone. `warm-start.log` in chatsync's Prefect home has a line per command it
ran: exit status, seconds, CPU seconds and peak memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows import temporary_server
from flows.prefect_env import configure

# The commands that run from schedulers. A full refresh runs warm too: at the bench's larger size a
# copy took 21.3-24.5 s and peaked at 508-521 MB, against 23.0-25.2 s and 536-548 MB cold (five
# interleaved pairs; copies once peaked higher, 690-720 MB against 635-640 MB, for a cause not
# found). A backfill stays cold: long, and not measured in a copy.
COMMANDS = frozenset({"sync", "reconcile"})
COLD_OPTIONS = frozenset({"--help", "-h"})
OWN_PACKAGES = frozenset({"flows", "extract", "transform", "load", "sql", "simulator"})
SOCKET = "warm-start.sock"
LOG = "warm-start.log"
LOG_BYTES = 2**20  # past this, a new waiting process moves the log to warm-start.log.1
# Read when a command starts, never at import: they may differ between commands.
COMMAND_TIME_PREFIXES = ("CHATSYNC_", "COZMOX_", "INVENT_", "PYTEST_")
SHELL_NOISE = frozenset({"PWD", "OLDPWD", "_", "SHLVL"})
PREFECT_FILES = (".env", "prefect.toml", "pyproject.toml")
FORWARDED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
                          if hasattr(signal, name))  # Windows has two (and no warm start)
# The longest path a Unix socket's address holds on Linux.
MAX_SOCKET_PATH = 107


# -- what must match -------------------------------------------------------------------------

def import_environment(env: dict[str, str]) -> dict[str, str]:
    """The part of an environment that could change what an import does."""
    return {k: v for k, v in env.items() if not k.startswith(COMMAND_TIME_PREFIXES) and k not in SHELL_NOISE}


def prefect_files(folder: str) -> str:
    """A digest of the files in `folder` that Prefect reads its settings from at import."""
    digest = hashlib.sha256()
    for name in PREFECT_FILES:
        try:
            digest.update(name.encode() + b"\0" + (Path(folder) / name).read_bytes() + b"\0")
        except OSError:
            digest.update(name.encode() + b"\0-\0")
    return digest.hexdigest()


def eligible(args: list[str]) -> bool:
    """Whether this command line may run warm (and start a waiting process for the next)."""
    asks_for_a_key = any(arg == "-" or arg.endswith("=-") for arg in args)  # at a prompt
    return (bool(args) and args[0] in COMMANDS and not COLD_OPTIONS & set(args) and not asks_for_a_key
            and not sys.stdout.isatty() and not sys.stderr.isatty()
            and hasattr(os, "pidfd_open") and temporary_server.fcntl is not None
            and not temporary_server._api_configured() and temporary_server.idle_seconds() > 0
            and len(str(temporary_server.home() / SOCKET)) <= MAX_SOCKET_PATH)


# -- the caller's side ------------------------------------------------------------------------

def _send(conn: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    body = json.dumps(message).encode()
    data = struct.pack("!I", len(body)) + body
    if fds:
        sent = socket.send_fds(conn, [data], fds)
        conn.sendall(data[sent:])
    else:
        conn.sendall(data)


def _receive(conn: socket.socket, with_fds: bool = False) -> tuple[dict[str, Any] | None, list[int]]:
    """One message, and the descriptors that came with it; None at the end of the stream."""
    data = b""
    fds: list[int] = []
    while len(data) < 4 or len(data) < 4 + struct.unpack("!I", data[:4])[0]:
        if with_fds and not fds:
            chunk, received, _, _ = socket.recv_fds(conn, 65536, 3)
            fds += received
        else:
            chunk = conn.recv(65536)
        if not chunk:
            for fd in fds:
                os.close(fd)
            return None, []
        data += chunk
    return json.loads(data[4:]), fds


def run(args: list[str]) -> int | None:
    """Runs the command on the waiting process; its exit status, or None when there is none
    that can take it (the command then runs cold)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(temporary_server.home() / SOCKET))
        _send(conn, {"argv": [sys.argv[0], *args], "env": dict(os.environ), "cwd": os.getcwd(),
                     "executable": sys.executable}, fds=[0, 1, 2])
        reply, _ = _receive(conn)
    except OSError:
        conn.close()
        return None
    if not reply or not reply.get("pid"):
        conn.close()
        return None
    pid = int(reply["pid"])

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    try:
        ended, _ = _receive(conn)
    except OSError:
        ended = None
    conn.close()
    if not ended:
        print("chatsync: the process running this command was lost (its warm start stopped)", file=sys.stderr)
        return 1
    return int(ended["exit"])


def start_waiting_process(environment: dict[str, str]) -> None:
    """Starts a process that waits for the next command, detached from this one, in the
    environment this command started with; it replaces the one there was. Keys and chatsync's
    settings stay out of its environment: commands bring their own."""
    where = temporary_server.home()
    env = {k: v for k, v in environment.items()
           if not k.startswith(COMMAND_TIME_PREFIXES) or k == temporary_server.IDLE_VARIABLE}
    env["CHATSYNC_PREFECT_HOME"] = str(where)
    with open(where / LOG, "ab") as log:
        # -P: the working folder stays off the import path, as it is for the installed command.
        subprocess.Popen([sys.executable, "-P", "-m", "flows.warm_start"], env=env, stdin=subprocess.DEVNULL,
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


# -- the waiting process ----------------------------------------------------------------------

def _thread_names() -> list[str]:
    return [Path(f"/proc/self/task/{tid}/comm").read_text().strip() for tid in os.listdir("/proc/self/task")]


@dataclass
class Command:
    """A command taken, in the copy that runs it."""

    conn: socket.socket
    fds: list[int]
    message: dict[str, Any]


@dataclass
class Running:
    pid: int
    conn: socket.socket
    began: float
    line: str


class WaitingProcess:
    def __init__(self, where: Path, environment: dict[str, str]) -> None:
        self.where = where
        self.environment = import_environment(environment)
        self.folder_files = prefect_files(os.getcwd())
        self.idle_seconds = temporary_server.idle_seconds()
        self.url = ""
        self.server_pid = 0
        self.stamps: dict[str, float] = {}
        self.listener: socket.socket | None = None
        self.inode = 0
        self.running: dict[int, Running] = {}  # by pidfd
        self.stopping = False

    def log(self, text: str) -> None:
        with open(self.where / LOG, "a") as log:
            log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} [{os.getpid()}] {text}\n")

    def prepare(self) -> bool:
        """Finds the local server, as a command would, and imports what commands run."""
        temporary_server.start()
        try:
            temporary_server.wait_until_ready()
        except RuntimeError as exc:
            self.log(f"not started: {exc}")
            return False
        finally:
            temporary_server.release()  # held only by commands: the server may stop when idle
        self.url = os.environ.get("PREFECT_API_URL", "")
        self.server_pid = int(temporary_server.read_state(self.where).get("pid") or 0)
        if not self.url or not self.server_pid:
            return False
        import flows.cli
        import flows.sync_flow  # noqa: F401  (Prefect, the flows and the pipeline)

        for name, module in list(sys.modules.items()):
            path = getattr(module, "__file__", None)
            if path and name.partition(".")[0] in OWN_PACKAGES:
                self.stamps[path] = os.stat(path).st_mtime
        import prefect

        packages = Path(prefect.__file__).resolve().parent.parent  # site-packages: installs change it
        self.stamps[str(packages)] = os.stat(packages).st_mtime
        import duckdb

        # `import duckdb` opens a connection with a pool of threads, which a copy would lack
        # (and abort on at exit); the commands open their own.
        duckdb.default_connection().close()
        others = [name for name in _thread_names() if name != "jemalloc_bg_thd"]  # jemalloc's survive forks
        if len(others) != 1 or threading.active_count() != 1:
            # A fork copies one thread: the locks the others hold would stay held in the copy.
            self.log(f"not started: threads {others} after the imports")
            return False
        return True

    def listen(self) -> None:
        log = self.where / LOG
        if log.exists() and log.stat().st_size > LOG_BYTES:
            os.replace(log, log.with_name(f"{LOG}.1"))
        path = self.where / SOCKET
        temporary = self.where / f"{SOCKET}.{os.getpid()}"
        temporary.unlink(missing_ok=True)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(temporary))
        os.chmod(temporary, 0o600)  # whoever may connect runs commands as this user
        self.listener.listen(16)
        os.replace(temporary, path)  # a newer process takes the socket over from an older one
        self.inode = os.stat(path).st_ino
        self.log(f"waiting for commands, Prefect server {self.url}")

    def mismatch(self, message: dict[str, Any]) -> str | None:
        """Why this process cannot run a command as a fresh one would; None when it can."""
        if message.get("executable") != sys.executable:
            return f"another Python ({message.get('executable')})"
        theirs = import_environment(message.get("env") or {})
        if theirs != self.environment:
            names = sorted(k for k in set(theirs) | set(self.environment) if theirs.get(k) != self.environment.get(k))
            return f"another environment ({', '.join(names[:5])})"
        if prefect_files(str(message.get("cwd"))) != self.folder_files:
            return "other Prefect settings in the working folder"
        return None

    def stale(self) -> str | None:
        """Why this process should stop, if it should."""
        for path, stamp in self.stamps.items():
            try:
                if os.stat(path).st_mtime != stamp:
                    return f"{path} changed"
            except OSError:
                return f"{path} is gone"
        state = temporary_server.read_state(self.where)
        recorded = (state.get("url"), state.get("pid"))
        if recorded != (self.url, self.server_pid) or not temporary_server.alive(self.server_pid):
            return "the local Prefect server it imported with is gone"
        try:
            if os.stat(self.where / SOCKET).st_ino != self.inode:
                return "a newer process took over"
        except OSError:
            return "its socket is gone"
        return None

    def serve(self) -> Command | None:
        """Takes commands until idle or stale; returns only in a copy, with the command it runs."""
        assert self.listener is not None
        quiet_since = time.monotonic()
        while True:
            ready, _, _ = select.select([self.listener.fileno(), *self.running], [], [], 1.0)
            for pidfd in [fd for fd in ready if fd in self.running]:
                self.reap(pidfd)
            if self.listener.fileno() in ready and not self.stopping:
                command = self.take()
                if command is not None:
                    return command
            if self.running:
                quiet_since = time.monotonic()
                continue
            if self.stopping:
                return None
            why = self.stale()
            if why is None and time.monotonic() - quiet_since > self.idle_seconds:
                why = "idle"
            if why:
                self.stop(why)
                return None

    def take(self) -> Command | None:
        assert self.listener is not None
        conn, _ = self.listener.accept()
        try:
            conn.settimeout(10)
            credentials = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _, uid, _ = struct.unpack("3i", credentials)
            if uid != os.getuid():
                raise OSError(f"a request from user {uid}, not this one")
            message, fds = _receive(conn, with_fds=True)
            if message is None or len(fds) != 3:
                raise OSError("incomplete request")
            stale = self.stale()
            why = stale or self.mismatch(message)
            if why:
                self.log(f"declined `{' '.join(message['argv'][1:])}`: {why}")
                for fd in fds:
                    os.close(fd)
                _send(conn, {"pid": None, "why": why})
                conn.close()
                if stale:
                    self.stop(stale)
                return None
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                self.listener.close()
                for running in self.running.values():
                    running.conn.close()
                for pidfd in self.running:
                    os.close(pidfd)
                return Command(conn, fds, message)
            for fd in fds:
                os.close(fd)
            self.running[os.pidfd_open(pid)] = Running(pid, conn, time.monotonic(), " ".join(message["argv"][1:]))
            _send(conn, {"pid": pid})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.log(f"a request failed: {exc!r}")
            conn.close()
        return None

    def reap(self, pidfd: int) -> None:
        running = self.running.pop(pidfd)
        os.close(pidfd)
        _, status, usage = os.wait4(running.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code  # killed by a signal: as a shell reports it
        with contextlib.suppress(OSError):
            _send(running.conn, {"exit": code})
        running.conn.close()
        self.log(f"ran `{running.line}` (PID {running.pid}): exit {code}, {time.monotonic() - running.began:.2f} s, "
                 f"{usage.ru_utime + usage.ru_stime:.2f} CPU s, peak {usage.ru_maxrss / 1024:.0f} MB")

    def stop(self, why: str) -> None:
        """Stops taking commands; the process ends once the ones running have."""
        self.stopping = True
        assert self.listener is not None
        try:
            if os.stat(self.where / SOCKET).st_ino == self.inode:
                (self.where / SOCKET).unlink()
        except OSError:
            pass
        self.listener.close()
        self.log(f"stopping: {why}")
        while self.running:
            ready, _, _ = select.select(list(self.running), [], [])
            for pidfd in ready:
                self.reap(pidfd)


def become(command: Command) -> None:
    """In the copy: takes the caller's descriptors, folder and environment, and runs the
    command as the installed command does; the interpreter then exits as it would."""
    for signum in (*FORWARDED_SIGNALS, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    for target, fd in enumerate(command.fds):
        os.dup2(fd, target)
        os.close(fd)
    message = command.message
    os.chdir(message["cwd"])
    os.environ.clear()
    os.environ.update(message["env"])
    configure()  # Prefect's defaults, as flows/cli.py sets them at import, now in the caller's environment
    sys.argv = list(message["argv"])
    import fcntl

    # The caller sends nothing more, so its end of the socket closing means it died: the kernel
    # then ends this copy at once (SIGIO, whose default is to terminate), as it would have ended
    # a command killed outright, with no Python code left to run first.
    fcntl.fcntl(command.conn.fileno(), fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(command.conn.fileno(), fcntl.F_SETFL, fcntl.fcntl(command.conn.fileno(), fcntl.F_GETFL) | os.O_ASYNC)
    signal.signal(signal.SIGIO, signal.SIG_DFL)
    from flows.cli import run as run_cold

    run_cold()


def main() -> None:
    original = dict(os.environ)
    configure()
    where = temporary_server.home()
    waiting = WaitingProcess(where, original)
    if not waiting.prepare():
        return
    waiting.listen()
    command = waiting.serve()
    if command is not None:
        become(command)


if __name__ == "__main__":
    main()
