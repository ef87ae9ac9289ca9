"""Seeded generation of Invent inbox chats and their messages (same rules as `data`)."""

from __future__ import annotations

import random
from typing import Any

from simulator import corpus
from simulator.data import Made, apply_ties, clone, iso_ms, spread, uid

CHANNELS = ["internal", "whatsapp_bot", "instagram_dm", "slack_bot", "telegram_bot", "gmail"]
# The newer documentation's channels; its contact channels are `{type, user_id, ...}`.
NEW_CHANNELS = [*CHANNELS, "messenger_bot", "tiktok_dm", "twilio", "telnyx", "email"]
PHONE_CHANNELS = {"whatsapp_bot", "twilio", "telnyx"}
# Of chats: those in today's shapes (newer contact channels and usage, broadcast fields, parts
# of several types); the rest are in the seed's. Of today's: those opened by a broadcast.
MODERN_SHARE = 0.75
BROADCAST_SHARE = 0.06
FEATURES: list[dict[str, Any]] = [{}, {"web_search": {}}, {"reasoning": {"effort": "low"}},
                                  {"web_search": {}, "reasoning": {"effort": "medium"}}]
TOOLS: list[dict[str, Any]] = [
    {"name": name, "display_name": name.replace("_", " ").title(), "action_name": name,
     "description": f"Lets the assistant {name.replace('_', ' ')}.", "icon": icon,
     "icon_url": None, "connection_id": None, "parameters": {},
     "enabled_by_default": True, "callback": None}
    for name, icon in [("web_search", "ToolWebSearchIcon"), ("search_kb", "ToolSearchKbIcon"),
                       ("calculator", "ToolCalculatorIcon"),
                       ("manage_memory", "ToolManageMemoryIcon")]]


