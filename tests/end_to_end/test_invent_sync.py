"""The Invent sync against the simulator over loopback HTTP, checked by reading the warehouse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from helpers import API_KEY, assert_invent_matches, assert_warehouse_matches, parse_ts, query, watermark

from flows.pipeline import run_sync
from simulator import Fault

pytestmark = pytest.mark.parametrize("sim_options", [{"cozmox_chats": 30, "invent_chats": 100}])


def sync(settings, **kwargs):
    (summary,) = run_sync(settings, "invent", **kwargs)
    return summary


def newest_first(sim) -> list[str]:
    return [c["id"] for c in sorted(sim.invent_chats(), key=lambda c: (c["updated_at"], c["id"]), reverse=True)]


def test_full_sync_equals_the_api(sim, invent_settings):
    summary = sync(invent_settings)

    assert summary.status == "success", summary.error
    assert summary.chats_upserted == 100
    assert_invent_matches(sim, invent_settings.database)
    # One list walk of 20-chat pages, then one messages request per chat (each under a page).
    lists = sim.request_count("invent", path_contains="/orgs/")
    assert lists == 6
    assert sim.request_count("invent", path_contains="/messages") >= 100


def test_flattened_columns(sim, invent_settings):
    sync(invent_settings)
    chat = next(c for c in sim.invent_chats() if c.get("state") and c["state"].get("assigned_user"))
    row = query(invent_settings.database,
                "select title, status, visibility, is_pinned, is_temporary, model, inbox_state,"
                " assistant_id, assigned_user_id, raw->>'$.id' from chats where chat_id = ?", [chat["id"]])[0]
    state = chat["state"]
    assert row == (chat["title"], chat["status"], chat["visibility"], chat["pinned"], chat["temporary"],
                   chat["model"], state["state"], state["assistant_id"], state["assigned_user"]["id"], chat["id"])
    message = next(m for c in sim.invent_chats() for m in sim.invent_messages(c["id"]) if m.get("usage"))
    text = "\n".join(p["text"] for part in message["messages"] for p in part["parts"] if p.get("text"))
    got = query(invent_settings.database,
                "select m.content, m.role, u.input_tokens, u.total_tokens from messages m"
                " join usage u using (source, message_id) where message_id = ?", [message["id"]])
    assert got == [(text, message["role"], message["usage"]["input_tokens"], message["usage"]["total_tokens"])]
    files = sum(1 for c in sim.invent_chats() for m in sim.invent_messages(c["id"])
                for part in m["messages"] for p in part["parts"] if p.get("audio"))
    assert query(invent_settings.database, "select count(*) from message_files") == [(files,)]


def test_incremental_reads_messages_only_for_changed_chats(sim, invent_settings):
    sync(invent_settings)
    touched = newest_first(sim)[40:43]
    for chat_id in touched:
        sim.touch("invent", chat_id, add_messages=2)
    sim.reset_requests()

    summary = sync(invent_settings)

    assert summary.chats_upserted == 3
    asked = {r.path for r in sim.requests if "/messages" in r.path}
    assert asked == {f"/invent/chats/{chat_id}/messages" for chat_id in touched}
    # The three moved to the top: page 1 holds them, page 2 lies wholly before the watermark.
    assert sim.request_count("invent", path_contains="/orgs/") == 2
    assert_invent_matches(sim, invent_settings.database)


def test_a_second_run_with_no_changes_changes_nothing(sim, invent_settings):
    sync(invent_settings)
    sim.reset_requests()
    summary = sync(invent_settings)
    assert (summary.chats_upserted, summary.messages_upserted) == (0, 0)
    assert sim.request_count("invent", path_contains="/messages") == 0


def test_an_out_of_order_page_makes_the_walk_go_on(sim, invent_settings):
    sync(invent_settings)
    order = newest_first(sim)
    for chat_id in order[:25]:
        sim.touch("invent", chat_id)
    now = datetime.now(UTC) - timedelta(seconds=2)
    # Pages 3 and 5 each hold a chat with new activity that the API left in its old place.
    signal, hidden = order[50], order[90]
    sim.misplace("invent", signal, now)
    sim.misplace("invent", hidden, now)

    summary = sync(invent_settings)

    assert summary.status == "success"
    got = dict(query(invent_settings.database, "select chat_id, updated_at from chats"))
    assert got[signal] == got[hidden] == now.replace(microsecond=now.microsecond // 1000 * 1000)


def test_ties_and_the_watermark_boundary(sim, invent_settings):
    sync(invent_settings)
    mark = watermark(invent_settings.database, "invent")
    order = newest_first(sim)
    for chat_id in order[10:35]:  # more than a page at one instant, right at the old watermark
        sim.touch("invent", chat_id, at=mark)
    sim.touch("invent", order[60], at=mark - timedelta(milliseconds=1))

    summary = sync(invent_settings)

    assert summary.chats_upserted == 26
    assert_invent_matches(sim, invent_settings.database)


def test_children_are_replaced_exactly(sim, invent_settings):
    sync(invent_settings)
    chat_id = next(c["id"] for c in sim.invent_chats() if len(sim.invent_messages(c["id"])) >= 3)
    kept = sim.invent_messages(chat_id)[:1]
    sim.replace_messages("invent", chat_id, kept)

    sync(invent_settings)

    assert query(invent_settings.database, "select message_id from messages where chat_id = ?", [chat_id]) == [
        (kept[0]["id"],)
    ]
    assert_invent_matches(sim, invent_settings.database)


def test_a_chat_whose_messages_fail_is_picked_up_by_the_next_run(sim, invent_settings):
    order = newest_first(sim)
    broken = order[30]
    broken_at = parse_ts(sim.chat("invent", broken)["updated_at"])
    sim.add_fault(Fault(kind="status", status=500, times=-1, source="invent", path_contains=f"/chats/{broken}/"))

    first = sync(invent_settings)

    assert first.status == "partial" and broken in first.error
    held = {r[0] for r in query(invent_settings.database, "select chat_id from chats")}
    assert held == set(order) - {broken}
    assert watermark(invent_settings.database, "invent") <= broken_at

    sim.clear_faults()
    second = sync(invent_settings)

    assert second.status == "success"
    assert_invent_matches(sim, invent_settings.database)


def test_messages_are_fetched_concurrently_but_never_more_at_once_than_the_setting(sim, invent_settings):
    """A request per chat: CHATSYNC_INVENT_CONCURRENCY is what keeps a sync from asking more
    of the API at once than its users allow."""
    sim.add_fault(Fault(kind="stall", seconds=0.02, times=-1, source="invent", path_contains="/messages"))
    in_flight: list[int] = []
    sim.on_request(lambda info: "/messages" in info.path and in_flight.append(
        sum(1 for r in sim.requests if "/messages" in r.path and r.status is None)))

    summary = sync(invent_settings.model_copy(update={"invent_concurrency": 3}))

    assert summary.status == "success", summary.error
    assert_invent_matches(sim, invent_settings.database)
    assert max(in_flight) == 3


def test_retries_through_faults_on_lists_and_messages(sim, invent_settings):
    sim.add_fault(Fault(kind="status", status=429, retry_after=0.01, times=2, source="invent", path_contains="/orgs/"))
    sim.add_fault(Fault(kind="drop", times=2, source="invent", path_contains="/messages", after=5))
    sim.add_fault(Fault(kind="status", status=503, times=2, source="invent", path_contains="/messages", after=20))
    sim.add_fault(Fault(kind="repeat_page", times=1, source="invent", path_contains="/orgs/", after=3))
    sim.add_fault(Fault(kind="lie_count", count_delta=-60, times=2, source="invent", path_contains="/orgs/", after=4))

    summary = sync(invent_settings)

    assert summary.status == "success", summary.error
    assert summary.retries >= 7
    assert_invent_matches(sim, invent_settings.database)


def test_malformed_chats_and_messages_are_rejected_and_the_rest_loads(sim, invent_settings):
    order = newest_first(sim)
    bad_chat = order[5]
    sim.corrupt("invent", bad_chat, "members", "nobody")
    chat_with_bad_message = next(cid for cid in order[10:] if len(sim.invent_messages(cid)) >= 2)
    bad_message = sim.invent_messages(chat_with_bad_message)[0]
    sim.replace_messages("invent", chat_with_bad_message,
                         [dict(bad_message, created_at="the day after"), *sim.invent_messages(chat_with_bad_message)[1:]])

    summary = sync(invent_settings)

    assert summary.status == "success" and summary.rejected == 2
    rejected = dict(query(invent_settings.database, "select stream, record_key from rejected_records"))
    assert rejected == {"chats": bad_chat, "messages": f"{chat_with_bad_message}/{bad_message['id']}"}
    held = {r[0] for r in query(invent_settings.database, "select chat_id from chats")}
    assert held == set(order) - {bad_chat}
    kept = query(invent_settings.database, "select count(*) from messages where chat_id = ?", [chat_with_bad_message])
    assert kept == [(len(sim.invent_messages(chat_with_bad_message)) - 1,)]


def test_bare_dates_parse_as_midnight_utc(sim, invent_settings):
    chat_id = newest_first(sim)[7]
    sim.corrupt("invent", chat_id, "created_at", "2024-02-29")
    sync(invent_settings)
    created = query(invent_settings.database, "select created_at from chats where chat_id = ?", [chat_id])[0][0]
    assert created == datetime(2024, 2, 29, tzinfo=UTC)


def test_both_sources_in_one_run_and_one_failing_keeps_the_other(sim, invent_settings):
    both = invent_settings.model_copy(update={"cozmox_api_key": API_KEY})
    summaries = {s.source: s for s in run_sync(both)}
    assert {s: x.status for s, x in summaries.items()} == {"cozmox": "success", "invent": "success"}
    assert_warehouse_matches(sim, both.database)
    assert_invent_matches(sim, both.database)

    sim.touch("invent", newest_first(sim)[50])
    sim.touch("cozmox", sim.cozmox_chats()[3]["id"])
    cozmox_mark = watermark(both.database, "cozmox")
    broken = both.model_copy(update={"cozmox_api_key": "wrong"})
    summaries = {s.source: s for s in run_sync(broken)}

    assert summaries["cozmox"].status == "failed" and "rejected" in summaries["cozmox"].error
    assert summaries["invent"].status == "success"
    assert watermark(both.database, "cozmox") == cozmox_mark
    assert_invent_matches(sim, both.database)


def test_a_chat_deleted_between_the_list_and_its_messages_is_skipped(sim, invent_settings):
    order = newest_first(sim)
    doomed = order[12]

    def delete_after_listing(request):
        # The list has been read once messages are asked for: the chat goes now.
        if "/messages" in request.path and doomed in sim.chat_ids("invent"):
            sim.delete("invent", doomed)

    sim.on_request(delete_after_listing)
    summary = sync(invent_settings)

    assert summary.status == "success", summary.error
    held = {r[0] for r in query(invent_settings.database, "select chat_id from chats")}
    assert doomed not in held and held == set(order) - {doomed}



def test_a_message_id_listed_under_two_chats_is_held_once(sim, invent_settings):
    sync(invent_settings)
    first, second = [c["id"] for c in sim.invent_chats() if sim.invent_messages(c["id"])][:2]
    shared = sim.invent_messages(first)[0]
    count = "select count(*), any_value(chat_id) from messages where message_id = ?"

    # The second chat now lists a message the warehouse holds under the first.
    sim.replace_messages("invent", second, [*sim.invent_messages(second), shared])
    assert sync(invent_settings).status == "success"
    assert query(invent_settings.database, count, [shared["id"]]) == [(1, second)]

    # Both change in one run, each listing it: one batch names the key twice.
    now = datetime.now(UTC)
    sim.touch("invent", first, at=now - timedelta(seconds=2))
    sim.touch("invent", second, at=now - timedelta(seconds=1))
    summary = sync(invent_settings)
    assert summary.status == "success", summary.error
    assert query(invent_settings.database, count, [shared["id"]]) == [(1, second)]  # the later listing
    held = query(invent_settings.database, "select count(*) from messages where chat_id = ?", [second])
    assert held == [(len(sim.invent_messages(second)),)]


def test_a_chat_changed_alone_keeps_its_message_rows(sim, invent_settings):
    sync(invent_settings)
    chat = next(c for c in sim.invent_chats() if len(sim.invent_messages(c["id"])) >= 2)
    children = "select rowid, * from messages where chat_id = ? order by message_id"
    before = query(invent_settings.database, children, [chat["id"]])
    sim.set_timestamp("invent", chat["id"], datetime.now(UTC) - timedelta(seconds=1))

    summary = sync(invent_settings)

    assert (summary.chats_upserted, summary.messages_upserted) == (1, 0)
    assert query(invent_settings.database, children, [chat["id"]]) == before
    assert_invent_matches(sim, invent_settings.database)


def test_members_messages_and_usage_of_every_shape_load_as_sent(sim, invent_settings):
    """Contact channels in the seed's shape and the newer one, usage with cached_input_tokens or
    cache reads and writes (and turns), broadcasts, parts that are not text, bare-date chats:
    each row says what its record says, and every message keeps its raw."""
    import json
    from collections import Counter

    def either(first, second):
        return first if first is not None else second

    assert sync(invent_settings).status == "success"
    database = invent_settings.database
    chats = sim.invent_chats()
    seen: Counter = Counter()

    members = {(r[0], r[1]): r[2:] for r in query(
        database, "select chat_id, member_id, channel_type, channel_id, channel_name, channel_display_name,"
                  " channel_email, channel_phone, contact_id, contact_is_admin from chat_members")}
    for chat in chats:
        for member in chat["members"]:
            channel = member["contact_channel"] or {}
            contact = channel.get("contact") or {}
            assert members.pop((chat["id"], member["id"])) == (
                either(channel.get("channel_type"), channel.get("type")),
                either(channel.get("channel_id"), channel.get("user_id")),
                either(channel.get("channel_name"), channel.get("username")),
                either(channel.get("channel_display_name"), channel.get("name")),
                channel.get("email"), channel.get("phone"), contact.get("id"), contact.get("is_admin"))
            seen["new channel" if "type" in channel else "seed channel" if channel else "user"] += 1
    assert members == {}

    messages = {r[0]: r[1:] for r in query(
        database, "select message_id, content, broadcast_id, is_broadcast, raw::varchar from messages")}
    usage = {r[0]: r[1:] for r in query(
        database, "select message_id, cached_input_tokens, cache_read_tokens, cache_write_tokens from usage")}
    for chat in chats:
        for message in sim.invent_messages(chat["id"]):
            content, broadcast_id, is_broadcast, raw = messages.pop(message["id"])
            parts = [p for block in message["messages"] for p in block["parts"]]
            texts = [p["text"] for p in parts if p.get("type") in (None, "text") and p.get("text")]
            assert content == ("\n".join(texts) or None)
            assert (broadcast_id, is_broadcast) == (message.get("broadcast_id"), message.get("is_broadcast_message"))
            assert json.loads(raw) == message
            u = message.get("usage")
            if u is not None:
                assert usage.pop(message["id"]) == (
                    either(u.get("cached_input_tokens"), u.get("input_tokens_cache_read")),
                    u.get("input_tokens_cache_read"), u.get("input_tokens_cache_write"))
                seen.update(k for k in ("cached_input_tokens", "input_tokens_cache_read", "turns") if k in u)
            seen["broadcast"] += bool(is_broadcast)
            seen["not text"] += any(p.get("type") not in (None, "text") for p in parts)
    assert messages == {} and usage == {}

    created = dict(query(database, "select chat_id, created_at from chats"))
    bare = [c for c in chats if len(c["created_at"]) == 10]
    assert bare and all(created[c["id"]] == parse_ts(c["created_at"] + "T00:00:00Z") for c in bare)
    assert all(seen[k] for k in ("new channel", "seed channel", "user", "cached_input_tokens",
                                 "input_tokens_cache_read", "turns", "broadcast", "not text")), seen
    assert seen["new channel"] > seen["seed channel"]
