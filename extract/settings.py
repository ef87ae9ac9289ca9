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
