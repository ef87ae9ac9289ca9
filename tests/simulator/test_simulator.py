"""The API simulator behaves like the documented APIs, and misbehaves exactly when asked to."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from simulator import Fault, RequestInfo, Simulator, SimulatorServer

UTC = UTC
END = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
AUTH = {"Authorization": "Bearer sim-key"}


_FUTURE = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
_STEPS = itertools.count(1)


def later() -> datetime:
    """An instant after every earlier call and after "now", so that whatever a test stamps with
    it is the newest activity in the shared simulator, whichever order the tests run in."""
    return _FUTURE + timedelta(minutes=next(_STEPS))


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Simulator, httpx.Client]]:
    """A read-only simulator shared by the tests that only look."""
    sim = Simulator(seed=7, cozmox_chats=120, invent_chats=30, history_end=END)
    with SimulatorServer(sim) as server, httpx.Client(base_url=server.url, headers=AUTH,
                                                       timeout=5) as client:
        yield sim, client


@pytest.fixture(scope="module")
def live_server() -> Iterator[tuple[Simulator, SimulatorServer]]:
    sim = Simulator(seed=11, cozmox_chats=40, invent_chats=12, history_end=END)
    with SimulatorServer(sim) as server:
        yield sim, server


@pytest.fixture
def live(live_server: tuple[Simulator, SimulatorServer]
         ) -> Iterator[tuple[Simulator, httpx.Client]]:
    """A simulator the test may mutate; faults, hooks and the log are reset around each test."""
    sim, server = live_server
    sim.clear_faults(), sim.clear_hooks(), sim.reset_requests()
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=5) as client:
        yield sim, client
    sim.clear_faults(), sim.clear_hooks()
    assert not sim.errors


def cozmox_all(client: httpx.Client, **params: object) -> list[dict]:
    out, page = [], 1
    while True:
        body = client.get("/cozmox/chat", params={**params, "page": page}).json()
        out += body["results"]
        if page * body["metadata"]["itemsPerPage"] >= body["metadata"]["totalItems"]:
            return out
        page += 1


def invent_all(client: httpx.Client, path: str, **params: object) -> list[dict]:
    out, page = [], 1
    while True:
        response = client.get(path, params={**params, "page": page})
        out += response.json()
        if page * int(response.headers["pagination-take"]) >= int(
                response.headers["pagination-count"]):
            return out
        page += 1


# -- the documented behaviour ---------------------------------------------------------------

def test_wrong_or_missing_key_is_401(served: tuple[Simulator, httpx.Client]) -> None:
    sim, client = served
    for path in ("/cozmox/chat", "/invent/orgs/c/chats"):
        for headers in ({"Authorization": "Bearer nope"}, {"Authorization": ""}):
            response = client.get(path, headers=headers)
            assert response.status_code == 401
            assert response.json() == {"message": "Invalid API key", "statusCode": 401}
    assert sim.requests[-1].status == 401


def test_cozmox_pages_cover_every_chat_newest_created_first(
        served: tuple[Simulator, httpx.Client]) -> None:
    sim, client = served
    truth = sorted(sim.cozmox_chats(), key=lambda c: (c["createdAt"], c["id"]), reverse=True)
    first = client.get("/cozmox/chat", params={"limit": 17}).json()
    assert first["metadata"] == {"itemsPerPage": 17, "totalItems": 120, "currentPage": 1}
    assert cozmox_all(client, limit=17) == truth
    assert [c["id"] for c in cozmox_all(client, sortOrder="ASC", limit=50)] == [
        c["id"] for c in reversed(truth)]
    default = client.get("/cozmox/chat").json()
    assert len(default["results"]) == 100 and default["metadata"]["itemsPerPage"] == 100
    empty = client.get("/cozmox/chat", params={"limit": 0}).json()
    assert empty == {"results": [], "metadata": {"itemsPerPage": 0, "totalItems": 120,
                                                 "currentPage": 1}}
    beyond = client.get("/cozmox/chat", params={"page": 99}).json()
    assert beyond["results"] == [] and beyond["metadata"]["totalItems"] == 120


def test_cozmox_filters_narrow_the_results(served: tuple[Simulator, httpx.Client]) -> None:
    sim, client = served
    truth = sim.cozmox_chats()
    stamps = sorted(parse(c["updatedAt"]) for c in truth)
    lo, hi = stamps[30], stamps[90]
    got = cozmox_all(client, updatedAtGe=iso(lo), updatedAtLt=hi.isoformat())
    want = {c["id"] for c in truth if lo <= parse(c["updatedAt"]) < hi}
    assert {c["id"] for c in got} == want and len(got) == len(want)
    strict = cozmox_all(client, updatedAtGt=iso(lo), updatedAtLe=iso(hi))
    assert {c["id"] for c in strict} == {c["id"] for c in truth
                                         if lo < parse(c["updatedAt"]) <= hi}
    created = cozmox_all(client, createdAtLt=iso(parse(truth[10]["createdAt"])))
    assert {c["id"] for c in created} == {c["id"] for c in truth
                                          if c["createdAt"] < truth[10]["createdAt"]}
    assistant = truth[0]["assistantId"]
    assert {c["id"] for c in cozmox_all(client, assistantId=assistant)} == {
        c["id"] for c in truth if c["assistantId"] == assistant}
    session = next(c["sessionId"] for c in truth if "sessionId" in c)
    assert {c["id"] for c in cozmox_all(client, sessionId=session)} == {
        c["id"] for c in truth if c.get("sessionId") == session}


def test_cozmox_can_sort_by_updated_at_with_ties_broken_by_id() -> None:
    sim = Simulator(seed=9, cozmox_chats=60, invent_chats=0, history_end=END, tie_ratio=0.3,
                    cozmox_sort_key="updatedAt")
    with SimulatorServer(sim) as server, httpx.Client(base_url=server.url,
                                                       headers=AUTH) as client:
        got = cozmox_all(client, limit=7)
    assert [(c["updatedAt"], c["id"]) for c in got] == sorted(
        ((c["updatedAt"], c["id"]) for c in sim.cozmox_chats()), reverse=True)
    assert len({c["updatedAt"] for c in got}) < len(got)  # there are ties to break


@pytest.mark.parametrize("params", [{"limit": 1001}, {"limit": -1}, {"limit": "ten"},
                                    {"limit": 2.5}, {"page": 0}, {"sortOrder": "UP"},
                                    {"updatedAtGe": "not-a-date"}, {"createdAtLt": "2026-13-01"}])
def test_cozmox_rejects_bad_parameters(served: tuple[Simulator, httpx.Client],
                                       params: dict) -> None:
    response = served[1].get("/cozmox/chat", params=params)
    assert response.status_code == 400 and response.json()["statusCode"] == 400


def test_cozmox_records_look_like_the_documentation(
        served: tuple[Simulator, httpx.Client]) -> None:
    sim, _ = served
    truth = sim.cozmox_chats()
    embedded = [c for c in truth if "assistant" in c]
    assert 0.15 < len(embedded) / len(truth) < 0.45
    assert all(20_000 <= len(orjson.dumps(c["assistant"])) <= 40_000 for c in embedded)
    ties = Counter(c["updatedAt"] for c in truth)
    assert 6 <= sum(n for n in ties.values() if n > 1) <= 18
    ids = {c["id"] for c in truth}
    for chat in truth:
        assert END - timedelta(days=30) <= parse(chat["createdAt"]) <= parse(chat["updatedAt"])
        assert parse(chat["updatedAt"]) <= END
        assert 2 <= len(chat["messages"]) <= 30
        assert chat["previousChatId"] is None or chat["previousChatId"] in ids
        assert chat["cost"] == pytest.approx(sum(c["cost"] for c in chat["costs"]))
        assert isinstance(chat.get("input", ""), (str, list))
    kinds = {c["type"] for chat in truth for c in chat["costs"]}
    assert {"model", "transcriber", "voice"} <= kinds
    models = [c["model"] for chat in truth for c in chat["costs"] if c["type"] == "model"]
    assert any(isinstance(m, str) for m in models) and any(isinstance(m, dict) for m in models)


def test_invent_chats_newest_activity_first_with_pagination_headers(
        served: tuple[Simulator, httpx.Client]) -> None:
    sim, client = served
    truth = sorted(sim.invent_chats(), key=lambda c: (c["updated_at"], c["id"]), reverse=True)
    response = client.get("/invent/orgs/c/chats", params={"take": 7, "page": 2})
    assert response.headers["pagination-count"] == "30"
    assert response.headers["pagination-page"] == "2"
    assert response.headers["pagination-take"] == "7"
    assert response.json() == truth[7:14]
    assert invent_all(client, "/invent/orgs/c/chats", take=7) == truth
    assert client.get(f"/invent/orgs/{sim.invent_org_id}/chats").json() == truth
    assert client.get("/invent/orgs/someone-else/chats").status_code == 404
    for take in (0, 101, "x"):
        assert client.get("/invent/orgs/c/chats", params={"take": take}).status_code == 400
    closed = client.get("/invent/orgs/c/chats", params={"state": "CLOSED"}).json()
    assert closed == [c for c in truth if c["state"]["state"] == "CLOSED"]


def test_invent_messages_page_in_creation_order_from_a_date(
        served: tuple[Simulator, httpx.Client]) -> None:
    sim, client = served
    chat = max(sim.invent_chats(), key=lambda c: len(sim.invent_messages(c["id"])))
    truth = sim.invent_messages(chat["id"])
    path = f"/invent/chats/{chat['id']}/messages"
    assert len(truth) > 10
    assert invent_all(client, path, take=4) == truth
    assert truth == sorted(truth, key=lambda m: (m["created_at"], m["id"]))
    assert chat["last_message"] == truth[-1]
    since = truth[5]["created_at"]
    response = client.get(path, params={"from": since})
    assert response.json() == [m for m in truth if m["created_at"] >= since]
    assert response.headers["pagination-count"] == str(len(response.json()))
    assert client.get("/invent/chats/nope/messages").status_code == 404
    assert client.get(path, params={"from": "yesterday"}).status_code == 400
    assert client.get(path, params={"take": 101}).status_code == 400


def test_invent_records_look_like_the_documentation() -> None:
    sim = Simulator(seed=5, cozmox_chats=0, invent_chats=150, history_end=END)
    chats = sim.invent_chats()
    assert any(len(c["created_at"]) == 10 for c in chats)  # a bare date, as documented
    channels = set()
    for chat in chats:
        assert 1 <= len(chat["members"]) <= 3
        for member in chat["members"]:
            assert (member["user"] is None) != (member["contact_channel"] is None)
            if member["contact_channel"]:  # the seed's shape, or the newer one
                channel = member["contact_channel"]
                channels.add(channel.get("channel_type") or channel.get("type"))
                assert set(channel["contact"]) - {"is_admin"} == {"id", "name", "blocked"}
        messages = sim.invent_messages(chat["id"])
        assert 1 <= len(messages) <= 40
        assert parse(chat["updated_at"]) >= parse(messages[-1]["created_at"])
        for message in messages:
            assert ("usage" in message) == (message["role"] == "assistant")
    assert len(channels) >= 4


def test_same_seed_same_content_and_history_end_only_moves_it() -> None:
    a = Simulator(seed=3, cozmox_chats=30, invent_chats=8, history_end=END)
    b = Simulator(seed=3, cozmox_chats=30, invent_chats=8, history_end=END)
    assert a.cozmox_chats() == b.cozmox_chats() and a.invent_chats() == b.invent_chats()
    first = a.invent_chats()[0]["id"]
    assert a.invent_messages(first) == b.invent_messages(first)
    later = Simulator(seed=3, cozmox_chats=30, invent_chats=8, history_end=END + timedelta(days=2))
    for x, y in zip(a.cozmox_chats(), later.cozmox_chats(), strict=True):
        untimed = [{k: v for k, v in c["messages"][-1].items() if k != "time"} for c in (x, y)]
        assert x["id"] == y["id"] and untimed[0] == untimed[1]
        assert parse(y["updatedAt"]) - parse(x["updatedAt"]) == timedelta(days=2)
    other = Simulator(seed=4, cozmox_chats=30, invent_chats=8, history_end=END)
    assert {c["id"] for c in other.cozmox_chats()}.isdisjoint({c["id"] for c in a.cozmox_chats()})


# -- faults -----------------------------------------------------------------------------------

def test_status_fault_with_retry_after_honours_times(live: tuple[Simulator, httpx.Client]) -> None:
    sim, client = live
    fault = sim.add_fault(Fault("status", status=429, retry_after=0.5, times=2, source="cozmox"))
    statuses = [client.get("/cozmox/chat").status_code for _ in range(3)]
    assert statuses == [429, 429, 200] and fault.applied == 2
    assert [r.status for r in sim.requests] == statuses
    sim.add_fault(Fault("status", status=429, retry_after=0.5))
    response = client.get("/cozmox/chat")
    assert response.headers["retry-after"] == "0.5" and response.json()["statusCode"] == 429
    sim.add_fault(Fault("status", status=429, retry_after=2))
    assert client.get("/cozmox/chat").headers["retry-after"] == "2"
    assert client.get("/invent/orgs/c/chats").status_code == 200


def test_fault_after_source_path_and_forever(live: tuple[Simulator, httpx.Client]) -> None:
    sim, client = live
    sim.add_fault(Fault("status", after=1, path_contains="/messages"))
    chat = sim.chat_ids("invent")[0]
    assert client.get("/cozmox/chat").status_code == 200  # does not match the path
    assert client.get(f"/invent/chats/{chat}/messages").status_code == 200  # skipped: after=1
    assert client.get(f"/invent/chats/{chat}/messages").status_code == 503
    assert client.get(f"/invent/chats/{chat}/messages").status_code == 200  # spent
    sim.add_fault(Fault("status", status=500, times=-1, source="invent"))
    assert [client.get("/invent/orgs/c/chats").status_code for _ in range(3)] == [500] * 3
    sim.clear_faults()
    assert client.get("/invent/orgs/c/chats").status_code == 200


def test_drop_is_a_protocol_error_not_a_response(live: tuple[Simulator, httpx.Client]) -> None:
    sim, client = live
    sim.add_fault(Fault("drop", source="cozmox"))
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/cozmox/chat")
    assert client.get("/cozmox/chat").status_code == 200


def test_stall_outlasts_a_short_client_timeout(live: tuple[Simulator, httpx.Client]) -> None:
    sim, client = live
    sim.add_fault(Fault("stall", seconds=1.0, source="invent"))
    with pytest.raises(httpx.ReadTimeout):
        client.get("/invent/orgs/c/chats", timeout=0.2)
    assert client.get("/invent/orgs/c/chats").status_code == 200


def test_truncated_and_invalid_bodies_do_not_parse(live: tuple[Simulator, httpx.Client]) -> None:
    sim, client = live
    sim.add_fault(Fault("truncate"))
    response = client.get("/cozmox/chat")
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    with pytest.raises(ValueError):
        response.json()
    sim.add_fault(Fault("invalid_json"))
    response = client.get("/invent/orgs/c/chats")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_no_results_lie_count_and_repeat_page(live: tuple[Simulator, httpx.Client]) -> None:
    sim, client = live
    sim.add_fault(Fault("no_results"))
    body = client.get("/cozmox/chat").json()
    assert "results" not in body and body["metadata"]["totalItems"] == len(sim.cozmox_chats())
    sim.add_fault(Fault("lie_count", count_delta=5, times=2))
    assert client.get("/cozmox/chat").json()["metadata"]["totalItems"] == len(
        sim.cozmox_chats()) + 5
    response = client.get("/invent/orgs/c/chats")
    assert response.headers["pagination-count"] == str(len(sim.invent_chats()) + 5)
    page1 = client.get("/invent/orgs/c/chats", params={"take": 5, "page": 1})
    sim.add_fault(Fault("repeat_page", source="invent"))
    page2 = client.get("/invent/orgs/c/chats", params={"take": 5, "page": 2})
    assert page2.content == page1.content
    assert client.get("/invent/orgs/c/chats", params={"take": 5, "page": 2}).json() != \
        page1.json()


# -- mutations, hooks and the request log -----------------------------------------------------

def test_touch_adds_messages_and_stamps_updated_at(live: tuple[Simulator, httpx.Client]) -> None:
    sim, client = live
    chat = sim.cozmox_chats()[3]
    at = later() + timedelta(milliseconds=123)
    sim.touch("cozmox", chat["id"], at=at, add_messages=2)
    after = sim.chat("cozmox", chat["id"])
    assert after["updatedAt"] == iso(at) and after["updatedAt"].endswith(".123Z")
    assert after["messages"][:-2] == chat["messages"] and len(after["messages"]) == \
        len(chat["messages"]) + 2
    assert after["cost"] > chat["cost"]
    assert cozmox_all(client, updatedAtGe=iso(at)) == [after]
    before = datetime.now(UTC) - sim.lag - timedelta(milliseconds=1)
    sim.touch("cozmox", chat["id"])
    stamped = parse(sim.chat("cozmox", chat["id"])["updatedAt"])
    assert before <= stamped <= datetime.now(UTC) - sim.lag

    inv, at = sim.invent_chats()[-1], later()
    old = sim.invent_messages(inv["id"])
    sim.touch("invent", inv["id"], at=at, add_messages=3)
    new = sim.invent_messages(inv["id"])
    assert new[:len(old)] == old and len(new) == len(old) + 3
    top = client.get("/invent/orgs/c/chats", params={"take": 1}).json()[0]
    assert top["id"] == inv["id"] and top["updated_at"] == iso(at)
    assert top["last_message"] == new[-1] and new[-1]["created_at"] == iso(at)


def test_replace_messages_makes_children_vanish(live: tuple[Simulator, httpx.Client]) -> None:
    sim, client = live
    chat = sim.cozmox_chats()[5]
    kept = chat["messages"][:2]
    sim.replace_messages("cozmox", chat["id"], kept, output=[], costs=chat["costs"][:1])
    after = sim.chat("cozmox", chat["id"])
    assert after["messages"] == kept and after["output"] == []
    assert after["costs"] == chat["costs"][:1] and after["cost"] == chat["costs"][0]["cost"]
    assert after["updatedAt"] > chat["updatedAt"]
    inv = sim.invent_chats()[2]["id"]
    two = sim.invent_messages(inv)[:2]
    sim.replace_messages("invent", inv, two)
    assert client.get(f"/invent/chats/{inv}/messages").json() == two
    assert sim.chat("invent", inv)["last_message"] == two[-1]


def test_add_and_delete_chats(live: tuple[Simulator, httpx.Client]) -> None:
    sim, client = live
    at = later()
    total = client.get("/cozmox/chat", params={"limit": 0}).json()["metadata"]["totalItems"]
    ids = sim.add_chats("cozmox", 3, at=at)
    fresh = cozmox_all(client, createdAtGe=iso(at))
    assert {c["id"] for c in fresh} == set(ids)
    assert all(c["createdAt"] == c["updatedAt"] == iso(at) for c in fresh)
    sim.delete("cozmox", ids[0])
    assert client.get("/cozmox/chat", params={"limit": 0}).json()["metadata"][
        "totalItems"] == total + 2
    (new,) = sim.add_chats("invent", 1, at=later())
    assert client.get("/invent/orgs/c/chats", params={"take": 1}).json()[0]["id"] == new
    assert client.get(f"/invent/chats/{new}/messages").json() == sim.invent_messages(new)
    sim.delete("invent", new)
    assert client.get(f"/invent/chats/{new}/messages").status_code == 404
    with pytest.raises(KeyError):
        sim.touch("invent", new)


def test_corrupt_and_set_timestamp(live: tuple[Simulator, httpx.Client]) -> None:
    sim, client = live
    a = sim.cozmox_chats()[7]
    b = next(c for c in sim.cozmox_chats()[8:] if "assistant" in c)  # one with the shared config
    sim.corrupt("cozmox", a["id"], "updatedAt", "not-a-date")
    sim.corrupt("cozmox", a["id"], "cost", Simulator.MISSING)
    served = {c.get("id"): c for c in cozmox_all(client)}
    assert served[a["id"]]["updatedAt"] == "not-a-date" and "cost" not in served[a["id"]]
    sim.corrupt("cozmox", b["id"], "id", None)
    assert None in {c["id"] for c in cozmox_all(client)}
    sim.corrupt("cozmox", b["id"], "assistant.model.model", 42)  # nested: the shared config
    assert all(c.get("assistant", {}).get("model", {}).get("model") != 42
               for c in sim.cozmox_chats() if c["id"] is not None)
    inv = sim.invent_chats()
    sim.corrupt("invent", inv[0]["id"], "state.state", "ARCHIVED")
    assert sim.chat("invent", inv[0]["id"])["state"]["state"] == "ARCHIVED"
    assert sim.chat("invent", inv[0]["id"])["updated_at"] == inv[0]["updated_at"]
    sim.set_timestamp("invent", inv[1]["id"], inv[2]["updated_at"])
    assert sim.chat("invent", inv[1]["id"])["updated_at"] == inv[2]["updated_at"]
    pair = [c["id"] for c in client.get("/invent/orgs/c/chats").json()
            if c["updated_at"] == inv[2]["updated_at"]]
    assert pair == sorted({inv[1]["id"], inv[2]["id"]}, reverse=True)


def test_hook_mutates_between_pages(live: tuple[Simulator, httpx.Client]) -> None:
    sim, client = live
    seen: list[RequestInfo] = []
    first_page = client.get("/cozmox/chat", params={"limit": 10, "sortOrder": "ASC"}).json()
    victim = first_page["results"][0]["id"]

    @sim.on_request
    def mutate(info: RequestInfo) -> None:
        seen.append(info)
        if info.source == "cozmox" and info.params.get("page") == "2":
            sim.delete("cozmox", victim)

    second = client.get("/cozmox/chat", params={"limit": 10, "sortOrder": "ASC", "page": 2})
    assert second.json()["metadata"]["totalItems"] == first_page["metadata"]["totalItems"] - 1
    # Everything shifted left by one: the chat that was 11th is now on page 1, skipped.
    assert second.json()["results"][0]["id"] != cozmox_all(client, sortOrder="ASC")[9]["id"]
    assert seen[0].index == 2 and seen[0].params == {"limit": "10", "sortOrder": "ASC",
                                                     "page": "2"}


def test_request_log(live: tuple[Simulator, httpx.Client]) -> None:
    sim, client = live
    chat = sim.chat_ids("invent")[0]
    client.get("/cozmox/chat")
    client.get("/invent/orgs/c/chats")
    client.get(f"/invent/chats/{chat}/messages")
    assert sim.request_count() == 3 and sim.request_count("invent") == 2
    assert sim.request_count(path_contains="/messages") == 1
    assert [r.index for r in sim.requests] == [1, 1, 2]
    assert all(r.status == 200 for r in sim.requests)
    sim.reset_requests()
    client.get("/cozmox/chat")
    assert sim.request_count() == 1 and sim.requests[0].index == 1


def test_a_failing_hook_is_a_500_and_the_server_carries_on(
        live: tuple[Simulator, httpx.Client]) -> None:
    sim, client = live

    @sim.on_request
    def broken(info: RequestInfo) -> None:
        raise RuntimeError("boom")

    response = client.get("/cozmox/chat")
    assert response.status_code == 500 and "boom" in response.json()["message"]
    assert sim.requests[-1].status == 500 and isinstance(sim.errors.pop(), RuntimeError)
    sim.clear_hooks()
    assert client.get("/cozmox/chat").status_code == 200


# -- several orgs behind one server -----------------------------------------------------------

OTHER_KEY = "other-key"


@pytest.fixture(scope="module")
def orgs_server() -> Iterator[tuple[tuple[Simulator, Simulator, Simulator], SimulatorServer]]:
    """Orgs A and B behind the one key `sim-key`, and org C behind a key of its own."""
    a = Simulator(seed=21, cozmox_chats=25, invent_chats=8, history_end=END)
    b = Simulator(seed=22, cozmox_chats=15, invent_chats=6, history_end=END)
    c = Simulator(seed=23, cozmox_chats=10, invent_chats=5, api_key=OTHER_KEY, history_end=END)
    with SimulatorServer(a, b, c) as server:
        yield (a, b, c), server


@pytest.fixture
def orgs(orgs_server: tuple[tuple[Simulator, Simulator, Simulator], SimulatorServer]
         ) -> Iterator[tuple[Simulator, Simulator, Simulator, httpx.Client]]:
    """The three orgs and a client with the key of A and B; each org's log starts empty."""
    sims, server = orgs_server
    for sim in sims:
        sim.clear_faults(), sim.clear_hooks(), sim.reset_requests()
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=5) as client:
        yield (*sims, client)
    for sim in sims:
        sim.clear_faults(), sim.clear_hooks()
        assert not sim.errors


