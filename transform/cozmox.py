"""Cozmox chats, as `GET /chat` returns them, into warehouse rows.

A chat carries its messages, output, input and costs inline; messages have no id of their own,
so a message is named by its chat, its list and its position (docs/schema.md, messages).
A plain chat, one whose fields already have the types the warehouse wants, is checked by msgspec
and flattened whole by SQL in DuckDB, a page at a time; any other is read by pydantic, which
converts what it can and refuses the rest with its reasons.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, NamedTuple

import duckdb
import msgspec
import orjson
import pyarrow as pa
from pydantic import Field, StrictStr, field_validator

from extract.cozmox import chat_key
from extract.http import dumps
from extract.times import parse_time
from transform import in_duckdb
from transform.batch import SCHEMAS, TS, Batch
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
    """A chat as pydantic reads it: for the chats that are not plain, or whose page DuckDB
    could not read."""

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


def turn_rows(chat: Chat, batch: Batch) -> None:
    """The rows of a chat's turns, as MESSAGES_SQL makes them of a plain chat."""
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


def chat_rows(chat: Chat, raw: dict[str, Any], text: bytes, batch: Batch) -> None:
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


# -- plain chats, flattened whole in DuckDB ---------------------------------------------------
#
# A chat whose every flattened field already has the type its model wants is read by msgspec,
# which checks those types in C and skips the rest of the chat unparsed, and all its rows are
# made by SQL from its text. A chat that is not plain (a number where text belongs, a numeric
# string, a field by its snake-case name, which pydantic reads too) is read by pydantic, which
# converts or refuses it as it always has. An object that names a field twice is read by SQL as
# DuckDB reads it, first copy first, as queries over `raw` in the warehouse read it too.

_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
# What `_nested` reads as no value at all; a number would be written by Python's `str`.
_NotANumber = str | bool | list[Any] | dict[str, Any] | None
_UNSET = msgspec.UNSET


class _PlainTurn(msgspec.Struct):
    role: str | None = None
    message: str | None = None
    content: Any = None
    time: float | None = None
    secondsFromStart: float | None = None
    seconds_from_start: msgspec.UnsetType = _UNSET
    tool_calls: Any = None
    tool_call_id: str | None = None
    name: str | None = None


class _PlainModel(msgspec.Struct):
    model: str | None = None
    provider: str | None = None


class _PlainCost(msgspec.Struct):
    type: str | None = None
    model: _PlainModel | str | None = None
    promptTokens: _Int64 | None = None
    completionTokens: _Int64 | None = None
    cachedPromptTokens: _Int64 | None = None
    reasoningTokens: _Int64 | None = None
    cost: float | None = None
    prompt_tokens: msgspec.UnsetType = _UNSET
    completion_tokens: msgspec.UnsetType = _UNSET
    cached_prompt_tokens: msgspec.UnsetType = _UNSET
    reasoning_tokens: msgspec.UnsetType = _UNSET


class _PlainPart(msgspec.Struct):
    provider: _NotANumber = None
    model: _NotANumber = None
    voiceId: _NotANumber = None


class _PlainAssistant(msgspec.Struct):
    model: _PlainPart | str | bool | list[Any] | None = None
    voice: _PlainPart | str | bool | list[Any] | None = None
    transcriber: _PlainPart | str | bool | list[Any] | None = None


class _PlainChat(msgspec.Struct):
    id: Annotated[str, msgspec.Meta(min_length=1)]
    updatedAt: str
    createdAt: str | None = None
    orgId: str | None = None
    assistantId: str | None = None
    squadId: str | None = None
    assistant: _PlainAssistant | None = None
    name: str | None = None
    status: str | None = None
    sessionId: str | None = None
    previousChatId: str | None = None
    input: str | list[_PlainTurn] | None = None
    messages: list[_PlainTurn] | None = None
    output: list[_PlainTurn] | None = None
    costs: list[_PlainCost] | None = None
    cost: float | None = None
    org_id: msgspec.UnsetType = _UNSET
    created_at: msgspec.UnsetType = _UNSET
    updated_at: msgspec.UnsetType = _UNSET
    assistant_id: msgspec.UnsetType = _UNSET
    squad_id: msgspec.UnsetType = _UNSET
    session_id: msgspec.UnsetType = _UNSET
    previous_chat_id: msgspec.UnsetType = _UNSET


_PLAIN = msgspec.json.Decoder(_PlainChat)


