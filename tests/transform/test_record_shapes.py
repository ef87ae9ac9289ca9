"""Both shapes of every record the APIs send, the seeds' and today's: each loads with nothing
lost, its new columns filled from whichever shape it came in."""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_hostile_input import (
    SETTINGS,
    _as_sent,
    _through_json,
    assert_nothing_lost,
    json_text,
    load,
    mutated,
    rows_of,
)

from load.warehouse import AccountKey, Warehouse
from simulator import Simulator
from transform import cozmox, invent
from transform.batch import Batch
from transform.common import unique_keys

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MS = 1767225600000  # 2026-01-01T00:00:00Z

CALLS = [{"id": "call_1", "type": "function",
          "function": {"name": "lookup_order", "arguments": "{\"orderId\": \"R-1\"}"}},
         {"id": "call_2", "type": "function",
          "function": {"name": "check_plan", "arguments": "{}"}}]
COZMOX_CHAT = {
    "id": "mixed", "orgId": "org", "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:05:00Z",
    "assistantId": None, "squadId": "squad-1",
    "input": [{"role": "developer", "content": "Be brief."},
              {"role": "user", "content": "where is my order?", "name": "Ana"}],
    "messages": [
        # the seed's call-transcript shape
        {"role": "user", "message": "hi", "time": MS, "endTime": MS + 900, "secondsFromStart": 0.5, "duration": 900},
        # today's OpenAI-style shape
        {"role": "system", "content": "You help with orders."},
        {"role": "user", "content": [{"type": "text", "text": "where is R-1?"}], "name": "Ana",
         "metadata": {"channel": "web"}},
        {"role": "assistant", "tool_calls": CALLS},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"status\": \"shipped\"}", "name": "lookup_order"},
        {"role": "tool", "tool_call_id": "call_2", "content": "pro"},
        {"role": "assistant", "content": None, "refusal": "I can't share that."},
        {"role": "assistant", "content": "It has shipped.", "metadata": {"latencyMs": 420}},
    ],
    "output": [{"role": "assistant", "content": "It has shipped."}],
    "costs": [
        {"type": "model", "model": {"model": "gpt-4o", "provider": "openai"}, "promptTokens": 1000,
         "completionTokens": 200, "cachedPromptTokens": 400, "reasoningTokens": 50, "cost": 0.004},
        {"type": "model", "model": "gpt-4o-mini", "promptTokens": 10, "completionTokens": 2, "cost": 0.0001},
        {"type": "chat", "cost": 0.01},
    ],
    "cost": 0.0141,
}

SEED_MEMBER = {"id": "m-seed", "role": "MEMBER", "user": None, "contact_channel": {
    "id": "cc-seed", "channel_type": "whatsapp_bot", "channel_id": "+15550001", "channel_name": "ana.silva",
    "channel_display_name": "Ana Silva", "channel_avatar": None, "contact": {"id": "k1", "name": "Ana", "blocked": False}}}
NEW_MEMBER = {"id": "m-new", "role": "MEMBER", "user": None, "contact_channel": {
    "id": "cc-new", "type": "email", "user_id": "bo@example.com", "avatar": "https://x/a.png", "name": "Bo Kim",
    "username": "bo.kim", "email": "bo@example.com", "phone": "+15550002",
    "contact": {"id": "k2", "name": "Bo", "blocked": False, "is_admin": True}}}
STAFF = {"id": "m-staff", "role": "ADMIN", "user": {"id": "u1", "name": "Uma"}, "contact_channel": None}
INVENT_CHAT = {
    "id": "inv", "org_id": "org", "title": "t", "status": "COMPLETED",
    "created_at": "2023-12-25", "updated_at": "2026-01-01T00:00:10Z",
    "members": [SEED_MEMBER, NEW_MEMBER, STAFF],
}


def text(part_text: str) -> dict:
    return {"type": "text", "text": part_text}


