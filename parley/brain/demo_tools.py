"""The demo agent's tools: a pretend restaurant ("Bistro") with a menu and bookings.

Availability is deterministic (no randomness) so conversations and tests repeat:
a slot is full when the party is larger than eight, or at 20:00 on Saturdays.
Bookings live in the session's agent state.
"""

from __future__ import annotations

import hashlib
from typing import Any

from parley.brain.tools import ToolContext, ToolRegistry

MENU: list[dict[str, str]] = [
    {
        "title": "Mushroom risotto",
        "subtitle": "Arborio rice, porcini, parmesan",
        "price": "€16",
        "description": "Creamy arborio rice with porcini and chestnut mushrooms, "
        "finished with aged parmesan and thyme.",
    },
    {
        "title": "Steak frites",
        "subtitle": "Grass-fed sirloin, hand-cut fries",
        "price": "€24",
        "description": "A 250 g grass-fed sirloin with hand-cut fries and peppercorn sauce.",
    },
    {
        "title": "Sea bass",
        "subtitle": "Lemon butter, samphire",
        "price": "€22",
        "description": "Pan-roasted sea bass with lemon butter, samphire and new potatoes.",
    },
    {
        "title": "Chocolate fondant",
        "subtitle": "Warm, with vanilla ice cream",
        "price": "€9",
        "description": "A warm chocolate fondant with a molten centre and vanilla ice cream.",
    },
]


def _is_full(date: str, time: str, party_size: int) -> bool:
    return party_size > 8 or ("sat" in date.lower() and time.startswith("20"))


async def check_availability(date: str, time: str, party_size: int) -> dict[str, Any]:
    """Check whether Bistro has a free table for a party at a date and time."""
    if party_size < 1:
        raise ValueError("party_size must be at least 1")
    available = not _is_full(date, time, party_size)
    alternatives = [] if available else ["18:00", "18:30", "21:30"]
    return {
        "available": available,
        "date": date,
        "time": time,
        "party_size": party_size,
        "alternatives": alternatives,
    }


async def book_table(
    name: str, date: str, time: str, party_size: int, ctx: ToolContext
) -> dict[str, Any]:
    """Book a table at Bistro under a name. Needs the user's confirmation."""
    if _is_full(date, time, party_size):
        raise ValueError(f"no table for {party_size} at {time} on {date}")
    key = f"{ctx.session_id}|{name}|{date}|{time}|{party_size}"
    confirmation = "BX-" + hashlib.sha256(key.encode()).hexdigest()[:4].upper()
    booking = {
        "confirmation": confirmation,
        "name": name,
        "date": date,
        "time": time,
        "party_size": party_size,
    }
    ctx.state.setdefault("bookings", []).append(booking)
    return booking


async def show_menu(ctx: ToolContext) -> dict[str, Any]:
    """Show today's menu to the user as cards they can click."""
    items = [
        {
            "title": dish["title"],
            "subtitle": dish["subtitle"],
            "price": dish["price"],
            "msg": f"Tell me about the {dish['title'].lower()}",
            "display": dish["title"],
        }
        for dish in MENU
    ]
    ctx.ui_op({"kind": "carousel", "items": items})
    return {"dishes": MENU}


async def transfer_to_human(reason: str, ctx: ToolContext) -> dict[str, Any]:
    """Hand the conversation to a person on the restaurant's staff."""
    ctx.transfer(reason)
    return {
        "status": "transferring",
        "reason": reason,
        "message": "I'm getting a member of our team for you; please hold for a moment.",
    }


def register_demo_tools(registry: ToolRegistry) -> None:
    for fn in (check_availability, book_table, show_menu, transfer_to_human):
        registry.add(fn)
