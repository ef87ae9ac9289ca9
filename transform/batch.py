"""The rows one page of records becomes: the hand-off from transform to load.

Columns are typed here once, as Arrow schemas, so that a page reaches DuckDB as a few columnar
tables rather than row by row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

TS = pa.timestamp("us", tz="UTC")
# Text that is JSON already (every `raw` here was read or written by a JSON parser): typed so,
# DuckDB stores it without parsing it again.
JSON = pa.json_(pa.string())


# A row as the transform writes it: column name to value.
Row = dict[str, Any]


def _schema(columns: list[tuple[str, pa.DataType]]) -> pa.Schema:
    return pa.schema(columns)


SCHEMAS: dict[str, pa.Schema] = {
    "chats": _schema(
        [
            ("source", pa.string()),
            ("chat_id", pa.string()),
            ("org_id", pa.string()),
            ("assistant_id", pa.string()),
            ("squad_id", pa.string()),
            ("title", pa.string()),
            ("status", pa.string()),
            ("created_at", TS),
            ("updated_at", TS),
            ("cost", pa.float64()),
            ("session_id", pa.string()),
            ("previous_chat_id", pa.string()),
            ("assistant_model_provider", pa.string()),
            ("assistant_model", pa.string()),
            ("assistant_voice_provider", pa.string()),
            ("assistant_voice_id", pa.string()),
            ("assistant_transcriber_provider", pa.string()),
            ("model", pa.string()),
            ("visibility", pa.string()),
            ("is_pinned", pa.bool_()),
            ("is_temporary", pa.bool_()),
            ("inbox_state", pa.string()),
            ("integration_id", pa.string()),
            ("is_ai_enabled", pa.bool_()),
            ("assigned_user_id", pa.string()),
            ("assigned_user_name", pa.string()),
            ("assigned_at", TS),
            ("children_fingerprint", pa.string()),
            ("raw", JSON),
        ]
    ),
    "messages": _schema(
        [
            ("source", pa.string()),
            ("message_id", pa.string()),
            ("chat_id", pa.string()),
            ("kind", pa.string()),
            ("seq", pa.int32()),
            ("role", pa.string()),
            ("content", pa.string()),
            ("created_at", TS),
            ("seconds_from_start", pa.float64()),
            ("model", pa.string()),
            ("status", pa.string()),
            ("tool_calls", JSON),
            ("tool_call_id", pa.string()),
            ("name", pa.string()),
            ("broadcast_id", pa.string()),
            ("is_broadcast", pa.bool_()),
            ("raw", JSON),
        ]
    ),
    "usage": _schema(
        [
            ("source", pa.string()),
            ("message_id", pa.string()),
            ("chat_id", pa.string()),
            ("created_at", TS),
            ("model", pa.string()),
            ("input_tokens", pa.int64()),
            ("output_tokens", pa.int64()),
            ("total_tokens", pa.int64()),
            ("reasoning_tokens", pa.int64()),
            ("cached_input_tokens", pa.int64()),
            ("cache_read_tokens", pa.int64()),
            ("cache_write_tokens", pa.int64()),
        ]
    ),
    "costs": _schema(
        [
            ("source", pa.string()),
            ("chat_id", pa.string()),
            ("seq", pa.int32()),
            ("type", pa.string()),
            ("model", pa.string()),
            ("provider", pa.string()),
            ("prompt_tokens", pa.int64()),
            ("completion_tokens", pa.int64()),
            ("cached_prompt_tokens", pa.int64()),
            ("reasoning_tokens", pa.int64()),
            ("cost", pa.float64()),
            ("raw", JSON),
        ]
    ),
    "chat_members": _schema(
        [
            ("source", pa.string()),
            ("chat_id", pa.string()),
            ("member_id", pa.string()),
            ("role", pa.string()),
            ("user_id", pa.string()),
            ("user_name", pa.string()),
            ("channel_type", pa.string()),
            ("channel_id", pa.string()),
            ("channel_name", pa.string()),
            ("channel_display_name", pa.string()),
            ("channel_email", pa.string()),
            ("channel_phone", pa.string()),
            ("contact_id", pa.string()),
            ("contact_name", pa.string()),
            ("contact_is_admin", pa.bool_()),
        ]
    ),
    "message_files": _schema(
        [
            ("source", pa.string()),
            ("message_id", pa.string()),
            ("chat_id", pa.string()),
            ("part_seq", pa.int32()),
            ("part_type", pa.string()),
            ("file_id", pa.string()),
            ("file_name", pa.string()),
            ("file_size", pa.int64()),
            ("mime_type", pa.string()),
            ("file_url", pa.string()),
            ("start_ms", pa.float64()),
            ("end_ms", pa.float64()),
        ]
    ),
    "rejected_records": _schema(
        [
            ("source", pa.string()),
            ("stream", pa.string()),
            ("record_key", pa.string()),
            ("received_at", TS),
            ("error", pa.string()),
            ("raw", JSON),
        ]
    ),
}


def _decoded(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    raise TypeError


ROW_LISTS = ("chats", "messages", "usage", "costs", "chat_members", "message_files", "rejected")


@dataclass
class Batch:
    """Rows per table; every child row carries the `chat_id` it belongs to. Rows flattened in
    DuckDB come as Arrow already (`arrow`, by table name), beside those built in Python."""

    chats: list[Row] = field(default_factory=list)
    messages: list[Row] = field(default_factory=list)
    arrow: dict[str, list[pa.Table]] = field(default_factory=dict)
    usage: list[Row] = field(default_factory=list)
    costs: list[Row] = field(default_factory=list)
    chat_members: list[Row] = field(default_factory=list)
    message_files: list[Row] = field(default_factory=list)
    rejected: list[Row] = field(default_factory=list)
    _tables: dict[str, pa.Table] | None = field(default=None, repr=False, compare=False)

    def extend(self, other: Batch) -> None:
        for name in ROW_LISTS:
            getattr(self, name).extend(getattr(other, name))
        for name, tables in other.arrow.items():
            self.arrow.setdefault(name, []).extend(tables)

    @property
    def chat_count(self) -> int:
        return len(self.chats) + sum(table.num_rows for table in self.arrow.get("chats", []))

    def _chat_times(self) -> dict[str, Any]:
        """Each chat's id and `updated_at`, wherever its row was built."""
        times = {row["chat_id"]: row["updated_at"] for row in self.chats}
        for table in self.arrow.get("chats", []):
            times.update(zip(table["chat_id"].to_pylist(), table["updated_at"].to_pylist(), strict=True))
        return times

    def merge(self, other: Batch) -> None:
        """Adds a later page's rows; a chat on both keeps only its newer copy, children and all.

        A chat updated while the pages were read shows up twice, once per place it held.
        """
        mine = self._chat_times()
        theirs = other._chat_times().items() if mine else ()
        older_here = {chat_id for chat_id, updated_at in theirs
                      if chat_id in mine and updated_at >= mine[chat_id]}
        older_there = {chat_id for chat_id, _ in theirs if chat_id in mine} - older_here
        if older_here:
            self._drop(older_here)
        if older_there:
            other._drop(older_there)
        self.extend(other)

    def _drop(self, chat_ids: set[str]) -> None:
        for name in ROW_LISTS[:-1]:
            setattr(self, name, [row for row in getattr(self, name) if row["chat_id"] not in chat_ids])
        if self.arrow:
            dropped = pa.array(sorted(chat_ids), pa.string())
            self.arrow = {name: [t.filter(pc.invert(pc.is_in(t["chat_id"], dropped))) for t in tables]
                          for name, tables in self.arrow.items()}

    def fingerprint_children(self) -> None:
        """Stamps the one chat of this batch with a hash of its child rows, so that a load can
        leave children alone when a chat comes back with the same ones (a lookback, a refresh,
        a change to the chat alone)."""
        children = [getattr(self, name) for name in ROW_LISTS[1:-1]]
        try:
            text = orjson.dumps(children, default=_decoded, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            text = repr(children).encode()
        self.chats[0]["children_fingerprint"] = hashlib.blake2b(text, digest_size=16).hexdigest()

    @property
    def raw_bytes(self) -> int:
        return (sum(len(row["raw"] or "") for row in self.chats)
                + sum(table["raw"].nbytes for table in self.arrow.get("chats", [])))

    def tables(self) -> dict[str, pa.Table]:
        """Every table's rows as Arrow, built once; the rows may not change after."""
        if self._tables is None:
            self._tables = {
                name: pa.Table.from_pylist(self.rejected if name == "rejected_records" else getattr(self, name),
                                           schema=schema)
                for name, schema in SCHEMAS.items()
            }
            for name, tables in self.arrow.items():
                self._tables[name] = pa.concat_tables([self._tables[name], *tables])
        return self._tables

    def table(self, name: str) -> pa.Table:
        return self.tables()[name]


_SLACK = pa.scalar(timedelta(days=1), pa.duration("us"))


def odd_message_times(batch: Batch) -> int:
    """Messages dated more than a day outside their chat's life (created to updated): most often
    seconds read as milliseconds upstream, which puts a message in 1970."""
    messages = batch.table("messages").select(["chat_id", "created_at"])
    if not messages.num_rows:
        return 0
    chats = batch.table("chats").select(["chat_id", "created_at", "updated_at"])
    joined = messages.join(chats.rename_columns(["chat_id", "chat_created", "chat_updated"]), "chat_id")
    early = pc.less(joined["created_at"], pc.subtract(joined["chat_created"], _SLACK))
    late = pc.greater(joined["created_at"], pc.add(joined["chat_updated"], _SLACK))
    return int(pc.sum(pc.cast(pc.or_kleene(early, late), pa.int64())).as_py() or 0)