def newest_first(chats: list[dict]) -> list[dict]:
    return sorted(chats, key=lambda c: (c["updated_at"], c["id"]), reverse=True)


def test_server_keeps_its_first_sim_and_refuses_orgs_it_cannot_tell_apart() -> None:
    a = Simulator(seed=31, cozmox_chats=3, invent_chats=2, history_end=END)
    b = Simulator(seed=32, cozmox_chats=3, invent_chats=2, history_end=END)
    assert SimulatorServer(a).sims == (a,) and SimulatorServer(a).sim is a
    both = SimulatorServer(a, b, port=0)
    assert both.sim is a and both.sims == (a, b) and both.app.sims == (a, b)
    assert len({a.invent_org_id, a.cozmox_org_id, b.invent_org_id, b.cozmox_org_id}) == 4
    for source in ("cozmox", "invent"):
        assert set(a.chat_ids(source)).isdisjoint(b.chat_ids(source))
    with pytest.raises(ValueError, match="distinct seeds"):
        SimulatorServer(a, a)
    with pytest.raises(ValueError, match="distinct seeds"):
        SimulatorServer(a, Simulator(seed=31, cozmox_chats=1, invent_chats=1))
    SimulatorServer(a, Simulator(seed=31, cozmox_chats=1, invent_chats=1, api_key=OTHER_KEY))
    with pytest.raises(TypeError):
        SimulatorServer(a, "127.0.0.1")  # type: ignore[arg-type]


