"""Many orgs and keys in one warehouse: each account its own watermark, windows, runs and reconcile.

Every test runs the `chatsync` command against simulators of several orgs on one loopback
server, then reads the warehouse.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import duckdb
import pytest
from helpers import API_KEY, HISTORY_END, expected_invent, query

from flows.cli import main
from simulator import Fault, Simulator, SimulatorServer

OTHER_KEY = "sim-key-other"


def make_sim(seed: int, key: str = API_KEY, **options) -> Simulator:
    settings = dict(seed=seed, cozmox_chats=40, invent_chats=30, api_key=key, history_days=20,
                    history_end=HISTORY_END, lag=timedelta(seconds=1))
    return Simulator(**{**settings, **options})


@pytest.fixture
def orgs():
    """Two organisations behind one key (Invent's `c` is the first), and a third org of another key."""
    a, b, other = make_sim(21), make_sim(22), make_sim(23, OTHER_KEY)
    with SimulatorServer(a, b, other) as server:
        yield server


@pytest.fixture
def env(orgs, tmp_path, monkeypatch):
    values = {
        "CHATSYNC_DATABASE": str(tmp_path / "warehouse.duckdb"),
        "COZMOX_BASE_URL": orgs.cozmox_url,
        "INVENT_BASE_URL": orgs.invent_url,
        "INVENT_API_KEY": API_KEY,
        "CHATSYNC_PAGE_SIZE": "20",
        "CHATSYNC_SAFETY_MARGIN_SECONDS": "0",
        "CHATSYNC_MAX_ATTEMPTS": "3",
        "CHATSYNC_RETRY_BACKOFF_SECONDS": "0.01",
        "CHATSYNC_TIMEOUT_SECONDS": "5",
        "CHATSYNC_INVENT_REQUESTS_PER_MINUTE": "0",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def state(database: str) -> dict[tuple[str, str], object]:
    return {(s, o): w for s, o, w in query(database, "select source, org_id, watermark from sync_state")}


def chats_of(database: str, source: str, org: str) -> set[str]:
    return {c for (c,) in query(database, "select chat_id from chats where source = ? and org_id = ?", [source, org])}


def invent_matches(sim: Simulator, database: str) -> None:
    """The org's chats (each at the API's version), messages, usage and members are exactly the
    simulator's."""
    want = expected_invent(sim)
    org = [sim.invent_org_id]
    got = dict(query(database, "select chat_id, updated_at from chats where source = 'invent' and org_id = ?", org))
    assert got == want["updated"]
    for table, key in (("messages", "messages"), ("usage", "usage"), ("chat_members", "members")):
        counts = Counter(dict(query(database, f"select chat_id, count(*) from {table} where source = 'invent'"
                                              " and chat_id in (select chat_id from chats where org_id = ?)"
                                              " group by 1", org)))
        assert +counts == +want[key], f"{table} differ"


def test_an_org_added_later_loads_its_whole_history(orgs, env, capsys, monkeypatch):
    a, b, _ = orgs.sims
    monkeypatch.setenv("INVENT_ORG_ID", "c")
    assert run(capsys, "sync", "--source", "invent")[0] == 0
    # Activity in org A moves its watermark well past org B's history.
    for chat_id in a.chat_ids("invent")[:3]:
        a.touch("invent", chat_id)
    assert run(capsys, "sync", "--source", "invent")[0] == 0

    monkeypatch.setenv("INVENT_ORG_ID", f"c,{b.invent_org_id}")
    code, out, err = run(capsys, "sync", "--source", "invent")

    assert (code, err) == (0, "")
    db = env["CHATSYNC_DATABASE"]
    invent_matches(a, db)
    invent_matches(b, db)
    assert set(state(db)) == {("invent", a.invent_org_id), ("invent", b.invent_org_id)}
    assert f"invent:{b.invent_org_id}" in out  # its own line in the summary


def test_the_shorthand_and_the_org_id_are_one_account(orgs, env, capsys, monkeypatch):
    a, _, _ = orgs.sims
    monkeypatch.setenv("INVENT_ORG_ID", "c")
    assert run(capsys, "sync", "--source", "invent")[0] == 0
    a.reset_requests()

    monkeypatch.setenv("INVENT_ORG_ID", f"c,{a.invent_org_id}")
    code, _out, _ = run(capsys, "sync", "--source", "invent")

    assert code == 0
    db = env["CHATSYNC_DATABASE"]
    assert list(state(db)) == [("invent", a.invent_org_id)]
    assert a.request_count("invent", path_contains="/messages") == 0, "nothing read twice"
    runs = query(db, "select account, org_id, status from sync_runs where mode = 'incremental' order by started_at")
    assert runs[-2:] == [("invent:c", a.invent_org_id, "success"), (f"invent:{a.invent_org_id}", a.invent_org_id, "skipped")]


def test_reconcile_of_one_org_leaves_the_others_chats_alone(orgs, env, capsys, monkeypatch):
    a, b, _ = orgs.sims
    monkeypatch.setenv("INVENT_ORG_ID", f"{a.invent_org_id},{b.invent_org_id}")
    assert run(capsys, "sync", "--source", "invent")[0] == 0
    gone = a.chat_ids("invent")[:2]
    for chat_id in gone:
        a.delete("invent", chat_id)

    code, _, err = run(capsys, "reconcile", "--account", f"invent:{a.invent_org_id}")
    assert (code, err) == (0, "")
    # The other org's reconcile, whose listing holds none of A's chats, marks none of them.
    assert run(capsys, "reconcile", "--account", f"invent:{b.invent_org_id}")[0] == 0

    db = env["CHATSYNC_DATABASE"]
    marked = {c for (c,) in query(db, "select chat_id from chats where deleted_at is not null")}
    assert marked == set(gone)
    assert query(db, "select count(*) from chats where source = 'invent'") == [(60,)]


def test_one_org_failing_keeps_the_others_work_and_a_later_run_fills_the_gap(orgs, env, capsys, monkeypatch):
    a, b, _ = orgs.sims
    monkeypatch.setenv("INVENT_ORG_ID", f"c,{b.invent_org_id}")
    assert run(capsys, "sync", "--source", "invent")[0] == 0
    db = env["CHATSYNC_DATABASE"]
    before = state(db)
    for sim in (a, b):
        for chat_id in sim.chat_ids("invent")[:4]:
            sim.touch("invent", chat_id, add_messages=2)
    b.add_fault(Fault(kind="status", status=503, times=-1, source="invent"))

    code, _, err = run(capsys, "sync", "--source", "invent")

    assert code == 1 and err.count("\n") == 1
    assert f"invent:{b.invent_org_id}" in err and "invent:c" not in err
    after = state(db)
    assert after[("invent", b.invent_org_id)] == before[("invent", b.invent_org_id)]
    assert after[("invent", a.invent_org_id)] > before[("invent", a.invent_org_id)]
    invent_matches(a, db)

    b.clear_faults()
    assert run(capsys, "sync", "--source", "invent")[0] == 0
    invent_matches(b, db)
    statuses = query(db, "select account, status from sync_runs where mode = 'incremental' order by started_at")
    assert statuses[-4:] == [("invent:c", "success"), (f"invent:{b.invent_org_id}", "failed"),
                             ("invent:c", "success"), (f"invent:{b.invent_org_id}", "success")]


def test_two_cozmox_keys_from_the_accounts_file(orgs, env, capsys, monkeypatch, tmp_path):
    a, _, other = orgs.sims
    (tmp_path / "chatsync.toml").write_text(f"""
[accounts.brand-a]
source = "cozmox"
base_url = "{orgs.cozmox_url}"
api_key_env = "BRAND_A_KEY"

[accounts.brand-b]
source = "cozmox"
base_url = "{orgs.cozmox_url}"
api_key_env = "BRAND_B_KEY"
""")
    monkeypatch.delenv("INVENT_API_KEY")
    monkeypatch.setenv("BRAND_A_KEY", API_KEY)
    monkeypatch.setenv("BRAND_B_KEY", OTHER_KEY)

    code, out, err = run(capsys, "sync")

    assert (code, err) == (0, "")
    db = env["CHATSYNC_DATABASE"]
    assert chats_of(db, "cozmox", a.cozmox_org_id) == set(a.chat_ids("cozmox"))
    assert chats_of(db, "cozmox", other.cozmox_org_id) == set(other.chat_ids("cozmox"))
    assert set(state(db)) == {("cozmox", a.cozmox_org_id), ("cozmox", other.cozmox_org_id)}
    assert "brand-a" in out and "brand-b" in out

    # One account alone, by name; the other's watermark stays where it was.
    marks = state(db)
    other.touch("cozmox", other.chat_ids("cozmox")[0])
    a.touch("cozmox", a.chat_ids("cozmox")[0])
    assert run(capsys, "sync", "--account", "brand-b")[0] == 0
    moved = state(db)
    assert moved[("cozmox", a.cozmox_org_id)] == marks[("cozmox", a.cozmox_org_id)]
    assert moved[("cozmox", other.cozmox_org_id)] > marks[("cozmox", other.cozmox_org_id)]

    code, out, _ = run(capsys, "status")
    assert code == 0 and a.cozmox_org_id in out and other.cozmox_org_id in out
    rows = query(db, "select org_id, account from freshness where source = 'cozmox' order by account")
    assert rows == [(a.cozmox_org_id, "brand-a"), (other.cozmox_org_id, "brand-b")]


def test_prefect_runs_are_named_and_tagged_by_account(orgs, env, capsys, monkeypatch):
    _, b, _ = orgs.sims
    monkeypatch.setenv("INVENT_ORG_ID", f"c,{b.invent_org_id}")
    assert run(capsys, "sync", "--source", "invent")[0] == 0

    async def task_runs() -> list[dict]:
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            response = await client._client.post("/task_runs/filter", json={"limit": 200, "offset": 0})
            response.raise_for_status()
            return response.json()

    found = {r["name"]: set(r["tags"]) for r in asyncio.run(task_runs())}
    assert found[f"sync-invent:{b.invent_org_id}"] >= {"source:invent", f"account:invent:{b.invent_org_id}"}
    assert "account:invent:c" in found["sync-invent:c"]


@pytest.mark.parametrize("problem, said", [
    ('[accounts.x]\nsource = "cozmox"\napi_key = "sk-123"\n', "holds a key"),
    ('[accounts.x]\nsource = "nope"\napi_key_env = "K"\n', "unknown source 'nope'"),
    ('[accounts.x]\nsource = "cozmox"\n', "exactly one of api_key_env and api_key_secret"),
    ('[accounts.cozmox]\nsource = "cozmox"\napi_key_env = "K"\n', "named twice"),
    ("[accounts.x\n", "accounts file"),
])
def test_a_bad_accounts_file_is_one_plain_line(env, capsys, monkeypatch, tmp_path, problem, said):
    monkeypatch.setenv("COZMOX_API_KEY", API_KEY)
    (tmp_path / "chatsync.toml").write_text(problem)
    code, _, err = run(capsys, "sync")
    assert code == 1 and err.count("\n") == 1 and said in err
    assert "sk-123" not in err


def test_an_unknown_account_is_named(env, capsys):
    code, _, err = run(capsys, "sync", "--account", "nobody")
    assert code == 1 and "no account is named 'nobody'" in err and "invent" in err


def test_an_account_whose_key_variable_is_unset_fails_alone(orgs, env, capsys, monkeypatch, tmp_path):
    (tmp_path / "chatsync.toml").write_text(
        f'[accounts.brand-b]\nsource = "cozmox"\nbase_url = "{orgs.cozmox_url}"\napi_key_env = "UNSET_KEY"\n')
    monkeypatch.delenv("UNSET_KEY", raising=False)
    code, _, err = run(capsys, "sync")
    assert code == 1 and "brand-b" in err and "UNSET_KEY" in err
    a = orgs.sim
    assert chats_of(env["CHATSYNC_DATABASE"], "invent", a.invent_org_id) == set(a.chat_ids("invent"))


def release_database(path: str, source_db: str) -> None:
    """A warehouse as the release before accounts left it: its tables (migrations 1-6), one
    watermark per source, and runs without accounts, copied from a warehouse synced today."""
    from importlib import resources

    con = duckdb.connect(path)
    con.execute("create table schema_migrations (version integer primary key, name varchar not null,"
                " applied_at timestamptz not null)")
    for f in sorted(resources.files("sql").iterdir(), key=lambda f: f.name):
        if f.name.endswith(".sql") and int(f.name[:3]) <= 6:
            con.execute(f.read_text())
            con.execute("insert into schema_migrations values (?, ?, now())", [int(f.name[:3]), f.name])
    con.execute(f"attach '{source_db}' as today (read_only)")

    def release_columns(table: str) -> str:  # today's tables have more
        return ", ".join(c for (c,) in con.execute(
            "select column_name from duckdb_columns() where database_name = current_database() and table_name = ?"
            " order by column_index", [table]).fetchall())

    for table in ("chats", "messages", "usage", "costs", "chat_members", "message_files", "rejected_records",
                  "sync_runs"):
        con.execute(f"insert into {table} select {release_columns(table)} from today.{table}")
    con.execute("insert into sync_state select source, stream, max(watermark), max(updated_at)"
                " from today.sync_state group by all")
    con.close()


def test_a_warehouse_from_the_release_before_migrates_with_its_watermarks(orgs, env, capsys, monkeypatch, tmp_path):
    a = orgs.sim
    monkeypatch.setenv("COZMOX_API_KEY", API_KEY)
    assert run(capsys, "sync")[0] == 0
    today = env["CHATSYNC_DATABASE"]
    marks = state(today)
    old = str(tmp_path / "release.duckdb")
    release_database(old, today)
    a.reset_requests()

    monkeypatch.setenv("CHATSYNC_DATABASE", old)
    code, _out, err = run(capsys, "sync")

    assert (code, err) == (0, "")
    after = state(old)  # each source's watermark became its org's, then moved on from there
    assert set(after) == set(marks) and all(after[k] >= marks[k] for k in marks)
    assert query(old, "select chats_upserted from sync_runs order by started_at desc limit 2") == [(0,), (0,)]
    assert a.request_count("invent", path_contains="/messages") == 0, "nothing re-read"
    assert a.request_count("cozmox") <= 3  # the org, and the lookback's window
    assert query(old, "select distinct account from sync_runs order by 1") == [("cozmox",), ("invent",)]


def test_a_shared_watermark_of_several_orgs_is_not_trusted_on_migration(orgs, env, capsys, monkeypatch, tmp_path):
    _a, b, _ = orgs.sims
    monkeypatch.setenv("INVENT_ORG_ID", f"c,{b.invent_org_id}")
    assert run(capsys, "sync", "--source", "invent")[0] == 0
    old = str(tmp_path / "release.duckdb")
    release_database(old, env["CHATSYNC_DATABASE"])  # one watermark that both orgs' walks shared

    from load.warehouse import Warehouse

    Warehouse(old).close()
    assert state(old) == {}  # each org reads its history again rather than trust a shared mark
