"""Each source's path from API pages to row batches, and the watermark each batch completes.

Cozmox is read in updated-at windows, oldest first, so every finished window is a safe
watermark. Invent can only be walked newest first, so its watermark is written once, after the
walk, and held back before any chat whose messages could not be read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from extract.cozmox import CozmoxChats
from extract.http import ApiClient
from extract.invent import InventChats, LastMessage
from flows.settings import Settings
from load.warehouse import Warehouse, now_utc
from transform import cozmox, invent
from transform.batch import Batch

log = logging.getLogger("chatsync")


@dataclass
class Step:
    """Rows to load together, and the watermark they complete (None: not yet one)."""

    batch: Batch
    fetched: int
    watermark: datetime | None = None
    deferred: dict[str, str] = field(default_factory=dict)  # chat id -> why it waits


def cozmox_steps(client: ApiClient, settings: Settings, warehouse: Warehouse,
                 start: datetime | None, end: datetime, force: bool) -> Iterator[Step]:
    for page in CozmoxChats(client, settings.page_size).pages(start, end):
        yield Step(cozmox.flatten(page.records, now_utc()), len(page.records),
                   page.window_end if page.done else None)


def invent_steps(client: ApiClient, settings: Settings, warehouse: Warehouse,
                 start: datetime | None, end: datetime, force: bool) -> Iterator[Step]:
    """Walks the chat list and fetches messages only for chats whose updated_at moved.

    Chats updated at or after `end` are read too where the walk meets them: they are current,
    and only a backfill (bounded on both sides) leaves them out.
    """
    return _invent_walk(client, settings, warehouse, start, None, force, end)


def invent_range_steps(client: ApiClient, settings: Settings, warehouse: Warehouse,
                       start: datetime, end: datetime) -> Iterator[Step]:
    """Only the chats updated in [start, end): what a backfill asks for."""
    return _invent_walk(client, settings, warehouse, start, end, False, end)


def _invent_walk(client: ApiClient, settings: Settings, warehouse: Warehouse, start: datetime | None,
                 until: datetime | None, force: bool, watermark: datetime) -> Iterator[Step]:
    reader = InventChats(client, settings.invent_org_id, take=settings.page_size,
                         concurrency=settings.invent_concurrency)
    held_back: list[datetime] = []
    for page in reader.walk(start):
        received = now_utc()
        chats, rejected = invent.read_chats(page.records, received)
        if until is not None:
            chats = [c for c in chats if start <= c.record.updated_at < until]
        held = warehouse.versions("invent", [c.record.id for c in chats])
        changed = [c for c in chats
                   if force or c.record.id not in held or c.record.updated_at > held[c.record.id]]
        messages, failed = reader.messages_of({c.record.id: LastMessage.of(c.raw) for c in changed})
        held_back += [c.record.updated_at for c in changed if c.record.id in failed]
        ready = [c for c in changed if c.record.id in messages]
        if page.count is not None:
            log.info("invent: chat list page %d of %d, %d chats changed", page.number,
                     max(1, -(-page.count // reader.take)), len(changed))
        yield Step(invent.flatten(ready, messages, received, rejected), len(page.records),
                   deferred={chat_id: exc.cause for chat_id, exc in failed.items()})
    # A chat left behind must come inside the next run's range again.
    yield Step(Batch(), 0, min([watermark, *held_back]))


STEPS = {"cozmox": cozmox_steps, "invent": invent_steps}