INVENT_MESSAGES = [
    {  # the seed's shape: cached_input_tokens only, no broadcast fields; a bare date
        "id": "m1", "role": "assistant", "model": "gpt-4o", "created_at": "2026-01-01",
        "messages": [{"role": "assistant", "parts": [text("hello")]}],
        "usage": {"input_tokens": 100, "output_tokens": 10, "total_tokens": 110, "reasoning_tokens": 0,
                  "cached_input_tokens": 40},
    },
    {  # today's: cache read and write, turns, a broadcast, parts of several types
        "id": "m2", "role": "assistant", "model": "gpt-4o", "created_at": "2026-01-01T00:00:05Z",
        "updated_at": "2026-01-01T00:00:06Z", "broadcast_id": "bc-1", "is_broadcast_message": True,
        "messages": [{"role": "assistant", "parts": [
            {"type": "tool-call", "tool_name": "search_kb", "args": {"query": "refund"}},
            text("first"),
            {"type": "reasoning", "text": "thinking it over"},
            {"type": "image", "image": {"id": "f1", "file_url": "https://x/f1.jpg"}},
            {"type": "source", "text": {"url": "https://x"}},
            {"text": "second"},
            text(""),
        ]}],
        "usage": {"input_tokens": 200, "output_tokens": 20, "total_tokens": 220,
                  "input_tokens_cache_read": 120, "input_tokens_cache_write": 30,
                  "turns": [{"model": "gpt-4o", "input_tokens": 150, "output_tokens": 5},
                            {"model": "gpt-4o", "input_tokens": 50, "output_tokens": 15}]},
        "extra_field_added_upstream": {"kept": True},
    },
    {  # both cache fields: cached_input_tokens wins
        "id": "m3", "role": "assistant", "created_at": "2026-01-01T00:00:07Z", "broadcast_id": None,
        "is_broadcast_message": False,
        "messages": [{"role": "assistant", "parts": [text("a"), text("b")]}],
        "usage": {"input_tokens": 10, "cached_input_tokens": 7, "input_tokens_cache_read": 5},
    },
    {  # no text part at all
        "id": "m4", "role": "tool", "created_at": "2026-01-01T00:00:08Z",
        "messages": [{"role": "tool", "parts": [{"type": "tool-result", "result": {"ok": True}}]}],
    },
]


def by(rows: list[dict], key: str) -> dict:
    return {row[key]: row for row in rows}


# -- Cozmox ----------------------------------------------------------------------------------

def test_cozmox_entries_of_both_shapes_become_one_row_each():
    batch = cozmox.flatten(_as_sent([COZMOX_CHAT]), {}, NOW)
    assert batch.rejected == []
    entries = len(COZMOX_CHAT["messages"]) + len(COZMOX_CHAT["output"]) + len(COZMOX_CHAT["input"])
    assert len(rows_of(batch, "messages")) == entries
    rows = by(rows_of(batch, "messages"), "message_id")

    transcript = rows["mixed:message:0"]
    assert (transcript["role"], transcript["content"], transcript["created_at"], transcript["seconds_from_start"]) == \
        ("user", "hi", NOW, 0.5)
    assert (transcript["tool_calls"], transcript["tool_call_id"], transcript["name"]) == (None, None, None)

    system = rows["mixed:message:1"]
    assert (system["role"], system["content"], system["created_at"]) == ("system", "You help with orders.", None)

    parts = rows["mixed:message:2"]  # structured content: JSON text
    assert json.loads(parts["content"]) == [{"type": "text", "text": "where is R-1?"}]
    assert parts["name"] == "Ana"

    call = rows["mixed:message:3"]
    assert (call["role"], call["content"], call["tool_call_id"]) == ("assistant", None, None)
    assert json.loads(call["tool_calls"]) == CALLS

    answered = [rows[f"mixed:message:{i}"] for i in (4, 5)]
    assert [(r["role"], r["tool_call_id"], r["name"], r["content"]) for r in answered] == [
        ("tool", "call_1", "lookup_order", "{\"status\": \"shipped\"}"), ("tool", "call_2", None, "pro")]
    assert all(r["tool_calls"] is None for r in answered)

    assert rows["mixed:message:6"]["content"] is None  # a refusal: kept in the chat's raw
    assert rows["mixed:message:7"]["content"] == "It has shipped."
    assert rows["mixed:output:0"]["content"] == "It has shipped."
    inputs = [rows["mixed:input:0"], rows["mixed:input:1"]]
    assert [(r["role"], r["content"], r["name"]) for r in inputs] == [
        ("developer", "Be brief.", None), ("user", "where is my order?", "Ana")]
    assert all(row["raw"] is None for row in rows_of(batch, "messages"))  # the chat's raw holds them


def test_a_cozmox_entry_with_both_message_and_content_says_its_message():
    chat = dict(COZMOX_CHAT, messages=[{"role": "assistant", "message": "spoken", "content": "written", "time": MS}])
    (row,) = [r for r in rows_of(cozmox.flatten([chat], {}, NOW), "messages") if r["kind"] == "message"]
    assert row["content"] == "spoken"


def test_a_string_input_gives_no_rows():
    chat = dict(COZMOX_CHAT, input="where is my order?", output=[])
    batch = cozmox.flatten([chat], {}, NOW)
    assert {r["kind"] for r in rows_of(batch, "messages")} == {"message"}


