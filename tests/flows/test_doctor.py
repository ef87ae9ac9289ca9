"""`chatsync doctor` as users run it, against a simulator that keeps every assumption and against
one that breaks each in turn: the broken one is named VIOLATED, and nothing else is."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import API_KEY, HISTORY_END

from extract import cozmox_doctor, invent_doctor
from extract.doctor import Verdict
from flows.cli import main
from simulator import Simulator, SimulatorServer
from simulator.broken import BROKEN_ASSUMPTIONS

ASSUMPTIONS = {"cozmox": cozmox_doctor.ASSUMPTIONS, "invent": invent_doctor.ASSUMPTIONS}

# Each switch, and the line it must turn VIOLATED.
TRIPS = {
    "cozmox_page_size": ("cozmox", cozmox_doctor.PAGE_SIZE),
    "cozmox_updated_filter": ("cozmox", cozmox_doctor.WINDOW),
    "cozmox_sort_order": ("cozmox", cozmox_doctor.SORT_ORDER),
    "cozmox_unsorted": ("cozmox", cozmox_doctor.SORT_KEY),
    "cozmox_times_in_seconds": ("cozmox", cozmox_doctor.TIMES),
    "cozmox_metadata": ("cozmox", cozmox_doctor.METADATA),
    "cozmox_rate_limit": ("cozmox", cozmox_doctor.RATE),
    "invent_take": ("invent", invent_doctor.TAKE),
    "invent_pagination_headers": ("invent", invent_doctor.HEADERS),
    "invent_order": ("invent", invent_doctor.ORDER),
    "invent_bare_dates": ("invent", invent_doctor.TIMES),
    "invent_org_shorthand": ("invent", invent_doctor.ORG),
    "invent_messages_path": ("invent", invent_doctor.MESSAGES_PATH),
    "invent_messages_order": ("invent", invent_doctor.MESSAGES_ORDER),
    "invent_from_date": ("invent", invent_doctor.MESSAGES_SINCE),
    "invent_rate_limit": ("invent", invent_doctor.RATE),
}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Simulator, SimulatorServer]]:
    sim = Simulator(seed=23, cozmox_chats=60, invent_chats=30, api_key=API_KEY, history_days=20,
                    history_end=HISTORY_END)
    with SimulatorServer(sim) as server:
        yield sim, server


@pytest.fixture
def sim(served, monkeypatch, tmp_path) -> Iterator[Simulator]:
    """The shared simulator, every assumption kept, and the environment the command reads."""
    sim, server = served
    for name, value in {
        "COZMOX_BASE_URL": server.cozmox_url, "COZMOX_API_KEY": API_KEY,
        "INVENT_BASE_URL": server.invent_url, "INVENT_API_KEY": API_KEY,
        "CHATSYNC_DATABASE": str(tmp_path / "warehouse.duckdb"), "CHATSYNC_PAGE_SIZE": "20",
        "CHATSYNC_INVENT_REQUESTS_PER_MINUTE": "0", "CHATSYNC_MAX_ATTEMPTS": "2",
        "CHATSYNC_RETRY_BACKOFF_SECONDS": "0.01", "CHATSYNC_TIMEOUT_SECONDS": "5",
    }.items():
        monkeypatch.setenv(name, value)
    sim.mend()
    sim.reset_requests()
    yield sim
    sim.mend()
    assert not sim.errors


def doctor(capsys, *argv: str) -> tuple[int, dict[tuple[str, str], Verdict], str, str]:
    """Exit status, the verdict of each (account, assumption) line, and both outputs."""
    code = main(["doctor", *argv])
    out, err = capsys.readouterr()
    found: dict[tuple[str, str], Verdict] = {}
    for text in out.splitlines()[:-1]:
        account, verdict, rest = text.split(maxsplit=2)
        source = account.split(":")[0]
        assumption = next(a for a in ASSUMPTIONS[source] if rest.startswith(f"{a}: "))
        assert (account, assumption) not in found, text
        found[account, assumption] = Verdict(verdict)
    return code, found, out, err


def every(verdict: Verdict, *sources: str) -> dict[tuple[str, str], Verdict]:
    return {(source, a): verdict for source in sources for a in ASSUMPTIONS[source]}


def test_a_simulator_keeping_every_assumption_passes_with_its_evidence(sim, capsys, tmp_path):
    code, found, out, err = doctor(capsys)

    assert (code, err) == (0, "")
    expected = every(Verdict.OK, "cozmox", "invent")
    expected["cozmox", cozmox_doctor.RATE] = expected["invent", invent_doctor.RATE] = Verdict.UNKNOWN
    assert found == expected
    assert "asked limit=20: 20 of totalItems 60; limit=10: 10 of totalItems 60" in out
    assert "in createdAt order" in out
    assert "asked take=20&page=1: 20 of pagination-count 30" in out
    assert "no rate-limit headers" in out
    assert out.splitlines()[-1].startswith("doctor: 14 OK, 0 VIOLATED, 2 UNKNOWN across 2 of 2 account(s)")
    # a handful of requests, and nothing written
    assert sim.request_count("cozmox") == 4
    assert sim.request_count("invent") <= 8  # as the README says
    assert not (tmp_path / "warehouse.duckdb").exists()


def test_every_switch_of_the_simulator_is_tried():
    assert set(TRIPS) == set(BROKEN_ASSUMPTIONS)


@pytest.mark.parametrize("switch", sorted(TRIPS))
def test_each_broken_assumption_is_named_and_nothing_else(sim, capsys, switch):
    account, assumption = TRIPS[switch]
    sim.break_assumption(switch)

    code, found, out, err = doctor(capsys, "--account", account)

    assert code == 1
    assert found[account, assumption] is Verdict.VIOLATED, out
    assert [key for key, verdict in found.items() if verdict is Verdict.VIOLATED] == [(account, assumption)], out
    assert err.count("\n") == 1 and "1 assumption(s) violated" in err and assumption in err, err
    assert sim.request_count() <= 15


@pytest.mark.parametrize("switch, evidence", [
    ("cozmox_page_size", "asked limit=20: 3 of totalItems 60"),
    ("cozmox_updated_filter", "10 outside it"),
    ("cozmox_sort_order", "sortOrder=ASC came back newest first"),
    ("cozmox_times_in_seconds", "createdAt without milliseconds in 30 of 30"),
    ("invent_bare_dates", "updated_at a bare date in 20 of 20"),
    ("invent_from_date", "the parameter is 'from_date'"),
    ("invent_rate_limit", "x-ratelimit-limit: 100"),
])
def test_the_evidence_says_what_was_seen(sim, capsys, switch, evidence):
    sim.break_assumption(switch)
    code, _, out, _ = doctor(capsys, "--account", TRIPS[switch][0])
    assert code == 1 and evidence in out, out


def test_account_limits_doctor_to_one_account(sim, capsys, monkeypatch):
    monkeypatch.setenv("INVENT_ORG_ID", sim.invent_org_id)

    code, found, out, err = doctor(capsys, "--account", f"invent:{sim.invent_org_id}")

    assert (code, err) == (0, "")
    assert {account for account, _ in found} == {f"invent:{sim.invent_org_id}"}
    assert len(found) == len(invent_doctor.ASSUMPTIONS)
    assert "is configured by id, and its 20 chat(s) name it" in out
    assert sim.request_count("cozmox") == 0


def test_a_rejected_key_is_one_plain_sentence_and_the_other_account_is_still_probed(sim, capsys, monkeypatch):
    monkeypatch.setenv("COZMOX_API_KEY", "wrong-key")

    code, found, out, err = doctor(capsys)

    assert code == 1
    assert err == "chatsync: cozmox: the API key was rejected (HTTP 401 from /chat)\n"
    assert "wrong-key" not in out + err
    assert found == every(Verdict.OK, "invent") | {("invent", invent_doctor.RATE): Verdict.UNKNOWN}
    assert "across 1 of 2 account(s)" in out


def test_an_unknown_account_is_one_plain_sentence(sim, capsys):
    code, found, _, err = doctor(capsys, "--account", "nowhere")
    assert code == 1 and not found
    assert err.count("\n") == 1 and "no account is named 'nowhere'" in err


def test_an_api_with_few_chats_leaves_doubt_but_violates_nothing(capsys, monkeypatch):
    sim = Simulator(seed=5, cozmox_chats=3, invent_chats=3, history_end=HISTORY_END)
    with SimulatorServer(sim) as server:
        for name, value in {"COZMOX_BASE_URL": server.cozmox_url, "COZMOX_API_KEY": API_KEY,
                            "INVENT_BASE_URL": server.invent_url, "INVENT_API_KEY": API_KEY,
                            "CHATSYNC_INVENT_REQUESTS_PER_MINUTE": "0"}.items():
            monkeypatch.setenv(name, value)
        code, found, out, _ = doctor(capsys)

    assert code == 0, out
    assert found["cozmox", cozmox_doctor.PAGE_SIZE] is Verdict.UNKNOWN and "too few chats to tell" in out
    assert found["invent", invent_doctor.TAKE] is Verdict.UNKNOWN
    assert found["cozmox", cozmox_doctor.METADATA] is found["invent", invent_doctor.HEADERS] is Verdict.OK


def test_the_other_sort_key_is_fine_and_said(capsys, monkeypatch):
    sim = Simulator(seed=5, cozmox_chats=30, invent_chats=0, history_end=HISTORY_END, cozmox_sort_key="updatedAt")
    with SimulatorServer(sim) as server:
        monkeypatch.setenv("COZMOX_BASE_URL", server.cozmox_url)
        monkeypatch.setenv("COZMOX_API_KEY", API_KEY)
        code, found, out, _ = doctor(capsys)

    assert code == 0, out
    assert found[("cozmox", cozmox_doctor.SORT_KEY)] is Verdict.OK and "in updatedAt order" in out


def test_the_simulator_lists_its_switches(capsys):
    from simulator.__main__ import main as simulator_main

    with pytest.raises(SystemExit) as exited:
        simulator_main(["--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert all(name in shown and text in shown for name, text in BROKEN_ASSUMPTIONS.items())
    with pytest.raises(ValueError, match="unknown assumption"):
        Simulator(cozmox_chats=0, invent_chats=0, broken={"cozmox_nonsense"})


def test_doctor_is_listed_in_the_commands_help(capsys):
    assert main(["--help"]) == 0
    assert "doctor" in capsys.readouterr().out
