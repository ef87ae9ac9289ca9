"""Where the read copy goes (load/read_copy.py read_copy_path), and the guard that keeps the
reading commands to statements that read (refuse_writes), on a DuckDB in memory."""

from __future__ import annotations

import duckdb
import pytest

from load.errors import DatabaseError
from load.read_copy import read_copy_path, refuse_writes


@pytest.mark.parametrize("database, copy", [
    ("chatsync.duckdb", "chatsync.read.duckdb"),
    ("/var/lib/chatsync/warehouse.duckdb", "/var/lib/chatsync/warehouse.read.duckdb"),
    ("data/warehouse", "data/warehouse.read.duckdb"),
    ("warehouse.db", "warehouse.db.read.duckdb"),
    ("my.duckdb.files/w.duckdb", "my.duckdb.files/w.read.duckdb"),
])
def test_the_read_copy_sits_beside_the_warehouse(database, copy):
    assert read_copy_path(database) == copy
    assert read_copy_path(database) != database


@pytest.mark.parametrize("configured", ["/srv/readers/copy.duckdb", "elsewhere.duckdb"])
def test_a_configured_read_copy_wins(configured):
    assert read_copy_path("chatsync.duckdb", configured) == configured


@pytest.mark.parametrize("off", ["off", "OFF", " Off ", "off\n"])
def test_off_means_no_read_copy(off):
    assert read_copy_path("chatsync.duckdb", off) is None


@pytest.mark.parametrize("database", ["md:chats", "md:", ":memory:"])
def test_motherduck_and_memory_have_no_read_copy(database):
    assert read_copy_path(database) is None
    assert read_copy_path(database, "") is None  # an empty setting is no setting


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("create table chats as select 'a' as chat_id")
    yield con
    con.close()


@pytest.mark.parametrize("sql", [
    "select * from chats",
    "select 1;",
    "  from chats  ",
    "with c as (select * from chats) select count(*) from c",
    "values (1), (2)",
    "describe chats",
    "show tables",
    "summarize chats",
    "explain select * from chats",
    "select 1 -- and a comment; drop table chats",
])
def test_statements_that_read_are_let_through(con, sql):
    refuse_writes(con, sql)
    con.execute(sql).fetchall()


@pytest.mark.parametrize("sql, kind", [
    ("insert into chats values ('b')", "INSERT"),
    ("update chats set chat_id = 'b'", "UPDATE"),
    ("delete from chats", "DELETE"),
    ("drop table chats", "DROP"),
    ("create table other (x int)", "CREATE"),
    ("create temp table other as select 1", "CREATE"),
    ("alter table chats add column y int", "ALTER"),
    ("copy chats to 'out.csv'", "COPY"),
    ("export database 'out'", "EXPORT"),
    ("attach ':memory:' as other", "ATTACH"),
    ("set threads = 1", "SET"),
    ("checkpoint", "CALL"),
    ("install httpfs", "LOAD"),
    ("begin transaction", "TRANSACTION"),
])
def test_statements_that_change_or_write_are_refused_before_they_run(con, sql, kind):
    with pytest.raises(DatabaseError, match=f"only statements that read are run here, and this is {kind}"):
        refuse_writes(con, sql)
    assert con.execute("select chat_id from chats").fetchall() == [("a",)]
    assert con.execute("select count(*) from duckdb_tables()").fetchone() == (1,)


@pytest.mark.parametrize("sql, count", [
    ("select 1; select 2", 2),
    ("select 1; drop table chats", 2),
    ("select 1; select 2; select 3;", 3),
    ("", 0),
    ("-- only a comment", 0),
])
def test_exactly_one_statement_is_taken(con, sql, count):
    with pytest.raises(DatabaseError, match=f"give one statement; this has {count}"):
        refuse_writes(con, sql)
    assert con.execute("select count(*) from chats").fetchone() == (1,)


@pytest.mark.parametrize("statement", ["explain analyze copy t to 'leak.csv'", "EXPLAIN ANALYZE insert into t values (1)"])
def test_explain_analyze_of_a_write_is_refused_since_it_runs_it(statement, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    con = duckdb.connect()
    con.execute("create table t (x int)")
    with pytest.raises(DatabaseError, match="only statements that read"):
        refuse_writes(con, statement)
    refuse_writes(con, "explain analyze select * from t")  # reading, explained: allowed
    assert not (tmp_path / "leak.csv").exists()
