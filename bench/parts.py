"""Each part of a Cozmox chat's way into the warehouse, timed alone with nothing beside it.

    python bench/parts.py            # 20,000 chats, the larger size of bench.py
    python bench/parts.py 2000

Downloads the simulator's pages first and stops it; then runs the pipeline's parts one after
the other on one thread, a group of chats at a time as a sync does, and prints each part's CPU
seconds, in all and per chat. These are what the CPU figures of bench.py are made of, without
the interpreter lock shared or the cores contended: the least each part costs on this machine.
Last, the loads again without the `raw` column, to show what storing it costs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from extract.cozmox import split_envelope
from extract.http import CookielessClient
from flows import runtime
from load.warehouse import AccountKey, Warehouse
from simulator import Simulator, SimulatorServer
from transform.cozmox import Chat, _plain_chat, flatten

KEY = "bench-key"
GROUP = 500  # chats per load, as the pipeline's groups


def download(chats: int) -> list[bytes]:
    pages = []
    with SimulatorServer(Simulator(seed=7, cozmox_chats=chats, invent_chats=0, api_key=KEY)) as server, \
            CookielessClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as http:
        page = 1
        while True:
            params: dict[str, str | int] = {"page": page, "limit": 100, "sortOrder": "ASC"}
            body = http.get(f"{server.cozmox_url}/chat", params=params).content
            pages.append(body)
            if body.count(b'"orgId"') < 100:
                return pages
            page += 1


def cut(pages: list[bytes]) -> list[bytes]:
    return [text for body in pages for text in split_envelope(body, "/chat")["results"]]


def each(texts: list[bytes], work: Callable[[bytes], Any]) -> Callable[[], None]:
    """Runs `work` on every chat and keeps nothing, as the pipeline does a page at a time."""
    def run() -> None:
        for text in texts:
            work(text)
    return run


def show(label: str, chats: int, seconds: float) -> None:
    print(f"{label:52} {seconds:7.2f} s {seconds / chats * 1e6:7.0f} us a chat")


def timed(label: str, chats: int, work: Callable[[], Any]) -> Any:
    began = time.process_time()
    result = work()
    show(label, chats, time.process_time() - began)
    return result


def sync(texts: list[bytes], chats: int, with_raw: bool = True) -> None:
    """The pipeline's parts in turn, a group at a time, on one thread: flatten, Arrow, load."""
    spent = {"flatten: check, rows in DuckDB, fingerprints": 0.0, "Arrow tables": 0.0,
             "DuckDB: loads, one transaction a group": 0.0, "DuckDB: checkpoint at close": 0.0}
    labels = list(spent)
    with tempfile.TemporaryDirectory() as work:
        warehouse = Warehouse(str(Path(work) / "parts.duckdb"), bulk=True)
        warehouse.bound_memory()
        account = AccountKey("cozmox", "bench", "cozmox")
        run_id = warehouse.start_run(account, "full_refresh")
        received = datetime.now(UTC)
        for i in range(0, len(texts), GROUP):
            began = time.process_time()
            batch = flatten(texts[i:i + GROUP], {}, received)
            flattened = time.process_time()
            tables = batch.tables()
            if not with_raw:
                tables["chats"] = tables["chats"].drop_columns(["raw"])
            built = time.process_time()
            warehouse.load(batch, account=account, run_id=run_id, watermark=received, force=True)
            loaded = time.process_time()
            for label, seconds in zip(labels[:-1], (flattened - began, built - flattened, loaded - built), strict=True):
                spent[label] += seconds
        began = time.process_time()
        warehouse.close()
        spent[labels[-1]] = time.process_time() - began
    for label, seconds in spent.items():
        if with_raw or label.startswith("DuckDB"):
            show(label + ("" if with_raw else ", without raw"), chats, seconds)


def main(chats: int) -> None:
    pages = download(chats)
    runtime.apply()
    runtime.settle_heap()  # the garbage collector set as a sync sets it
    print(f"{chats} Cozmox chats, {sum(map(len, pages)) / 2**20:.0f} MB of pages; CPU seconds of each part alone:")
    texts = timed("cut the pages into chats (msgspec)", chats, partial(cut, pages))
    del pages
    timed("decode each chat (orjson)", chats, each(texts, orjson.loads))
    timed("decode and validate each chat whole (orjson, pydantic)", chats,
          each(texts, lambda text: Chat.model_validate(Chat.stored_form(orjson.loads(text)))))
    timed("check each chat is plain (msgspec)", chats, each(texts, _plain_chat))
    sync(texts, chats)
    # The contract's `raw` column (the chat as received) is most of what DuckDB writes.
    sync(texts, chats, with_raw=False)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
