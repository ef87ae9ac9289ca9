"""The floor: download every page and every message list the way chatsync must, and throw the
bytes away. Nothing parsed beyond what paging needs, nothing stored; the same HTTP client as
chatsync's, so that the floor is what the wire allows that client.

    python bench/floor.py COZMOX_BASE_URL INVENT_BASE_URL API_KEY
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson

from extract.http import CookielessClient


def main(cozmox: str, invent: str, key: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    requests = 0
    with CookielessClient(headers=headers, timeout=60, limits=httpx.Limits(max_connections=8)) as http:
        page = 1
        while True:
            body = http.get(f"{cozmox}/chat", params={"page": page, "limit": 100, "sortOrder": "ASC"}).content
            requests += 1
            if body.count(b'"orgId"') < 100:
                break
            page += 1
        ids: list[str] = []
        page = 1
        while True:
            chats = orjson.loads(http.get(f"{invent}/orgs/c/chats", params={"page": page, "take": 100}).content)
            requests += 1
            ids += [c["id"] for c in chats]
            if len(chats) < 100:
                break
            page += 1

        def messages(chat_id: str) -> int:
            http.get(f"{invent}/chats/{chat_id}/messages", params={"take": 100})  # reads the whole body
            return 1

        with ThreadPoolExecutor(8) as pool:
            requests += sum(pool.map(messages, ids))
    print(requests)


if __name__ == "__main__":
    main(*sys.argv[1:4])
