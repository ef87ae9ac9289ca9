"""What the pipeline asks of every API: one small class per source behind this protocol.

The pipeline never asks which API it holds. A source knows its own names and defaults, how to
find out which organisation a key reaches, how to read what changed in an updated-at range,
how a backfill splits into walks, how to list every id it still has (for reconcile), and how to
check what it assumes of its API (for doctor). Rows are made by the flatten function that
transform/ has for the same source.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from extract.http import ApiClient

if TYPE_CHECKING:
    from extract.doctor import Check

log = logging.getLogger("chatsync.extract")

Window = tuple[datetime, datetime]
StoredVersions = Callable[[list[str]], dict[str, tuple[datetime, str]]]
"""The updated-at the warehouse holds for each of these chat ids, and the MD5 of the record's
JSON as stored (absent: not stored)."""


@dataclass(frozen=True)
class ReadOptions:
    page_size: int = 100
    concurrency: int = 8
    safety_margin_seconds: float = 60


@dataclass
class Fetched:
    """Chats read from the API, as sent, and what they complete."""

    records: list[Any]  # chats to load (JSON texts or decoded)
    listed: int  # chats the API listed, changed or not (for progress and run counts)
    children: dict[str, list[Any]] = field(default_factory=dict)  # chat id -> its messages, where listed apart
    watermark: datetime | None = None  # every change before it has now been read
    deferred: dict[str, str] = field(default_factory=dict)  # chat id -> why it waits for the next run


@dataclass
class BackfillWalk:
    """One read covering some backfill windows; they count as finished when it is."""

    name: str
    windows: list[Window]
    read: Callable[[], Iterator[Fetched]]


class Source(ABC):
    """One API, read on behalf of one account."""

    name: ClassVar[str]
    default_base_url: ClassVar[str]
    # Whether an account names an organisation (a key reaches several), and its default.
    default_org: ClassVar[str | None] = None
    # Whether requests go under the per-key request ceiling (CHATSYNC_INVENT_REQUESTS_PER_MINUTE).
    rate_limited: ClassVar[bool] = False

    def __init__(self, client: ApiClient, org: str | None, options: ReadOptions) -> None:
        self.client = client
        self.org = org or self.default_org
        self.options = options
        # What the API did that chatsync does not expect, each said once: the run's summary
        # and its `sync_runs` row carry them.
        self.warnings: list[str] = []
        self.api_total: int | None = None
        self.api_seen = 0

    def completeness(self) -> tuple[int | None, int | None]:
        """Chats the API said it had in what was read, and chats read against that; (None,
        None) where it said nothing."""
        if self.api_total is None:
            return None, None
        if self.api_seen != self.api_total:
            self.warn(f"the API reported {self.api_total} chats in what was read but listed {self.api_seen}")
        return self.api_total, self.api_seen

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)
            log.warning("%s: %s", self.client.source, text)

    @abstractmethod
    def org_id(self) -> str | None:
        """The organisation the API reports for this account; None while it lists nothing."""

    @abstractmethod
    def changes(self, start: datetime | None, end: datetime, force: bool,
                stored_versions: StoredVersions) -> Iterator[Fetched]:
        """Everything updated from `start` (None: the beginning) until `end`, in steps whose
        watermarks only ever cover what was read."""

    @abstractmethod
    def backfill(self, windows: list[Window], stored_versions: StoredVersions) -> list[BackfillWalk]:
        """The reads that cover these windows, oldest first."""

    @abstractmethod
    def listed_ids(self, started: datetime) -> set[str]:
        """Every chat id the API has now: ids only."""

    @abstractmethod
    def doctor(self) -> list[Check]:
        """A verdict on each assumption this source's code makes about its API, from a handful
        of requests that change nothing: what to learn before a first sync rather than from one."""
