"""The rules brain's booking flow: slots, the availability check, the booking itself.

``BookingFlow`` is the part of a ``Dialogue`` (``rules_dialogue.py``) that knows how a
table gets booked: which slot to ask for next, when to call ``check_availability`` and
``book_table``, what the venue's own rules refuse, and how each answer is worded. It
also fills the template values (``{time}``, ``{on_date}``, ``{hours}``) every reply uses.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from parley.brain import rules_knowledge as knowledge
from parley.brain.dates import on_day, parse_iso, say_date, say_time
from parley.brain.rulebook import RuleBook
from parley.brain.rules_refusals import next_open_days, refusal, refusal_values
from parley.brain.venue import Venue

CHECK_TOOL = "check_availability"
BOOK_TOOL = "book_table"
BOOKING_SLOTS = ("party_size", "date", "time")
RULE_REASONS = frozenset({"past", "closed_day", "outside_hours", "too_many", "too_far"})


@dataclass(frozen=True)
class Reply:
    """What the brain answers to one input: text, and at most one tool call."""

    text: str = ""
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    awaiting: str | None = None


@dataclass(frozen=True)
class Check:
    """The last availability check: what was asked and what the tool answered."""

    key: tuple[int, str, str]
    available: bool
    alternatives: tuple[str, ...]
    dates: tuple[str, ...] = ()  # other days (ISO) when the day itself is not possible


def _key(values: dict[str, Any]) -> tuple[int, str, str] | None:
    try:
        return int(values["party_size"]), str(values["date"]), str(values["time"])
    except (KeyError, TypeError, ValueError):
        return None


class BookingFlow:
    """The booking state of one replay (slots, the last check, bookings made) and the
    steps that move it on. ``tools`` maps offered tool names to their JSON schema; the
    flow never calls a tool that is not offered."""

    def __init__(
        self,
        book: RuleBook,
        tools: dict[str, dict[str, Any]],
        today: dt.date | None = None,
        now_time: str | None = None,
    ) -> None:
        self.book = book
        self.tools = tools
        self.today = today
        self.now_time = now_time  # the local time, "3:05 pm", for "what time is it?"
        venue = book.agent.venue
        self.venue = Venue(venue) if venue is not None else None
        self.bookings: list[dict[str, Any]] = []  # made in this conversation
        self.slots: dict[str, Any] = {}
        self.booking = False  # the user asked for a table since the last fresh start
        self.check: Check | None = None

    def cancel(self) -> Reply:
        if not (self.booking or self.slots) and self.bookings:
            text = self.book.fill(self.book.reply("booking_change"), self.values(self.bookings[-1]))
            return Reply(text, awaiting="offer_person")
        if not (self.booking or self.slots):
            return Reply(self.book.reply("nothing_to_cancel"))
        self.fresh_start()
        return Reply(self.book.reply("cancelled"), awaiting="anything_else")

    def fresh_start(self) -> None:
        self.slots, self.booking, self.check = {}, False, None

    def step(self) -> Reply:
        """Ask for the next missing slot, check availability, ask for a name, or book."""
        rule = self.book.rule("book")
        needs = tuple(rule.needs) if rule is not None and rule.needs else BOOKING_SLOTS
        early = self._early_refusal()
        if early is not None:
            return early
        missing = [s for s in needs if s not in self.slots]
        if missing:
            return self.ask(missing[0])
        check_tool = rule.tool if rule is not None and rule.tool else CHECK_TOOL
        key = _key(self.slots)
        checked = self.check is not None and self.check.key == key
        if not checked and check_tool in self.tools:
            return self.call(check_tool)
        if self.check is not None and checked and not self.check.available:
            return self._unavailable(self.values())
        if "name" not in self.slots:
            return self.ask("name")
        return self.call(BOOK_TOOL)

    def _early_refusal(self) -> Reply | None:
        """What the venue's rules refuse before the other slots are even asked for: a
        party over the maximum, a day it is closed."""
        if self.venue is None:
            return None
        size = self.slots.get("party_size")
        if isinstance(size, int) and size > self.venue.spec.max_party_size:
            self.slots.pop("party_size")
            values = {**self.values(), **refusal_values(self.venue, None)}
            text, awaiting = refusal(self.book, "too_many", values)
            return Reply(text, awaiting=awaiting)
        day = parse_iso(str(self.slots.get("date", "")))
        if day is None or self.venue.hours[day.weekday()]:
            return None
        self.slots.pop("date")
        offered = tuple(d.isoformat() for d in next_open_days(self.venue, day))
        self.check = Check((0, "", ""), False, (), offered)
        values = refusal_values(self.venue, day)
        text, awaiting = refusal(self.book, "closed_day", values, (), offered, self.today)
        return Reply(text, awaiting=awaiting)

    def ask(self, slot: str) -> Reply:
        return Reply(self.book.ask(slot, self.values()), awaiting=slot)

    def call(self, tool: str, extra: dict[str, Any] | None = None) -> Reply:
        schema = self.tools.get(tool)
        if schema is None:
            return Reply(self.book.reply("tool_missing"))
        values = {**self.slots, **(extra or {})}
        arguments: dict[str, Any] = {}
        for key, spec in (schema.get("properties") or {}).items():
            if key in values:
                kind = spec.get("type") if isinstance(spec, dict) else None
                value = values[key]
                arguments[key] = int(value) if kind == "integer" else value
        return Reply(tool=tool, arguments=arguments)

    def after_check(self, values: dict[str, Any], status: str, result: Any) -> Reply:
        key = _key(values)
        if status != "ok" or not isinstance(result, dict) or key is None:
            return Reply(self.book.reply("check_failed"))
        offered = (str(a) for a in result.get("alternatives") or ())
        alternatives = tuple(a for a in offered if a != key[2])  # never the time just refused
        dates = tuple(str(d) for d in result.get("alternative_dates") or ())
        self.check = Check(key, bool(result.get("available")), alternatives, dates)
        shown = self.values(values)
        reason = str(result.get("reason") or "")
        if not self.check.available and reason in RULE_REASONS:
            return self._not_possible(reason, shown, result)
        if not self.check.available:
            return self._unavailable(shown)
        if "name" not in self.slots:
            text = self.book.reply("available_ask_name") + " " + self.book.ask("name", shown)
            return Reply(self.book.fill(text, shown), awaiting="name")
        text = self.book.fill(self.book.reply("available_confirm"), shown)
        return Reply(text, awaiting="confirm_booking")

    def _unavailable(self, shown: dict[str, Any]) -> Reply:
        if self.check is None or not self.check.alternatives:
            return Reply(
                self.book.fill(self.book.reply("unavailable_no_alternatives"), shown),
                awaiting="time",
            )
        times = [say_time(a) for a in self.check.alternatives]
        shown = {**shown, "alternatives": knowledge.join(times, "or")}
        return Reply(
            self.book.fill(self.book.reply("unavailable"), shown), awaiting="pick_alternative"
        )

    def _not_possible(self, reason: str, shown: dict[str, Any], result: dict[str, Any]) -> Reply:
        """The venue's own rules refuse the request: say why, offer what would work."""
        check = self.check or Check((0, "", ""), False, ())
        day = parse_iso(str(result.get("date") or self.slots.get("date", "")))
        values = {**shown, **refusal_values(self.venue, day), "message": result.get("message")}
        text, awaiting = refusal(
            self.book, reason, values, check.alternatives, check.dates, self.today
        )
        if reason in ("closed_day", "past") and check.dates:
            self.slots.pop("date", None)  # a day offered instead replaces it
        return Reply(text, awaiting=awaiting)

    def after_booking(self, values: dict[str, Any], status: str, result: Any) -> Reply:
        if status == "denied":
            return Reply(self.book.reply("booking_denied"), awaiting="anything_else")
        if status != "ok":
            return Reply(self.book.reply("booking_failed"))
        booked = {**values, **(result if isinstance(result, dict) else {})}
        if booked.get("confirmation"):
            self.bookings.append(booked)
        text = self.book.fill(self.book.reply("booked"), self.values(booked))
        self.fresh_start()
        return Reply(text, awaiting="anything_else")

    def values(self, values: dict[str, Any] | None = None) -> dict[str, Any]:
        shown = dict(self.slots if values is None else values)
        agent = self.book.agent
        if "time" in shown:
            shown["time"] = say_time(str(shown["time"]))
        if "date" in shown:
            shown["on_date"] = on_day(str(shown["date"]), self.today)
            shown["date"] = say_date(str(shown["date"]), self.today)
        if self.today is not None:
            shown.setdefault("today", say_date(self.today))
        if self.now_time is not None:
            shown.setdefault("now", self.now_time)
        shown.setdefault("name_of_place", agent.display_name or agent.name)
        if self.venue is not None:
            shown.setdefault("hours", self.venue.describe())
            shown.setdefault("address", self.venue.spec.address or "")
        return shown
