"""The Cozmox sync against the simulator over loopback HTTP, checked by reading the warehouse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from helpers import HISTORY_END, assert_warehouse_matches, parse_ts, query, watermark

from flows.pipeline import run_sync
from simulator import Fault


def sync(settings, **kwargs):
    (summary,) = run_sync(settings, "cozmox", **kwargs)
    return summary


def table_snapshot(database: str) -> dict[str, list[tuple]]:
    tables = {
        "chats": "select chat_id, updated_at, raw::varchar, loaded_at from chats order by 1",
        "messages": "select * from messages order by message_id",
        "usage": "select * from usage order by message_id",
        "costs": "select * from costs order by chat_id, seq",
    }
    return {name: query(database, sql) for name, sql in tables.items()}


def test_full_sync_equals_the_api(sim, settings):
    summary = sync(settings)

    assert summary.status == "success", summary.error
    assert summary.chats_upserted == len(sim.cozmox_chats())
    assert_warehouse_matches(sim, settings.database)
    assert watermark(settings.database) is not None
    # 120 chats at 20 a page: the windows split, and nothing was read twice into the warehouse.
    assert summary.requests > len(sim.cozmox_chats()) // settings.page_size
    runs = query(settings.database, "select status, chats_upserted, messages_upserted from sync_runs")
    assert runs == [("success", summary.chats_upserted, summary.messages_upserted)]


def test_flattened_columns_follow_the_contract(sim, settings):
    sync(settings)
    # a call transcript: its first message has a time of its own (OpenAI-style entries have none)
    chat = next(c for c in sim.cozmox_chats() if c.get("assistant") and c.get("costs") and "time" in c["messages"][0])
    row = query(
        settings.database,
        "select org_id, assistant_id, title, cost, assistant_model, assistant_voice_provider,"
        " raw->>'$.id' from chats where chat_id = ?",
        [chat["id"]],
    )[0]
    assert row == (
        chat["orgId"], chat["assistantId"], chat.get("name"), pytest.approx(chat["cost"]),
        chat["assistant"]["model"]["model"], chat["assistant"]["voice"]["provider"], chat["id"],
    )
    first = chat["messages"][0]
    message = query(
        settings.database,
        "select kind, seq, role, content, epoch_ms(created_at) from messages where message_id = ?",
        [f"{chat['id']}:message:0"],
    )
    assert message == [("message", 0, first["role"], first["message"], first["time"])]
    model_costs = [(i, c) for i, c in enumerate(chat["costs"]) if "promptTokens" in c]
    usage = query(settings.database,
                  "select message_id, input_tokens, output_tokens from usage where chat_id = ? order by 1",
                  [chat["id"]])
    assert usage == sorted((f"{chat['id']}:cost:{i}", c["promptTokens"], c["completionTokens"]) for i, c in model_costs)


def test_incremental_sync_reads_only_what_changed(sim, settings):
    sync(settings)
    ids = [c["id"] for c in sim.cozmox_chats()]
    for chat_id in ids[:5]:
        sim.touch("cozmox", chat_id)
    new = sim.add_chats("cozmox", 3)
    sim.reset_requests()

    summary = sync(settings)

    assert summary.status == "success"
    assert summary.chats_upserted == 8
    assert summary.chats_fetched == 8
    assert sim.request_count("cozmox") == summary.requests <= 2
    assert_warehouse_matches(sim, settings.database)
    assert set(new) <= {r[0] for r in query(settings.database, "select chat_id from chats")}


def test_a_second_sync_with_no_changes_changes_nothing(sim, settings):
    sync(settings)
    before = table_snapshot(settings.database)
    mark = watermark(settings.database)

    summary = sync(settings)

    assert summary.chats_upserted == 0 and summary.messages_upserted == 0
    assert table_snapshot(settings.database) == before
    assert watermark(settings.database) >= mark


def test_ties_across_a_page_are_all_loaded(sim, settings):
    """Three pages' worth of chats in one millisecond: no window split can separate them."""
    instant = HISTORY_END - timedelta(hours=3)
    tied = [c["id"] for c in sim.cozmox_chats()][: settings.page_size * 3 + 1]
    for chat_id in tied:
        sim.set_timestamp("cozmox", chat_id, instant)

    summary = sync(settings)

    assert summary.status == "success"
    assert_warehouse_matches(sim, settings.database)
    at_instant = query(settings.database, "select count(*) from chats where updated_at = ?", [instant])
    assert at_instant == [(len(tied),)]


