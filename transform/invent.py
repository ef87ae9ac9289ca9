"""Invent chats and their messages into warehouse rows.

The chat list gives the chat, its members and its inbox state; the messages endpoint gives the
messages, each with its parts (text, and files such as audio) and its token usage.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, StrictStr, field_validator

from extract.http import dumps
from transform.batch import Batch, Row
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


def flatten(records: list[Any], messages: Mapping[str, list[Any]], received_at: datetime,
            org_id: str | None = None) -> Batch:
    """Chats with their messages into rows; an unreadable chat is rejected, and so is an
    unreadable message, while its chat loads. A chat that names no org belongs to the account's."""
    chats, rejected = read_page(Chat, records, SOURCE, received_at)
    batch = Batch(rejected=rejected)
    for chat, raw, text, _ in chats:
        rows = Batch()
        try:
            rows.chats.append(_chat_row(chat, text))
            if rows.chats[0]["org_id"] is None:
                rows.chats[0]["org_id"] = org_id
            _member_rows(chat, rows)
            readable: dict[str, tuple[Message, bytes]] = {}
            for index, raw_message in enumerate(messages.get(chat.id, [])):
                try:
                    if not isinstance(raw_message, dict):
                        raise ValueError(f"a message must be a JSON object, not {type(raw_message).__name__}")
                    message = Message.model_validate(raw_message)
                    text = dumps(raw_message)
                except Exception as exc:  # noqa: BLE001 - any unreadable message is kept, with why
                    row = rejected_row(SOURCE, "messages", raw_message, index, reason(exc), received_at)
                    row["record_key"] = f"{chat.id}/{row['record_key']}"
                    rows.rejected.append(row)
                    continue
                readable[message.id] = (message, text)
            _message_rows(chat.id, list(readable.values()), rows)
            rows.fingerprint_children()
        except Exception as exc:  # noqa: BLE001 - valid in shape, yet not storable
            batch.rejected.append(rejected_row(SOURCE, "chats", raw, 0, reason(exc), received_at))
            continue
        batch.extend(rows)
    unique_keys(batch.rejected)
    return batch
