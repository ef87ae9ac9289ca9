"""The read copy, and how every reading command opens the warehouse.

DuckDB lets one process write a file, or many read it, never both. A sync holds the warehouse
for its whole run, so people and tools read a copy instead: after a run that changed something,
the writer checkpoints and copies the file beside it under a temporary name, then renames it
over the last copy. A reader that has the old copy open keeps its view (it holds the old file);
the next open sees the new one; a publish killed half way leaves the last copy as it was.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from load.errors import DatabaseBusy, DatabaseError, lock_holder

log = logging.getLogger("chatsync")

OFF = "off"
# Statements a reading command runs; everything else (writes, COPY ... TO, ATTACH, SET) is refused.
READING_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


def is_local(database: str) -> bool:
    return not database.startswith("md:") and database != ":memory:"


def read_copy_path(database: str, configured: str | None = None) -> str | None:
    """Where the read copy of `database` goes: `configured` (`off`: nowhere), else
    `NAME.read.duckdb` beside it. MotherDuck has none: its readers use read scaling."""
    if configured:
        return None if configured.strip().lower() == OFF else configured
    if not is_local(database):
        return None
    stem = database[: -len(".duckdb")] if database.endswith(".duckdb") else database
    return f"{stem}.read.duckdb"


def is_published(read_copy: str) -> bool:
    """Whether a whole copy is there and no publish was cut short since."""
    target = Path(read_copy)
    return target.exists() and not any(target.parent.glob(f"{target.name}.tmp-*"))


def publish_and_close(con: duckdb.DuckDBPyConnection, database: str, read_copy: str) -> None:
    """Checkpoints the writer's connection, puts a whole copy of its file at `read_copy`, and
    closes the connection.

    The file is read through a descriptor closed only after the connection is: DuckDB's lock is
    a POSIX lock, which closing any descriptor of the file would let go of mid-copy.
    """
    began = time.perf_counter()
    con.execute("checkpoint")
    checkpointed = time.perf_counter()
    target = Path(read_copy)
    for stale in target.parent.glob(f"{target.name}.tmp-*"):  # left by a publish that was killed
        stale.unlink(missing_ok=True)
    temporary = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    source = os.open(database, os.O_RDONLY)
    try:
        size = os.fstat(source).st_size
        with open(temporary, "wb") as out:
            copied = 0
            while copied < size:
                sent = os.sendfile(out.fileno(), source, copied, size - copied)
                if sent == 0:
                    break
                copied += sent
            os.fsync(out.fileno())
        os.replace(temporary, target)
        log.info("published the read copy %s (%.0f MB): checkpoint %.2fs, copy %.2fs", read_copy,
                 size / 2**20, checkpointed - began, time.perf_counter() - checkpointed)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    finally:
        con.close()
        os.close(source)


@dataclass
class Reading:
    """A read-only connection, what it reads, and a note for the user when it is the copy."""

    con: duckdb.DuckDBPyConnection
    path: str
    note: str | None = None

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Reading:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_for_reading(database: str, read_copy: str | None) -> Reading:
    """Opens the warehouse read-only, or its read copy while a writer holds it; never creates,
    migrates or writes a file."""
    if not is_local(database):
        return Reading(duckdb.connect(database), database)
    if not Path(database).exists():
        if read_copy and Path(read_copy).exists():
            return _open_copy(read_copy, f"no warehouse at {database}")
        raise DatabaseError(f"no warehouse at {database}: run `chatsync sync` first, or point "
                            "--database (CHATSYNC_DATABASE) at an existing one")
    try:
        return Reading(_read_only(database), database)
    except duckdb.IOException as exc:
        holder = lock_holder(str(exc))
        if holder is None:
            raise DatabaseError(f"database {database} could not be opened: {exc}") from None
        if read_copy and Path(read_copy).exists():
            return _open_copy(read_copy, f"{database} is being written by {holder}")
        raise DatabaseBusy(f"database {database} is busy: it is held by {holder}, and there is no "
                           f"read copy at {read_copy or '(off)'} yet") from None


def _read_only(path: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(path, read_only=True)
    con.execute("set TimeZone = 'UTC'")
    return con


def _open_copy(read_copy: str, why: str) -> Reading:
    published = datetime.fromtimestamp(Path(read_copy).stat().st_mtime, UTC)
    age = int((datetime.now(UTC) - published).total_seconds())
    return Reading(_read_only(read_copy), read_copy,
                   f"{why}; reading the read copy {read_copy}, published {_ago(age)}")


def _ago(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def refuse_writes(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Reading commands answer questions; a statement that would change or write anything is
    refused before it runs, whatever the file's permissions."""
    statements = con.extract_statements(sql)
    if len(statements) != 1:
        raise DatabaseError(f"give one statement; this has {len(statements)}")
    kind = statements[0].type
    analyzed = re.match(r"\s*explain\s+analy[sz]e\b(.*)", statements[0].query, re.IGNORECASE | re.DOTALL)
    if kind == duckdb.StatementType.EXPLAIN and analyzed:  # which runs the statement it explains
        refuse_writes(con, analyzed.group(1))
        return
    if kind not in READING_STATEMENTS:
        raise DatabaseError(f"only statements that read are run here, and this is {kind.name}: "
                            "query the warehouse, change it with sync, backfill or reconcile")
