"""Process-wide tweaks that make a large sync faster or smaller, in one place.

Each one changes the interpreter for the whole process or reaches past a library's public
surface, so each can stop helping quietly when a library changes. The entry points (the
`chatsync` command and the flows) call `apply()` once; `CHATSYNC_TWEAKS=off` runs without any,
and a test checks a sync gives the same rows either way. The gains are a large sync's (20,000
Cozmox and 5,000 Invent chats); docs/performance.md has the measurements behind them.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pyarrow as pa

from extract.http import ApiClient

_active: set[str] = set()


def _pandas_known_absent() -> None:
    """DuckDB tries to import pandas at every statement, searching the whole import path each
    time where it is not installed: recorded as absent, the try fails at once (about 1 s)."""
    if "pandas" not in sys.modules and importlib.util.find_spec("pandas") is None:
        # Arrow looks for pandas once, the first time it turns a time into Python, and fails on
        # one marked absent: it looks now, before.
        pa.scalar(0, pa.timestamp("us", tz="UTC")).as_py()
        sys.modules["pandas"] = None  # type: ignore[assignment]


def _arrow_on_jemalloc() -> None:
    """Arrow's default allocator keeps what a batch freed for reuse; jemalloc gives it back
    (70 MB lower peak). A user's own ARROW_DEFAULT_MEMORY_POOL wins."""
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        with contextlib.suppress(NotImplementedError):  # a build without jemalloc keeps its default
            pa.set_memory_pool(pa.jemalloc_memory_pool())


def _unlink_response(response: httpx.Response) -> None:
    """httpx's response and its stream refer to each other, so only a full collection frees a
    page's body: unlinked, it goes once decoded (hundreds of MB of peak)."""
    response.stream = httpx.ByteStream(b"")


def _release_bodies() -> None:
    ApiClient.after_decode = staticmethod(_unlink_response)


TWEAKS: dict[str, Callable[[], None]] = {
    "pandas_known_absent": _pandas_known_absent,
    "arrow_on_jemalloc": _arrow_on_jemalloc,
    "release_response_bodies": _release_bodies,
    "settled_heap": lambda: None,  # applied by settle_heap(), at each run's start
    "quick_handoffs": lambda: None,  # applied by quick_handoffs(), around each load
}


def apply() -> None:
    """Applies every tweak once per process, unless CHATSYNC_TWEAKS=off."""
    if _active or os.environ.get("CHATSYNC_TWEAKS", "").strip().lower() == "off":
        return
    for name, tweak in TWEAKS.items():
        tweak()
        _active.add(name)


def settle_heap() -> None:
    """Moves what is alive at a run's start (Prefect, pydantic, DuckDB) out of the garbage
    collector's sight, and has collections wait for 100,000 new objects rather than 700: pages
    make millions of short-lived, acyclic objects, and each collection walked the whole heap
    again (a third of the time spent parsing)."""
    if "settled_heap" in _active:
        gc.freeze()
        gc.set_threshold(100_000, 10, 10)


@contextmanager
def quick_handoffs() -> Iterator[None]:
    """The interpreter lock changes hands within 0.2 ms rather than 5 ms while a load runs: a
    call into DuckDB lets go of it and then waits behind the thread building the next batch
    (Cozmox loads 12-13 s at 5 ms, 7.5-9.5 s at 0.2 ms)."""
    if "quick_handoffs" not in _active:
        yield
        return
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)
