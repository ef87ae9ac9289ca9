"""Invent chats and their messages into warehouse rows.

The chat list gives the chat, its members and its inbox state; the messages endpoint gives the
messages, each with its parts (text, and files such as audio) and its token usage. pydantic
reads the chats; their messages, most of the rows, are flattened a page at a time in DuckDB
(`MESSAGES_SQL`), and by pydantic where they are not plain (`_plain_message`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from math import isfinite
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, StrictStr, field_validator

from extract.http import dumps
from transform import in_duckdb
from transform.batch import SCHEMAS, Batch, Row
from transform.common import Int64, Record, Timestamp, read_page, reason, rejected_row, unique_keys

SOURCE = "invent"


class Named(Record):
    id: str | None = None
    name: str | None = None


class Contact(Record):
    id: str | None = None
    name: str | None = None
    is_admin: bool | None = None


class ContactChannel(Record):
    """Either shape the API sends: the seed's `channel_type, channel_id, channel_name,
    channel_display_name` or the newer `type, user_id, username, name, email, phone`."""

    id: str | None = None
    channel_type: str | None = None
    channel_id: str | None = None
    channel_name: str | None = None
    channel_display_name: str | None = None
    type: str | None = None
    user_id: str | None = None
    username: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    contact: Contact | None = None


class Member(Record):
    id: str | None = None
    role: str | None = None
    user: Named | None = None
    contact_channel: ContactChannel | None = None


class InboxState(Record):
    state: str | None = None
    integration_id: str | None = None
    assistant_id: str | None = None
    ai_enabled: bool | None = None
    assigned_user: Named | None = None
    assigned_at: Timestamp | None = None


class Chat(Record):
    id: StrictStr = Field(min_length=1)
    org_id: str | None = None
    title: str | None = None
    model: str | None = None
    status: str | None = None
    visibility: str | None = None
    pinned: bool | None = None
    temporary: bool | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp
    members: list[Member] = Field(default_factory=list)
    state: InboxState | None = None

    @field_validator("members", mode="before")
    @classmethod
    def _null_list(cls, value: Any) -> Any:
        return [] if value is None else value


class File(Record):
    id: str | None = None
    file_filename: str | None = None
    file_size: Int64 | None = None
    file_mimetype: str | None = None
    file_url: str | None = None


class Part(Record):
    type: str | None = None
    text: Any = None  # read from text parts only; other types may carry anything
    audio: File | None = None
    start_timestamp: float | None = None
    end_timestamp: float | None = None


class Content(Record):
    role: str | None = None
    parts: list[Part] = Field(default_factory=list)

    @field_validator("parts", mode="before")
    @classmethod
    def _null_list(cls, value: Any) -> Any:
        return [] if value is None else value


class Usage(Record):
    """Older payloads say `cached_input_tokens`, newer ones `input_tokens_cache_read` and
    `input_tokens_cache_write` (and `turns`, kept in the message's raw)."""

    input_tokens: Int64 | None = None
    output_tokens: Int64 | None = None
    total_tokens: Int64 | None = None
    reasoning_tokens: Int64 | None = None
    cached_input_tokens: Int64 | None = None
    input_tokens_cache_read: Int64 | None = None
    input_tokens_cache_write: Int64 | None = None


class Message(Record):
    id: StrictStr = Field(min_length=1)
    role: str | None = None
    model: str | None = None
    status: str | None = None
    created_at: Timestamp | None = None
    messages: list[Content] = Field(default_factory=list)
    usage: Usage | None = None
    broadcast_id: str | None = None
    is_broadcast_message: bool | None = None

    @field_validator("messages", mode="before")
    @classmethod
    def _null_list(cls, value: Any) -> Any:
        return [] if value is None else value


def _chat_row(chat: Chat, text: bytes) -> Row:
    state = chat.state or InboxState()
    assigned = state.assigned_user or Named()
    return {
        "source": SOURCE,
        "chat_id": chat.id,
        "org_id": chat.org_id,
        "assistant_id": state.assistant_id,
        "title": chat.title,
        "status": chat.status,
        "created_at": chat.created_at,
        "updated_at": chat.updated_at,
        "cost": None,
        "model": chat.model,
        "visibility": chat.visibility,
        "is_pinned": chat.pinned,
        "is_temporary": chat.temporary,
        "inbox_state": state.state,
        "integration_id": state.integration_id,
        "is_ai_enabled": state.ai_enabled,
        "assigned_user_id": assigned.id,
        "assigned_user_name": assigned.name,
        "assigned_at": state.assigned_at,
        "raw": text,
    }


def _either(first: Any, second: Any) -> Any:
    """The seed shape's field where it is there, else the newer shape's."""
    return first if first is not None else second


def _member_rows(chat: Chat, batch: Batch) -> None:
    seen: set[str] = set()
    for index, member in enumerate(chat.members):
        channel = member.contact_channel or ContactChannel()
        contact = channel.contact or Contact()
        user = member.user or Named()
        member_id = member.id or user.id or channel.id or f"#{index}"
        if member_id in seen:
            continue
        seen.add(member_id)
        batch.chat_members.append(
            {
                "source": SOURCE,
                "chat_id": chat.id,
                "member_id": member_id,
                "role": member.role,
                "user_id": user.id,
                "user_name": user.name,
                "channel_type": _either(channel.channel_type, channel.type),
                "channel_id": _either(channel.channel_id, channel.user_id),
                "channel_name": _either(channel.channel_name, channel.username),
                "channel_display_name": _either(channel.channel_display_name, channel.name),
                "channel_email": channel.email,
                "channel_phone": channel.phone,
                "contact_id": contact.id,
                "contact_name": contact.name,
                "contact_is_admin": contact.is_admin,
            }
        )


# Part types whose `text` is the message's words; a part that names no type is taken as text.
TEXT_PARTS = frozenset({None, "text"})


def _message_rows(chat_id: str, messages: list[tuple[Message, bytes]], batch: Batch) -> None:
    earliest = datetime.min.replace(tzinfo=UTC)  # for messages without created_at, which sort last anyway
    ordered = sorted(messages, key=lambda m: (m[0].created_at is None, m[0].created_at or earliest, m[0].id))
    for seq, (message, raw) in enumerate(ordered):
        parts = [p for content in message.messages for p in content.parts]
        texts = [p.text for p in parts if p.type in TEXT_PARTS and isinstance(p.text, str) and p.text]
        batch.messages.append(
            {
                "source": SOURCE,
                "message_id": message.id,
                "chat_id": chat_id,
                "kind": "message",
                "seq": seq,
                "role": message.role,
                "content": "\n".join(texts) if texts else None,
                "created_at": message.created_at,
                "model": message.model,
                "status": message.status,
                "broadcast_id": message.broadcast_id,
                "is_broadcast": message.is_broadcast_message,
                "raw": raw,
            }
        )
        for part_seq, part in enumerate(parts):
            if part.audio is not None:
                batch.message_files.append(
                    {
                        "source": SOURCE,
                        "message_id": message.id,
                        "chat_id": chat_id,
                        "part_seq": part_seq,
                        "part_type": part.type,
                        "file_id": part.audio.id,
                        "file_name": part.audio.file_filename,
                        "file_size": part.audio.file_size,
                        "mime_type": part.audio.file_mimetype,
                        "file_url": part.audio.file_url,
                        "start_ms": part.start_timestamp,
                        "end_ms": part.end_timestamp,
                    }
                )
        if message.usage is not None:
            u = message.usage
            batch.usage.append(
                {
                    "source": SOURCE,
                    "message_id": message.id,
                    "chat_id": chat_id,
                    "created_at": message.created_at,
                    "model": message.model,
                    "input_tokens": u.input_tokens,
                    "output_tokens": u.output_tokens,
                    "total_tokens": u.total_tokens,
                    "reasoning_tokens": u.reasoning_tokens,
                    "cached_input_tokens": _either(u.cached_input_tokens, u.input_tokens_cache_read),
                    "cache_read_tokens": u.input_tokens_cache_read,
                    "cache_write_tokens": u.input_tokens_cache_write,
                }
            )


def _python_message_rows(chat_id: str, raw_messages: list[Any], received_at: datetime, rows: Batch) -> None:
    """A chat's messages read by pydantic: each unreadable one is rejected with its reason."""
    readable: dict[str, tuple[Message, bytes]] = {}
    for index, raw_message in enumerate(raw_messages):
        try:
            if not isinstance(raw_message, dict):
                raise ValueError(f"a message must be a JSON object, not {type(raw_message).__name__}")
            message = Message.model_validate(raw_message)
            text = dumps(raw_message)
        except Exception as exc:  # noqa: BLE001 - any unreadable message is kept, with why
            row = rejected_row(SOURCE, "messages", raw_message, index, reason(exc), received_at)
            row["record_key"] = f"{chat_id}/{row['record_key']}"
            rows.rejected.append(row)
            continue
        readable[message.id] = (message, text)
    _message_rows(chat_id, list(readable.values()), rows)


_TEXT = (str, type(None))
_FLAG = (bool, type(None))
_INT64 = range(-(2**63), 2**63)
_USAGE_FIELDS = tuple(Usage.model_fields)
# The times pydantic (`parse_time`) and DuckDB read alike; any other goes to pydantic. Years
# stop at 2999 so that no offset takes a time past Python's calendar.
_TIME = re.compile(r"[12]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
                   r"(T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)?)?")


def _count(value: Any) -> bool:
    return value is None or (type(value) is int and value in _INT64)


def _number(value: Any) -> bool:
    kind = type(value)
    return value is None or kind is int or (kind is float and isfinite(value))


def _plain_part(part: Any) -> bool:
    if type(part) is not dict:
        return False
    get = part.get
    if not (type(get("type")) in _TEXT and _number(get("start_timestamp")) and _number(get("end_timestamp"))):
        return False
    audio = get("audio")
    if audio is None:
        return True
    if type(audio) is not dict:
        return False
    get = audio.get
    return (type(get("id")) in _TEXT and type(get("file_filename")) in _TEXT and _count(get("file_size"))
            and type(get("file_mimetype")) in _TEXT and type(get("file_url")) in _TEXT)


def _plain_usage(usage: Any) -> bool:
    if type(usage) is not dict:
        return False
    for key in _USAGE_FIELDS:
        value = usage.get(key)
        if value is not None and (type(value) is not int or value not in _INT64):
            return False
    return True


def _plain_message(message: Any) -> bool:
    """Whether `Message` reads this message as it stands, so that MESSAGES_SQL may: an object
    whose text fields are text, numbers numbers and flags flags (pydantic would convert a
    numeric string, or refuse), with a time both read alike."""
    if type(message) is not dict:
        return False
    get = message.get
    message_id = get("id")
    if not (type(message_id) is str and message_id and type(get("role")) in _TEXT and type(get("model")) in _TEXT
            and type(get("status")) in _TEXT and type(get("broadcast_id")) in _TEXT
            and type(get("is_broadcast_message")) in _FLAG):
        return False
    created = get("created_at")
    if created is not None and not (type(created) is str and _TIME.fullmatch(created)):
        return False
    usage = get("usage")
    if usage is not None and not _plain_usage(usage):
        return False
    contents = get("messages")
    if contents is None:
        return True
    if type(contents) is not list:
        return False
    for content in contents:
        if type(content) is not dict or type(content.get("role")) not in _TEXT:
            return False
        parts = content.get("parts")
        if parts is not None and (type(parts) is not list or not all(map(_plain_part, parts))):
            return False
    return True


def _plain_texts(raw_messages: list[Any]) -> list[bytes] | None:
    """A chat's messages as JSON for MESSAGES_SQL, where all are plain; else None, which leaves
    them to pydantic (as does a message orjson cannot write: nested past 255 levels)."""
    if not all(map(_plain_message, raw_messages)):
        return None
    if len({message["id"] for message in raw_messages}) < len(raw_messages):
        return None  # an id twice: pydantic keeps the later copy, and rejects an earlier one it cannot read
    try:
        return [orjson.dumps(message) for message in raw_messages]
    except orjson.JSONEncodeError:
        return None


_FILE = {"id": "VARCHAR", "file_filename": "VARCHAR", "file_size": "BIGINT", "file_mimetype": "VARCHAR",
         "file_url": "VARCHAR"}
_PART = {"type": "VARCHAR", "text": "JSON", "audio": _FILE, "start_timestamp": "DOUBLE", "end_timestamp": "DOUBLE"}
_MESSAGE = orjson.dumps({
    "id": "VARCHAR", "role": "VARCHAR", "model": "VARCHAR", "status": "VARCHAR", "created_at": "VARCHAR",
    "broadcast_id": "VARCHAR", "is_broadcast_message": "BOOLEAN", "messages": [{"parts": [_PART]}],
    "usage": dict.fromkeys(_USAGE_FIELDS, "BIGINT"),
}).decode()

# The rows `_message_rows` builds, built in DuckDB from a page's messages (`page`: chat_id and
# the message's JSON, `_plain_texts`): the messages are read once (`READ_SQL`), then each
# table's rows are selected from them.
READ_SQL = f"""
select chat_id, raw, m, m.created_at::timestamptz as created_at,
       flatten(list_transform(coalesce(m.messages, []), lambda c: coalesce(c.parts, []))) as parts
from (select chat_id, raw, json_transform(raw, '{_MESSAGE}') as m from page)
"""
MESSAGES_SQL = {
    "messages": f"""
select '{SOURCE}' as source, m.id as message_id, chat_id, 'message' as kind,
       -- a message's place in its chat (rank: 1 + the page's messages of chats before it); one
       -- order over the page costs DuckDB a third of a window per chat
       (row_number() over (order by chat_id, created_at nulls last, m.id) - rank() over (order by chat_id))::integer
           as seq,
       m.role,
       nullif(array_to_string(list_transform(
           list_filter(parts, lambda p: coalesce(p.type, 'text') = 'text' and json_type(p.text) = 'VARCHAR'
                                        and (p.text ->> '$') <> ''),
           lambda p: p.text ->> '$'), chr(10)), '') as content,
       created_at, null::double as seconds_from_start, m.model, m.status, null::json as tool_calls,
       null::varchar as tool_call_id, null::varchar as name, m.broadcast_id,
       m.is_broadcast_message as is_broadcast, raw
from read
""",
    "message_files": f"""
select '{SOURCE}' as source, message_id, chat_id, part_seq::integer as part_seq, p.type as part_type,
       p.audio.id as file_id, p.audio.file_filename as file_name, p.audio.file_size, p.audio.file_mimetype as mime_type,
       p.audio.file_url, p.start_timestamp as start_ms, p.end_timestamp as end_ms
from (select chat_id, m.id as message_id, unnest(parts) as p, generate_subscripts(parts, 1) - 1 as part_seq from read)
where p.audio is not null
""",
    "usage": f"""
select '{SOURCE}' as source, m.id as message_id, chat_id, created_at, m.model,
       m.usage.input_tokens, m.usage.output_tokens, m.usage.total_tokens, m.usage.reasoning_tokens,
       coalesce(m.usage.cached_input_tokens, m.usage.input_tokens_cache_read) as cached_input_tokens,
       m.usage.input_tokens_cache_read as cache_read_tokens, m.usage.input_tokens_cache_write as cache_write_tokens
from read
where m.usage is not null
""",
}


def _message_rows_in_duckdb(texts: dict[str, list[bytes]]) -> dict[str, pa.Table] | None:
    """The rows MESSAGES_SQL makes of these chats' messages (chat id -> `_plain_texts`), by
    table; None where DuckDB cannot read the page (a date that is not one, memory), which
    leaves the page's messages to pydantic."""
    chat_ids = [chat_id for chat_id, messages in texts.items() for _ in messages]
    if not chat_ids:
        return {}
    page = pa.table({
        "chat_id": pa.array(chat_ids, pa.string()),
        "raw": pa.array([text for messages in texts.values() for text in messages], pa.binary()).cast(pa.string()),
    })
    try:
        tables = in_duckdb.queries({"read": READ_SQL}, MESSAGES_SQL, page=page)
    except duckdb.Error:
        return None
    return {name: table.cast(SCHEMAS[name]) for name, table in tables.items()}


def _fingerprint(texts: list[bytes], rows: Batch) -> str:
    """A hash of everything a chat's child rows are made of: its messages and its members."""
    digest = hashlib.blake2b(b"\n".join(texts), digest_size=16)
    digest.update(orjson.dumps(rows.chat_members))
    return digest.hexdigest()


def flatten(records: list[Any], messages: Mapping[str, list[Any]], received_at: datetime,
            org_id: str | None = None) -> Batch:
    """Chats with their messages into rows; an unreadable chat is rejected, and so is an
    unreadable message, while its chat loads. A chat that names no org belongs to the account's."""
    chats, rejected = read_page(Chat, records, SOURCE, received_at)
    batch = Batch(rejected=rejected)
    plain = ((chat.id, _plain_texts(messages.get(chat.id, []))) for chat, _, _, _ in chats)
    texts = {chat_id: chat_texts for chat_id, chat_texts in plain if chat_texts is not None}
    tables = _message_rows_in_duckdb(texts)
    loaded_from_duckdb: set[str] = set()
    for chat, raw, text, _ in chats:
        rows = Batch()
        read_in_duckdb = tables is not None and chat.id in texts
        try:
            rows.chats.append(_chat_row(chat, text))
            if rows.chats[0]["org_id"] is None:
                rows.chats[0]["org_id"] = org_id
            _member_rows(chat, rows)
            if read_in_duckdb:
                rows.chats[0]["children_fingerprint"] = _fingerprint(texts[chat.id], rows)
            else:
                _python_message_rows(chat.id, messages.get(chat.id, []), received_at, rows)
                rows.fingerprint_children()
        except Exception as exc:  # noqa: BLE001 - valid in shape, yet not storable
            batch.rejected.append(rejected_row(SOURCE, "chats", raw, 0, reason(exc), received_at))
            continue
        batch.extend(rows)
        if read_in_duckdb:
            loaded_from_duckdb.add(chat.id)
    if tables is not None:
        kept = pa.array(sorted(loaded_from_duckdb), pa.string())
        for name, table in tables.items():
            if table.num_rows:
                if loaded_from_duckdb != texts.keys():  # a chat refused after its messages were read
                    table = table.filter(pc.is_in(table["chat_id"], kept))
                batch.arrow.setdefault(name, []).append(table)
    unique_keys(batch.rejected)
    return batch
