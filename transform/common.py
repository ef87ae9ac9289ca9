"""What both sources' transforms share: timestamps, the record model base, rejects."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from extract.http import dumps, lenient_loads
from extract.times import parse_time
from transform.batch import Row

# Python's datetime stops at year 9999 and DuckDB's TIMESTAMPTZ far beyond; a timestamp past
# either is not a time anybody recorded.
_MIN = datetime(1, 1, 2, tzinfo=UTC)


# Dates and naive date-times are taken as UTC; the APIs send both.
Timestamp = Annotated[datetime, BeforeValidator(parse_time)]
# Counts land in BIGINT columns: a number past them is a broken record, not an overflow later.
Int64 = Annotated[int, Field(ge=-(2**63), lt=2**63)]


def epoch_ms(value: float | None) -> datetime | None:
    """Epoch milliseconds as a UTC time; None where absent or outside the calendar."""
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value / 1000.0, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


class Record(BaseModel):
    """Validates only the fields the warehouse flattens; the rest rides along in `raw`."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @classmethod
    def stored_form(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """What of a decoded record its rows are built from: the page's records are all held
        until then, so a source may leave out what it never flattens. The record is stored
        from its text, not from this."""
        return raw

    @classmethod
    def read(cls, kept: dict[str, Any]) -> Any:
        """The record's model; raises what makes it unreadable."""
        return cls.model_validate(kept)


def reason(exc: Exception) -> str:
    """One line saying which fields were wrong and how."""
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err["loc"]) or "record"
            parts.append(f"{where}: {err['msg']}")
        more = exc.error_count() - 5
        return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
    return f"{type(exc).__name__}: {exc}"


def rejected_row(source: str, stream: str, record: Any, index: int, error: str, received_at: datetime) -> Row:
    key = record.get("id") if isinstance(record, dict) else None
    record_key = str(key) if isinstance(key, (str, int)) and str(key) else f"#{index}"
    return {
        "source": source,
        "stream": stream,
        "record_key": record_key,
        "received_at": received_at,
        "error": error,
        "raw": _raw_or_text(record),
    }


def _raw_or_text(record: Any) -> str | bytes:
    """The record as JSON, or, past what JSON can hold, its text: a reject is never lost."""
    if isinstance(record, bytes):  # text that no parser reads
        return json.dumps(record.decode("utf-8", "replace"))
    try:
        return dumps(record)
    except ValueError:
        return json.dumps(repr(record)[:1_000_000])


def unique_keys(rejected: list[Row]) -> list[Row]:
    """Two unreadable records with one id on a page both stay: the later ones get @2, @3, ..."""
    seen: dict[tuple[str, str], int] = {}
    for row in rejected:
        key = (row["stream"], row["record_key"])
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            row["record_key"] = f"{row['record_key']}@{seen[key]}"
    return rejected


class Readable(NamedTuple):
    record: Any  # the validated model
    raw: dict[str, Any]  # the record as decoded, less what its model does not hold (Record.stored_form)
    text: bytes  # the record's JSON: as sent, where it came as plain JSON text
    position: int  # its place on the page


def as_received(record: Any) -> tuple[Any, bytes]:
    """A record and the JSON text to store for it.

    A record that comes as text keeps that text where it is plain JSON; one that only a
    lenient parser reads (NaN, a lone surrogate) is stored as its value made plain. A record
    that comes decoded is dumped. ValueError where the text is not JSON at all.
    """
    if not isinstance(record, bytes):
        return record, dumps(record) if isinstance(record, dict) else b""
    try:
        return orjson.loads(record), record
    except orjson.JSONDecodeError:
        value = lenient_loads(record)
        return value, dumps(value)


def read_page(model: type[Record], records: list[Any], source: str, received_at: datetime,
              stream: str = "chats", positions: list[int] | None = None) -> tuple[list[Readable], list[Row]]:
    """The readable records of a page, the newest copy of each id, and the rejected rest.

    Records come decoded or as JSON text, from the places on their page that `positions` gives
    where they are not the whole page. A page that names one record twice keeps its newest
    copy, so the load sees each key once.
    """
    rejected: list[Row] = []
    newest: dict[str, Readable] = {}
    for index, item in zip(positions or range(len(records)), records, strict=True):
        raw = item
        try:
            raw, text = as_received(item)
            if not isinstance(raw, dict):
                raise ValueError(f"a record must be a JSON object, not {type(raw).__name__}")
            kept = model.stored_form(raw)
            record: Any = model.read(kept)  # a page's models all have `id` and `updated_at`
        except Exception as exc:  # noqa: BLE001 - any unreadable record is kept, with why
            rejected.append(rejected_row(source, stream, raw, index, reason(exc), received_at))
            continue
        seen = newest.get(record.id)
        if seen is None or record.updated_at >= seen.record.updated_at:
            newest[record.id] = Readable(record, kept, text, index)
    return list(newest.values()), rejected