def test_two_invent_orgs_behind_one_key(
        orgs: tuple[Simulator, Simulator, Simulator, httpx.Client]) -> None:
    a, b, _, client = orgs
    assert invent_all(client, "/invent/orgs/c/chats", take=3) == newest_first(a.invent_chats())
    assert client.get(f"/invent/orgs/{a.invent_org_id}/chats").json() == \
        newest_first(a.invent_chats())
    response = client.get(f"/invent/orgs/{b.invent_org_id}/chats", params={"take": 4})
    assert response.json() == newest_first(b.invent_chats())[:4]
    assert response.headers["pagination-count"] == str(len(b.invent_chats()))
    unknown = client.get("/invent/orgs/someone-else/chats")
    assert unknown.status_code == 404 and unknown.json()["message"] == "Organization not found"
    for sim in (a, b):
        chat = sim.chat_ids("invent")[0]
        assert client.get(f"/invent/chats/{chat}/messages").json() == sim.invent_messages(chat)
    missing = client.get("/invent/chats/nope/messages")
    assert missing.status_code == 404 and missing.json()["message"] == "Chat not found"
    # Each request is logged by the org that answered it; what no org holds falls to the first.
    assert [r.path for r in b.requests] == [f"/invent/orgs/{b.invent_org_id}/chats",
                                            f"/invent/chats/{b.chat_ids('invent')[0]}/messages"]
    assert a.request_count() == 3 + 1 + 1 + 1 + 1 and a.request_count(path_contains="nope") == 1
    assert all(r.status in (200, 404) for r in a.requests + b.requests)