def test_cozmox_costs_carry_cached_and_reasoning_tokens_and_a_squad():
    batch = cozmox.flatten(_as_sent([COZMOX_CHAT]), {}, NOW)
    (chat,) = rows_of(batch, "chats")
    assert (chat["squad_id"], chat["assistant_id"]) == ("squad-1", None)
    costs = [(c["type"], c["model"], c["prompt_tokens"], c["cached_prompt_tokens"], c["reasoning_tokens"], c["cost"])
             for c in rows_of(batch, "costs")]
    assert costs == [("model", "gpt-4o", 1000, 400, 50, 0.004), ("model", "gpt-4o-mini", 10, None, None, 0.0001),
                     ("chat", None, None, None, None, 0.01)]
    usage = [(u["message_id"], u["input_tokens"], u["output_tokens"], u["cached_input_tokens"], u["reasoning_tokens"])
             for u in rows_of(batch, "usage")]
    assert usage == [("mixed:cost:0", 1000, 200, 400, 50), ("mixed:cost:1", 10, 2, None, None)]


def test_a_chat_without_a_squad_has_none():
    batch = cozmox.flatten([dict(COZMOX_CHAT, squadId=None, assistantId="a")], {}, NOW)
    assert (rows_of(batch, "chats")[0]["squad_id"], rows_of(batch, "chats")[0]["assistant_id"]) == (None, "a")


@pytest.fixture
def warehouse():
    with Warehouse(":memory:") as wh:
        yield wh


def test_cozmox_shapes_round_trip_through_the_warehouse(warehouse):
    batch = cozmox.flatten(_as_sent([COZMOX_CHAT]), {}, NOW)
    warehouse.load(batch, account=AccountKey("cozmox", "org", "cozmox"), run_id="r")
    con = warehouse.con
    assert con.execute("select count(*) from messages").fetchone()[0] == 11
    calls = con.execute("select tool_calls->>'$[1].function.name', json_array_length(tool_calls), raw"
                        " from messages where message_id = 'mixed:message:3'").fetchone()
    assert calls == ("check_plan", 2, None)
    assert con.execute("select tool_call_id, name from messages where role = 'tool' order by seq").fetchall() == [
        ("call_1", "lookup_order"), ("call_2", None)]
    assert con.execute("select squad_id, assistant_id from chats").fetchall() == [("squad-1", None)]
    assert con.execute("select model, cached_input_tokens, reasoning_tokens from usage order by 1").fetchall() == [
        ("gpt-4o", 400, 50), ("gpt-4o-mini", None, None)]
    # the views see them too: Cozmox now has a cached share, and the answered tool calls count
    shares = con.execute("select model, cached_input_tokens, cached_input_share, reasoning_share from token_shares"
                         " order by model").fetchall()
    assert shares == [("gpt-4o", 400, 0.4, 0.25), ("gpt-4o-mini", None, None, None)]
    assert con.execute("select tool_call_count, message_count from chat_summary").fetchall() == [(2, 8)]
    spend = con.execute("select item_type, cached_input_tokens, reasoning_tokens, cost from spend_items"
                        " order by cost").fetchall()
    assert spend == [("model", None, None, 0.0001), ("model", 400, 50, 0.004), ("chat", None, None, 0.01)]


# -- Invent ----------------------------------------------------------------------------------

def test_invent_members_of_both_channel_shapes():
    batch = invent.flatten([INVENT_CHAT], {}, NOW)
    rows = by(batch.chat_members, "member_id")
    fields = ("channel_type", "channel_id", "channel_name", "channel_display_name", "channel_email",
              "channel_phone", "contact_id", "contact_name", "contact_is_admin")
    assert [rows["m-seed"][f] for f in fields] == [
        "whatsapp_bot", "+15550001", "ana.silva", "Ana Silva", None, None, "k1", "Ana", None]
    assert [rows["m-new"][f] for f in fields] == [
        "email", "bo@example.com", "bo.kim", "Bo Kim", "bo@example.com", "+15550002", "k2", "Bo", True]
    assert [rows["m-staff"][f] for f in fields] == [None] * len(fields)
    assert (rows["m-staff"]["user_id"], rows["m-staff"]["user_name"]) == ("u1", "Uma")


