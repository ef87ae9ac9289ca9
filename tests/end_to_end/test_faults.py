"""The real pipeline against a simulator with faults injected, for both sources.

Each case ends equal to the simulator's data, or with a clean failure (the source named, the
watermark where it was, `sync_runs` saying why) after which the next run converges. Transient
faults run in `make test`; the persistent half of the matrix is marked slow.
"""

from __future__ import annotations

import pytest
from helpers import API_KEY, assert_invent_matches, assert_warehouse_matches, query, watermark

from flows.pipeline import run_sync
from simulator import Fault

FAULTS = {
    "429 with Retry-After": dict(kind="status", status=429, retry_after=0.01),
    "429 without Retry-After": dict(kind="status", status=429),
    "500": dict(kind="status", status=500),
    "502": dict(kind="status", status=502),
    "503": dict(kind="status", status=503, retry_after=0),
    "dropped connection": dict(kind="drop"),
    "stall past the timeout": dict(kind="stall", seconds=1.0),
    "truncated body": dict(kind="truncate"),
    "invalid JSON": dict(kind="invalid_json"),
    "no results": dict(kind="no_results"),
    "repeated page": dict(kind="repeat_page"),
    "lying count": dict(kind="lie_count", count_delta=-7),
}

CASES = [
    pytest.param(source, name, times, id=f"{source}-{name}-{'persistent' if times < 0 else 'burst'}",
                 marks=[pytest.mark.slow] if times < 0 else [])
    for source in ("cozmox", "invent")
    for name in FAULTS
    for times in (3, -1)
]


@pytest.fixture
def sim_options():
    return {"cozmox_chats": 60, "invent_chats": 40}


def source_settings(settings, source):
    keys = {"cozmox_api_key": API_KEY if source == "cozmox" else None,
            "invent_api_key": API_KEY if source == "invent" else None}
    return settings.model_copy(update={**keys, "invent_requests_per_minute": 0, "timeout_seconds": 0.4})


def matches(sim, source, database):
    (assert_warehouse_matches if source == "cozmox" else assert_invent_matches)(sim, database)


@pytest.mark.parametrize("source, name, times", CASES)
def test_a_fault_ends_equal_or_fails_cleanly_and_the_next_run_converges(sim, settings, source, name, times):
    settings = source_settings(settings, source)
    (_first,) = run_sync(settings, source)  # something to keep safe
    mark = watermark(settings.database, source)
    ids = sim.chat_ids(source)
    for chat_id in ids[::2]:  # more than a page: windows split, pages follow one another
        sim.touch(source, chat_id)
    after = 1 if FAULTS[name]["kind"] == "repeat_page" else 0
    sim.add_fault(Fault(source=source, times=times, after=after, **FAULTS[name]))

    (faulted,) = run_sync(settings, source)

    if faulted.status == "success":
        matches(sim, source, settings.database)
    else:
        assert faulted.status == "failed", faulted.error
        assert faulted.error.startswith(f"{source}:") and "\n" not in faulted.error
        assert watermark(settings.database, source) == mark
        assert query(settings.database, "select status, error from sync_runs order by started_at desc limit 1") == [
            ("failed", faulted.error)]
    if times > 0:
        assert faulted.status == "success", f"a burst of {times} should be retried through: {faulted.error}"
        # A repeated page may be absorbed by a window split instead of a retry; a lying count costs nothing.
        assert faulted.retries >= (0 if FAULTS[name]["kind"] in ("lie_count", "repeat_page") else 1)

    sim.clear_faults()
    (healed,) = run_sync(settings, source)
    assert healed.status == "success", healed.error
    matches(sim, source, settings.database)
