"""Flattening in the second process gives the rows flattening here gives, and a process that
dies is reported, not waited on; pages of one group keep each chat's newest copy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from simulator import Simulator
from transform import cozmox, invent, worker
from transform.batch import SCHEMAS, Batch, combined

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _same(left: Batch, right: Batch) -> None:
    for name in SCHEMAS:
        assert left.table(name).to_pylist() == right.table(name).to_pylist(), name


def test_a_page_flattened_in_the_second_process_gives_the_same_rows_and_rejections():
    sim = Simulator(seed=3, cozmox_chats=30, invent_chats=10)
    records = [json.dumps(chat).encode() for chat in sim.cozmox_chats()]
    records[4] = b'{"id": "bad", "updatedAt": "not a time"}'
    records[7] = b"[1, 2]"
    chats = sim.invent_chats()
    chats[2] = {**chats[2], "updated_at": None}
    messages = {chat["id"]: sim.invent_messages(chat["id"]) for chat in chats}

    flattener = worker.shared()
    there = [flattener.submit(cozmox.flatten, records, {}, NOW, "org-1"),
             flattener.submit(invent.flatten, chats, messages, NOW, "org-2")]

    _same(there[0].result(timeout=60), cozmox.flatten(records, {}, NOW, "org-1"))
    _same(there[1].result(timeout=60), invent.flatten(chats, messages, NOW, "org-2"))
    assert there[0].result().count("rejected_records") == 2
    assert there[1].result().count("rejected_records") == 1


def test_an_error_in_the_second_process_reaches_the_run_that_asked():
    with pytest.raises(TypeError, match="not iterable"):
        worker.shared().submit(cozmox.flatten, 5, {}, NOW, None).result(timeout=60)  # type: ignore[arg-type]


def test_a_second_process_that_died_fails_what_it_held_and_is_replaced():
    flattener = worker.FlattenProcess()
    flattener._process.kill()
    flattener._process.wait()
    with pytest.raises(worker.FlattenerGone, match="exit code -9"):
        flattener.submit(cozmox.flatten, [b'{"id": "a"}'], {}, NOW, None).result(timeout=60)

    shared = worker.shared()
    shared._process.kill()
    shared._process.wait()
    assert worker.shared() is not shared
    assert worker.shared().submit(cozmox.flatten, [], {}, NOW, None).result(timeout=60).count("chats") == 0


def _page(*chats: tuple[str, int, int]) -> Batch:
    """Chats as (id, minutes after NOW updated, messages)."""
    batch = Batch()
    for chat_id, minutes, messages in chats:
        batch.chats.append({"source": "cozmox", "chat_id": chat_id, "updated_at": NOW + timedelta(minutes=minutes)})
        batch.messages += [{"source": "cozmox", "chat_id": chat_id, "message_id": f"{chat_id}:{minutes}:{i}"}
                           for i in range(messages)]
    batch.rejected.append({"source": "cozmox", "stream": "chats", "record_key": f"bad-{len(chats)}"})
    return batch


def test_pages_combined_keep_each_chats_newest_copy_with_its_own_children():
    pages = [_page(("a", 5, 2), ("b", 1, 1)), _page(("a", 3, 3), ("c", 1, 1)), _page(("a", 7, 1), ("c", 1, 2))]

    batch = combined(pages)

    chats = {(row["chat_id"], row["updated_at"]) for row in batch.table("chats").to_pylist()}
    assert chats == {("a", NOW + timedelta(minutes=7)), ("b", NOW + timedelta(minutes=1)),
                     ("c", NOW + timedelta(minutes=1))}
    # "c" was as new on the third page: the later copy wins, with its two messages
    assert sorted(batch.table("messages")["message_id"].to_pylist()) == ["a:7:0", "b:1:0", "c:1:0", "c:1:1"]
    assert batch.count("rejected_records") == 3
    assert isinstance(batch.table("chats"), pa.Table)
