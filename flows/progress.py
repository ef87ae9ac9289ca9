"""What a long run shows while it works: a live display on a terminal, a log line now and then
elsewhere (a scheduler's log, a CI job).

The pipeline reports to `reporter()`; the command chooses the kind before it starts a run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

log = logging.getLogger("chatsync")


@dataclass
class Tally:
    loads: int = 0
    chats: int = 0
    messages: int = 0
    started: float = 0.0

    def line(self, source: str) -> str:
        seconds = max(time.monotonic() - self.started, 1e-9)
        return (f"{source}: {self.loads} batches loaded, {self.chats} chats fetched, {self.messages} messages "
                f"written, {self.chats / seconds:.0f} chats/s")


class Reporter:
    """Logs a progress line at most every `every` seconds per source."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.tallies: dict[str, Tally] = {}
        self._last: dict[str, float] = {}

    def start(self, source: str) -> None:
        self.tallies[source] = Tally(started=time.monotonic())
        self._last[source] = time.monotonic()

    def advance(self, source: str, chats: int, messages: int) -> None:
        tally = self.tallies.setdefault(source, Tally(started=time.monotonic()))
        tally.loads += 1
        tally.chats += chats
        tally.messages += messages
        self.show(source, tally)

    def show(self, source: str, tally: Tally) -> None:
        now = time.monotonic()
        if now - self._last.get(source, 0.0) >= self.every:
            self._last[source] = now
            log.info("%s", tally.line(source))


class LiveReporter(Reporter):
    """A rich progress line per source, for a person at a terminal."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def start(self, source: str) -> None:
        super().start(source)
        self.tasks[source] = self.progress.add_task(source, total=None, stats="starting")

    def show(self, source: str, tally: Tally) -> None:
        if source in self.tasks:
            self.progress.update(self.tasks[source], stats=tally.line(source).split(": ", 1)[1])


_current: Reporter = Reporter()


def reporter() -> Reporter:
    return _current


@contextmanager
def live(console: Console) -> Iterator[None]:
    """Shows live progress while the block runs, if the console is a terminal."""
    global _current
    if not console.is_terminal:
        yield
        return
    # Prefect's console handler writes to the stream it was given, past rich's live display:
    # on a terminal the display stands in for its info lines, and warnings still show.
    handlers = [h for h in logging.getLogger().handlers + logging.getLogger("prefect").handlers
                if type(h).__name__ == "PrefectConsoleHandler"]
    levels = [h.level for h in handlers]
    for handler in handlers:
        handler.setLevel(max(handler.level, logging.WARNING))
    columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"), TextColumn("{task.fields[stats]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        previous, _current = _current, LiveReporter(progress)
        try:
            yield
        finally:
            _current = previous
            for handler, level in zip(handlers, levels, strict=True):
                handler.setLevel(level)
