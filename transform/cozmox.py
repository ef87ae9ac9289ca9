"""Cozmox chats, as `GET /chat` returns them, into warehouse rows.

A chat carries its messages, output, input and costs inline; messages have no id of their own,
so a message is named by its chat, its list and its position (docs/schema.md, messages).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import Field, StrictStr, field_validator

from extract.http import dumps
from transform.batch import Batch
from transform.common import (
    Int64,
    Record,
    Timestamp,
    as_received,
    epoch_ms,
    read_page,
    reason,
    rejected_row,
    unique_keys,
)

SOURCE = "cozmox"


class Turn(Record):
    """An entry of `messages`, `output` or a list `input`, in either of the shapes the API
    sends: a call transcript's `{role, message, time, secondsFromStart}` or an OpenAI-style
    `{role, content}`, where an assistant may call tools (`tool_calls`, then perhaps no
    content) and a `tool` entry answers one (`tool_call_id`). `refusal` and `metadata` stay
    in the chat's raw."""

    role: str | None = None
    message: str | None = None
    content: Any = None  # a string, or structured parts in newer payloads
    time: float | None = None
    seconds_from_start: float | None = Field(None, alias="secondsFromStart")
    tool_calls: Any = None  # stored as sent, whatever its shape
    tool_call_id: str | None = None
    name: str | None = None


class CostEntry(Record):
    """`{type: "model", model, promptTokens, completionTokens, cachedPromptTokens?,
    reasoningTokens?, cost}`, `{type: "chat", cost}`, or another type with fields of its own."""

    type: str | None = None
    model: dict[str, Any] | str | None = None
    prompt_tokens: Int64 | None = Field(None, alias="promptTokens")
    completion_tokens: Int64 | None = Field(None, alias="completionTokens")
    cached_prompt_tokens: Int64 | None = Field(None, alias="cachedPromptTokens")
    reasoning_tokens: Int64 | None = Field(None, alias="reasoningTokens")
    cost: float | None = None


# The columns of `chats` read from the embedded assistant, and where. The rest of it, its
# prompts, tools and settings, is most of a chat's bytes and is kept in `raw` alone.
ASSISTANT_COLUMNS: dict[str, tuple[str, str]] = {
    "assistant_model_provider": ("model", "provider"),
    "assistant_model": ("model", "model"),
    "assistant_voice_provider": ("voice", "provider"),
    "assistant_voice_id": ("voice", "voiceId"),
    "assistant_transcriber_provider": ("transcriber", "provider"),
}


def _flattened_parts(assistant: dict[str, Any]) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    for key, name in ASSISTANT_COLUMNS.values():
        if key in assistant:
            part = assistant[key]
            if not isinstance(part, dict):
                parts[key] = part
            elif name in part:
                parts.setdefault(key, {})[name] = part[name]
    return parts