def test_a_channel_in_both_shapes_at_once_reads_the_seeds_fields_first():
    both = {"id": "m", "contact_channel": {"channel_type": "gmail", "type": "email", "channel_id": "a",
                                           "user_id": "b", "channel_name": "c", "username": "d"}}
    (row,) = invent.flatten([dict(INVENT_CHAT, members=[both])], {}, NOW).chat_members
    assert (row["channel_type"], row["channel_id"], row["channel_name"]) == ("gmail", "a", "c")


def test_invent_usage_of_both_shapes():
    batch = invent.flatten([INVENT_CHAT], {"inv": INVENT_MESSAGES}, NOW)
    usage = by(rows_of(batch, "usage"), "message_id")
    got = {k: (u["cached_input_tokens"], u["cache_read_tokens"], u["cache_write_tokens"]) for k, u in usage.items()}
    assert got == {"m1": (40, None, None), "m2": (120, 120, 30), "m3": (7, 5, None)}
    assert (usage["m2"]["input_tokens"], usage["m2"]["output_tokens"], usage["m2"]["total_tokens"]) == (200, 20, 220)


def test_invent_messages_content_broadcast_and_raw():
    batch = invent.flatten([INVENT_CHAT], {"inv": INVENT_MESSAGES}, NOW)
    assert batch.rejected == []
    rows = by(rows_of(batch, "messages"), "message_id")
    assert len(rows) == len(INVENT_MESSAGES)
    # only text parts (and parts that name no type) are the words
    assert {k: r["content"] for k, r in rows.items()} == {"m1": "hello", "m2": "first\nsecond", "m3": "a\nb",
                                                         "m4": None}
    assert {k: (r["broadcast_id"], r["is_broadcast"]) for k, r in rows.items()} == {
        "m1": (None, None), "m2": ("bc-1", True), "m3": (None, False), "m4": (None, None)}
    for message in INVENT_MESSAGES:
        assert json.loads(rows[message["id"]]["raw"]) == message  # turns, new fields and all
    assert rows["m1"]["created_at"] == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("created_at, updated_at", [
    ("2023-12-25", "2023-12-26"), ("2023-12-25", "2026-01-01T00:00:10Z"),
    ("2023-12-25T08:30:00Z", "2023-12-26"), ("2023-12-25T08:30:00.123+02:00", "2023-12-25T09:00:00")])
def test_invent_dates_and_date_times_both_load(created_at, updated_at, warehouse):
    chat = dict(INVENT_CHAT, created_at=created_at, updated_at=updated_at)
    batch = invent.flatten([chat], {}, NOW)
    assert batch.rejected == []
    warehouse.load(batch, account=AccountKey("invent", "org", "invent"), run_id="r")
    loaded = warehouse.con.execute("select created_at, updated_at from chats").fetchone()

    def utc(value: str) -> datetime:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)

    assert loaded == (utc(created_at), utc(updated_at))


def test_invent_shapes_round_trip_through_the_warehouse(warehouse):
    batch = invent.flatten([INVENT_CHAT], {"inv": INVENT_MESSAGES}, NOW)
    warehouse.load(batch, account=AccountKey("invent", "org", "invent"), run_id="r")
    con = warehouse.con
    recovered = con.execute("select raw->>'$.extra_field_added_upstream.kept', json_array_length(raw->'$.usage.turns'),"
                            " broadcast_id, is_broadcast from messages where message_id = 'm2'").fetchone()
    assert recovered == ("true", 2, "bc-1", True)
    assert con.execute("select channel_type, channel_name, contact_is_admin from chat_members"
                       " where member_id = 'm-new'").fetchone() == ("email", "bo.kim", True)
    assert con.execute("select message_id, cached_input_tokens, cache_read_tokens, cache_write_tokens from usage"
                       " order by 1").fetchall() == [("m1", 40, None, None), ("m2", 120, 120, 30), ("m3", 7, 5, None)]
    assert con.execute("select tool_call_count from chat_summary").fetchone() == (1,)  # m4, a tool message


def test_an_invent_message_nested_deeper_than_orjson_writes_keeps_its_raw():
    deep: list = []
    cursor = deep
    for _ in range(300):
        cursor.append([])
        cursor = cursor[0]
    message = dict(INVENT_MESSAGES[0], extra=deep)
    batch = invent.flatten([INVENT_CHAT], {"inv": [message]}, NOW)
    assert batch.rejected == [] and json.loads(rows_of(batch, "messages")[0]["raw"]) == message


# -- plain chats flattened in DuckDB ---------------------------------------------------------

def _by_pydantic(records):
    """What pydantic makes of a page when it reads every chat itself."""
    batch = cozmox._flatten_in_python(records, list(range(len(records))), NOW, "account-org")
    unique_keys(batch.rejected)
    return batch


