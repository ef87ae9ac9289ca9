"""Seeded generation of Cozmox chats, and the helpers the Invent generator shares.

Every random draw is made in relative time (offsets from a chat's start) and only then anchored to
absolute instants, so the content of a simulated history depends on the seed and the sizes alone,
while `history_end` merely slides it along the clock.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from simulator import corpus

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_MS = 1000
_V4_CLEAR = ~(0xF000 << 64) & ~(0xC000 << 48)
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def uid(rng: random.Random) -> str:
    """A version-4 UUID from the seeded generator (uuid.uuid4 would ignore the seed)."""
    h = "%032x" % ((rng.getrandbits(128) & _V4_CLEAR) | _V4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - EPOCH) // timedelta(milliseconds=1)


def iso_ms(ms: int) -> str:
    """The APIs' own format: milliseconds and a `Z`, never `+00:00`."""
    t = time.gmtime(ms // 1000)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (t[0], t[1], t[2], t[3], t[4], t[5], ms % 1000)


def parse_us(value: Any) -> int | None:
    """Epoch microseconds of an ISO date or date-time; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - EPOCH) // timedelta(microseconds=1)


@dataclass
class Made:
    """A record with the instants the store sorts and filters on, apart from its raw fields."""

    record: dict[str, Any]
    created_ms: int
    updated_ms: int
    span_ms: int = 0
    messages: list[tuple[dict[str, Any], int, int]] = field(default_factory=list)


def apply_ties(rng: random.Random, items: list[Made], ratio: float, key: str) -> None:
    """Give about `ratio` of the records an updated-at shared with another record.

    A group takes its latest member's instant, so updated-at never falls before created-at.
    """
    k = min(len(items), round(len(items) * ratio))
    if k < 2:
        return
    chosen = rng.sample(range(len(items)), k)
    groups = [chosen[i:i + 2] for i in range(0, k - k % 2, 2)]
    if k % 2:
        groups[-1].append(chosen[-1])
    for group in groups:
        latest = max(items[i].updated_ms for i in group)
        for i in group:
            items[i].updated_ms = latest
            items[i].record[key] = iso_ms(latest)


def spread(rng: random.Random, items: list[Made], end_ms: int, window_ms: int) -> None:
    """Place drafted chats over the history window, keeping each whole conversation inside it."""
    for item in items:
        item.span_ms = min(item.span_ms, window_ms)
        room = window_ms - item.span_ms
        item.created_ms = end_ms - window_ms + int(rng.random() * room)
        item.updated_ms = item.created_ms + item.span_ms


class CozmoxFactory:
    """Cozmox chats: call transcripts with costs and, for some, the whole assistant embedded."""

    def __init__(self, seed: int, embed_ratio: float) -> None:
        self.rng = rng = random.Random(f"cozmox:{seed}")
        self.embed_ratio = embed_ratio
        self.org_id = uid(rng)
        self.assistants = [(uid(rng), corpus.assistant_config(rng, i)) for i in range(6)]
        self.sessions = [uid(rng) for _ in range(12)]
        self.workflows = [uid(rng) for _ in range(2)]
        self.ids: list[str] = []

    def history(self, n: int, end_ms: int, window_ms: int, tie_ratio: float) -> list[Made]:
        items = [self.draft() for _ in range(n)]
        spread(self.rng, items, end_ms, window_ms)
        items.sort(key=lambda m: (m.created_ms, m.record["id"]))
        for item in items:
            self.link_previous(item)
            self.anchor(item)
        apply_ties(self.rng, items, tie_ratio, "updatedAt")
        return items

    def new(self, at_ms: int) -> Made:
        item = self.draft()
        item.created_ms = item.updated_ms = at_ms
        self.link_previous(item)
        call_ms = max((m["time"] for m in item.record["messages"]), default=0)
        self.anchor(item, time_base=at_ms - call_ms)
        return item

    def link_previous(self, item: Made) -> None:
        if self.ids and self.rng.random() < 0.15:
            item.record["previousChatId"] = self.rng.choice(self.ids[-50:])
        self.ids.append(item.record["id"])

    def draft(self) -> Made:
        rng = self.rng
        assistant_id, assistant = rng.choice(self.assistants)
        rec: dict[str, Any] = {"id": uid(rng), "orgId": self.org_id, "createdAt": None,
                               "updatedAt": None, "assistantId": assistant_id}
        if rng.random() < self.embed_ratio:
            rec["assistant"] = assistant  # shared on purpose: the store splices its cached bytes
        if rng.random() < 0.2:
            rec["assistantOverrides"] = {"variableValues": {"customerName": corpus.person(rng),
                                                            "plan": rng.choice(["pro", "free"])}}
            if rng.random() < 0.5:
                rec["assistantOverrides"]["firstMessage"] = corpus.line(rng, "assistant")
        if rng.random() < 0.5:
            rec["name"] = f"Call with {corpus.person(rng)}"
        if rng.random() < 0.6:
            rec["sessionId"] = rng.choice(self.sessions)
        if rng.random() < 0.1:
            rec["workflowId"] = rng.choice(self.workflows)
        opening = corpus.line(rng, "user")
        r = rng.random()
        if r < 0.45:
            rec["input"] = opening
        elif r < 0.85:
            rec["input"] = [{"role": "user", "content": opening}]
            if rng.random() < 0.3:
                rec["input"].insert(0, {"role": "system", "content": "Be brief."})
        rec["stream"] = rng.random() < 0.3
        rec["previousChatId"] = None
        messages, seconds = [], 0.0
        if rng.random() < 0.3:
            messages.append(self._msg("system", corpus.line(rng, "system"), 0.0))
        for i in range(rng.randint(2, 30) - len(messages)):
            role = "user" if i % 2 == 0 else "assistant"
            seconds = round(seconds + rng.uniform(1.5, 25.0), 3)
            messages.append(self._msg(role, corpus.line(rng, role), seconds))
        said = [m for m in messages if m["role"] == "assistant"]
        rec["messages"] = messages
        rec["output"] = [dict(m) for m in said[-rng.randint(0, 3):]] if said else []
        rec["costs"] = self._costs(seconds, sum(len(m["message"]) for m in said))
        rec["cost"] = round(sum(c["cost"] for c in rec["costs"]), 6)
        # Most chats stop changing when the call ends; some get analysed a little later, and a
        # few are updated hours or days afterwards.
        late, much_later = rng.randint(1_000, 120_000), rng.randint(3_600_000, 3 * 86_400_000)
        extra = rng.choice([0, 0, 0, late, much_later])
        return Made(rec, 0, 0, span_ms=int(seconds * 1000) + extra)

    @staticmethod
    def _msg(role: str, text: str, seconds: float) -> dict[str, Any]:
        return {"role": role, "message": text, "time": int(seconds * 1000),
                "secondsFromStart": seconds}

    def anchor(self, item: Made, time_base: int | None = None) -> None:
        rec = item.record
        base = item.created_ms if time_base is None else time_base
        rec["createdAt"], rec["updatedAt"] = iso_ms(item.created_ms), iso_ms(item.updated_ms)
        for m in rec["messages"]:
            m["time"] += base
        for m in rec["output"]:
            m["time"] += base

    def _costs(self, seconds: float, characters: int) -> list[dict[str, Any]]:
        rng = self.rng
        provider, model = rng.choice(corpus.MODELS)
        prompt, completion = rng.randint(200, 20_000), rng.randint(20, 3_000)
        costs: list[dict[str, Any]] = [{
            "type": "model",
            "model": model if rng.random() < 0.2 else {"provider": provider, "model": model},
            "promptTokens": prompt, "completionTokens": completion,
            "cost": round(prompt * 2.5e-6 + completion * 1e-5, 6)}]
        minutes = round(seconds / 60, 4)
        if rng.random() < 0.8:
            costs.append({"type": "transcriber", "transcriber": {"provider": "deepgram",
                                                                 "model": "nova-2"},
                          "minutes": minutes, "cost": round(minutes * 0.01, 6)})
        if rng.random() < 0.8:
            costs.append({"type": "voice", "voice": {"provider": "azure", "voiceId": "andrew"},
                          "characters": characters, "cost": round(characters * 1.5e-5, 6)})
        if rng.random() < 0.3:
            p, c = rng.randint(500, 4_000), rng.randint(50, 400)
            costs.append({"type": "analysis", "analysisType": "summary",
                          "model": {"provider": "openai", "model": "gpt-4o-mini"},
                          "promptTokens": p, "completionTokens": c,
                          "cost": round(p * 1.5e-7 + c * 6e-7, 6)})
        costs.append({"type": "cozmox", "subType": "normal", "minutes": minutes,
                      "cost": round(minutes * 0.05, 6)})
        return costs

    def more_messages(self, rec: dict[str, Any], at_ms: int, n: int) -> None:
        """Continue a conversation at `at_ms` and charge the model for it."""
        created = parse_us(rec.get("createdAt"))
        start_ms = created // US_PER_MS if created is not None else at_ms
        messages = rec.get("messages") if isinstance(rec.get("messages"), list) else []
        for i in range(n):
            role = "user" if (len(messages) + i) % 2 == 0 else "assistant"
            t = at_ms - (n - 1 - i)
            messages.append({"role": role, "message": corpus.line(self.rng, role), "time": t,
                             "secondsFromStart": round((t - start_ms) / 1000, 3)})
        rec["messages"] = messages
        costs = rec.get("costs")
        if isinstance(costs, list):
            for c in costs:
                if isinstance(c, dict) and c.get("type") == "model":
                    c["completionTokens"] = int(c.get("completionTokens") or 0) + 40 * n
                    c["cost"] = round(float(c.get("cost") or 0) + 4e-4 * n, 6)
                    break
            rec["cost"] = total_cost(costs)


def total_cost(costs: list[Any]) -> float | None:
    values = [c.get("cost") for c in costs if isinstance(c, dict)]
    if not all(isinstance(v, (int, float)) for v in values):
        return None
    return round(sum(values), 6)


def clone(value: Any) -> Any:
    """A deep copy of plain JSON data, much faster than copy.deepcopy."""
    return orjson.loads(orjson.dumps(value))
