"""Why the warehouse could not be opened, in words a user can act on."""

from __future__ import annotations

import re


class DatabaseError(Exception):
    """The warehouse could not be opened or written."""


class DatabaseBusy(DatabaseError):
    """Another process holds the DuckDB file."""


_LOCK_HOLDER = re.compile(r"held in (.+?) \(PID (\d+)\)")


def lock_holder(message: str) -> str | None:
    """The program and PID DuckDB names in a lock conflict ("another process" where it names
    none); None when the error is not a lock conflict."""
    if "lock" not in message.lower():
        return None
    found = _LOCK_HOLDER.search(message)
    return f"{found.group(1)} (PID {found.group(2)})" if found else "another process"
