"""Arbitrary JSON in and around the documented shapes: every record ends as rows or as a
rejected record with a reason, never as a crash and never silently dropped."""

from __future__ import annotations

import copy
import json
import os
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extract.cozmox import split_envelope
from extract.http import decode
from load.warehouse import AccountKey, Warehouse
from transform import cozmox, invent

NOW = datetime(2026, 1, 1, tzinfo=UTC)

COZMOX_CHAT = {
    "id": "chat-1", "orgId": "org", "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:01.5Z",
    "assistantId": "a", "assistant": {"model": {"provider": "openai", "model": "gpt-4o"}, "voice": {"provider": "azure"}},
    "name": "n", "input": [{"role": "user", "content": "hi"}],
    "messages": [{"role": "user", "message": "hi", "time": 1767225600000, "secondsFromStart": 0.5}],
    "output": [{"role": "assistant", "message": "yo", "time": 1767225601000}],
    "costs": [{"type": "model", "model": {"model": "gpt-4o"}, "promptTokens": 1, "completionTokens": 2, "cost": 0.1}],
    "cost": 0.1,
}
INVENT_CHAT = {
    "id": "chat-1", "title": "t", "status": "RUNNING", "created_at": "2026-01-01", "updated_at": "2026-01-01T00:00:01Z",
    "members": [{"id": "m", "role": "ADMIN", "user": {"id": "u", "name": "U"},
                 "contact_channel": {"id": "c", "channel_type": "gmail", "contact": {"id": "k", "name": "K"}}}],
    "state": {"state": "OPEN", "assistant_id": "a", "assigned_user": {"id": "u", "name": "U"}, "assigned_at": "2026-01-01"},
}
INVENT_MESSAGE = {
    "id": "msg-1", "role": "assistant", "created_at": "2026-01-01T00:00:01Z",
    "messages": [{"role": "assistant", "parts": [{"type": "text", "text": "hello",
                                                  "audio": {"id": "f", "file_size": 10}}]}],
    "usage": {"input_tokens": 5, "output_tokens": 6, "total_tokens": 11},
}

# What a JSON parser can hand over: no lone surrogates, and floats as JSON writes them.
json_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30) | st.sampled_from(
    ["", "2026-01-01", "2026-13-45T99:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
     "1970-01-01T00:00:00+14:00", "x" * 5000, "\u0000\u202e emoji 🦆", "NaN"])
numbers = st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=True, allow_infinity=True)
scalars = st.none() | st.booleans() | numbers | json_text
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(json_text, inner, max_size=4), max_leaves=12)


def paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from paths(inner, (*prefix, i))


@st.composite
def mutated(draw, base, values=lambda old: json_values):
    """The documented record with a few values replaced, or removed: by anything, or by what
    `values` draws for the value replaced."""
    record = copy.deepcopy(base)
    for _ in range(draw(st.integers(0, 4))):
        spots = [p for p in paths(record) if p]
        if not spots:
            break
        path = draw(st.sampled_from(spots))
        holder = record
        for step in path[:-1]:
            holder = holder[step]
        if draw(st.booleans()) and isinstance(holder, dict):
            del holder[path[-1]]
        else:
            holder[path[-1]] = draw(values(holder[path[-1]]))
    return record


def page_of(base):
    records = st.one_of(mutated(base), json_values, st.just(base))
    return st.lists(records, min_size=1, max_size=6).map(_through_json)


def _through_json(records):
    # What the client hands over after decoding a body that holds these records.
    return decode(json.dumps(records).encode(), "/test")


def _as_sent(records):
    # Cozmox chats as the client hands them over: each the JSON text it came as.
    return split_envelope(json.dumps({"results": records}).encode(), "/chat")["results"]


def keys_of(records):
    keys = set()
    for index, record in enumerate(records):
        key = record.get("id") if isinstance(record, dict) else None
        keys.add(str(key) if isinstance(key, (str, int)) and str(key) else f"#{index}")
    return keys


def assert_nothing_lost(records, batch):
    accounted = {row["chat_id"] for row in rows_of(batch, "chats")} | {
        r["record_key"] for r in batch.rejected if r["stream"] == "chats"}
    assert keys_of(records) <= accounted
    assert all(r["error"] for r in batch.rejected)
    assert len({row["chat_id"] for row in rows_of(batch, "chats")}) == len(rows_of(batch, "chats"))


_warehouse: list[Warehouse] = []


def rows_of(batch, table):
    """A batch's rows of one table, built in Python or in DuckDB."""
    return batch.table(table).to_pylist()