def test_a_fault_on_one_org_leaves_the_other_alone(
        orgs: tuple[Simulator, Simulator, Simulator, httpx.Client]) -> None:
    a, b, c, client = orgs
    a_chat, b_chat = a.chat_ids("invent")[0], b.chat_ids("invent")[0]
    a_paths = ["/invent/orgs/c/chats", f"/invent/orgs/{a.invent_org_id}/chats",
               f"/invent/chats/{a_chat}/messages", "/cozmox/chat"]
    b_paths = [f"/invent/orgs/{b.invent_org_id}/chats", f"/invent/chats/{b_chat}/messages"]
    seen: list[str] = []
    b.on_request(lambda info: seen.append(info.path))
    for status in (503, 401):
        b.clear_faults()
        fault = b.add_fault(Fault("status", status=status, times=-1))
        assert [client.get(p).status_code for p in a_paths] == [200] * len(a_paths)
        assert [client.get(p).status_code for p in b_paths] == [status] * len(b_paths)
        assert fault.applied == len(b_paths)
    assert seen == b_paths * 2
    assert not any(r.faults for r in a.requests) and not c.requests
    b.clear_faults()
    a.add_fault(Fault("drop", source="invent"))
    assert client.get(b_paths[0]).status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(a_paths[0])


def test_two_cozmox_keys_reach_their_own_org_only(
        orgs: tuple[Simulator, Simulator, Simulator, httpx.Client]) -> None:
    a, b, c, client = orgs
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    mine = cozmox_all(client, limit=7)
    theirs = []
    page = 1
    while True:
        body = client.get("/cozmox/chat", params={"limit": 4, "page": page},
                          headers=other).json()
        theirs += body["results"]
        if page * 4 >= body["metadata"]["totalItems"]:
            break
        page += 1
    assert {x["id"] for x in mine} == set(a.chat_ids("cozmox"))  # the first org with the key
    assert {x["id"] for x in theirs} == set(c.chat_ids("cozmox"))
    assert {x["orgId"] for x in mine} == {a.cozmox_org_id}
    assert {x["orgId"] for x in theirs} == {c.cozmox_org_id}
    assert client.get("/invent/orgs/c/chats", headers=other).json() == \
        newest_first(c.invent_chats())
    assert client.get(f"/invent/orgs/{a.invent_org_id}/chats",
                      headers=other).status_code == 404
    assert client.get(f"/invent/chats/{a.chat_ids('invent')[0]}/messages",
                      headers=other).status_code == 404
    assert client.get(f"/invent/orgs/{c.invent_org_id}/chats").status_code == 404
    assert not b.requests and c.request_count() == page + 3