def test_ties_at_the_watermark_are_loaded_by_the_next_run(sim, settings):
    sync(settings)
    mark = watermark(settings.database)
    chats = [c["id"] for c in sim.cozmox_chats()]
    # Committed late: exactly at the old watermark, and just before it.
    sim.set_timestamp("cozmox", chats[0], mark)
    sim.set_timestamp("cozmox", chats[1], mark - timedelta(milliseconds=1))
    sim.touch("cozmox", chats[2])

    summary = sync(settings)

    assert summary.chats_upserted == 3
    assert_warehouse_matches(sim, settings.database)


@pytest.mark.parametrize("sim_options", [{"lag": timedelta(0)}])
def test_chats_changing_while_the_sync_pages_are_all_present_after_the_next_run(sim, settings):
    ids = [c["id"] for c in sorted(sim.cozmox_chats(), key=lambda c: c["createdAt"])]
    touched = []

    def churn(request):
        # Early in the run, chats already read and chats not yet read both move past the run's end.
        if request.source == "cozmox" and request.index in (4, 6, 8):
            for chat_id in (ids[request.index], ids[-request.index]):
                sim.touch("cozmox", chat_id)
                touched.append(chat_id)

    sim.on_request(churn)
    first = sync(settings)
    assert first.status == "success"
    loaded = {r[0] for r in query(settings.database, "select chat_id from chats")}
    assert set(ids) - set(touched) <= loaded, "a chat that never changed was skipped"

    sim.clear_hooks()
    second = sync(settings)
    assert second.status == "success"
    assert_warehouse_matches(sim, settings.database)


def test_children_are_replaced_exactly(sim, settings):
    sync(settings)
    chat = next(c for c in sim.cozmox_chats() if len(c["messages"]) >= 3 and c.get("costs"))
    kept = [dict(chat["messages"][0], message="edited")]
    sim.replace_messages("cozmox", chat["id"], kept, output=[], costs=[])

    sync(settings)

    rows = query(settings.database, "select kind, seq, content from messages where chat_id = ?"
                 " and kind in ('message', 'output') order by kind, seq", [chat["id"]])
    assert rows == [("message", 0, "edited")]
    assert query(settings.database, "select count(*) from costs where chat_id = ?", [chat["id"]]) == [(0,)]
    assert query(settings.database, "select count(*) from usage where chat_id = ?", [chat["id"]]) == [(0,)]
    assert_warehouse_matches(sim, settings.database)


def test_retries_through_rate_limits_server_errors_and_drops(sim, settings):
    sim.add_fault(Fault(kind="status", status=429, retry_after=0.01, times=2, source="cozmox"))
    sim.add_fault(Fault(kind="status", status=503, times=2, source="cozmox", after=4))
    sim.add_fault(Fault(kind="drop", times=1, source="cozmox", after=8))
    sim.add_fault(Fault(kind="invalid_json", times=1, source="cozmox", after=10))
    sim.add_fault(Fault(kind="no_results", times=1, source="cozmox", after=12))

    summary = sync(settings)

    assert summary.status == "success", summary.error
    assert summary.retries >= 7
    assert_warehouse_matches(sim, settings.database)
    assert query(settings.database, "select retries from sync_runs") == [(summary.retries,)]