def load(source, batch):
    """Into one in-memory warehouse, emptied first: the schema is built once per module."""
    if not _warehouse:
        _warehouse.append(Warehouse(":memory:"))
    wh = _warehouse[0]
    for table in ("chats", "messages", "usage", "costs", "chat_members", "message_files", "rejected_records"):
        wh.con.execute(f"delete from {table}")
    wh.load(batch, account=AccountKey(source, "org", source), run_id="r")
    assert wh.scalar("select count(*) from chats") == len(rows_of(batch, "chats"))
    assert wh.scalar("select count(*) from messages") == batch.table("messages").num_rows
    assert wh.scalar("select count(*) from rejected_records") == len(batch.rejected)


# `make test-all` sets CHATSYNC_HYPOTHESIS_EXAMPLES higher for a deeper search.
SETTINGS = settings(max_examples=int(os.environ.get("CHATSYNC_HYPOTHESIS_EXAMPLES", "100")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(page_of(COZMOX_CHAT))
def test_cozmox_pages_never_crash_and_lose_nothing(records):
    batch = cozmox.flatten(_as_sent(records), {}, NOW)
    assert_nothing_lost(records, batch)
    load("cozmox", batch)


@SETTINGS
@given(page_of(INVENT_CHAT), st.lists(st.one_of(mutated(INVENT_MESSAGE), json_values), max_size=5).map(_through_json))
def test_invent_pages_and_messages_never_crash_and_lose_nothing(records, messages):
    # One chat gets the messages: the same message ids under two chats is a case of its own.
    ids = [r["id"] for r in records if isinstance(r, dict) and isinstance(r.get("id"), str)][:1]
    batch = invent.flatten(records, dict.fromkeys(ids, messages), NOW)
    assert_nothing_lost(records, batch)
    for chat_id in ids:
        if any(r["chat_id"] == chat_id for r in rows_of(batch, "chats")):
            # each message is a row of this chat or a rejected record of it
            held = sum(1 for m in rows_of(batch, "messages") if m["chat_id"] == chat_id)
            refused = sum(1 for r in batch.rejected if r["record_key"].startswith(f"{chat_id}/"))
            distinct = len({m.get("id") for m in messages if isinstance(m, dict) and isinstance(m.get("id"), str) and m.get("id")})
            assert held + refused >= min(distinct, 1) if messages else held == 0
    load("invent", batch)


def test_duplicate_ids_in_a_page_keep_the_newest_copy():
    older = dict(COZMOX_CHAT, name="old")
    newer = dict(COZMOX_CHAT, name="new", updatedAt="2026-01-02T00:00:00Z")
    batch = cozmox.flatten([older, newer, older], {}, NOW)
    assert [(r["chat_id"], r["title"]) for r in rows_of(batch, "chats")] == [("chat-1", "new")]
    load("cozmox", batch)


def test_numbers_past_bigint_are_rejected_not_overflowed():
    chat = copy.deepcopy(COZMOX_CHAT)
    chat["costs"][0]["promptTokens"] = 2**64
    batch = cozmox.flatten(_through_json([chat]), {}, NOW)
    assert rows_of(batch, "chats") == [] and "promptTokens" in batch.rejected[0]["error"]


def test_bodies_only_a_lenient_parser_reads_still_load():
    body = b'[{"id": "x", "updatedAt": "2026-01-01T00:00:00Z", "cost": NaN, "name": "\\ud800",' \
           b' "costs": [{"promptTokens": 1e400, "cost": Infinity}]}]'
    batch = cozmox.flatten(decode(body, "/chat"), {}, NOW)
    assert rows_of(batch, "chats")[0]["cost"] is None and rows_of(batch, "chats")[0]["title"] == "?"
    assert rows_of(batch, "costs")[0]["prompt_tokens"] is None and rows_of(batch, "costs")[0]["cost"] is None
    load("cozmox", batch)


def test_chats_are_stored_as_the_text_they_were_sent_as():
    text = b'{ "id" : "chat-1", "updatedAt": "2026-01-01T00:00:01Z", "name": "caf\\u00e9",  "extra": [1, 2.50] }'
    sent = split_envelope(b'{"results": [' + text + b'], "metadata": {"totalItems": 1}}', "/chat")["results"]
    batch = cozmox.flatten(sent, {}, NOW)
    assert rows_of(batch, "chats")[0]["raw"] == text.decode() and rows_of(batch, "chats")[0]["title"] == "caf\u00e9"
    load("cozmox", batch)
    stored = _warehouse[0].scalar("select (raw->>'$.name') || (raw->>'$.extra[1]') from chats where chat_id = 'chat-1'")
    assert stored == "caf\u00e92.5"


def test_envelopes_only_a_lenient_parser_reads_still_load():
    body = b'{"results": [{"id": "x", "updatedAt": "2026-01-01T00:00:00Z", "cost": NaN, "name": "\\ud800"}]}'
    batch = cozmox.flatten(split_envelope(body, "/chat")["results"], {}, NOW)
    assert rows_of(batch, "chats")[0]["cost"] is None and rows_of(batch, "chats")[0]["title"] == "?"
    load("cozmox", batch)


def test_a_chat_no_parser_reads_is_rejected_and_the_rest_of_its_page_loads():
    body = b'{"results": [{"id": "bad", "updatedAt": "2026-01-01T00:00:00Z", "name": "\xff"},' \
           b' {"id": "good", "updatedAt": "2026-01-01T00:00:00Z"}]}'
    batch = cozmox.flatten(split_envelope(body, "/chat")["results"], {}, NOW)
    assert [r["chat_id"] for r in rows_of(batch, "chats")] == ["good"]
    assert [(r["record_key"], "not readable as JSON" in r["error"]) for r in batch.rejected] == [("#0", True)]
    assert "\ufffd" in json.loads(batch.rejected[0]["raw"])
    load("cozmox", batch)


def test_deep_nesting_and_huge_strings_load():
    deep: dict = {}
    cursor = deep
    for _ in range(300):
        cursor["next"] = {}
        cursor = cursor["next"]
    chat = dict(COZMOX_CHAT, assistantOverrides=deep, name="é" * 2_000_000,
                messages=[{"role": "user", "message": "🦆" * 500_000, "time": 1767225600000}])
    batch = cozmox.flatten(decode(json.dumps([chat]).encode(), "/chat"), {}, NOW)
    assert [r["chat_id"] for r in rows_of(batch, "chats")] == ["chat-1"] and len(rows_of(batch, "messages")[0]["content"]) == 500_000
    load("cozmox", batch)
    depth = _warehouse[0].scalar("select json_extract(raw, '$.assistantOverrides.next.next.next') is not null from chats")
    assert depth is True


def test_a_page_read_leniently_keeps_a_chat_nested_deeper_than_orjson_writes():
    deep = b"[" * 300 + b'"x"' + b"]" * 300
    body = (b'{"results": [{"id": "deep", "updatedAt": "2026-01-01T00:00:00Z", "assistantOverrides": ' + deep
            + b'}, {"id": "nan", "updatedAt": "2026-01-01T00:00:00Z", "cost": NaN}]}')
    batch = cozmox.flatten(split_envelope(body, "/chat")["results"], {}, NOW)
    assert sorted(r["chat_id"] for r in rows_of(batch, "chats")) == ["deep", "nan"] and batch.rejected == []
    load("cozmox", batch)


def test_a_page_nested_past_what_any_parser_follows_is_unreadable_not_a_crash():
    deep = b"[" * 1100 + b"1" + b"]" * 1100
    body = b'{"results": [{"id": "deep", "updatedAt": "2026-01-01T00:00:00Z", "m": ' + deep + b"}]}"
    with pytest.raises(Exception, match="an unreadable JSON body from /chat"):  # retried, as a truncated body
        split_envelope(body, "/chat")


def test_a_rejected_chat_keeps_its_whole_assistant_and_a_loaded_one_its_flattened_parts():
    assistant = dict(COZMOX_CHAT["assistant"], transcriber={"provider": "deepgram", "keywords": ["a"] * 50},
                     model={"provider": "openai", "model": "gpt-4o", "messages": [{"content": "prompt " * 500}]})
    good = dict(COZMOX_CHAT, assistant=assistant)
    bad = dict(good, id="bad", updatedAt="never")
    batch = cozmox.flatten(_through_json([good, bad]), {}, NOW)
    assert json.loads(batch.rejected[0]["raw"])["assistant"] == assistant
    row = rows_of(batch, "chats")[0]
    assert (row["assistant_model_provider"], row["assistant_model"], row["assistant_voice_provider"],
            row["assistant_transcriber_provider"]) == ("openai", "gpt-4o", "azure", "deepgram")
    assert json.loads(row["raw"])["assistant"] == assistant
    load("cozmox", batch)


def test_timestamps_far_in_the_past_and_future_load_or_are_rejected():
    records = [dict(COZMOX_CHAT, id=f"t{i}", updatedAt=ts) for i, ts in enumerate(
        ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "1969-12-31T23:59:59Z", "+275760-09-13T00:00:00Z"])]
    batch = cozmox.flatten(records, {}, NOW)
    assert {r["chat_id"] for r in rows_of(batch, "chats")} == {"t0", "t1", "t2"}
    assert [r["record_key"] for r in batch.rejected] == ["t3"]
    load("cozmox", batch)
