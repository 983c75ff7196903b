"""The demo agent's tools: a pretend restaurant ("Bistro") with a menu and bookings.

Availability is deterministic (no randomness) so conversations and tests repeat.
First the venue's rules from the agent file (``venue``: opening hours, closed days,
``max_party_size``, only future times; see ``venue.py``), then one busy slot:
Saturdays at 20:00 are fully booked (alternatives 18:00, 18:30, 21:30 where bookable).
"Now" comes from the injected clock, in the venue's time zone. Dates are stored ISO
(``2026-01-02``), times ``HH:MM``; words ("tomorrow", "7pm") are accepted too.
Bookings live in the session's agent state.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

from parley.brain.dates import minutes, resolve_day, say_date, say_time
from parley.brain.slots import extract_slots
from parley.brain.tools import ToolContext, ToolRegistry
from parley.brain.venue import Venue
from parley.clock import Clock, SystemClock
from parley.config import AgentSpec, VenueSpec

MENU: list[dict[str, str]] = [  # used when the agent file has no menu
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


def _is_full(day: dt.date, time: str, party_size: int) -> bool:
    """The demo's one busy slot: Saturdays at 20:00 are fully booked."""
    return day.weekday() == 5 and time.startswith("20")


def _venue(ctx: ToolContext) -> Venue:
    return Venue(ctx.agent.venue or VenueSpec())


def _local_now(ctx: ToolContext, clock: Clock) -> dt.datetime:
    spec = ctx.agent.venue or VenueSpec()
    return clock.now().astimezone(ZoneInfo(spec.timezone)).replace(tzinfo=None)


def _day(date: str, now: dt.datetime) -> dt.date:
    day = resolve_day(date, now.date())
    if day is None:
        found = extract_slots(date).get("date")
        day = resolve_day(str(found), now.date()) if found else None
    if day is None:
        raise ValueError(
            f"date must be a calendar date like {now.date().isoformat()}, got {date!r}"
        )
    return day


def _time(time: str) -> str:
    if minutes(time) is not None and len(time) == 5:
        return time
    found = extract_slots(f"at {time}").get("time")
    if found is None:
        raise ValueError(f"time must be HH:MM (24-hour), got {time!r}")
    return str(found)


def make_demo_tools(clock: Clock) -> list[Callable[..., Awaitable[Any]]]:
    """The demo's tools, reading "now" from ``clock``."""

    async def check_availability(
        date: str, time: str, party_size: int, ctx: ToolContext
    ) -> dict[str, Any]:
        """Check whether there is a free table for a party: date as YYYY-MM-DD, time as
        24-hour HH:MM. When not, ``reason`` and ``message`` say why and
        ``alternatives`` (times that day) or ``alternative_dates`` what would work."""
        if party_size < 1:
            raise ValueError("party_size must be at least 1")
        now = _local_now(ctx, clock)
        day, time = _day(date, now), _time(time)
        verdict = _venue(ctx).check(day, time, party_size, now)
        result: dict[str, Any] = {
            "available": verdict.ok,
            "date": day.isoformat(),
            "time": time,
            "when": f"{say_date(day)} at {say_time(time)}",  # as customers read it
            "party_size": party_size,
            "alternatives": list(verdict.times),
            "alternative_dates": [d.isoformat() for d in verdict.dates],
        }
        if not verdict.ok:
            result["reason"] = verdict.reason
            result["message"] = _explain(verdict.reason, day, verdict.details)
            return result
        if _is_full(day, time, party_size):
            options = [t for t in ("18:00", "18:30", "21:30") if t != time]
            venue = _venue(ctx)
            result["available"] = False
            result["reason"] = "full"
            result["alternatives"] = [
                t for t in options if venue.is_bookable_time(day.weekday(), minutes(t) or 0)
            ]
            result["message"] = "That time is fully booked."
        return result

    async def book_table(
        name: str, date: str, time: str, party_size: int, ctx: ToolContext
    ) -> dict[str, Any]:
        """Book a table under a name (date YYYY-MM-DD, time HH:MM). Needs the user's
        confirmation."""
        now = _local_now(ctx, clock)
        day, time = _day(date, now), _time(time)
        verdict = _venue(ctx).check(day, time, party_size, now)
        if not verdict.ok:
            raise ValueError(_explain(verdict.reason, day, verdict.details))
        if _is_full(day, time, party_size):
            raise ValueError(f"no table for {party_size} at {time} on {day.isoformat()}")
        key = f"{ctx.session_id}|{name}|{day.isoformat()}|{time}|{party_size}"
        confirmation = "BX-" + hashlib.sha256(key.encode()).hexdigest()[:4].upper()
        booking = {
            "confirmation": confirmation,
            "name": name,
            "date": day.isoformat(),
            "time": time,
            "party_size": party_size,
        }
        ctx.state.setdefault("bookings", []).append(booking)
        booking = {**booking, "when": f"{say_date(day)} at {say_time(time)}"}
        return booking

    return [check_availability, book_table, show_menu, transfer_to_human]


def _explain(reason: str, day: dt.date, details: dict[str, str]) -> str:
    weekday = details.get("weekday", "")
    return {
        "past": "That time has already passed.",
        "closed_day": f"We're closed on {weekday}s.",
        "outside_hours": f"We take bookings {details.get('hours', '')}.",
        "too_many": f"We can seat parties of up to {details.get('max', '')} online.",
        "too_far": f"We take bookings up to {details.get('days', '')} days ahead.",
    }.get(reason, "That can't be booked.")


async def show_menu(ctx: ToolContext) -> dict[str, Any]:
    """Show today's menu to the user as cards they can click."""
    dishes = menu_of(ctx.agent)
    items = [
        {
            "title": dish["title"],
            "subtitle": dish["subtitle"],
            "price": dish["price"],
            "msg": f"Tell me about the {dish['title'].lower()}",
            "display": dish["title"],
            **({"image": dish["image"]} if dish.get("image") else {}),
        }
        for dish in dishes
    ]
    ctx.ui_op({"kind": "carousel", "items": items})
    return {"dishes": dishes}


def menu_of(agent: AgentSpec) -> list[dict[str, Any]]:
    """The agent file's ``menu`` as dish dicts; the built-in menu when it has none."""
    if not agent.menu:
        return [dict(d) for d in MENU]
    return [
        {
            "title": d.name,
            "subtitle": d.subtitle,
            "price": d.price or "",
            "description": d.description,
            "image": d.image or "",
        }
        for d in agent.menu
    ]


async def transfer_to_human(reason: str, ctx: ToolContext) -> dict[str, Any]:
    """Hand the conversation to a person on the restaurant's staff."""
    ctx.transfer(reason)
    return {
        "status": "transferring",
        "reason": reason,
        "message": "I'm getting a member of our team for you; please hold for a moment.",
    }


def register_demo_tools(registry: ToolRegistry, clock: Clock | None = None) -> None:
    for fn in make_demo_tools(clock or SystemClock()):
        registry.add(fn)