def test_a_dead_api_fails_the_run_and_keeps_the_watermark(sim, settings):
    sync(settings)
    mark = watermark(settings.database)
    sim.touch("cozmox", sim.cozmox_chats()[0]["id"])
    sim.add_fault(Fault(kind="status", status=502, times=-1, source="cozmox"))

    summary = sync(settings)

    assert summary.status == "failed"
    assert summary.error.startswith("cozmox:") and "502" in summary.error
    assert summary.requests == settings.max_attempts
    assert watermark(settings.database) == mark
    assert query(settings.database, "select status, error from sync_runs order by started_at desc limit 1") == [
        ("failed", summary.error)
    ]


def test_a_run_that_dies_midway_resumes_after_its_last_finished_window(sim, settings, monkeypatch):
    from flows import pipeline

    monkeypatch.setattr(pipeline, "GROUP_CHATS", 1)  # a commit per page, as in a long run
    total = len(sim.cozmox_chats())
    # after 8: the first window's request is sure to be among them, whatever order the windows
    # asked for ahead arrive in
    sim.add_fault(Fault(kind="status", status=500, times=-1, source="cozmox", after=8))
    broken = sync(settings)
    assert broken.status == "failed"
    partial = watermark(settings.database)
    assert partial is not None, "finished windows must commit their watermark"
    loaded_before = query(settings.database, "select count(*) from chats")[0][0]
    assert 0 < loaded_before < total

    sim.clear_faults()
    resumed = sync(settings)

    assert resumed.status == "success"
    assert resumed.chats_upserted == total - loaded_before
    # Only chats from the lookback before the partial watermark are read again.
    reread = sum(1 for c in sim.cozmox_chats()
                 if partial - timedelta(seconds=settings.lookback_seconds) <= parse_ts(c["updatedAt"]) < partial)
    assert resumed.chats_fetched == total - loaded_before + reread
    assert_warehouse_matches(sim, settings.database)


def test_a_malformed_record_is_rejected_and_the_rest_loads(sim, settings):
    chats = sim.cozmox_chats()
    bad_time, bad_list = chats[3]["id"], chats[4]["id"]
    sim.corrupt("cozmox", bad_time, "createdAt", "yesterday-ish")
    sim.corrupt("cozmox", bad_list, "messages", "not a list")

    summary = sync(settings)

    assert summary.status == "success"
    assert summary.rejected == 2
    rejected = query(settings.database, "select record_key, error, raw->>'$.id' from rejected_records order by 1")
    assert [r[0] for r in rejected] == sorted([bad_time, bad_list])
    assert all(r[1] for r in rejected) and [r[2] for r in rejected] == [r[0] for r in rejected]
    loaded = {r[0] for r in query(settings.database, "select chat_id from chats")}
    assert loaded == {c["id"] for c in chats} - {bad_time, bad_list}


def test_a_full_refresh_rewrites_every_chat_and_keeps_the_watermark_forward(sim, settings):
    sync(settings)
    mark = watermark(settings.database)

    summary = sync(settings, full_refresh=True)

    assert summary.mode == "full_refresh"
    assert summary.chats_upserted == len(sim.cozmox_chats())
    assert watermark(settings.database) >= mark
    assert_warehouse_matches(sim, settings.database)


def test_an_interrupted_run_is_marked_when_the_next_one_starts(sim, settings):
    from load.warehouse import AccountKey, Warehouse

    with Warehouse(settings.database) as wh:
        wh.start_run(AccountKey("cozmox", None, "cozmox"), "incremental")  # as a killed process leaves it
    sync(settings)
    statuses = sorted(r[0] for r in query(settings.database, "select status from sync_runs"))
    assert statuses == ["interrupted", "success"]


def test_timestamps_are_utc_whatever_the_offset(sim, settings):
    chat = sim.cozmox_chats()[0]
    ts = parse_ts(chat["updatedAt"])
    sim.corrupt("cozmox", chat["id"], "createdAt", ts.astimezone(timezone(timedelta(hours=5))).isoformat())
    sync(settings)
    created = query(settings.database, "select created_at from chats where chat_id = ?", [chat["id"]])[0][0]
    assert created == ts and created.utcoffset() == timedelta(0)
    assert datetime.now(UTC) > created


