"""load/errors.py lock_holder: which program holds the warehouse, read from DuckDB's words."""

from __future__ import annotations

import pytest

from load.errors import lock_holder

# As DuckDB 1.x words it when another process holds the file.
CONFLICT = ('IO Error: Could not set lock on file "/data/chatsync.duckdb": Conflicting lock is held in '
            '/usr/bin/python3.11 (PID 4242). See also https://duckdb.org/docs/stable/connect/concurrency')


def test_the_program_and_pid_duckdb_names():
    assert lock_holder(CONFLICT) == "/usr/bin/python3.11 (PID 4242)"


@pytest.mark.parametrize("message, holder", [
    ("Conflicting lock is held in /Applications/My Tools/bin/duckdb (PID 7) by user ana.", "/Applications/My Tools/bin/duckdb (PID 7)"),
    ("IO Error: Could not set LOCK on file: held in chatsync (PID 123456)", "chatsync (PID 123456)"),
])
def test_a_holder_with_spaces_or_odd_case(message, holder):
    assert lock_holder(message) == holder


@pytest.mark.parametrize("message", [
    'IO Error: Could not set lock on file "/data/chatsync.duckdb": Resource temporarily unavailable',
    "Conflicting lock is held in an unnamed process",  # no PID: nothing to name
    "database is locked",
])
def test_a_lock_conflict_that_names_no_holder_is_another_process(message):
    assert lock_holder(message) == "another process"


@pytest.mark.parametrize("message", [
    "Catalog Error: Table with name chats does not exist!",
    'IO Error: Cannot open file "/data/chatsync.duckdb": No such file or directory',
    "Permission Error: held in /usr/bin/python3 (PID 1)",  # a holder, but no lock
    "",
])
def test_other_errors_are_not_lock_conflicts(message):
    assert lock_holder(message) is None