class Chat(Record):
    id: StrictStr = Field(min_length=1)
    org_id: str | None = Field(None, alias="orgId")
    created_at: Timestamp | None = Field(None, alias="createdAt")
    updated_at: Timestamp = Field(alias="updatedAt")
    assistant_id: str | None = Field(None, alias="assistantId")
    squad_id: str | None = Field(None, alias="squadId")
    assistant: dict[str, Any] | None = None
    name: str | None = None
    status: str | None = None
    session_id: str | None = Field(None, alias="sessionId")
    previous_chat_id: str | None = Field(None, alias="previousChatId")
    input: str | list[Turn] | None = None
    messages: list[Turn] | None = None
    output: list[Turn] | None = None
    costs: list[CostEntry] | None = None
    cost: float | None = None

    @field_validator("messages", "output", "costs", mode="before")
    @classmethod
    def _null_list(cls, value: Any) -> Any:
        return [] if value is None else value

    @classmethod
    def stored_form(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """The chat with its assistant cut to the parts flattened: the assistant is most of a
        chat's bytes, and a group's chats stay decoded until their rows are built."""
        assistant = raw.get("assistant")
        return {**raw, "assistant": _flattened_parts(assistant)} if isinstance(assistant, dict) else raw


def _nested(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj if isinstance(obj, (str, int, float)) and not isinstance(obj, bool) else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _content(value: Any) -> str | bytes | None:
    """Text as sent; anything else as its JSON, which Arrow takes as text."""
    if value is None or isinstance(value, str):
        return value
    return dumps(value)


def chat_rows(chat: Chat, raw: dict[str, Any], text: bytes, batch: Batch) -> None:
    cid = chat.id
    assistant = chat.assistant or {}
    batch.chats.append(
        {
            "source": SOURCE,
            "chat_id": cid,
            "org_id": chat.org_id,
            "assistant_id": chat.assistant_id,
            "squad_id": chat.squad_id,
            "title": chat.name,
            "status": chat.status,
            "created_at": chat.created_at,
            "updated_at": chat.updated_at,
            "cost": chat.cost,
            "session_id": chat.session_id,
            "previous_chat_id": chat.previous_chat_id,
            **{column: _text(_nested(assistant, *path)) for column, path in ASSISTANT_COLUMNS.items()},
            "raw": text,
        }
    )
    lists: list[tuple[str, list[Turn]]] = [("message", chat.messages or []), ("output", chat.output or [])]
    if isinstance(chat.input, list):
        lists.append(("input", chat.input))
    for kind, turns in lists:
        for seq, turn in enumerate(turns):
            calls = turn.tool_calls
            batch.messages.append(
                {
                    "source": SOURCE,
                    "message_id": f"{cid}:{kind}:{seq}",
                    "chat_id": cid,
                    "kind": kind,
                    "seq": seq,
                    "role": turn.role,
                    "content": turn.message if turn.message is not None else _content(turn.content),
                    "created_at": epoch_ms(turn.time),
                    "seconds_from_start": turn.seconds_from_start,
                    "tool_calls": None if calls is None else dumps(calls),
                    "tool_call_id": turn.tool_call_id,
                    "name": turn.name,
                }
            )
    for seq, entry in enumerate(chat.costs or []):
        model = entry.model
        model_name = _text(model.get("model")) if isinstance(model, dict) else model
        provider = _text(model.get("provider")) if isinstance(model, dict) else None
        batch.costs.append(
            {
                "source": SOURCE,
                "chat_id": cid,
                "seq": seq,
                "type": entry.type,
                "model": model_name,
                "provider": provider,
                "prompt_tokens": entry.prompt_tokens,
                "completion_tokens": entry.completion_tokens,
                "cached_prompt_tokens": entry.cached_prompt_tokens,
                "reasoning_tokens": entry.reasoning_tokens,
                "cost": entry.cost,
                "raw": dumps(raw["costs"][seq]),
            }
        )
        if entry.prompt_tokens is not None or entry.completion_tokens is not None:
            total = (entry.prompt_tokens or 0) + (entry.completion_tokens or 0)
            batch.usage.append(
                {
                    "source": SOURCE,
                    "message_id": f"{cid}:cost:{seq}",
                    "chat_id": cid,
                    "created_at": chat.created_at or chat.updated_at,
                    "model": model_name,
                    "input_tokens": entry.prompt_tokens,
                    "output_tokens": entry.completion_tokens,
                    "total_tokens": total,
                    "reasoning_tokens": entry.reasoning_tokens,
                    "cached_input_tokens": entry.cached_prompt_tokens,
                }
            )


def flatten(records: list[Any], children: Mapping[str, list[Any]], received_at: datetime,
            org_id: str | None = None) -> Batch:
    """One page of chats (as JSON texts, or decoded) into rows; a chat that cannot be read
    becomes a rejected record. A chat's messages come inside it, so `children` is unused; a
    chat that names no org belongs to the account's."""
    chats, rejected = read_page(Chat, records, SOURCE, received_at)
    batch = Batch(rejected=rejected)
    for chat, raw, text, index in chats:
        rows = Batch()
        try:
            chat_rows(chat, raw, text, rows)
            if rows.chats[0]["org_id"] is None:
                rows.chats[0]["org_id"] = org_id
            rows.fingerprint_children()
        except Exception as exc:  # noqa: BLE001 - valid in shape, yet not storable
            whole = as_received(text)[0]  # `raw` is the chat as held, without most of its assistant
            batch.rejected.append(rejected_row(SOURCE, "chats", whole, index, reason(exc), received_at))
            continue
        batch.extend(rows)
    unique_keys(batch.rejected)
    return batch