class InventFactory:
    """Invent chats: an inbox of customer conversations, each with a paged message history."""

    def __init__(self, seed: int) -> None:
        self.rng = rng = random.Random(f"invent:{seed}")
        self.org_id = uid(rng)
        self.users = [{"id": uid(rng), "name": corpus.person(rng),
                       "avatar": f"https://cdn.useinvent.example/avatars/{i}.png"}
                      for i in range(5)]
        self.assistant_ids = [uid(rng) for _ in range(3)]
        self.broadcasts = [uid(rng) for _ in range(4)]

    def history(self, n: int, end_ms: int, window_ms: int, tie_ratio: float) -> list[Made]:
        items = [self.draft() for _ in range(n)]
        spread(self.rng, items, end_ms, window_ms)
        for item in items:
            self.anchor(item)
        apply_ties(self.rng, items, tie_ratio, "updated_at")
        return items

    def new(self, at_ms: int) -> Made:
        """A chat created and updated at `at_ms`; its messages arrive a millisecond apart."""
        item = self.draft()
        item.created_ms = item.updated_ms = at_ms
        count = len(item.messages)
        item.messages = [(m, count - 1 - k, count - 1 - k) for k, (m, _, _) in
                         enumerate(item.messages)]
        item.span_ms = 0
        self.anchor(item, base_ms=at_ms, backwards=True)
        return item

    def _member(self, user: dict[str, Any] | None, role: str, modern: bool) -> dict[str, Any]:
        rng = self.rng
        member: dict[str, Any] = {"id": uid(rng), "role": role, "user": None, "session": None,
                                  "contact_channel": None}
        if user is not None:
            member["user"] = dict(user)
            return member
        name = corpus.person(rng)
        handle = name.lower().replace(" ", ".")
        phone = f"+1555{rng.randrange(10**6, 10**7)}"
        member["session"] = {"id": uid(rng)} if rng.random() < 0.3 else None
        country = rng.choice(["US", "BR", "DE", "JP", None])
        language = rng.choice(["en", "es", "pt", None])
        contact: dict[str, Any] = {"id": uid(rng), "name": name, "blocked": rng.random() < 0.05}
        if not modern:
            kind = rng.choice(CHANNELS)
            member["contact_channel"] = {
                "id": uid(rng), "channel_type": kind,
                "channel_id": phone if kind == "whatsapp_bot" else handle,
                "channel_name": handle, "channel_display_name": name, "channel_avatar": None,
                "country": country, "agent": None, "ip": None, "language": language,
                "contact": contact, "link": None}
            return member
        kind = rng.choice(NEW_CHANNELS)
        email = f"{handle}@example.com" if kind in ("gmail", "email") or rng.random() < 0.3 else None
        on_phone = kind in PHONE_CHANNELS
        contact["is_admin"] = rng.random() < 0.03
        member["contact_channel"] = {
            "id": uid(rng), "type": kind,
            "user_id": phone if on_phone else email if kind in ("gmail", "email") else handle,
            "avatar": f"https://cdn.useinvent.example/contacts/{handle}.png"
            if rng.random() < 0.4 else None,
            "name": name, "username": None if on_phone else handle, "email": email,
            "phone": phone if on_phone or rng.random() < 0.2 else None,
            "country": country, "language": language, "contact": contact, "link": None}
        return member

    def message(self, role: str, member: dict[str, Any] | None, model: str,
                channel: str | None, modern: bool = True) -> dict[str, Any]:
        """A message; `modern`: in today's shape (cache reads and writes in its usage, turns
        now and then, broadcast fields, parts that are not text), else in the seed's."""
        rng = self.rng
        part: dict[str, Any] = {"type": "text", "text": corpus.line(rng, role)}
        if role == "event":
            part["text"] = f"Chat assigned to {rng.choice(self.users)['name']}"
        elif role == "tool":
            part["text"] = f'{{"result": "ok", "reference": "R-{rng.randrange(10**5, 10**6)}"}}'
        if role == "assistant":
            part["start_timestamp"] = part["end_timestamp"] = 0
        if role == "user" and channel == "whatsapp_bot" and rng.random() < 0.3:
            fid = uid(rng)
            part["audio"] = {"id": fid, "file_path": f"org/audio/{fid}.ogg",
                             "file_filename": "voice-note.ogg",
                             "file_size": rng.randint(4_000, 400_000),
                             "file_mimetype": "audio/ogg",
                             "file_url": f"https://files.useinvent.example/{fid}.ogg",
                             "created_at": None}
            part["start_timestamp"] = part["end_timestamp"] = 0
        parts = [part]
        if modern and role == "assistant" and rng.random() < 0.08:
            tool = rng.choice(TOOLS)["name"]
            parts.insert(0, {"type": "tool-call", "tool_call_id": uid(rng), "tool_name": tool,
                             "args": {"query": rng.choice(corpus.TOPICS)}})
        elif modern and role == "user" and rng.random() < 0.03:
            fid = uid(rng)
            parts.append({"type": "image", "image": {
                "id": fid, "file_filename": "photo.jpg", "file_mimetype": "image/jpeg",
                "file_size": rng.randint(20_000, 2_000_000),
                "file_url": f"https://files.useinvent.example/{fid}.jpg"}})
        failed = role == "assistant" and rng.random() < 0.03
        msg: dict[str, Any] = {
            "id": uid(rng), "role": role, "model": model if role == "assistant" else None,
            "status": "FAILED" if failed else "COMPLETED", "created_at": None, "updated_at": None,
            "messages": [{"role": role, "parts": parts}],
            "tools": [rng.choice(TOOLS)] if role == "assistant" and rng.random() < 0.2 else [],
            "features": {}, "member": dict(member) if member is not None else None,
            "error": "The model is overloaded, please retry." if failed else None}
        if modern:
            msg["broadcast_id"], msg["is_broadcast_message"] = None, False
        if role == "assistant":
            inp, out = rng.randint(200, 8_000), rng.randint(10, 800)
            cached = rng.choice([0, 0, inp // 2])
            usage: dict[str, Any] = {"input_tokens": inp, "output_tokens": out,
                                     "total_tokens": inp + out,
                                     "reasoning_tokens": rng.choice([0, 0, rng.randint(10, 500)])}
            if not modern or rng.random() < 0.2:
                usage["cached_input_tokens"] = cached
            if modern:
                usage["input_tokens_cache_read"] = cached
                usage["input_tokens_cache_write"] = rng.choice([0, rng.randint(0, 1_000)])
                if rng.random() < 0.3:
                    usage["turns"] = self._turns(model, inp, out)
            msg["usage"] = usage
        return msg

    def _turns(self, model: str, inp: int, out: int) -> list[dict[str, Any]]:
        """The usage of each model call a message took, summing to the message's."""
        n = self.rng.randint(1, 3)
        return [{"model": model, "input_tokens": inp // n + (inp % n if i == 0 else 0),
                 "output_tokens": out // n + (out % n if i == 0 else 0)} for i in range(n)]

    def draft(self) -> Made:
        rng = self.rng
        modern = rng.random() < MODERN_SHARE
        contact = self._member(None, "MEMBER", modern) if rng.random() < 0.8 else None
        staff = [self._member(u, "ADMIN" if i == 0 else "MEMBER", modern)
                 for i, u in enumerate(rng.sample(self.users, rng.randint(0 if contact else 1, 2)))]
        members = ([contact] if contact else []) + staff
        speaker = contact or staff[0]
        channel = channel_of(contact["contact_channel"]) if contact else "internal"
        model = rng.choice(corpus.MODELS)[1]
        messages: list[tuple[dict[str, Any], int, int]] = []
        t = rng.randint(0, 2_000)
        if rng.random() < 0.1:
            messages.append((self.message("system", None, model, channel, modern), t, t))
            t += 1
        if modern and rng.random() < BROADCAST_SHARE:  # the chat began as a campaign's message
            msg = self.message("assistant", None, model, channel, modern)
            msg["broadcast_id"], msg["is_broadcast_message"] = rng.choice(self.broadcasts), True
            messages.append((msg, t, t))
            t += rng.randint(60_000, 86_400_000)
        role = "user"
        for _ in range(rng.randint(1, 40) - len(messages)):
            r = rng.random()
            kind = "event" if r < 0.05 else "note" if r < 0.09 else role
            if kind == "assistant" and r > 0.96:
                kind = "tool"
            who = speaker if kind == "user" else staff[0] if kind == "note" and staff else None
            msg = self.message(kind, who, model, channel, modern)
            gen = rng.randint(500, 6_000) if kind == "assistant" else 0
            messages.append((msg, t, t + gen))
            t += gen + (rng.randint(1_000, 8_000) if role == "user" else
                        rng.choice([rng.randint(10_000, 600_000), rng.randint(600_000, 7_200_000)]))
            if kind in ("user", "assistant"):
                role = "assistant" if role == "user" else "user"
        last_updated = max(u for _, _, u in messages)
        span = last_updated + rng.choice([0, 0, rng.randint(1_000, 600_000)])
        assigned = rng.choice(self.users) if rng.random() < 0.4 else None
        chat: dict[str, Any] = {
            "id": uid(rng), "title": rng.choice(["Question about {}", "Help with {}", "Re: {}"])
            .format(rng.choice(corpus.TOPICS)),
            "model": model, "members": members, "temporary": rng.random() < 0.05,
            "visibility": rng.choice(["PRIVATE", "PRIVATE", "PUBLIC_READ", "PUBLIC_WRITE"]),
            "pinned": rng.random() < 0.1,
            "status": rng.choice(["COMPLETED", "COMPLETED", "RUNNING", "FAILED", "CANCELED"]),
            "shared_url": None, "created_at": None, "updated_at": None,
            "tools": rng.sample(TOOLS, rng.randint(0, 2)), "features": rng.choice(FEATURES),
            "org_id": self.org_id,
            "state": {"id": uid(rng), "state": rng.choice(["OPEN", "OPEN", "SNOOZED", "CLOSED"]),
                      "integration_id": channel, "assistant_id": rng.choice(self.assistant_ids),
                      "assistant_integration_id": uid(rng), "conversation_id": uid(rng),
                      "ai_enabled": rng.random() < 0.8,
                      "admin_unseen_count": rng.randint(0, 5), "user_unseen_count": 0,
                      "assistant_integration": {"id": uid(rng), "enabled": True},
                      "assigned_user": None if assigned is None else {
                          **assigned, "email": assigned["name"].split()[0].lower() + "@example.com",
                          "seen_at": None},
                      "assigned_at": None,
                      "assistant_config": {"language": rng.choice(["auto", "en", "es"]),
                                           "model": model, "stt": {"model": "whisper-1"},
                                           "tts": {"model": "tts-1", "voice_id": "alloy"},
                                           "conversation": {"thread_mode": "new",
                                                            "enable_memories": True},
                                           "knowledge_scope": "all",
                                           "instructions": " ".join(rng.sample(corpus.POLICY, 3))
                                           .format(t="the request")}},
            "link": None, "last_message": None}
        if rng.random() < 0.1:
            chat["shared_url"] = f"https://useinvent.example/share/{rng.getrandbits(64):016x}"
        chat["link"] = f"https://app.useinvent.example/chats/{chat['id']}"
        chat["_bare_date"] = rng.random() < 0.08
        return Made(chat, 0, 0, span_ms=span, messages=messages)

    def anchor(self, item: Made, base_ms: int | None = None, backwards: bool = False) -> None:
        """Turn relative offsets into instants (`backwards`: offsets count back from base)."""
        chat = item.record
        base = item.created_ms if base_ms is None else base_ms
        sign = -1 if backwards else 1
        anchored = []
        for msg, c_rel, u_rel in item.messages:
            c, u = base + sign * c_rel, base + sign * u_rel
            set_message_times(msg, c, u)
            anchored.append((msg, c, u))
        item.messages = anchored
        bare = chat.pop("_bare_date", False)
        chat["created_at"] = iso_ms(item.created_ms)[:10] if bare else iso_ms(item.created_ms)
        chat["updated_at"] = iso_ms(item.updated_ms)
        state = chat["state"]
        if state.get("assigned_user"):
            state["assigned_at"] = iso_ms(item.created_ms + min(item.span_ms, 60_000))
            state["assigned_user"]["seen_at"] = iso_ms(item.updated_ms)
        newest = max(anchored, key=lambda x: (x[1], x[0]["id"]), default=None)
        chat["last_message"] = None if newest is None else clone(newest[0])

    def more_messages(self, chat: dict[str, Any], last_role: str | None, at_ms: int,
                      n: int) -> list[tuple[dict[str, Any], int, int]]:
        """New messages ending at `at_ms`, alternating with whoever spoke last."""
        members = chat.get("members") if isinstance(chat.get("members"), list) else []
        speaker = members[0] if members and isinstance(members[0], dict) else None
        named = chat.get("model")
        model = named if isinstance(named, str) else "gpt-4o"
        last = chat.get("last_message")
        modern = not isinstance(last, dict) or "is_broadcast_message" in last  # as it began
        role = "assistant" if last_role == "user" else "user"
        out = []
        for k in range(n):
            msg = self.message(role, speaker if role == "user" else None, model, None, modern)
            t = at_ms - (n - 1 - k)
            set_message_times(msg, t, t)
            out.append((msg, t, t))
            role = "assistant" if role == "user" else "user"
        return out


def channel_of(contact_channel: dict[str, Any]) -> str | None:
    """The channel's type in either shape."""
    return contact_channel.get("channel_type") or contact_channel.get("type")


def set_message_times(msg: dict[str, Any], created_ms: int, updated_ms: int) -> None:
    msg["created_at"], msg["updated_at"] = iso_ms(created_ms), iso_ms(updated_ms)
    for block in msg.get("messages") or []:
        for part in block.get("parts") or []:
            if "start_timestamp" in part:
                part["start_timestamp"], part["end_timestamp"] = created_ms, updated_ms
            if isinstance(part.get("audio"), dict):
                part["audio"]["created_at"] = iso_ms(created_ms)