def test_an_api_that_pages_smaller_than_asked_is_followed(sim, settings, monkeypatch):
    """Asked for 50 a page, it answers 20 and says so in itemsPerPage: 20 is then a full page."""
    from simulator.app import SimulatorApp

    original = SimulatorApp._cozmox_chats

    def capped(self, params, delta, bare):
        return original(self, dict(params, limit=str(min(int(params.get("limit", 100)), 20))), delta, bare)

    monkeypatch.setattr(SimulatorApp, "_cozmox_chats", capped)
    summary = sync(settings.model_copy(update={"page_size": 50}))

    assert summary.status == "success"
    assert_warehouse_matches(sim, settings.database)


def test_long_runs_log_their_progress(sim, settings, caplog, monkeypatch):
    """Off a terminal, progress is a log line now and then (here: every page)."""
    import logging

    from flows import pipeline, progress

    monkeypatch.setattr(progress, "_current", progress.Reporter(every=0))
    monkeypatch.setattr(pipeline, "GROUP_CHATS", 1)  # a load per page, as in a long run
    caplog.set_level(logging.INFO, logger="chatsync")
    sync(settings)
    lines = [r.getMessage() for r in caplog.records if "chats fetched" in r.getMessage()]
    assert len(lines) >= 5
    assert lines[-1].startswith(f"cozmox: {len(lines)} batches loaded, {len(sim.cozmox_chats())} chats fetched")


def test_a_chat_changed_alone_keeps_its_child_rows(sim, settings):
    sync(settings)
    chat = next(c for c in sim.cozmox_chats() if len(c["messages"]) >= 2)
    children = "select rowid, * from messages where chat_id = ? order by message_id"
    before = query(settings.database, children, [chat["id"]])
    sim.set_timestamp("cozmox", chat["id"], datetime.now(UTC) - timedelta(seconds=1))

    summary = sync(settings)

    assert (summary.chats_upserted, summary.messages_upserted) == (1, 0)
    # the same rows, not a copy written again: a rewritten row gets a new rowid
    assert query(settings.database, children, [chat["id"]]) == before
    assert_warehouse_matches(sim, settings.database)


def test_a_full_refresh_of_unchanged_chats_rewrites_no_children(sim, settings):
    sync(settings)
    ids = query(settings.database, "select rowid from messages order by rowid")

    summary = sync(settings, full_refresh=True)

    assert summary.chats_upserted == len(sim.cozmox_chats())
    assert summary.messages_upserted == 0
    assert query(settings.database, "select rowid from messages order by rowid") == ids
    assert_warehouse_matches(sim, settings.database)


def test_a_chat_read_in_two_windows_of_one_load_keeps_its_newer_copy(sim, settings):
    """A chat that moves to a later window while the run pages is read twice, old copy first;
    both copies land in the same load, and only the newer one, with its own children, stays."""
    oldest = min((c for c in sim.cozmox_chats() if len(c["messages"]) >= 3), key=lambda c: c["updatedAt"])
    moved_to = datetime.now(UTC) - timedelta(seconds=30)

    def move(request):
        # by the 8th request the first window was answered (4 are asked for at a time after the 3rd)
        if request.source == "cozmox" and request.index == 8:
            sim.replace_messages("cozmox", oldest["id"], oldest["messages"][:1], at=moved_to)

    sim.on_request(move)
    summary = sync(settings)

    assert summary.status == "success", summary.error
    assert summary.chats_fetched == len(sim.cozmox_chats()) + 1, "the moved chat was not read twice"
    assert_warehouse_matches(sim, settings.database)


