"""Cozmox chats, as `GET /chat` returns them, into warehouse rows.

A chat carries its messages, output, input and costs inline; messages have no id of their own,
so a message is named by its chat, its list and its position (docs/schema.md, messages).
pydantic reads a chat less its turns; the turns, most of its rows, are flattened a page at a
time in DuckDB (`TURNS_SQL`), and by pydantic where they are not plain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, StrictStr, field_validator

from extract.http import dumps
from transform import in_duckdb
from transform.batch import SCHEMAS, Batch
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


class ChatHead(Record):
    """A chat as Python reads it: its turns are flattened in DuckDB (TURNS_SQL)."""

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
    input: str | list[Any] | None = None
    messages: list[Any] | None = None
    output: list[Any] | None = None
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

    @classmethod
    def read(cls, kept: dict[str, Any]) -> Any:
        """A chat whose turns are not all plain is read whole, as a `Chat`: one pydantic refuses
        is refused here, with its reason, before a later copy on the page can replace it."""
        if cls is ChatHead and not _plain_turns(kept):
            return Chat.model_validate(kept)
        return super().read(kept)


class Chat(ChatHead):
    """A chat with its turns read by pydantic as well: for the chats whose turns are not plain
    (`_plain`), or whose page DuckDB could not read."""

    input: str | list[Turn] | None = None
    messages: list[Turn] | None = None
    output: list[Turn] | None = None


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


def turn_rows(chat: Chat, batch: Batch) -> None:
    """The rows of a chat's turns, read by pydantic: for the chats TURNS_SQL leaves to Python."""
    cid = chat.id
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


def chat_rows(chat: ChatHead, raw: dict[str, Any], text: bytes, batch: Batch) -> None:
    """The chat's row, its costs and its usage: all but its turns."""
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


_ENTRY = orjson.dumps({"role": "VARCHAR", "message": "VARCHAR", "content": "JSON", "time": "DOUBLE",
                       "secondsFromStart": "DOUBLE", "tool_calls": "JSON", "tool_call_id": "VARCHAR",
                       "name": "VARCHAR"}).decode()
_LISTS = f'{{"messages": [{_ENTRY}], "output": [{_ENTRY}], "input": [{_ENTRY}]}}'

# The rows `turn_rows` builds, built in DuckDB from each chat's `turns` text (see `_turns`).
TURNS_SQL = f"""
with lists as (
    select chat_id, json_transform(turns, '{_LISTS}') as lists from page
), entries as (
    select chat_id, kind, unnest(list) as e, generate_subscripts(list, 1) - 1 as seq
    from (select chat_id, 'message' as kind, lists.messages as list from lists
          union all select chat_id, 'output', lists.output from lists
          union all select chat_id, 'input', lists.input from lists)
    where list is not null
)
select '{SOURCE}' as source, chat_id || ':' || kind || ':' || seq as message_id, chat_id, kind, seq::integer as seq,
       e.role,
       coalesce(e.message, case json_type(e.content) when 'VARCHAR' then e.content ->> '$'
                                                     when 'NULL' then null else e.content::varchar end) as content,
       -- as epoch_ms: None outside Python's calendar (years 1 to 9999)
       case when e.time >= -62135596800000 and e.time < 253402300800000
            then make_timestamp(round(e.time * 1000)::bigint)::timestamptz end as created_at,
       e.secondsFromStart as seconds_from_start, null::varchar as model, null::varchar as status,
       case when json_type(e.tool_calls) <> 'NULL' then e.tool_calls end as tool_calls, e.tool_call_id, e.name,
       null::varchar as broadcast_id, null::boolean as is_broadcast, null::json as raw
from entries
"""

_TEXT = (str, type(None))
_NUMBER = (int, float, type(None))  # not bool, whose type is its own


def _plain(entry: Any) -> bool:
    """Whether `Turn` reads this entry as it stands, so that TURNS_SQL may: an object whose text
    fields are text and numbers numbers (pydantic would convert a numeric string, or refuse),
    without the snake-case name of `secondsFromStart`, which pydantic reads too."""
    if type(entry) is not dict or "seconds_from_start" in entry:
        return False
    get = entry.get
    return (type(get("role")) in _TEXT and type(get("message")) in _TEXT and type(get("tool_call_id")) in _TEXT
            and type(get("name")) in _TEXT and type(get("time")) in _NUMBER
            and type(get("secondsFromStart")) in _NUMBER)


