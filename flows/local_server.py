"""chatsync's local Prefect server: Prefect's own server (API, UI, services), in a process that
outlives the command which started it, and stops itself once idle.

uvicorn serves `create_app` (flows/temporary_server.py starts it and finds it again). Idle means
no command holds the server (each holds `clients.lock` shared while it runs) and no request has
come for `CHATSYNC_PREFECT_SERVER_IDLE`: the UI open in a browser keeps it up, as does a long
run that asks nothing of it for a while. A server that finds it is not the one recorded (its
starter was killed before recording it, or a newer one replaced it) stops as soon as no command
holds it. Stopping, it takes both locks and keeps them until it is gone, so that no command
starts the next server on the same SQLite file before this one has let go of it.

`python -m flows.local_server stop` stops it now.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from flows import temporary_server as shared

IDLE_SECONDS = "CHATSYNC_PREFECT_SERVER_IDLE_SECONDS"
# After SIGTERM, how long uvicorn and Prefect's services may take before the process just ends.
SHUTDOWN_SECONDS = 30


class Watchdog:
    """Counts requests in flight and notes when the last one ended; decides when to stop."""

    def __init__(self, home: Path, idle_seconds: float, pid: int | None = None) -> None:
        self.home = home
        self.idle_seconds = idle_seconds
        self.pid = pid or os.getpid()
        self.in_flight = 0
        self.last_activity = time.monotonic()
        # Not before it serves: a fresh home's server migrates its SQLite for a while first.
        self.serving = threading.Event()
        self.held: tuple[Any, Any] | None = None  # the two locks, once stopping
        self._mutex = threading.Lock()

    def started(self) -> None:
        with self._mutex:
            self.last_activity = time.monotonic()
        self.serving.set()

    def began(self) -> None:
        with self._mutex:
            self.in_flight += 1
            self.last_activity = time.monotonic()

    def ended(self) -> None:
        with self._mutex:
            self.in_flight -= 1
            self.last_activity = time.monotonic()

    def _recorded(self) -> bool:
        return shared.read_state(self.home).get("pid") == self.pid

    def should_stop(self) -> bool:
        """True once the server may stop. It then holds both locks (until the process ends) and
        has taken itself off the record, keeping the port there for the next server."""
        recorded = self._recorded()
        with self._mutex:
            quiet_since = None if self.in_flight else self.last_activity
        if quiet_since is None or (recorded and time.monotonic() - quiet_since < self.idle_seconds):
            return False
        start = shared.lock(self.home / shared.START_LOCK, shared.fcntl.LOCK_EX, wait=False)
        if start is None:
            return self._busy()
        clients = shared.lock(self.home / shared.CLIENTS_LOCK, shared.fcntl.LOCK_EX, wait=False)
        if clients is None:
            start.close()
            return self._busy()
        with self._mutex:
            if self.in_flight or self.last_activity != quiet_since:  # a request came meanwhile
                clients.close()
                start.close()
                return False
        state = shared.read_state(self.home)
        if state.get("pid") == self.pid:
            shared.write_state(self.home, {"port": state.get("port")})
        self.held = (start, clients)
        return True

    def _busy(self) -> bool:
        """A command holds the server: idle time counts from when it lets go."""
        with self._mutex:
            self.last_activity = time.monotonic()
        return False

    def run(self) -> None:
        every = min(max(self.idle_seconds / 10, 0.2), 15)
        self.serving.wait()
        while True:
            try:
                if self.should_stop():
                    break
            except OSError:  # its home is gone: no command can find it any more
                break
            time.sleep(every)
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's own graceful shutdown
        time.sleep(SHUTDOWN_SECONDS)
        os._exit(0)


class Activity:
    """ASGI middleware: every request and websocket counts as use while it lasts; the end of
    the app's start-up starts the watch."""

    def __init__(self, app: Any, watchdog: Watchdog) -> None:
        self.app = app
        self.watchdog = watchdog

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            async def tell(message: dict) -> None:
                if message["type"] == "lifespan.startup.complete":
                    self.watchdog.started()
                await send(message)

            await self.app(scope, receive, tell)
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        self.watchdog.began()
        try:
            await self.app(scope, receive, send)
        finally:
            self.watchdog.ended()


def writes_wait_their_turn() -> None:
    """Every SQLite transaction of the server's takes the write lock as it begins (BEGIN
    IMMEDIATE), not at its first write.

    Prefect begins most of them DEFERRED. One that reads and then writes, such as taking a task's
    tag concurrency slots, then fails at once with "database is locked" when another wrote in
    between (the task run recorder, recording the same task's events), rather than waiting for
    its turn as SQLite's busy timeout would have it; the client gets a 503 and retries 1.5-2.5 s
    later. Half the syncs of an empty API hit it, a third of their time. On a local server that
    few write to at once, writers waiting their turn cost nothing measurable."""
    from prefect.server.database.configurations import AioSqliteConfiguration

    begin = AioSqliteConfiguration.begin_transaction
    if getattr(begin, "immediate", False):
        return

    @asynccontextmanager
    async def begin_immediate(self: Any, session: Any, with_for_update: bool = False) -> AsyncIterator[Any]:
        async with begin(self, session, with_for_update=True) as transaction:
            yield transaction

    begin_immediate.immediate = True  # type: ignore[attr-defined]
    AioSqliteConfiguration.begin_transaction = begin_immediate  # type: ignore[method-assign]


def create_app() -> Any:
    """uvicorn's app factory: Prefect's server app, watched."""
    from prefect.server.api.server import create_app as prefect_app

    home = Path(os.environ["CHATSYNC_PREFECT_HOME"])
    watchdog = Watchdog(home, float(os.environ.get(IDLE_SECONDS, "1800")))
    writes_wait_their_turn()
    app = prefect_app(final=True)
    app.add_middleware(Activity, watchdog=watchdog)
    threading.Thread(target=watchdog.run, name="chatsync-idle-watchdog", daemon=True).start()
    return app


if __name__ == "__main__":
    if sys.argv[1:] != ["stop"]:
        sys.exit("usage: python -m flows.local_server stop")
    pid = shared.stop_server()
    print(f"stopped chatsync's local Prefect server (PID {pid})" if pid else "no local Prefect server was running")