def test_a_warehouse_whose_key_index_outgrows_the_working_memory_still_loads(sim, settings, monkeypatch):
    # DuckDB loads a primary-key index whole to change it; a fixed cap below its size ends the
    # load with a fatal out-of-memory error. A million other message keys: about 40 MB of index.
    from load import warehouse

    sync(settings)
    with warehouse.Warehouse(settings.database) as wh:
        wh.con.execute("insert into messages (source, message_id, chat_id, kind, seq) "
                       "select 'invent', 'm' || i, 'c' || (i // 20), 'message', i % 20 from range(1000000) t(i)")
    monkeypatch.setattr(warehouse, "SYNC_MEMORY_MIB", 16)
    summary = sync(settings, full_refresh=True)

    assert summary.status == "success", summary.error
    assert_warehouse_matches(sim, settings.database)
    assert query(settings.database, "select count(*) from messages where source = 'invent'") == [(1000000,)]


@pytest.mark.parametrize("sim_options", [{"cozmox_chats": 6000}])
def test_a_first_sync_whose_key_indexes_outgrow_the_memory_cap_it_began_with_loads_every_chat(
        sim, settings, monkeypatch):
    """DuckDB holds each key index whole and ends a load with a fatal error once they and the
    work no longer fit its cap, so the loads raise the cap as they add rows. At a cap of
    128 MiB a first sync of 70,000 chats failed part way without that; here a smaller cap makes
    the case, as it did: 6,000 chats past a cap of 40 MiB that is never raised fail."""
    from load import warehouse

    monkeypatch.setattr(warehouse, "SYNC_MEMORY_MIB", 40)
    settings = settings.model_copy(update={"page_size": 100})

    summary = sync(settings, full_refresh=True)

    assert summary.status == "success", summary.error
    assert summary.chats_upserted == 6000
    assert_warehouse_matches(sim, settings.database)


def test_read_pages_are_freed_without_waiting_for_the_garbage_collector(sim, settings):
    """httpx's responses are cycles; left so, a large sync held hundreds of MB of read pages."""
    import gc

    import httpx

    gc.collect()
    gc.disable()
    try:
        summary = sync(settings)
        left = [obj for obj in gc.get_objects() if isinstance(obj, httpx.Response)]
    finally:
        gc.enable()
    assert summary.status == "success" and summary.requests > 5
    assert left == []


def test_arrow_allocates_on_jemalloc_unless_the_user_chose(monkeypatch):
    """Arrow's default allocator kept what batches freed: 70 MB more at a large sync's peak."""
    import pyarrow as pa

    from flows import runtime

    if "jemalloc" not in pa.supported_memory_backends():
        pytest.skip("this pyarrow build has no jemalloc")
    before = pa.default_memory_pool()
    try:
        pa.set_memory_pool(pa.system_memory_pool())
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "system")
        runtime._arrow_on_jemalloc()
        assert pa.default_memory_pool().backend_name == "system"
        monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL")
        runtime._arrow_on_jemalloc()
        assert pa.default_memory_pool().backend_name == "jemalloc"
    finally:
        pa.set_memory_pool(before)


