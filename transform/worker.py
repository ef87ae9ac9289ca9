"""Flattening in a second process, for runs that write much of the history.

In one interpreter, fetching, validating, flattening and building Arrow take turns on one
lock, so a bulk run keeps one core busy while DuckDB waits on the other. Here a child process
(this module, started once per process and kept for later runs) takes pages as sent and hands
back their rows as Arrow tables; the parent goes on fetching and loading meanwhile. The
flatten is the same function either way, so the rows, rejected records and reasons are too.

A page crosses as a pickle of its records (the texts or objects the source read), its rows
come back in Arrow's own format. The child ends when the parent closes its end or dies.
"""

from __future__ import annotations

import atexit
import itertools
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from datetime import datetime
from multiprocessing.connection import Connection, Pipe
from typing import Any

import pyarrow as pa

from transform.batch import Batch

Flatten = Callable[[list[Any], Mapping[str, list[Any]], datetime, "str | None"], Batch]


class FlattenerGone(RuntimeError):
    """The child process ended with pages still to flatten."""


class FlattenProcess:
    """The child, and the thread that collects what it sends back."""

    def __init__(self) -> None:
        mine, theirs = Pipe()
        self._process = subprocess.Popen([sys.executable, "-m", "transform.worker", str(theirs.fileno())],
                                         pass_fds=[theirs.fileno()])
        theirs.close()
        self._connection = mine
        self._pending: dict[int, Future[Batch]] = {}
        self._numbers = itertools.count()
        self._sending = threading.Lock()
        self.gone: str | None = None
        threading.Thread(target=self._collect, name="chatsync-flatten-results", daemon=True).start()

    def submit(self, flatten: Flatten, records: list[Any], children: Mapping[str, list[Any]],
               received_at: datetime, org_id: str | None) -> Future[Batch]:
        future: Future[Batch] = Future()
        with self._sending:
            if self.gone is not None:
                raise FlattenerGone(self.gone)
            number = next(self._numbers)
            self._pending[number] = future
            try:
                self._connection.send((number, flatten, records, dict(children), received_at, org_id))
            except OSError:
                self._pending.pop(number, None)
                raise FlattenerGone(self._ended()) from None
        return future

    def _collect(self) -> None:
        try:
            while True:
                number, streams, error = self._connection.recv()
                future = self._pending.pop(number)
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(Batch.from_tables({name: pa.ipc.open_stream(stream).read_all()
                                                         for name, stream in streams.items()}))
        except (EOFError, OSError):
            with self._sending:
                self.gone = self._ended()
                for future in self._pending.values():
                    future.set_exception(FlattenerGone(self.gone))
                self._pending.clear()

    @property
    def exited(self) -> bool:
        return self._process.poll() is not None

    def _ended(self) -> str:
        code = self._process.wait()
        return f"the process that flattens pages ended (exit code {code}) before it had flattened them all"

    def close(self) -> None:
        with self._sending:
            if self.gone is None:
                self._connection.send(None)  # a closed socket would not wake the thread reading it
        self._process.wait()


_shared: FlattenProcess | None = None
_starting = threading.Lock()


def shared() -> FlattenProcess:
    """This process's flattener, started on first use; one that ended is replaced."""
    global _shared
    with _starting:
        if _shared is None or _shared.gone is not None or _shared.exited:
            _shared = FlattenProcess()
            atexit.register(_shared.close)
        return _shared


def _serve(connection: Connection) -> None:
    while True:
        try:
            page = connection.recv()
        except EOFError:
            return
        if page is None:
            return
        number, flatten, records, children, received_at, org_id = page
        try:
            tables = flatten(records, children, received_at, org_id).tables()
            streams, error = {name: _stream(table) for name, table in tables.items()}, None
        except Exception as exc:  # noqa: BLE001 - handed to the run that asked, which raises it
            streams, error = None, exc if _picklable(exc) else RuntimeError(f"{type(exc).__name__}: {exc}")
        connection.send((number, streams, error))


def _stream(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _picklable(exc: Exception) -> bool:
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001
        return False
    return True


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _serve(Connection(int(sys.argv[1])))