class _Plain(NamedTuple):
    text: bytes
    chat_id: str
    updated_at: datetime
    created_at: datetime | None


def _plain_chat(text: bytes) -> _Plain | None:
    """A plain chat's text, id and times, read as pydantic reads them; None for any other."""
    try:
        chat = _PLAIN.decode(text)
        created = None if chat.createdAt is None else parse_time(chat.createdAt)
        return _Plain(text, chat.id, parse_time(chat.updatedAt), created)
    except (msgspec.DecodeError, RecursionError, ValueError):
        return None


def _key_of(record: Any) -> str | None:
    """The id a record that is not plain says it has, if it is text."""
    key = record.get("id") if isinstance(record, dict) else chat_key(record).id
    return key if isinstance(key, str) else None


_TURN = orjson.dumps({"role": "VARCHAR", "message": "VARCHAR", "content": "JSON", "time": "DOUBLE",
                      "secondsFromStart": "DOUBLE", "tool_calls": "JSON", "tool_call_id": "VARCHAR",
                      "name": "VARCHAR"}).decode()
_COST = orjson.dumps({"type": "VARCHAR", "model": "JSON", "promptTokens": "BIGINT", "completionTokens": "BIGINT",
                      "cachedPromptTokens": "BIGINT", "reasoningTokens": "BIGINT", "cost": "DOUBLE"}).decode()
_PART = '{"provider": "JSON", "model": "JSON", "voiceId": "JSON"}'
_SHAPE = (f'{{"orgId": "VARCHAR", "assistantId": "VARCHAR", "squadId": "VARCHAR", "name": "VARCHAR", '
          f'"status": "VARCHAR", "sessionId": "VARCHAR", "previousChatId": "VARCHAR", "cost": "DOUBLE", '
          f'"assistant": {{"model": {_PART}, "voice": {_PART}, "transcriber": {_PART}}}, '
          f'"costs": ["JSON"], "messages": [{_TURN}], "output": [{_TURN}], "input": [{_TURN}]}}')


def _assistant_text(part: str) -> str:
    return f"case when json_type({part}) = 'VARCHAR' then {part} ->> '$' end"


# `page` holds each plain chat's id, times, the account's org and the chat's text.
READ_SQL = f"""
select chat_id, created_at, updated_at, account_org_id, text,
       json_transform(text, '{_SHAPE}') as j
from page
"""
_CHAT_COLUMNS = {
    "source": f"'{SOURCE}'", "chat_id": "chat_id", "org_id": "coalesce(j.orgId, account_org_id)",
    "assistant_id": "j.assistantId", "squad_id": "j.squadId", "title": "j.name", "status": "j.status",
    "created_at": "created_at", "updated_at": "updated_at", "cost": "j.cost", "session_id": "j.sessionId",
    "previous_chat_id": "j.previousChatId",
    **{column: _assistant_text(f"j.assistant.{key}.{name}") for column, (key, name) in ASSISTANT_COLUMNS.items()},
    # a hash of what the chat's child rows are made of: its turns, its costs, its usage rows' time
    "children_fingerprint": "hash(j.messages, j.output, j.input, j.costs, coalesce(created_at, updated_at))::varchar",
    "raw": "text",  # typed JSON by Arrow: DuckDB's cast would parse it again
}
_NULL = {pa.string(): "null::varchar", pa.bool_(): "null::boolean", TS: "null::timestamptz"}
CHATS_SQL = "select " + ", ".join(f"{_CHAT_COLUMNS.get(column.name) or _NULL[column.type]} as {column.name}"
                                  for column in SCHEMAS["chats"]) + " from read"