def test_entries_costs_and_squads_of_every_shape_load_as_sent(sim, settings):
    """Transcript and OpenAI-style entries (tool calls, tool answers, names, content in parts),
    model costs with and without cached and reasoning tokens, squads with no assistant: each
    row says what its record says."""
    import json
    from collections import Counter

    assert sync(settings).status == "success"
    chats = sim.cozmox_chats()
    rows = {r[0]: r[1:] for r in query(
        settings.database, "select message_id, role, content, epoch_ms(created_at), tool_calls::varchar,"
                           " tool_call_id, name, raw from messages where source = 'cozmox'")}
    seen: Counter = Counter()
    for chat in chats:
        lists = [("message", chat["messages"]), ("output", chat["output"])]
        if isinstance(chat.get("input"), list):
            lists.append(("input", chat["input"]))
        for kind, entries in lists:
            for seq, entry in enumerate(entries):
                role, content, created, calls, call_id, name, raw = rows.pop(f"{chat['id']}:{kind}:{seq}")
                said = entry["message"] if "message" in entry else entry.get("content")
                assert (json.loads(content) if isinstance(said, list) else content) == said
                assert (role, created, call_id, name, raw) == (
                    entry["role"], entry.get("time"), entry.get("tool_call_id"), entry.get("name"), None)
                assert (json.loads(calls) if calls is not None else None) == entry.get("tool_calls")
                seen.update(k for k in ("message", "tool_calls", "tool_call_id", "name", "refusal", "metadata")
                            if k in entry)
                seen["parts"] += isinstance(said, list)
    assert rows == {}, "rows for entries the API does not have"
    assert all(seen[k] for k in ("message", "tool_calls", "tool_call_id", "name", "refusal", "metadata", "parts")), seen

    usage = {r[0]: r[1:] for r in query(
        settings.database, "select message_id, input_tokens, cached_input_tokens, reasoning_tokens from usage")}
    want = {f"{c['id']}:cost:{i}": (k["promptTokens"], k.get("cachedPromptTokens"), k.get("reasoningTokens"))
            for c in chats for i, k in enumerate(c["costs"]) if "promptTokens" in k}
    assert usage == want
    assert any(v[1] is not None for v in want.values()) and any(v[2] is not None for v in want.values())
    kinds = Counter(r[0] for r in query(settings.database, "select type from costs"))
    assert kinds["chat"] == sum(1 for c in chats for k in c["costs"] if k["type"] == "chat") > 0

    squads = dict(query(settings.database, "select chat_id, squad_id from chats where assistant_id is null"))
    assert squads == {c["id"]: c.get("squadId") for c in chats if c["assistantId"] is None}
    assert squads and all(squads.values())
    tool_calls = dict(query(settings.database, "select chat_id, tool_call_count from chat_summary"))
    assert tool_calls == {c["id"]: sum(1 for e in c["messages"] if e["role"] == "tool") for c in chats}
    assert any(tool_calls.values())


def test_a_chat_changed_at_the_same_updated_at_is_rewritten_and_its_unchanged_neighbours_are_not(sim, settings):
    """An API whose times are coarse changes a chat without moving its updated-at: the lookback's
    re-read tells it from the copies held by what was sent, and writes that chat alone."""
    first, latest = [c["id"] for c in sim.cozmox_chats()][:2]
    sim.touch("cozmox", first)
    sim.touch("cozmox", latest)
    sync(settings)
    sim.corrupt("cozmox", latest, "name", "renamed, same time")
    before = dict(query(settings.database, "select chat_id, loaded_at from chats"))

    summary = sync(settings)

    assert summary.chats_fetched >= 2  # the lookback re-read more than the one chat
    assert summary.chats_upserted == 1
    after = dict(query(settings.database, "select chat_id, loaded_at from chats"))
    assert {k for k in after if after[k] != before[k]} == {latest}
    assert query(settings.database, "select title from chats where chat_id = ?", [latest]) == [
        ("renamed, same time",)]


def chats_storage(database: str) -> set[tuple]:
    """Where each part of each row group of `chats` is written in the file."""
    return set(query(database, "select row_group_id, column_name, segment_id, block_id, block_offset"
                               " from pragma_storage_info('chats') where block_id >= 0"))


@pytest.mark.parametrize("sim_options", [{"cozmox_chats": 2100}])
@pytest.mark.parametrize("full_refresh", [True, False], ids=["full refresh", "first sync"])
def test_a_small_sync_after_a_bulk_load_leaves_the_bulk_loads_storage_as_written(sim, settings, full_refresh):
    """A checkpoint rewrites, whole, each row group that rows were added to: the chat a small
    run writes goes to a row group of its own, and the history stays where the bulk load (a full
    refresh, or the first sync into a new file) put it."""
    settings = settings.model_copy(update={"page_size": 100})
    sync(settings, full_refresh=full_refresh)
    bulk = chats_storage(settings.database)
    sim.touch("cozmox", sim.chat_ids("cozmox")[0])

    assert sync(settings).chats_upserted == 1

    after = chats_storage(settings.database)
    assert bulk <= after
    assert {group for group, *_ in after} == {group for group, *_ in bulk} | {max(g for g, *_ in bulk) + 1}
