"""What the rules brain says when the venue's rules refuse a booking, and what it offers.

Pure: the agent's phrasings (``RuleBook``), the venue, the refused day and the
options (times that day, or other days) in; the sentence and what the dialogue then
awaits out. Reasons are those of ``venue.Venue.check`` (``rule_<reason>`` replies).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from parley.brain.dates import hhmm, say_date, say_time
from parley.brain.rulebook import RuleBook
from parley.brain.rules_knowledge import join
from parley.brain.venue import Venue


def next_open_days(venue: Venue, day: dt.date, count: int = 2) -> list[dt.date]:
    """The next ``count`` days after ``day`` the venue is open."""
    ahead = (day + dt.timedelta(days=n) for n in range(1, 15))
    return [d for d in ahead if venue.hours[d.weekday()]][:count]


def refusal_values(venue: Venue | None, day: dt.date | None) -> dict[str, Any]:
    """The values refusal replies use: weekday, hours, max, days, first, last."""
    values: dict[str, Any] = {"weekday": say_date(day).split()[0] if day else "that day"}
    if venue is None:
        return values
    values |= {
        "hours": venue.describe(),
        "max": venue.spec.max_party_size,
        "days": venue.spec.book_ahead_days,
    }
    windows = venue.bookable(day.weekday()) if day is not None else []
    if windows:
        values["first"] = say_time(hhmm(windows[0][0] % 1440))
        values["last"] = say_time(hhmm(windows[-1][1] % 1440))
    return values


def refusal(
    book: RuleBook,
    reason: str,
    values: dict[str, Any],
    times: Sequence[str] = (),
    dates: Sequence[str] = (),
    today: dt.date | None = None,
) -> tuple[str, str | None]:
    """``(text, awaiting)``: why it can't be booked, then the options offered (awaiting
    a pick) or the question for what to change."""
    text = book.fill(book.reply(f"rule_{reason}"), values)
    if reason == "too_many":
        return text, "offer_person"
    options = ""
    if times:
        options = join([say_time(t) for t in times], "or")
    elif dates:
        options = join([say_date(d, today) for d in dates], "or")
    if options:
        return f"{text} {book.fill(book.reply('would_work'), {'alternatives': options})}", (
            "pick_alternative"
        )
    if reason in ("past", "outside_hours", "closed_day"):
        awaiting = "time" if reason == "outside_hours" else "date"
        return f"{text} {book.ask(awaiting, values)}", awaiting
    return text, None