# Each cost entry of the page, read once for both costs and usage.
COST_ENTRIES_SQL = f"""
select chat_id, seq::integer as seq, cost_text, c,
       case json_type(c.model) when 'VARCHAR' then c.model ->> '$'
                               when 'OBJECT' then c.model ->> '$.model' end as model,
       case json_type(c.model) when 'OBJECT' then c.model ->> '$.provider' end as provider,
       coalesce(created_at, updated_at) as usage_at
from (select *, json_transform(cost_text, '{_COST}') as c
      from (select chat_id, created_at, updated_at, unnest(j.costs) as cost_text,
                   generate_subscripts(j.costs, 1) - 1 as seq from read where j.costs is not null))
"""
COSTS_SQL = f"""
select '{SOURCE}' as source, chat_id, seq, c.type, model, provider, c.promptTokens as prompt_tokens,
       c.completionTokens as completion_tokens, c.cachedPromptTokens as cached_prompt_tokens,
       c.reasoningTokens as reasoning_tokens, c.cost, cost_text as raw
from cost_entries
"""
USAGE_SQL = f"""
select '{SOURCE}' as source, chat_id || ':cost:' || seq as message_id, chat_id, usage_at as created_at, model,
       c.promptTokens as input_tokens, c.completionTokens as output_tokens,
       coalesce(c.promptTokens, 0) + coalesce(c.completionTokens, 0) as total_tokens,
       c.reasoningTokens as reasoning_tokens, c.cachedPromptTokens as cached_input_tokens,
       null::bigint as cache_read_tokens, null::bigint as cache_write_tokens
from cost_entries
where c.promptTokens is not null or c.completionTokens is not null
"""
# The rows `turn_rows` builds.
MESSAGES_SQL = f"""
with entries as (
    select chat_id, kind, unnest(list) as e, generate_subscripts(list, 1) - 1 as seq
    from (select chat_id, 'message' as kind, j.messages as list from read
          union all select chat_id, 'output', j.output from read
          union all select chat_id, 'input', j.input from read)
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
_SELECTS = {"chats": CHATS_SQL, "costs": COSTS_SQL, "usage": USAGE_SQL, "messages": MESSAGES_SQL}


def _rows_in_duckdb(plain: list[_Plain], org_id: str | None) -> dict[str, pa.Table] | None:
    """Every row of these plain chats, made by SQL; None where DuckDB cannot read the page
    (nesting, memory, an overflow), which leaves its chats to pydantic."""
    texts, chat_ids, updated, created = zip(*plain, strict=True)
    page = pa.table({
        "chat_id": pa.array(chat_ids, pa.string()),
        "created_at": pa.array(created, TS),
        "updated_at": pa.array(updated, TS),
        "account_org_id": pa.array([org_id] * len(plain), pa.string()),
        "text": pa.array(texts, pa.binary()).cast(pa.string()),
    })
    try:
        tables = in_duckdb.queries({"read": READ_SQL, "cost_entries": COST_ENTRIES_SQL}, _SELECTS, page=page)
        return {name: table.cast(SCHEMAS[name]) for name, table in tables.items()}
    except (duckdb.Error, pa.ArrowInvalid):
        return None


def _flatten_in_python(records: list[Any], positions: list[int], received_at: datetime,
                       org_id: str | None) -> Batch:
    chats, rejected = read_page(Chat, records, SOURCE, received_at, positions=positions)
    batch = Batch(rejected=rejected)
    for chat, raw, text, index in chats:
        rows = Batch()
        try:
            turn_rows(chat, rows)
            chat_rows(chat, raw, text, rows)
            if rows.chats[0]["org_id"] is None:
                rows.chats[0]["org_id"] = org_id
            rows.fingerprint_children()
        except Exception as exc:  # noqa: BLE001 - valid in shape, yet not storable
            whole = as_received(text)[0]  # `raw` is the chat as held, without most of its assistant
            batch.rejected.append(rejected_row(SOURCE, "chats", whole, index, reason(exc), received_at))
            continue
        batch.extend(rows)
    return batch


def flatten(records: list[Any], children: Mapping[str, list[Any]], received_at: datetime,
            org_id: str | None = None) -> Batch:
    """One page of chats (as JSON texts, or decoded) into rows; a chat that cannot be read
    becomes a rejected record. A chat's messages come inside it, so `children` is unused; a
    chat that names no org belongs to the account's. Plain chats are flattened in DuckDB, the
    rest by pydantic; a page that names a chat twice is read by pydantic alone, which keeps the
    newest copy."""
    plain: list[_Plain] = []
    rest: list[int] = []
    for index, record in enumerate(records):
        read = _plain_chat(record) if isinstance(record, bytes) else None
        if read is None:
            rest.append(index)
        else:
            plain.append(read)
    ids = {chat.chat_id for chat in plain}
    named_once = len(ids) == len(plain) and not ids & {_key_of(records[i]) for i in rest}
    tables = _rows_in_duckdb(plain, org_id) if plain and named_once else None
    if tables is None:
        rest = list(range(len(records)))
    batch = _flatten_in_python([records[i] for i in rest], rest, received_at, org_id)
    if tables is not None:
        for name, table in tables.items():
            batch.arrow.setdefault(name, []).append(table)
    unique_keys(batch.rejected)
    return batch