def _read_in_duckdb(batch):
    return sum(table.num_rows for table in batch.arrow.get("chats", []))


def _as_json(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def _in_order(rows):
    """Rows in one order, with what is JSON compared as JSON (DuckDB and orjson write one number
    differently: 1e16 against 10000000000000000.0), less the children's fingerprint, which each
    way takes of what it reads."""
    return sorted(({**row, **{c: _as_json(row[c]) for c in ("content", "tool_calls", "raw") if c in row},
                    "children_fingerprint": None} for row in rows), key=repr)


def assert_same_rows(batch, expected):
    for table in ("chats", "messages", "costs", "usage"):
        assert _in_order(rows_of(batch, table)) == _in_order(rows_of(expected, table)), table
    assert [(r["record_key"], r["error"]) for r in batch.rejected] == [
        (r["record_key"], r["error"]) for r in expected.rejected]


def test_a_plain_chat_is_flattened_in_duckdb_into_the_rows_pydantic_makes():
    sent = _as_sent([COZMOX_CHAT, dict(COZMOX_CHAT, id="no-org", orgId=None)])
    batch = cozmox.flatten(sent, {}, NOW, "account-org")
    assert _read_in_duckdb(batch) == 2 and batch.chats == []
    assert_same_rows(batch, _by_pydantic(sent))
    assert {r["chat_id"]: r["org_id"] for r in rows_of(batch, "chats")} == {"mixed": "org", "no-org": "account-org"}


@SETTINGS
@given(st.lists(mutated(COZMOX_CHAT), min_size=1, max_size=4).map(_through_json))
def test_chats_flattened_in_duckdb_are_the_rows_pydantic_makes(records):
    """Any page of chats, however changed, comes out as the rows and rejections pydantic makes
    of it, whichever of its chats DuckDB reads."""
    sent = _as_sent(records)
    assert_same_rows(cozmox.flatten(sent, {}, NOW, "account-org"), _by_pydantic(sent))


def _turn(entry):
    return dict(COZMOX_CHAT, messages=[{"role": "user", "message": "first"}, entry])


def _cost(**change):
    return dict(COZMOX_CHAT, costs=[{**COZMOX_CHAT["costs"][0], **change}])


@pytest.mark.parametrize(("chat", "kept"), [
    (_turn({"role": 5, "message": "hi"}), False),  # pydantic refuses a number as text
    (_turn({"role": "user", "message": ["hi"]}), False),
    (_turn("hi"), False),  # an entry that is not an object
    (_turn({"role": "user", "time": "1767225600000"}), True),  # pydantic reads a numeric string as the number
    (_turn({"role": "user", "seconds_from_start": 2.5}), True),  # and a field by its own name
    (_turn({"role": "user", "time": True}), True),  # and true as 1
    ({**{k: v for k, v in COZMOX_CHAT.items() if k != "orgId"}, "org_id": "by-name"}, True),
    (dict(COZMOX_CHAT, cost="0.0141"), True),
    (dict(COZMOX_CHAT, updatedAt=1767225600), False),
    (_cost(promptTokens=1000.0), True),  # a whole float as the integer
    (_cost(promptTokens=2**63), False),  # past BIGINT
    (_cost(prompt_tokens=5), True),
    (_cost(model={"model": 4, "provider": "openai"}), True),  # written by Python's str
    (dict(COZMOX_CHAT, assistant={"model": {"provider": 7}}), True),
    (dict(COZMOX_CHAT, assistant="gpt"), False),
])
def test_a_chat_duckdb_cannot_read_as_pydantic_would_is_read_by_pydantic(chat, kept):
    sent = _as_sent([chat])
    batch = cozmox.flatten(sent, {}, NOW, "account-org")
    assert _read_in_duckdb(batch) == 0 and len(rows_of(batch, "chats")) == int(kept)
    assert_same_rows(batch, _by_pydantic(sent))


def test_a_page_duckdb_cannot_read_at_all_is_read_by_pydantic(monkeypatch):
    monkeypatch.setattr(cozmox, "READ_SQL", "select * from no_such_table")
    sent = _as_sent([COZMOX_CHAT])
    batch = cozmox.flatten(sent, {}, NOW, "account-org")
    assert _read_in_duckdb(batch) == 0 and len(rows_of(batch, "chats")) == 1
    assert_same_rows(batch, _by_pydantic(sent))


def test_a_page_naming_a_chat_twice_keeps_the_newer_copy_though_only_one_is_plain():
    older = dict(COZMOX_CHAT, name="older")
    newer = dict(COZMOX_CHAT, name="newer", updatedAt="2026-01-01T00:06:00Z", cost="0.5")  # not plain
    for page in ([older, newer], [newer, older]):
        batch = cozmox.flatten(_as_sent(page), {}, NOW)
        assert [(r["title"], r["cost"]) for r in rows_of(batch, "chats")] == [("newer", 0.5)]


def test_a_chat_refused_after_its_rows_were_built_leaves_no_rows_behind(monkeypatch):
    # Nothing a page sends reaches this today (the chat's own rows failing once it is valid),
    # so the failure is made by hand, for chats pydantic reads (a cost as a string).
    chat_rows = cozmox.chat_rows

    def failing_for_b(chat, *args):
        if chat.id == "b":
            raise ValueError("not storable")
        chat_rows(chat, *args)

    monkeypatch.setattr(cozmox, "chat_rows", failing_for_b)
    batch = cozmox.flatten(_as_sent([dict(COZMOX_CHAT, id="a", cost="1"), dict(COZMOX_CHAT, id="b", cost="1")]),
                           {}, NOW)
    assert [r["chat_id"] for r in rows_of(batch, "chats")] == ["a"] and [r["record_key"] for r in batch.rejected] == ["b"]
    assert {r["chat_id"] for r in rows_of(batch, "messages")} == {"a"}


def test_children_fingerprints_follow_the_turns_costs_and_usage_time_alone():
    def fingerprint(chat):
        return rows_of(cozmox.flatten(_as_sent([chat]), {}, NOW), "chats")[0]["children_fingerprint"]

    same = fingerprint(COZMOX_CHAT)
    assert fingerprint(dict(COZMOX_CHAT, updatedAt="2026-01-02T00:00:00Z", name="renamed")) == same
    assert fingerprint(dict(COZMOX_CHAT, output=[])) != same
    assert fingerprint(dict(COZMOX_CHAT, costs=[])) != same
    assert fingerprint(dict(COZMOX_CHAT, createdAt="2025-12-31T00:00:00Z")) != same  # usage rows carry it


# -- Invent messages flattened in DuckDB -------------------------------------------------------

TIMES = st.sampled_from([
    None, "2026-01-01", "2026-01-01T00:00:00", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00.5+05:30",
    "2026-01-01T23:59:59.123456-23:59", "1000-01-01T00:00:00+23:59", "2999-12-31T23:59:59Z",
    "2026-02-30T00:00:00Z",  # not a day: both refuse it
    "2026-01-01T00:00:00.1234567Z", "2026-01-01T24:00:00Z", "2026-01-01 00:00:00", " 2026-01-01", "2026-01-01t00:00:00z",
    "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "20260101T000000Z", "2026-01-01T00Z",
])


def _like(value):
    """Any value of the JSON type this one has, or null: what a plain message may hold."""
    if isinstance(value, bool):
        return st.booleans() | st.none()
    if isinstance(value, int):
        return st.integers(-(2**63), 2**63 - 1) | st.none()
    if isinstance(value, float):
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53) | st.none()
    if isinstance(value, str):
        return json_text | st.none()
    return st.none()


