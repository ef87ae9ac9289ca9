"""Names the two APIs use. Those the documentation does not give are marked (assumed), so a
correction is one line here."""

COZMOX_DEFAULT_BASE_URL = "https://api.cozmox.ai"
COZMOX_CHATS_PATH = "/chat"
COZMOX_MAX_LIMIT = 1000

INVENT_DEFAULT_BASE_URL = "https://api.useinvent.com"
INVENT_DEFAULT_ORG = "c"
INVENT_CHATS_PATH = "/orgs/{org_id}/chats"
INVENT_MESSAGES_PATH = "/chats/{chat_id}/messages"
INVENT_MAX_TAKE = 100
INVENT_COUNT_HEADER = "pagination-count"
INVENT_PAGE_HEADER = "pagination-page"
INVENT_TAKE_HEADER = "pagination-take"
INVENT_MESSAGES_SINCE = "from"  # (assumed) the messages' "date to start fetching messages from"
INVENT_MESSAGES_SINCE_ELSEWHERE = ("from_date",)  # what other clients send instead; doctor tries them
# Requests a minute each API allows: Invent documents about 500 per address; Cozmox (assumed) the
# same, and is read without a ceiling of chatsync's own.
INVENT_REQUESTS_PER_MINUTE = 500
COZMOX_REQUESTS_PER_MINUTE = 500
# Neither API documents rate-limit headers; these are the common spellings (assumed).
RATE_LIMIT_HEADERS = ("x-ratelimit-limit", "ratelimit-limit")
RATE_REMAINING_HEADERS = ("x-ratelimit-remaining", "ratelimit-remaining")
