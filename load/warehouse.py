"""The DuckDB warehouse: schema, set-based upserts, sync state and run records.

A `Warehouse` holds one connection for the whole run. DuckDB lets one process write a file at a
time, so holding it also keeps a second sync from interleaving with this one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from load.errors import DatabaseBusy, DatabaseError, lock_holder
from load.read_copy import is_local, is_published, publish_and_close
from load.views import apply_views
from transform.batch import Batch

log = logging.getLogger("chatsync")


# Each child table and its key after `source`: what a repeated row is recognised by.
CHILD_KEYS: dict[str, tuple[str, ...]] = {
    "messages": ("message_id",),
    "usage": ("message_id",),
    "costs": ("chat_id", "seq"),
    "chat_members": ("chat_id", "member_id"),
    "message_files": ("message_id", "part_seq"),
}


# What a sync works in beside the key indexes (see bound_memory). 128 MiB held a run's own
# index as well before the cap followed the rows it adds, and was 77 MiB of room at the end of
# the bench's larger full refresh; 80 took 40 MB off its peak (529-545 against 570-590 MB) in
# the same time. Much less runs out of memory: 64 MiB, with the index inside, did.
SYNC_MEMORY_MIB = 80
# DuckDB loads a primary-key index whole to change it, and a cap below it ends the load with a
# fatal out-of-memory error: room is left generously for every row held.
INDEX_BYTES_PER_ROW = 100
# Loads raise DuckDB's cap once the rows they added call for this much more: a new cap hands
# DuckDB's cached memory back to the system, and raised after every load it cost a full refresh
# at the bench's larger size 1.5 CPU-seconds (about 50 raises; 6 at this step).
MEMORY_LIMIT_STEP_MIB = 8
# A log smaller than this is left for the next open to replay rather than checkpointed at close.
CLOSE_CHECKPOINT_BYTES = 32 * 2**20


class TooManyDeletions(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(f"{count} chats to mark deleted")
        self.count = count


@dataclass(frozen=True)
class AccountKey:
    """Whose state a call reads or moves: an account's source, its organisation as the API
    names it (None until it does), and the account's name for the record."""

    source: str
    org_id: str | None
    name: str


@dataclass
class LoadResult:
    chats_upserted: int
    messages_upserted: int
    rejected: int


