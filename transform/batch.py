"""The rows one page of records becomes: the hand-off from transform to load.

Columns are typed here once, as Arrow schemas, so that a page reaches DuckDB as a few columnar
tables rather than row by row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    "chats": pa.schema(
        [
            ("source", pa.string()),
            ("chat_id", pa.string()),
            ("org_id", pa.string()),
            ("assistant_id", pa.string()),
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
            ("raw", pa.string()),
        ]
    ),
    "messages": pa.schema(
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
        ]
    ),
    "usage": pa.schema(
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
    "costs": pa.schema(
        [
            ("source", pa.string()),
            ("chat_id", pa.string()),
            ("seq", pa.int32()),
            ("type", pa.string()),
            ("model", pa.string()),
            ("provider", pa.string()),
            ("prompt_tokens", pa.int64()),
            ("completion_tokens", pa.int64()),
            ("cost", pa.float64()),
            ("raw", pa.string()),
        ]
    ),
    "chat_members": pa.schema(
        [
            ("source", pa.string()),
            ("chat_id", pa.string()),
            ("member_id", pa.string()),
            ("role", pa.string()),
            ("user_id", pa.string()),
            ("user_name", pa.string()),
            ("channel_type", pa.string()),
            ("channel_id", pa.string()),
            ("contact_id", pa.string()),
            ("contact_name", pa.string()),
        ]
    ),
    "message_files": pa.schema(
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
    "rejected_records": pa.schema(
        [
            ("source", pa.string()),
            ("stream", pa.string()),
            ("record_key", pa.string()),
            ("received_at", TS),
            ("error", pa.string()),
            ("raw", pa.string()),
        ]
    ),
}


@dataclass
class Batch:
    """Rows per table; every child row carries the `chat_id` it belongs to."""

    chats: list[dict] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    usage: list[dict] = field(default_factory=list)
    costs: list[dict] = field(default_factory=list)
    chat_members: list[dict] = field(default_factory=list)
    message_files: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)

    def extend(self, other: "Batch") -> None:
        for name in ("chats", "messages", "usage", "costs", "chat_members", "message_files", "rejected"):
            getattr(self, name).extend(getattr(other, name))

    def table(self, name: str) -> pa.Table:
        rows = self.rejected if name == "rejected_records" else getattr(self, name)
        return pa.Table.from_pylist(rows, schema=SCHEMAS[name])