def test_a_wrong_key_is_401_and_logged_on_the_first_org(
        orgs: tuple[Simulator, Simulator, Simulator, httpx.Client]) -> None:
    a, b, c, client = orgs
    paths = ["/cozmox/chat", "/invent/orgs/c/chats", f"/invent/orgs/{b.invent_org_id}/chats",
             f"/invent/chats/{b.chat_ids('invent')[0]}/messages",
             f"/invent/chats/{c.chat_ids('invent')[0]}/messages"]
    for headers in ({"Authorization": "Bearer nope"}, {"Authorization": ""}):
        for path in paths:
            response = client.get(path, headers=headers)
            assert response.status_code == 401
            assert response.content == b'{"message":"Invalid API key","statusCode":401}'
    assert [r.status for r in a.requests] == [401] * 2 * len(paths)
    assert not b.requests and not c.requests


def test_main_serves_several_orgs_behind_one_key() -> None:
    command = [sys.executable, "-m", "simulator", "--port", "0", "--orgs", "2", "--seed", "40",
               "--cozmox-chats", "5", "--invent-chats", "3"]
    proc = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE,
                            text=True)
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        lines = []
        while not lines or not lines[-1].startswith("API key:"):
            line = proc.stdout.readline()
            assert line, f"python -m simulator ended early: {lines}"
            lines.append(line)
        settings = dict(x.strip().split("=", 1) for x in lines if x.startswith("INVENT_BASE_URL"))
        orgs = [Simulator(seed=seed, cozmox_chats=0, invent_chats=0) for seed in (40, 41)]
        for sim in orgs:
            assert any(sim.invent_org_id in x and sim.cozmox_org_id in x for x in lines)
        with httpx.Client(base_url=settings["INVENT_BASE_URL"], headers=AUTH,
                          timeout=5) as client:
            for sim in orgs:
                chats = client.get(f"/orgs/{sim.invent_org_id}/chats").json()
                assert len(chats) == 3 and {x["org_id"] for x in chats} == {sim.invent_org_id}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        watchdog.cancel()
