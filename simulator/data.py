"""Seeded generation of Cozmox chats, and the helpers the Invent generator shares.

Every random draw is made in relative time (offsets from a chat's start) and only then anchored to
absolute instants, so the content of a simulated history depends on the seed and the sizes alone,
while `history_end` merely slides it along the clock.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from simulator import corpus

UTC = UTC
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
    return f"{t[0]:04d}-{t[1]:02d}-{t[2]:02d}T{t[3]:02d}:{t[4]:02d}:{t[5]:02d}.{ms % 1000:03d}Z"


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


# Of Cozmox chats: those whose entries are call transcripts, as the seed shows them (the rest
# are OpenAI-style, as real payloads are today), and those a squad ran.
TRANSCRIPT_SHARE = 0.25
SQUAD_SHARE = 0.1
TOOL_RESULTS = ['{"status": "ok", "reference": "%s"}', '{"status": "not_found"}',
                '{"status": "updated", "reference": "%s", "notified": true}',
                "Done: %s is scheduled."]
REFUSALS = ["I'm sorry, I can't help with that request.",
            "I can't share details about other customers' accounts."]


def call_id(rng: random.Random) -> str:
    """An OpenAI-style tool call id."""
    return f"call_{rng.getrandbits(96):024x}"


class CozmoxFactory:
    """Cozmox chats: call transcripts, or OpenAI-style chats with tool calls, with costs and,
    for some, the whole assistant embedded."""

    def __init__(self, seed: int, embed_ratio: float) -> None:
        self.rng = rng = random.Random(f"cozmox:{seed}")
        self.embed_ratio = embed_ratio
        self.org_id = uid(rng)
        self.assistants = [(uid(rng), corpus.assistant_config(rng, i)) for i in range(6)]
        self.sessions = [uid(rng) for _ in range(12)]
        self.workflows = [uid(rng) for _ in range(2)]
        self.squads = [uid(rng) for _ in range(3)]
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
        call_ms = max((m.get("time", 0) for m in item.record["messages"]), default=0)
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
        if rng.random() < SQUAD_SHARE:
            rec["squadId"] = rng.choice(self.squads)
            if rng.random() < 0.8:  # a squad's chat mostly names no one assistant
                rec["assistantId"] = None
        if rec["assistantId"] is not None and rng.random() < self.embed_ratio:
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
        call = rng.random() < TRANSCRIPT_SHARE
        messages, seconds = self._transcript() if call else self._conversation()
        said = [m for m in messages if m["role"] == "assistant"]
        rec["messages"] = messages
        rec["output"] = [dict(m) for m in said[-rng.randint(0, 3):]] if said else []
        spoken = sum(len(m.get("message") or m.get("content") or "") for m in said)
        rec["costs"] = self._costs(seconds, spoken, call)
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

    def _transcript(self) -> tuple[list[dict[str, Any]], float]:
        """A call transcript, the seed's shape: `{role, message, time, secondsFromStart}`."""
        rng = self.rng
        messages, seconds = [], 0.0
        if rng.random() < 0.3:
            messages.append(self._msg("system", corpus.line(rng, "system"), 0.0))
        for i in range(rng.randint(2, 30) - len(messages)):
            role = "user" if i % 2 == 0 else "assistant"
            seconds = round(seconds + rng.uniform(1.5, 25.0), 3)
            messages.append(self._msg(role, corpus.line(rng, role), seconds))
        return messages, seconds

    def _conversation(self) -> tuple[list[dict[str, Any]], float]:
        """OpenAI-style entries, as chats carry them today: `{role, content}`, an assistant
        calling tools (`tool_calls`, no content) and a `tool` entry answering each call, with
        now and then a name, a refusal, metadata or content in parts. No times of their own."""
        rng = self.rng
        n = rng.randint(2, 30)
        messages: list[dict[str, Any]] = []
        seconds = 0.0
        if rng.random() < 0.3:
            messages.append({"role": "system" if rng.random() < 0.8 else "developer",
                             "content": corpus.line(rng, "system")})
        role = "user"
        while len(messages) < n:
            seconds += rng.uniform(1.5, 25.0)
            r = rng.random()
            if role == "assistant" and r < 0.2 and n - len(messages) >= 3:
                calls = 2 if r < 0.03 and n - len(messages) >= 4 else 1
                self._tool_calls(messages, calls)
                continue  # the assistant answers once the tools have
            entry: dict[str, Any] = {"role": role, "content": corpus.line(rng, role)}
            if role == "user":
                if r < 0.05:
                    entry["content"] = [{"type": "text", "text": entry["content"]}]
                elif r < 0.1:
                    entry["name"] = rng.choice(corpus.FIRST_NAMES)
            elif r > 0.98:
                entry = {"role": "assistant", "content": None, "refusal": rng.choice(REFUSALS)}
            if rng.random() < 0.05:
                entry["metadata"] = {"channel": rng.choice(["web", "sms", "api"])}
            messages.append(entry)
            role = "assistant" if role == "user" else "user"
        return messages, round(seconds, 3)

    def _tool_calls(self, messages: list[dict[str, Any]], n: int) -> None:
        """An assistant entry calling `n` tools, then one `tool` entry answering each."""
        rng = self.rng
        calls: list[dict[str, Any]] = []
        for _ in range(n):
            noun = rng.choice(corpus.TOOL_NOUNS)
            arguments = f'{{"{noun}Id": "R-{rng.randrange(10**5, 10**6)}"}}'
            calls.append({"id": call_id(rng), "type": "function",
                          "function": {"name": f"{rng.choice(corpus.TOOL_VERBS)}_{noun}",
                                       "arguments": arguments}})
        messages.append({"role": "assistant", "content": None, "tool_calls": calls})
        for c in calls:
            answer = rng.choice(TOOL_RESULTS)
            result: dict[str, Any] = {"role": "tool", "tool_call_id": c["id"],
                                      "content": answer % f"R-{rng.randrange(10**5, 10**6)}"
                                      if "%s" in answer else answer}
            if rng.random() < 0.5:
                result["name"] = c["function"]["name"]
            messages.append(result)

    def anchor(self, item: Made, time_base: int | None = None) -> None:
        rec = item.record
        base = item.created_ms if time_base is None else time_base
        rec["createdAt"], rec["updatedAt"] = iso_ms(item.created_ms), iso_ms(item.updated_ms)
        for m in rec["messages"]:
            if "time" in m:
                m["time"] += base
        for m in rec["output"]:
            if "time" in m:
                m["time"] += base

    def _costs(self, seconds: float, characters: int, call: bool) -> list[dict[str, Any]]:
        """A call pays for its transcriber and voice; a text chat sometimes has a chat fee.
        Model costs say now and then how much of the prompt came from a cache and how much of
        the completion was reasoning."""
        rng = self.rng
        provider, model = rng.choice(corpus.MODELS)
        prompt, completion = rng.randint(200, 20_000), rng.randint(20, 3_000)
        entry: dict[str, Any] = {
            "type": "model",
            "model": model if rng.random() < 0.2 else {"provider": provider, "model": model},
            "promptTokens": prompt, "completionTokens": completion}
        cached = 0
        if rng.random() < 0.4:
            cached = entry["cachedPromptTokens"] = rng.randint(0, prompt // 2)
        if rng.random() < 0.25:
            entry["reasoningTokens"] = rng.randint(0, completion // 2)
        entry["cost"] = round((prompt - cached) * 2.5e-6 + cached * 1.25e-6 + completion * 1e-5, 6)
        costs: list[dict[str, Any]] = [entry]
        minutes = round(seconds / 60, 4)
        if not call:
            if rng.random() < 0.15:
                costs.append({"type": "chat", "cost": round(rng.uniform(0.001, 0.02), 6)})
        elif rng.random() < 0.8:
            costs.append({"type": "transcriber", "transcriber": {"provider": "deepgram",
                                                                 "model": "nova-2"},
                          "minutes": minutes, "cost": round(minutes * 0.01, 6)})
        if call and rng.random() < 0.8:
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
        listed = rec.get("messages")
        messages: list[Any] = listed if isinstance(listed, list) else []
        # a chat goes on in the shape it began in
        call = not messages or (isinstance(messages[-1], dict) and "message" in messages[-1])
        for i in range(n):
            role = "user" if (len(messages) + i) % 2 == 0 else "assistant"
            t = at_ms - (n - 1 - i)
            if call:
                messages.append({"role": role, "message": corpus.line(self.rng, role), "time": t,
                                 "secondsFromStart": round((t - start_ms) / 1000, 3)})
            else:
                messages.append({"role": role, "content": corpus.line(self.rng, role)})
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
    numbers = [v for v in values if isinstance(v, (int, float))]
    if len(numbers) < len(values):
        return None
    return round(sum(numbers), 6)


def clone(value: Any) -> Any:
    """A deep copy of plain JSON data, much faster than copy.deepcopy."""
    return orjson.loads(orjson.dumps(value))