@st.composite
def invent_messages(draw):
    """A chat's messages: the documented ones changed anywhere, or within their types, or timed
    anyhow; some ids twice."""
    documented = st.sampled_from(INVENT_MESSAGES)
    changed = (documented.flatmap(mutated) | documented.flatmap(lambda message: mutated(message, _like))
               | documented.map(copy.deepcopy))
    messages = draw(st.lists(changed, max_size=4))
    for number, message in enumerate(messages):
        if isinstance(message, dict) and draw(st.booleans()):
            message["created_at"] = draw(TIMES)
        if isinstance(message, dict) and draw(st.booleans()):
            message["id"] = f"x{number}"
    return messages


def _pydantic_messages(messages):
    """The rows and rejections of reading a chat's messages with pydantic."""
    rows = Batch()
    invent._python_message_rows("inv", messages, NOW, rows)
    return _message_tables(rows), {r["record_key"] for r in unique_keys(rows.rejected)}


def _message_tables(batch):
    keys = {"messages": ("message_id",), "usage": ("message_id",), "message_files": ("message_id", "part_seq")}
    return {name: sorted(rows_of(batch, name), key=lambda row, k=k: tuple(row[c] for c in k))
            for name, k in keys.items()}


def _refused_messages(batch):
    return {r["record_key"] for r in batch.rejected if r["stream"] == "messages"}


