"""Faults to inject and the record of requests served, shared by the store and the app."""

from __future__ import annotations

from dataclasses import dataclass, field

FAULT_KINDS = frozenset({"status", "drop", "stall", "truncate", "invalid_json", "no_results",
                         "repeat_page", "lie_count"})
# Faults that decide the whole response; only the first matching one applies to a request.
TERMINAL_KINDS = frozenset({"status", "drop", "truncate", "invalid_json", "no_results"})


@dataclass
class Fault:
    """One way for the simulated APIs to misbehave, for `times` matching requests (-1: forever)."""

    kind: str
    status: int = 503
    retry_after: float | None = None
    seconds: float = 0
    times: int = 1
    source: str | None = None
    path_contains: str | None = None
    after: int = 0
    count_delta: int = 0
    seen: int = field(default=0, init=False)
    applied: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(FAULT_KINDS)}")

    @property
    def spent(self) -> bool:
        return self.times >= 0 and self.applied >= self.times

    def matches(self, source: str, path: str) -> bool:
        return ((self.source is None or self.source == source)
                and (self.path_contains is None or self.path_contains in path))


@dataclass
class RequestInfo:
    """One request as the simulator saw it; `status` is filled in once it has been answered."""

    source: str
    path: str
    params: dict[str, str]
    index: int
    method: str = "GET"
    status: int | None = None
    faults: list[str] = field(default_factory=list)
    error: str | None = None  # why it was answered with a 500 (a failing hook, a bug)


def select_faults(faults: list[Fault], info: RequestInfo) -> list[Fault]:
    """Consume the faults that apply to this request, at most one of the terminal kinds."""
    chosen: list[Fault] = []
    terminal = False
    for fault in faults:
        if fault.spent or not fault.matches(info.source, info.path):
            continue
        fault.seen += 1
        if fault.seen <= fault.after:
            continue
        if fault.kind in TERMINAL_KINDS:
            if terminal:
                continue
            terminal = True
        fault.applied += 1
        chosen.append(fault)
    return chosen
