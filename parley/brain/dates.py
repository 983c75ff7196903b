"""Calendar dates from people's words, and dates and times as people read them.

Pure functions: "today" is always passed in (the caller reads its injected clock in
the agent's time zone), so the same words give the same date in tests.

How the readable days of ``slots.py`` resolve (``today`` is a Wednesday 31 Dec):

    today, tonight              → today
    tomorrow                    → today + 1
    the day after tomorrow      → today + 2
    in 3 days, in a week        → today + 3, today + 7
    Friday, this Friday         → the next Friday on or after today
    next Friday                 → the Friday of next week (Monday-based weeks)
    the 12th                    → the 12th of this month, else of the next month
    12 March                    → this year's, else next year's
    Friday 14 March 2025 (ISO)  → that date

Stored dates are ISO (``2026-01-02``), shown as "Friday 2 January" (with the year
only when it is not this year's); times are stored ``HH:MM`` and shown "7:30 pm".
"""

from __future__ import annotations

import datetime as dt
import re

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january february march april may june july august september october november december"
).split()


def _add_month(day: dt.date, n: int) -> dt.date | None:
    month = day.month - 1 + n
    try:
        return dt.date(day.year + month // 12, month % 12 + 1, day.day)
    except ValueError:
        return None


def resolve_day(readable: str, today: dt.date) -> dt.date | None:
    """The calendar date ``readable`` (a day as ``slots.extract_slots`` gives it, or an
    ISO date) names, seen from ``today``; None if it names none ("the 31st" of June)."""
    text = readable.strip().lower()
    iso = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text) or re.search(
        r"(\d{4})-(\d{1,2})-(\d{1,2})", text
    )
    if iso:
        try:
            return dt.date(int(iso[1]), int(iso[2]), int(iso[3]))
        except ValueError:
            return None
    full = re.fullmatch(rf"(?:\w+ )?(\d{{1,2}}) ({'|'.join(MONTHS)}) (\d{{4}})", text)
    if full:
        try:
            return dt.date(int(full[3]), MONTHS.index(full[2]) + 1, int(full[1]))
        except ValueError:
            return None
    if text in ("today", "tonight"):
        return today
    if text == "tomorrow":
        return today + dt.timedelta(days=1)
    if text == "the day after tomorrow":
        return today + dt.timedelta(days=2)
    in_days = re.fullmatch(r"in (\d{1,3}) days?", text)
    if in_days:
        return today + dt.timedelta(days=int(in_days[1]))
    weekday = re.fullmatch(rf"(this |next )?({'|'.join(WEEKDAYS)})", text)
    if weekday:
        target = WEEKDAYS.index(weekday[2])
        if weekday[1] == "next ":
            monday = today - dt.timedelta(days=today.weekday()) + dt.timedelta(days=7)
            return monday + dt.timedelta(days=target)
        return today + dt.timedelta(days=(target - today.weekday()) % 7)
    nth = re.fullmatch(r"the (\d{1,2})(?:st|nd|rd|th)", text)
    if nth:
        for ahead in range(0, 3):
            candidate = _add_month(today.replace(day=1), ahead)
            if candidate is None:
                continue
            try:
                day = candidate.replace(day=int(nth[1]))
            except ValueError:
                continue
            if day >= today:
                return day
        return None
    day_month = re.fullmatch(rf"(\d{{1,2}}) ({'|'.join(MONTHS)})", text)
    if day_month:
        for year in (today.year, today.year + 1):
            try:
                day = dt.date(year, MONTHS.index(day_month[2]) + 1, int(day_month[1]))
            except ValueError:
                return None
            if day >= today:
                return day
    return None


def parse_iso(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        return None


def say_date(value: str | dt.date, today: dt.date | None = None) -> str:
    """``2026-01-02`` → ``"Friday 2 January"`` (``"… 2027"`` when not this year); text
    that is not an ISO date is returned as it is."""
    day = value if isinstance(value, dt.date) else parse_iso(value)
    if day is None:
        return str(value)
    shown = f"{WEEKDAYS[day.weekday()].capitalize()} {day.day} {MONTHS[day.month - 1].capitalize()}"
    if today is not None and day.year != today.year:
        shown += f" {day.year}"
    return shown


def say_time(hhmm: str) -> str:
    """``"19:30"`` → ``"7:30 pm"``, ``"12:00"`` → ``"12 pm"``; other text as it is."""
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", hhmm.strip())
    if not m:
        return hhmm
    hour, minute = int(m[1]), int(m[2])
    meridiem = "am" if hour < 12 else "pm"
    hour12 = hour % 12 or 12
    return f"{hour12} {meridiem}" if minute == 0 else f"{hour12}:{minute:02d} {meridiem}"


def on_day(value: str, today: dt.date | None = None) -> str:
    """As it reads after "a table for two …": ``"today (Friday 2 January)"``,
    ``"tomorrow (Saturday 3 January)"``, ``"on Monday 5 January"``."""
    day = parse_iso(value)
    if day is None:
        low = value.lower()
        keep = low in ("today", "tonight", "tomorrow") or low.startswith(
            ("next ", "this ", "the day")
        )
        return value if keep else f"on {value}"
    shown = say_date(day, today)
    if today is not None and day == today:
        return f"today ({shown})"
    if today is not None and day == today + dt.timedelta(days=1):
        return f"tomorrow ({shown})"
    return f"on {shown}"


def minutes(hhmm: str) -> int | None:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", hhmm.strip())
    if not m or int(m[1]) > 24 or int(m[2]) > 59:
        return None
    return int(m[1]) * 60 + int(m[2])


def hhmm(total_minutes: int) -> str:
    return f"{total_minutes // 60:02d}:{total_minutes % 60:02d}"