@SETTINGS
@given(invent_messages().map(_through_json))
def test_invent_messages_flattened_in_duckdb_are_the_rows_pydantic_makes(messages):
    """A chat's messages, however changed, come out as the rows and rejections of reading each
    with pydantic, whether DuckDB reads them or hands them back."""
    batch = invent.flatten([INVENT_CHAT], {"inv": messages}, NOW)
    expected, refused = _pydantic_messages(messages)
    assert _refused_messages(batch) == refused
    assert _message_tables(batch) == expected


@pytest.mark.parametrize("change", [
    {"role": 5},  # pydantic refuses a number as text
    {"usage": {"input_tokens": "12"}},  # and reads a numeric string as the number
    {"usage": {"input_tokens": 2**63}},  # and refuses a count past BIGINT
    {"is_broadcast_message": "true"},
    {"created_at": "2026-01-01T00:00:00.1234567Z"},  # a time DuckDB and Python might read apart
    {"messages": [{"parts": [{"type": "audio", "audio": {"file_size": 1.0}}]}]},
    {"messages": [{"parts": [{"type": "text", "text": "x", "start_timestamp": True}]}]},
    {"messages": ["not an object"]},
])
def test_a_message_duckdb_cannot_read_as_pydantic_would_is_read_by_pydantic(change):
    messages = [INVENT_MESSAGES[0], dict(INVENT_MESSAGES[1], **change)]
    batch = invent.flatten([INVENT_CHAT], {"inv": messages}, NOW)
    expected, refused = _pydantic_messages(messages)
    assert invent._plain_texts(messages) is None
    assert _refused_messages(batch) == refused and _message_tables(batch) == expected


def test_a_page_duckdb_cannot_read_at_all_has_its_messages_read_by_pydantic():
    # a day that is not one passes the shape of a time; DuckDB refuses the page, pydantic the message
    messages = [*INVENT_MESSAGES, {"id": "m5", "created_at": "2026-02-30T00:00:00Z"}]
    batch = invent.flatten([INVENT_CHAT], {"inv": messages}, NOW)
    assert invent._plain_texts(messages) is not None
    assert _refused_messages(batch) == {"inv/m5"}
    assert _message_tables(batch) == _pydantic_messages(messages)[0]


def test_an_invent_chat_refused_after_duckdb_read_its_messages_leaves_no_rows_behind(monkeypatch):
    # Nothing a page sends reaches this today (the chat's own rows failing once it is valid),
    # so the failure is made by hand.
    chat_row = invent._chat_row

    def failing_for_b(chat, *args):
        if chat.id == "b":
            raise ValueError("not storable")
        return chat_row(chat, *args)

    monkeypatch.setattr(invent, "_chat_row", failing_for_b)
    batch = invent.flatten([dict(INVENT_CHAT, id="a"), dict(INVENT_CHAT, id="b")],
                           {"a": INVENT_MESSAGES, "b": INVENT_MESSAGES}, NOW)
    assert [r["chat_id"] for r in rows_of(batch, "chats")] == ["a"] and [r["record_key"] for r in batch.rejected] == ["b"]
    tables = _message_tables(batch)
    assert tables["messages"] and tables["usage"]
    assert {r["chat_id"] for rows in tables.values() for r in rows} == {"a"}


def test_invent_children_fingerprints_follow_the_messages_and_members_alone():
    def fingerprint(chat, messages=INVENT_MESSAGES):
        return invent.flatten([chat], {"inv": messages}, NOW).chats[0]["children_fingerprint"]

    same = fingerprint(INVENT_CHAT)
    assert fingerprint(dict(INVENT_CHAT, updated_at="2026-01-02T00:00:00Z", title="renamed")) == same
    assert fingerprint(INVENT_CHAT, INVENT_MESSAGES[:-1]) != same
    assert fingerprint(INVENT_CHAT, [*INVENT_MESSAGES[:-1], dict(INVENT_MESSAGES[-1], role="user")]) != same
    assert fingerprint(dict(INVENT_CHAT, members=INVENT_CHAT["members"][:1])) != same
    # a chat's own messages make its fingerprint, not those of the chats on its page
    alone = fingerprint(INVENT_CHAT, [])
    beside = invent.flatten([INVENT_CHAT, dict(INVENT_CHAT, id="other")], {"other": INVENT_MESSAGES}, NOW)
    assert beside.chats[0]["children_fingerprint"] == alone


# -- arbitrary values in and around the new shapes ---------------------------------------------

