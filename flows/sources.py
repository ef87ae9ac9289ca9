"""The APIs chatsync reads: each one's source class (extract/) and its flatten (transform/).

A third API is a module in extract/ with a `Source` class, a module in transform/ with a
`flatten` of the same signature, and a line here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from extract.cozmox import Cozmox
from extract.invent import Invent
from extract.source import Source
from transform import cozmox, invent
from transform.batch import Batch

Flatten = Callable[[list[Any], Mapping[str, list[Any]], datetime, "str | None"], Batch]

SOURCES: dict[str, tuple[type[Source], Flatten]] = {
    "cozmox": (Cozmox, cozmox.flatten),
    "invent": (Invent, invent.flatten),
}
