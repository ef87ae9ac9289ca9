"""When an Invent message list counts as current: it reaches the chat's last message."""

from __future__ import annotations


def test_a_message_list_reaches_the_chats_last_message_by_id_or_time():
    from extract.invent import LastMessage

    listed = [{"id": "m1", "created_at": "2026-01-01T12:00:00.123Z"}]
    assert LastMessage.of({"last_message": {"id": "m1", "created_at": "2026-01-01T12:00:00.123456Z"}}).found_in(listed)
    # Another id, but the same moment to the millisecond the endpoint keeps: not stale.
    assert LastMessage.of({"last_message": {"id": "m9", "created_at": "2026-01-01T12:00:00.123999Z"}}).found_in(listed)
    # A minute newer than anything listed: the list is stale.
    assert not LastMessage.of({"last_message": {"id": "m9", "created_at": "2026-01-01T12:01:00Z"}}).found_in(listed)
    assert not LastMessage.of({"last_message": {"id": "m9", "created_at": "2026-01-01T12:01:00Z"}}).found_in([])
    assert LastMessage.of({"last_message": None}) is None