@SETTINGS
@given(st.lists(mutated(COZMOX_CHAT), min_size=1, max_size=4).map(_through_json))
def test_cozmox_new_shapes_never_crash_and_lose_nothing(records):
    batch = cozmox.flatten(_as_sent(records), {}, NOW)
    assert_nothing_lost(records, batch)
    load("cozmox", batch)


@SETTINGS
@given(mutated(INVENT_CHAT), st.lists(st.one_of(*map(mutated, INVENT_MESSAGES)), max_size=4).map(_through_json))
def test_invent_new_shapes_never_crash_and_lose_nothing(chat, messages):
    batch = invent.flatten([chat], {"inv": messages}, NOW)
    assert_nothing_lost([chat], batch)
    if rows_of(batch, "chats") and rows_of(batch, "chats")[0]["chat_id"] == "inv":
        ids = {m["id"] for m in messages if isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"]}
        kept = {m["message_id"] for m in rows_of(batch, "messages")} | {
            r["record_key"].split("/", 1)[1] for r in batch.rejected if r["stream"] == "messages"}
        assert kept | {re.sub(r"@\d+$", "", i) for i in kept} >= ids  # a repeated key gets @2, @3, ...
        for row in rows_of(batch, "messages"):
            assert row["raw"] is not None
    load("invent", batch)


# -- the simulator serves both shapes --------------------------------------------------------

def test_the_simulator_serves_both_shapes_of_every_record():
    sim = Simulator(seed=3, cozmox_chats=300, invent_chats=150)
    chats = sim.cozmox_chats()
    entries = [e for c in chats for e in c["messages"]]
    transcript = sum(1 for e in entries if "message" in e)
    assert 0.1 < transcript / len(entries) < 0.5  # most are OpenAI-style
    assert sum(1 for e in entries if e.get("tool_calls")) > 10
    assert sum(1 for e in entries if e["role"] == "tool") >= sum(len(e.get("tool_calls") or []) for e in entries)
    assert {"system", "user", "assistant", "tool", "developer"} <= {e["role"] for e in entries}
    for key in ("name", "refusal", "metadata"):
        assert any(key in e for e in entries), key
    assert any(isinstance(e.get("content"), list) for e in entries)
    costs = [k for c in chats for k in c["costs"]]
    assert any("cachedPromptTokens" in k for k in costs) and any("reasoningTokens" in k for k in costs)
    assert any(k == {"type": "chat", "cost": k["cost"]} for k in costs)
    squads = [c for c in chats if c.get("squadId")]
    assert 0.03 < len(squads) / len(chats) < 0.2 and any(c["assistantId"] is None for c in squads)

    ichats = sim.invent_chats()
    channels = [m["contact_channel"] for c in ichats for m in c["members"] if m["contact_channel"]]
    shapes = Counter("type" in cc for cc in channels)
    assert shapes[True] > shapes[False] > 0
    assert any("is_admin" in cc["contact"] for cc in channels)
    messages = [m for c in ichats for m in sim.invent_messages(c["id"])]
    usage = [m["usage"] for m in messages if "usage" in m]
    assert sum("input_tokens_cache_read" in u for u in usage) > sum("input_tokens_cache_read" not in u for u in usage)
    assert any("cached_input_tokens" in u and "input_tokens_cache_read" in u for u in usage)
    assert any("turns" in u for u in usage)
    assert any(m.get("is_broadcast_message") for m in messages)
    part_types = Counter(p.get("type") for m in messages for block in m["messages"] for p in block["parts"])
    assert part_types["text"] > 0 and len(part_types) >= 3
    assert 0 < sum(len(c["created_at"]) == 10 for c in ichats) < len(ichats) / 4


def test_the_simulators_records_all_load_with_every_entry_a_row():
    sim = Simulator(seed=5, cozmox_chats=200, invent_chats=60)
    chats = sim.cozmox_chats()
    batch = cozmox.flatten(_as_sent(chats), {}, NOW)
    assert batch.rejected == [] and len(rows_of(batch, "chats")) == len(chats)
    lists = Counter()
    for chat in chats:
        lists[chat["id"]] = len(chat["messages"]) + len(chat["output"]) + (
            len(chat["input"]) if isinstance(chat.get("input"), list) else 0)
    assert Counter(r["chat_id"] for r in rows_of(batch, "messages")) == +lists
    ichats = sim.invent_chats()
    messages = {c["id"]: sim.invent_messages(c["id"]) for c in ichats}
    batch = invent.flatten(ichats, messages, NOW)
    assert batch.rejected == [] and len(rows_of(batch, "messages")) == sum(map(len, messages.values()))
    assert all(row["channel_type"] for row in batch.chat_members if row["contact_id"])
