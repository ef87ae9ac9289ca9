"""The analytics views, applied apart from the numbered migrations.

A numbered file of sql/ runs once per database, so a view edited there never reached a warehouse
made before the edit. A view holds no data, so it can be recreated at any time: each one lives
in sql/views/<name>.sql and is recreated whenever its file differs from the one this database
last got (by SHA-256, recorded in `schema_views`), every time a warehouse is opened.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable

import duckdb

# The order views are created in: each after the views it reads. A new file in sql/views/ is
# named here too, where it belongs (apply_views refuses a file that is not).
VIEWS: tuple[str, ...] = (
    "chat_summary",
    "spend_items",
    "daily_chats",  # reads chat_summary
    "daily_spend",  # reads spend_items, as do the three below
    "token_shares",
    "assistant_spend",
    "model_spend",
    "freshness",
)

VIEWS_DIR: Traversable = resources.files("sql") / "views"

_SCHEMA_VIEWS = """
create table if not exists schema_views (
    name                varchar primary key,
    sha256              varchar not null,
    applied_at          timestamptz not null
)
"""

_SCHEMA_VIEWS_COMMENTS = """
comment on table schema_views is 'The views of sql/views/ as this database last got them.';
comment on column schema_views.name is 'The view (its file is sql/views/<name>.sql).';
comment on column schema_views.sha256 is 'SHA-256 of the file''s text: a file that differs recreates the view.';
comment on column schema_views.applied_at is 'When the view was last created.';
"""


def shipped() -> dict[str, str]:
    """Each view's file text, in creation order."""
    files = {f.name.removesuffix(".sql") for f in VIEWS_DIR.iterdir() if f.name.endswith(".sql")}
    unordered = sorted(files - set(VIEWS))
    if unordered:
        raise RuntimeError(f"sql/views/ holds views that load.views.VIEWS does not order: {unordered}")
    return {name: VIEWS_DIR.joinpath(f"{name}.sql").read_text() for name in VIEWS}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def apply_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Brings the views up to the files shipped, in one transaction; returns the views it
    recreated or dropped (none when the database is current, the usual case).

    A view whose file changed is recreated with every view after it in VIEWS: DuckDB keeps the
    columns a view had when it was created, so a view reading a changed one would go on
    describing the old columns (to `duckdb_columns()`, and so to docs/schema.md). Views this
    database got before that are no longer shipped are dropped.
    """
    con.execute(_SCHEMA_VIEWS)
    applied = dict(con.execute("select name, sha256 from schema_views").fetchall())
    views = shipped()
    digests = {name: hashlib.sha256(text.encode()).hexdigest() for name, text in views.items()}
    changed = [name for name in VIEWS if applied.get(name) != digests[name]]
    gone = sorted(set(applied) - set(VIEWS))
    if not changed and not gone:
        return []
    recreate = list(VIEWS[VIEWS.index(changed[0]):]) if changed else []
    now = datetime.now(UTC)
    con.execute("begin")
    try:
        for name in gone:
            con.execute(f"drop view if exists {_quoted(name)}")
            con.execute("delete from schema_views where name = ?", [name])
        for name in recreate:
            con.execute(views[name])
            con.execute("insert or replace into schema_views values (?, ?, ?)", [name, digests[name], now])
        con.execute(_SCHEMA_VIEWS_COMMENTS)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return gone + recreate