def _migrations() -> list[tuple[int, str, str]]:
    files = sorted((p for p in resources.files("sql").iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    out = []
    for f in files:
        version = int(f.name.split("_", 1)[0])
        out.append((version, f.name, f.read_text()))
    return out


def one_row(result: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """The row of a statement that always answers one: an aggregate, or the count of an update."""
    row = result.fetchone()
    if row is None:
        raise DatabaseError("DuckDB answered no row where it always answers one")
    return row


def now_utc() -> datetime:
    return datetime.now(UTC)


WAIT_REPORT_SECONDS = 5.0


# Rows a row group holds when a run writes a few rows. A checkpoint rewrites, whole, every row
# group that rows were added to: after a bulk load in DuckDB's row groups of 122,880 that was all
# of a table of chats, raw and all, so each small run after it rewrote the whole table (1-2 s
# and the file's size again at 20,000 chats). Row groups this small cost a bulk load 20-70% more,
# so only small runs ask for them; what a bulk load wrote keeps its size.
SMALL_RUN_ROW_GROUP_ROWS = 2048
# Rows a row group holds in a bulk load. The checkpoint at its end holds a row group's columns
# while it compresses them, outside DuckDB's memory cap: with DuckDB's 122,880 a full refresh of
# 20,000 Cozmox and 5,000 Invent chats peaked at 632-649 MB, with 16,384 at 578-590 MB in the
# same time (32,768 and 8,192 peaked higher than 16,384).
BULK_ROW_GROUP_ROWS = 16384
# The name a local warehouse is attached under.
ALIAS = "warehouse"


def sql_literal(text: str) -> str:
    """Text as a quoted SQL string, for the statements that take no parameters (ATTACH, EXPORT)."""
    return "'" + text.replace("'", "''") + "'"


def _open(database: str, bulk: bool) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse. A local file is attached rather than opened, since the
    size of the row groups a run writes is an option of ATTACH alone."""
    if not is_local(database):
        return duckdb.connect(database)
    con = duckdb.connect()
    options = f" (row_group_size {BULK_ROW_GROUP_ROWS if bulk else SMALL_RUN_ROW_GROUP_ROWS})"
    try:
        con.execute(f"attach {sql_literal(database)} as {ALIAS}{options}")
        con.execute(f"use {ALIAS}")
    except BaseException:
        con.close()
        raise
    return con


def _connect(database: str, wait_seconds: float, bulk: bool) -> duckdb.DuckDBPyConnection:
    """Opens the database for writing, waiting up to `wait_seconds` while another process holds
    it (DuckDB lets one process write a file), with a line every few seconds saying who."""
    began = time.monotonic()
    reported = began
    while True:
        try:
            return _open(database, bulk)
        except duckdb.IOException as exc:
            holder = lock_holder(str(exc))
            if holder is None:
                raise DatabaseError(f"database {database} could not be opened: {exc}") from None
            now = time.monotonic()
            if now - began >= wait_seconds:
                waited = f" after waiting {wait_seconds:g}s" if wait_seconds else ""
                raise DatabaseBusy(f"database {database} is busy: it is held by {holder}{waited}") from None
            if now - reported >= WAIT_REPORT_SECONDS:
                reported = now
                log.warning("database %s is held by %s; waiting up to %.0fs more", database, holder,
                         wait_seconds - (now - began))
            time.sleep(0.2)


def missed_runs_path(database: str, taking: bool = False) -> Path:
    """The log of runs that never opened the warehouse; `taking`: the one the next writer is
    moving into sync_runs (still there if that was cut short)."""
    return Path(f"{database}.missed-runs.jsonl{'.taking' if taking else ''}")


MISSED_RUN_COLUMNS = ("run_id", "source", "account", "mode", "started_at", "finished_at", "status", "error")


def missed_runs_query(paths: list[Path]) -> str:
    """A select of the runs written down in these files, as sync_runs columns."""
    files = ", ".join(sql_literal(str(p)) for p in paths)
    types = ", ".join(f"{c}: '{'timestamptz' if c.endswith('_at') else 'varchar'}'" for c in MISSED_RUN_COLUMNS)
    return (f"select {', '.join(MISSED_RUN_COLUMNS)} from read_json([{files}], "
            f"format = 'newline_delimited', columns = {{{types}}})")


def latest_migration() -> int:
    return _migrations()[-1][0]


def record_missed_run(database: str, accounts: list[tuple[str, str]], mode: str, started_at: datetime,
                      error: str) -> None:
    """Writes down, beside the warehouse, a run that never got to open it (another process held
    it), one line per account; the next writer moves them into sync_runs, and `status` shows
    them before that. The file is a log, not a store: lines are only ever appended, then taken."""
    if not is_local(database):
        return
    finished = now_utc().isoformat()
    with missed_runs_path(database).open("ab") as out:
        for source, name in accounts:
            row = (str(uuid.uuid4()), source, name, mode, started_at.isoformat(), finished, "failed", error)
            out.write(json.dumps(dict(zip(MISSED_RUN_COLUMNS, row, strict=True))).encode() + b"\n")


class Warehouse:
    """The writer's connection. With `read_copy`, a session that changed anything publishes
    the read copy there when it closes (see load/read_copy.py)."""

    def __init__(self, database: str, wait_seconds: float = 0.0, read_copy: str | None = None,
                 bulk: bool = False) -> None:
        self.database = database
        self.read_copy = read_copy if is_local(database) else None
        self.changed = False
        if is_local(database):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.con = _connect(database, wait_seconds, bulk)
        self.con.execute("set TimeZone = 'UTC'")
        self._reader: duckdb.DuckDBPyConnection | None = None
        self._closed = False
        self._memory_limit_mib: int | None = None  # set by bound_memory, then followed by every load
        # Raw chats make the log grow fast, and a checkpoint in the middle of a large load
        # rewrites the row groups it left half full: one at the end instead (a crash still
        # replays the log on the next open).
        self.con.execute("set checkpoint_threshold = '1GB'")

        self.migrate()
        self._take_missed_runs()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.close()
        if self._memory_limit_mib is not None:
            # The checkpoint at close runs alone, and compresses row groups on every thread it has:
            # 2.0-3.1 s against 2.9-4.7 s on one after the bench's larger full refresh (eight
            # interleaved pairs), same peak.
            # A connection DuckDB gave up on refuses it, and is closed below all the same.
            with contextlib.suppress(duckdb.Error):
                self.con.execute("reset threads")
        if self.read_copy and (self.changed or not is_published(self.read_copy)):
            try:
                publish_and_close(self.con, self.database, self.read_copy)
            except (OSError, duckdb.Error) as exc:  # the warehouse has the data; readers wait a run
                log.warning("the read copy %s was not published: %s", self.read_copy, exc)
            return
        wal = Path(f"{self.database}.wal")
        if wal.exists() and wal.stat().st_size < CLOSE_CHECKPOINT_BYTES:
            # A checkpoint rewrites every row group a run touched, which costs a small run more
            # than replaying its log at the next open.
            self.con.execute("pragma disable_checkpoint_on_shutdown")
        self.con.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def bound_memory(self) -> None:
        """Caps DuckDB's cache for a sync, which would otherwise grow with the history (up to 80%
        of the machine). The key indexes must fit whole, so the cap grows with the rows held:
        they are the one part of memory that follows the history. The loads after this raise it
        as they add rows, or a run that adds millions of keys (a first sync of a large history)
        ends in a fatal out-of-memory error part way."""
        if self._memory_limit_mib is None:
            # A sync's loads are small transactions that one thread runs as fast as several, and
            # each thread holds memory of its own.
            self.con.execute("set threads = 1")
        self._set_memory_limit(self._room_for_rows())

    def _room_for_rows(self) -> int:
        rows = self.scalar("select coalesce(sum(estimated_size), 0) from duckdb_tables() "
                           "where database_name = current_database()")
        return SYNC_MEMORY_MIB + int(rows) * INDEX_BYTES_PER_ROW // 2**20

    def _follow_rows(self) -> None:
        if self._memory_limit_mib is None:  # not capped: nothing to follow
            return
        limit = self._room_for_rows()
        if limit >= self._memory_limit_mib + MEMORY_LIMIT_STEP_MIB:
            self._set_memory_limit(limit)

    def _set_memory_limit(self, mib: int) -> None:
        self.con.execute(f"set memory_limit = '{mib}MiB'")
        self._memory_limit_mib = mib

    # -- schema ---------------------------------------------------------------------------

    def migrate(self) -> None:
        """Applies the numbered files of sql/ that this database has not seen, in order."""
        con = self.con
        con.execute(
            "create table if not exists schema_migrations ("
            " version integer primary key, name varchar not null, applied_at timestamptz not null)"
        )
        done = {v for (v,) in con.execute("select version from schema_migrations").fetchall()}
        for version, name, text in _migrations():
            if version in done:
                continue
            con.execute("begin")
            try:
                con.execute(text)
                con.execute(
                    "insert into schema_migrations values (?, ?, ?)", [version, name, now_utc()]
                )
                con.execute("commit")
            except Exception:
                con.execute("rollback")
                raise
        apply_views(con)

    def _take_missed_runs(self) -> None:
        if not is_local(self.database):
            return
        path, taken = missed_runs_path(self.database), missed_runs_path(self.database, taking=True)
        if not taken.exists():
            if not path.exists():
                return
            path.replace(taken)  # lines appended from now on wait for the next writer
        self.con.execute(f"insert into sync_runs ({', '.join(MISSED_RUN_COLUMNS)}) {missed_runs_query([taken])}"
                         " on conflict do nothing")
        taken.unlink()

    # -- sync state -----------------------------------------------------------------------

    def watermark(self, account: AccountKey, stream: str = "chats") -> datetime | None:
        if account.org_id is None:
            return None
        row = self.con.execute(
            "select watermark from sync_state where source = ? and org_id = ? and stream = ?",
            [account.source, account.org_id, stream],
        ).fetchone()
        return row[0] if row else None

    def _advance_watermark(self, account: AccountKey, stream: str, watermark: datetime) -> None:
        """Moves the watermark forward only: a window behind it never pulls it back."""
        self.con.execute(
            """
            insert into sync_state (source, org_id, stream, watermark, updated_at, account)
            values (?, ?, ?, ?, ?, ?)
            on conflict (source, org_id, stream) do update set
                watermark = greatest(sync_state.watermark, excluded.watermark),
                updated_at = excluded.updated_at,
                account = excluded.account
            """,
            [account.source, account.org_id, stream, watermark, now_utc(), account.name],
        )

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A second connection to the warehouse, for reading in one thread while another loads."""
        cursor = self.con.cursor()
        cursor.execute("set TimeZone = 'UTC'")
        if is_local(self.database):
            cursor.execute(f"use {ALIAS}")
        return cursor

    def versions(self, source: str, chat_ids: list[str]) -> dict[str, tuple[datetime, str]]:
        """The updated-at held for each of these chats and the MD5 of the record as it was
        received, to skip what has not moved (an API whose times are coarse moves only the
        record)."""
        if not chat_ids:
            return {}
        # A connection of its own: a load may be running on the main one, in another thread.
        if self._reader is None:
            self._reader = self.cursor()
        rows = self._reader.execute(
            "select chat_id, updated_at, md5(raw::varchar) from chats"
            " where source = ? and chat_id in (select unnest(?))",
            [source, chat_ids],
        ).fetchall()
        return {chat_id: (updated_at, digest) for chat_id, updated_at, digest in rows}

    def window_finished(self, account: AccountKey, start: datetime, end: datetime) -> bool:
        """Whether one finished backfill window covers this one (window sizes may differ)."""
        return bool(one_row(self.con.execute(
            "select count(*) from backfill_windows where source = ? and org_id = ?"
            " and window_start <= ? and window_end >= ?",
            [account.source, account.org_id, start, end],
        ))[0])

    def last_org(self, account: AccountKey) -> str | None:
        """The organisation this account's runs last reached."""
        org_id: str | None = self.scalar(
            "select org_id from sync_runs where source = ? and coalesce(account, source) = ? and org_id is not null"
            " order by started_at desc limit 1", [account.source, account.name])
        return org_id

    def live_chats(self, account: AccountKey) -> int:
        """Chats of this account's organisation not marked deleted."""
        return int(self.scalar("select count(*) from chats where source = ? and org_id = ? and deleted_at is null",
                               [account.source, account.org_id]))

    def mark_deleted(self, account: AccountKey, listed: set[str], at_most: int | None = None) -> tuple[int, int]:
        """Sets deleted_at on the account's chats not in `listed`, clears it on those back in it;
        one transaction. Other organisations' chats are never touched. More than `at_most` to
        mark changes nothing and raises TooManyDeletions."""
        con = self.con
        scope = [account.source, account.org_id]
        con.register("listed_ids", pa.table({"chat_id": pa.array(sorted(listed), pa.string())}))
        con.execute("begin")
        try:
            deleted = one_row(con.execute(
                "update chats set deleted_at = ? where source = ? and org_id = ? and deleted_at is null"
                " and chat_id not in (select chat_id from listed_ids)", [now_utc(), *scope]
            ))[0]
            if at_most is not None and deleted > at_most:
                raise TooManyDeletions(deleted)
            restored = one_row(con.execute(
                "update chats set deleted_at = null where source = ? and org_id = ? and deleted_at is not null"
                " and chat_id in (select chat_id from listed_ids)", scope
            ))[0]
            con.execute("commit")
            self.changed = self.changed or bool(deleted or restored)
        except Exception:
            con.execute("rollback")
            raise
        finally:
            con.unregister("listed_ids")
        return deleted, restored

    # -- runs -----------------------------------------------------------------------------

    def start_run(self, account: AccountKey, mode: str) -> str:
        """Records a run as running; the account's runs left running by a killed process become
        interrupted.

        No other process can hold the file while this one does, so a row still marked running
        here belongs to a process that is gone.
        """
        run_id = str(uuid.uuid4())
        interrupted = one_row(self.con.execute(
            "update sync_runs set status = 'interrupted', finished_at = ?,"
            " error = 'the process stopped before the run finished'"
            " where source = ? and coalesce(account, source) = ? and status = 'running'",
            [now_utc(), account.source, account.name],
        ))[0]
        # What that run loaded never reached the read copy.
        self.changed = self.changed or bool(interrupted)
        self.con.execute(
            "insert into sync_runs (run_id, source, account, org_id, mode, started_at, status)"
            " values (?, ?, ?, ?, ?, ?, 'running')",
            [run_id, account.source, account.name, account.org_id, mode, now_utc()],
        )
        return run_id

    def finish_run(self, run_id: str, status: str, counts: dict[str, object], error: str | None = None) -> None:
        columns = ", ".join(f"{name} = ?" for name in counts)
        sets = f"{columns}, " if columns else ""
        self.con.execute(
            f"update sync_runs set {sets}status = ?, finished_at = ?, error = ? where run_id = ?",
            [*counts.values(), status, now_utc(), error, run_id],
        )

    # -- loading --------------------------------------------------------------------------

    def load(
        self,
        batch: Batch,
        *,
        account: AccountKey,
        run_id: str,
        watermark: datetime | None = None,
        finished_window: tuple[datetime, datetime] | None = None,
        stream: str = "chats",
        force: bool = False,
        rebuild: bool = False,
    ) -> LoadResult:
        """Upserts one batch and, when given, the watermark it completes, in one transaction.

        A chat is written only when it is new or its updated-at moved forward (with `force`,
        also when equal): a lookback re-read costs no writes, and an older copy fetched by a
        slower process never overwrites a newer one. Its child rows are replaced exactly, and
        only when they differ from those held (by fingerprint). A chat written again is no
        longer deleted. A `rebuild` (rows derived again from what is stored, not a new read)
        rewrites every chat and all its children, and keeps deleted_at.
        """
        args = (batch, account, run_id, watermark, finished_window, stream, force, rebuild)
        try:
            result = self._load(*args, by_key=False)
        except duckdb.ConstraintException:
            # A child key the API repeats (one message id in two chats, say): take the slower
            # path that replaces by key and keeps one copy of each.
            result = self._load(*args, by_key=True)
        self._follow_rows()
        return result

    def _load(self, batch: Batch, account: AccountKey, run_id: str, watermark: datetime | None,
              finished_window: tuple[datetime, datetime] | None, stream: str, force: bool,
              rebuild: bool, by_key: bool) -> LoadResult:
        con = self.con
        con.execute("begin")
        try:
            chats_upserted, messages_upserted = 0, 0
            if batch.chat_count:
                chats = batch.table("chats")
                con.register("batch_chats", chats)
                rewrite = "true" if rebuild else "c.children_fingerprint is distinct from b.children_fingerprint"
                con.execute(
                    f"""
                    create or replace temp table changed as
                    select b.source, b.chat_id, b.updated_at, c.chat_id is not null as was_stored,
                           c.deleted_at as was_deleted_at,
                           {rewrite} as rewrite, b.updated_at = c.updated_at as tie
                    from batch_chats b
                    left join chats c on c.source = b.source and c.chat_id = b.chat_id
                    where c.chat_id is null or b.updated_at >= c.updated_at
                    """
                )
                if not (force or rebuild):
                    self._keep_changed_ties(con)
                chats_upserted, any_stored = one_row(
                    con.execute("select count(*), count(*) filter (was_stored) from changed"))
                if chats_upserted:
                    for name, key in CHILD_KEYS.items():
                        messages_upserted += self._replace_children(name, key, batch, by_key, bool(any_stored))
                    columns = ", ".join(chats.column_names)
                    if any_stored:
                        con.execute("delete from chats t using changed c"
                                    " where t.source = c.source and t.chat_id = c.chat_id")
                    con.execute(
                        f"insert into chats ({columns}, deleted_at, loaded_at)"
                        f" select {columns}, null, ? from batch_chats b"
                        f" semi join changed c on b.source = c.source and b.chat_id = c.chat_id"
                        + (" qualify row_number() over (partition by source, chat_id order by updated_at desc) = 1"
                           if by_key else ""),
                        [now_utc()],
                    )
                    if rebuild:
                        con.execute("update chats t set deleted_at = c.was_deleted_at from changed c where"
                                    " t.source = c.source and t.chat_id = c.chat_id and c.was_deleted_at is not null")
                con.unregister("batch_chats")
                con.execute("drop table changed")
            if batch.rejected:
                con.register("batch_rejected", batch.table("rejected_records"))
                con.execute(
                    "insert or replace into rejected_records"
                    " (source, stream, record_key, received_at, run_id, error, raw)"
                    " select source, stream, record_key, received_at, ?, error, raw from batch_rejected b"
                    # the same unreadable record read again (a lookback, a retry) is kept once
                    " where not exists (select 1 from rejected_records r where r.source = b.source"
                    " and r.stream = b.stream and r.record_key = b.record_key and r.raw::varchar = b.raw)",
                    [run_id],
                )
                con.unregister("batch_rejected")
            # State belongs to an organisation: one the API has not named yet keeps none.
            if watermark is not None and account.org_id is not None:
                self._advance_watermark(account, stream, watermark)
            if finished_window is not None and account.org_id is not None:
                con.execute(
                    "insert or replace into backfill_windows"
                    " (source, org_id, window_start, window_end, finished_at, run_id) values (?, ?, ?, ?, ?, ?)",
                    [account.source, account.org_id, *finished_window, now_utc(), run_id],
                )
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
        self.changed = self.changed or bool(chats_upserted or messages_upserted or batch.rejected)
        return LoadResult(chats_upserted, messages_upserted, len(batch.rejected))

    @staticmethod
    def _keep_changed_ties(con: duckdb.DuckDBPyConnection) -> None:
        """Of the chats whose updated-at equals the one held, keeps those sent differently (an API
        whose times are coarse) and drops the copies already held (a lookback's re-reads).

        Apart from the first query, which never reads `raw`: the stored chats are most of the
        warehouse's bytes, and here the join's time range leaves most of them unread."""
        if not one_row(con.execute("select count(*) filter (tie) from changed"))[0]:
            return
        con.execute(
            """
            delete from changed d using (
                select b.source, b.chat_id from batch_chats b
                join chats c on c.source = b.source and c.chat_id = b.chat_id and c.updated_at = b.updated_at
                where b.raw::varchar = c.raw::varchar
            ) same
            where d.tie and d.source = same.source and d.chat_id = same.chat_id
            """
        )

    def _replace_children(self, name: str, key: tuple[str, ...], batch: Batch, by_key: bool, any_stored: bool) -> int:
        """Replaces one child table's rows of the changed chats whose children differ; returns
        how many rows of `messages` it wrote (0 for the other tables).

        A delete reads the whole child table: where none of the changed chats was held before (a
        first load, older history backfilled), there is nothing to delete and it is skipped."""
        con = self.con
        if any_stored:
            con.execute(f"delete from {name} t using changed c"
                        f" where t.source = c.source and t.chat_id = c.chat_id and c.rewrite")
        rows = batch.table(name)
        if not rows.num_rows:
            return 0
        con.register("batch_rows", rows)
        columns = ", ".join(rows.column_names)
        wanted = (f"select {', '.join('r.' + c for c in rows.column_names)} from batch_rows r"
                  f" join changed c on r.source = c.source and r.chat_id = c.chat_id where c.rewrite")
        try:
            if by_key:
                # the copy listed by the chat updated last wins
                wanted += (f" qualify row_number() over (partition by r.source, {', '.join('r.' + k for k in key)}"
                           f" order by c.updated_at desc, r.chat_id desc) = 1")
                match = " and ".join(f"t.{k} = r.{k}" for k in key)
                con.execute(f"delete from {name} t using ({wanted}) r where t.source = r.source and {match}")
            written = one_row(con.execute(f"insert into {name} ({columns}) {wanted}"))[0]
        finally:
            con.unregister("batch_rows")
        return written if name == "messages" else 0

    # -- reading --------------------------------------------------------------------------

    def scalar(self, sql: str, params: list[object] | None = None) -> Any:
        row = self.con.execute(sql, params or []).fetchone()
        return row[0] if row else None

