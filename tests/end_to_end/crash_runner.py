"""Runs one sync or backfill and kills its own process with SIGKILL at a chosen point.

    python crash_runner.py MODE POINT N      (settings from the environment)

POINT: request (the Nth API request, while paging), load (entering the Nth load, after its
page was transformed), rows (inside the Nth load's transaction, children written, chats not
yet), commit (just before the Nth load's commit).
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import datetime

from extract.http import ApiClient
from flows import pipeline
from flows.pipeline import run_backfill, run_sync
from flows.settings import Settings
from load.warehouse import Warehouse

mode, point, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = {"request": 0, "load": 0, "rows": 0, "commit": 0}


def hit(name: str) -> None:
    seen[name] += 1
    if name == point and seen[name] == n:
        os.kill(os.getpid(), signal.SIGKILL)


class Connection:
    """The DuckDB connection, watched for the statements where a crash hurts most."""

    def __init__(self, con):
        self._con = con

    def execute(self, sql, *args):
        if sql.startswith("insert into chats"):
            hit("rows")
        elif sql == "commit" and in_load:
            hit("commit")
        return self._con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._con, name)


in_load = False
original_get, original_load, original_init = ApiClient.get, Warehouse.load, Warehouse.__init__


def get(self, *args, **kwargs):
    hit("request")
    return original_get(self, *args, **kwargs)


def load(self, *args, **kwargs):
    global in_load
    hit("load")
    in_load = True
    try:
        return original_load(self, *args, **kwargs)
    finally:
        in_load = False


def init(self, *args, **kwargs):
    original_init(self, *args, **kwargs)
    self.con = Connection(self.con)


ApiClient.get, Warehouse.load, Warehouse.__init__ = get, load, init
pipeline.GROUP_CHATS = 1  # a load per page, so that there are loads to kill
settings = Settings()
if mode == "sync":
    run_sync(settings)
else:
    run_backfill(settings, datetime.fromisoformat(os.environ["BACKFILL_SINCE"]), None, None)
print("finished without being killed")