def _plain_turns(raw: dict[str, Any]) -> bool:
    lists = (raw.get("messages"), raw.get("output"), raw.get("input"))
    return all(_plain(entry) for turns in lists if isinstance(turns, list) for entry in turns)


def _turns(raw: dict[str, Any]) -> bytes | None:
    """A chat's turn lists as JSON for TURNS_SQL; None where orjson cannot write them (an
    integer past 64 bits, nesting past 255 levels), which leaves them to pydantic."""
    try:
        return orjson.dumps({"messages": raw.get("messages"), "output": raw.get("output"), "input": raw.get("input")})
    except orjson.JSONEncodeError:
        return None


def _children_fingerprint(turns: bytes, chat: ChatHead, raw: dict[str, Any]) -> str:
    """A hash of everything a chat's child rows are made of: its turns, its costs, and the time
    its usage rows carry."""
    digest = hashlib.blake2b(turns, digest_size=16)
    digest.update(dumps([raw.get("costs"), chat.created_at or chat.updated_at]))
    return digest.hexdigest()


def _turn_rows_in_duckdb(turns: dict[str, bytes]) -> pa.Table | None:
    """The message rows TURNS_SQL makes of these chats' turns (chat id -> `_turns` text); None
    where there are none to make, or where DuckDB cannot read the page (nesting, memory), which
    leaves the page's turns to pydantic."""
    if not turns:
        return None
    page = pa.table({"chat_id": pa.array(list(turns), pa.string()),
                     "turns": pa.array(list(turns.values()), pa.binary()).cast(pa.string())})
    try:
        return in_duckdb.query(TURNS_SQL, page=page).cast(SCHEMAS["messages"])
    except duckdb.Error:
        return None


def flatten(records: list[Any], children: Mapping[str, list[Any]], received_at: datetime,
            org_id: str | None = None) -> Batch:
    """One page of chats (as JSON texts, or decoded) into rows; a chat that cannot be read
    becomes a rejected record. A chat's messages come inside it, so `children` is unused; a
    chat that names no org belongs to the account's."""
    chats, rejected = read_page(ChatHead, records, SOURCE, received_at)
    batch = Batch(rejected=rejected)
    plain = ((chat.id, _turns(raw)) for chat, raw, _, _ in chats if not isinstance(chat, Chat))
    texts = {chat_id: text for chat_id, text in plain if text is not None}
    turns_table = _turn_rows_in_duckdb(texts)
    loaded_from_duckdb: set[str] = set()
    for chat, raw, text, index in chats:
        rows = Batch()
        read_in_duckdb = turns_table is not None and chat.id in texts
        try:
            if not read_in_duckdb:
                turn_rows(chat if isinstance(chat, Chat) else Chat.model_validate(raw), rows)
            chat_rows(chat, raw, text, rows)
            if rows.chats[0]["org_id"] is None:
                rows.chats[0]["org_id"] = org_id
            turns_text = texts.get(chat.id)
            if turns_text is None:
                rows.fingerprint_children()
            else:
                rows.chats[0]["children_fingerprint"] = _children_fingerprint(turns_text, chat, raw)
        except Exception as exc:  # noqa: BLE001 - valid in shape, yet not storable
            whole = as_received(text)[0]  # `raw` is the chat as held, without most of its assistant
            batch.rejected.append(rejected_row(SOURCE, "chats", whole, index, reason(exc), received_at))
            continue
        batch.extend(rows)
        if read_in_duckdb:
            loaded_from_duckdb.add(chat.id)
    if turns_table is not None and turns_table.num_rows:
        if loaded_from_duckdb != texts.keys():  # a chat refused after its turns were read
            kept = pa.array(sorted(loaded_from_duckdb), pa.string())
            turns_table = turns_table.filter(pc.is_in(turns_table["chat_id"], kept))
        batch.arrow.setdefault("messages", []).append(turns_table)
    unique_keys(batch.rejected)
    return batch
