"""Assumptions chatsync makes about the two APIs, each of which the simulator breaks on demand.

`Simulator(broken={...})`, `sim.break_assumption(name)` or `python -m simulator --break NAME`; none
is broken by default. Each one is what `chatsync doctor` must name (tests/flows/test_doctor.py).
"""

from __future__ import annotations

from collections.abc import Iterable

BROKEN_ASSUMPTIONS: dict[str, str] = {
    "cozmox_page_size": "Cozmox serves at most 3 chats a page whatever limit asks (itemsPerPage says so)",
    "cozmox_updated_filter": "Cozmox ignores the updatedAtGt/Ge/Lt/Le filters",
    "cozmox_sort_order": "Cozmox ignores sortOrder: always newest first",
    "cozmox_unsorted": "Cozmox orders chats by id, not by any timestamp",
    "cozmox_times_in_seconds": "Cozmox times are whole seconds, without milliseconds",
    "cozmox_metadata": "Cozmox metadata.totalItems counts the page served, not every chat that matches",
    "cozmox_rate_limit": "Cozmox sends x-ratelimit-* headers allowing 100 requests a minute",
    "invent_take": "the Invent chat list serves at most 3 chats a page whatever take asks (pagination-take says so)",
    "invent_pagination_headers": "Invent sends no pagination-count/-page/-take headers",
    "invent_order": "the Invent chat list is newest created first, not newest activity first",
    "invent_bare_dates": "Invent chats' created_at and updated_at are bare dates (2024-05-01)",
    "invent_org_shorthand": "Invent answers 404 to the org shorthand c",
    "invent_messages_path": "Invent serves messages at /orgs/{org_id}/chats/{chat_id}/messages only",
    "invent_messages_order": "Invent lists a chat's messages newest first",
    "invent_from_date": "Invent's messages take their start date as from_date and ignore from",
    "invent_rate_limit": "Invent sends x-ratelimit-* headers allowing 100 requests a minute",
}

CAPPED_PAGE = 3  # what cozmox_page_size and invent_take serve at most
RATE_LIMIT = 100  # requests a minute, as cozmox_rate_limit and invent_rate_limit announce it


def known(names: Iterable[str]) -> set[str]:
    chosen = set(names)
    unknown = chosen - BROKEN_ASSUMPTIONS.keys()
    if unknown:
        raise ValueError(f"unknown assumption(s) {sorted(unknown)}; one of {sorted(BROKEN_ASSUMPTIONS)}")
    return chosen
