"""The rules brain's dialogue: a state machine fed the conversation one input at a time.

Theory of operation. The rules brain keeps nothing between calls: each call replays the
whole history through a fresh ``Dialogue``. Every user message and every tool result is
an *input*. For each input the dialogue updates its state (slots, what it last asked,
the last availability check, the last menu) and decides a ``Reply`` (text, a tool call,
or both) exactly as it did when that input was new. The reply to the last input is the
answer. Since deciding is deterministic, replaying earlier inputs recovers what the
assistant asked back then (``awaiting``), which is how a bare "four" or "yes" is read:

    awaiting                     set after                         a bare answer means
    party_size/date/time/name    a slot question                   that slot
    confirm_booking              "Shall I book it under Sam?"      yes → book_table
    pick_alternative             alternatives offered              yes → the first one; "8" → 20:00
    offer_booking                "Would you like to book a table?" yes → start a booking
    offer_person                 "… or I can get you a person."    yes → the human rule's tool
    anything_else                a booking, a denied booking       no → goodbye

A completed booking (``book_table`` ok) or a "cancel" starts a fresh booking: slots come
from the user messages since then, a later message overriding an earlier one.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from parley.brain import rules_knowledge as knowledge
from parley.brain.choices import pick_offered
from parley.brain.dates import minutes, on_day, parse_iso, resolve_day, say_date, say_time
from parley.brain.rulebook import RuleBook
from parley.brain.rules_refusals import next_open_days, refusal, refusal_values
from parley.brain.slots import extract_slots
from parley.brain.typos import TypingFixer
from parley.brain.venue import Venue

CHECK_TOOL = "check_availability"
BOOK_TOOL = "book_table"
MENU_TOOL = "show_menu"
BOOKING_SLOTS = ("party_size", "date", "time")
SLOT_AWAITS = frozenset({"party_size", "date", "time", "name"})
YES_NO_AWAITS = frozenset(
    {"confirm_booking", "pick_alternative", "offer_booking", "offer_person", "anything_else"}
)
OFFERS_PERSON = frozenset(
    {"no_booking", "booking_change", "booking_unknown", "booking_which", "rule_too_many"}
)
WEAK_INTENTS = frozenset({"yes", "no", "greet", "thanks", "bye"})  # yield to the context
FLOW_INTENTS = frozenset({"book", "cancel"}) | WEAK_INTENTS
_QUESTION = re.compile(
    r"\?|^\s*(are|is|do|does|can|could|what|what's|when|where|how|which|will|would)\b",
    re.IGNORECASE,
)
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


class Dialogue:
    """One replay of a conversation. ``tools`` maps offered tool names to their JSON
    schema (``parameters``); the dialogue never calls a tool that is not offered."""

    def __init__(
        self,
        book: RuleBook,
        tools: dict[str, dict[str, Any]],
        today: dt.date | None = None,
        fixer: TypingFixer | None = None,
    ) -> None:
        self.book = book
        self.tools = tools
        self.today = today
        self.fixer = fixer or TypingFixer()
        venue = book.agent.venue
        self.venue = Venue(venue) if venue is not None else None
        self.bookings: list[dict[str, Any]] = []  # made in this conversation
        self.dropped: str | None = None  # a pending action a new message set aside
        self.bad_date: str | None = None  # a day that does not exist ("31 February")
        self.aside: str | None = None  # an answer given on the way to a booking step
        self.now_time: str | None = None  # the local time, "3:05 pm", for "what time is it?"
        self.slots: dict[str, Any] = {}
        self.booking = False  # the user asked for a table since the last fresh start
        self.awaiting: str | None = None
        self.check: Check | None = None
        self.menu: list[dict[str, Any]] = []
        self.interrupted = False

    # --- inputs ------------------------------------------------------------------------

    def on_interrupted(self) -> None:
        self.interrupted = True

    def on_user(self, text: str) -> Reply:
        prev = self.awaiting
        text = text if prev == "name" else self.fixer.fix(text)  # names are as typed
        expecting = "time" if prev == "pick_alternative" else prev
        found = extract_slots(text, expecting if expecting in SLOT_AWAITS else None, self._bookable)
        self._to_calendar(found)
        intents = self.book.intents(text)
        if prev == "pick_alternative" and self.check is not None:
            offered = self.check.alternatives or self.check.dates
            key = "time" if self.check.alternatives else "date"
            found.update(pick_offered(text, intents, found, key, offered))
        self.slots.update(found)
        reply = self._route(text, intents, found, prev)
        if self.aside is not None:
            reply = Reply(
                f"{self.aside} {reply.text}".strip(), reply.tool, reply.arguments, reply.awaiting
            )
            self.aside = None
        if self.bad_date is not None:
            note = self.book.fill(self.book.reply("no_such_date"), {"date": self.bad_date})
            reply = Reply(
                f"{note} {reply.text}".strip(), reply.tool, reply.arguments, reply.awaiting
            )
            self.bad_date = None
        if self.dropped is not None:
            note = self.book.fill(self.book.reply("pending_dropped"), {"action": self.dropped})
            reply = Reply(
                f"{note} {reply.text}".strip(), reply.tool, reply.arguments, reply.awaiting
            )
            self.dropped = None
        self.awaiting = reply.awaiting
        self.interrupted = False
        return reply

    def _bookable(self, hhmm: str) -> bool:
        at = minutes(hhmm)
        return self.venue is not None and at is not None and self.venue.open_any_day(at)

    def _to_calendar(self, found: dict[str, Any]) -> None:
        """Readable days ("next Friday") become ISO dates, seen from today."""
        if "date" not in found or self.today is None:
            return
        day = resolve_day(str(found["date"]), self.today)
        if day is None:
            self.bad_date = str(found.pop("date"))
        else:
            found["date"] = day.isoformat()

    def on_tool_result(
        self, name: str, arguments: dict[str, Any], status: str, result: Any, *, heard: bool
    ) -> Reply:
        """A tool's outcome. ``heard`` is False when the user spoke before the assistant
        could answer it (the reply was never said, so nothing is awaited)."""
        values = {**self.slots, **arguments}
        if status == "denied" and not heard:
            label = self._label(name)  # said with the reply to the new message
            self.dropped = label[:1].lower() + label[1:]
        if name == CHECK_TOOL:
            reply = self._after_check(values, status, result)
        elif name == BOOK_TOOL:
            reply = self._after_booking(values, status, result)
        elif name == MENU_TOOL:
            reply = self._after_menu(status, result)
        else:
            reply = self._after_other(name, status, result, arguments)
        self.awaiting = reply.awaiting if heard else None
        return reply

    # --- routing a user message ------------------------------------------------------------

    def _route(
        self, text: str, intents: list[str], found: dict[str, Any], prev: str | None
    ) -> Reply:
        strong = [i for i in intents if i not in FLOW_INTENTS]
        weak = [i for i in intents if i in WEAK_INTENTS]
        known = self._known_answer(text, found)
        if known is not None:
            return known
        if "cancel" in intents:
            return self._cancel()
        dish = self._dish_in(text) if "book" not in intents else None
        if dish is not None:
            return self._describe(dish)
        if strong:
            return self._rule_reply(strong[0], text, prev)
        if "book" in intents:
            self.booking = True
            return self._booking_step()
        if prev in YES_NO_AWAITS and not found and ({"yes", "no"} & set(intents)):
            return self._yes_no(prev, "yes" in intents and "no" not in intents)
        if len(found.keys() & set(BOOKING_SLOTS)) >= 2 and self.book.rule("book") is not None:
            self.booking = True  # "anything free on Saturday at 8?" is a booking too
        if self.booking and found:
            return self._booking_step()
        if self.booking and prev in SLOT_AWAITS:
            if weak and weak[0] not in ("yes", "no"):
                return self._rule_reply(weak[0], text, prev)
            return self._with_question("" if weak else self.book.reply("not_understood"), prev)
        if weak:
            return self._rule_reply(weak[0], text, prev)
        if self.interrupted:
            return Reply(self.book.reply("interrupted"))
        return self._with_question(self.book.fallback(), prev if self.booking else None)

    def _known_answer(self, text: str, found: dict[str, Any]) -> Reply | None:
        """Answers from data: existing bookings, small talk, the menu, the FAQ."""
        agent = self.book.agent
        carry = self.awaiting if self.booking and self.awaiting in SLOT_AWAITS else None
        asked = knowledge.booking_question(text, self.bookings)
        if asked is not None:
            key, booking = asked
            awaiting = "offer_person" if key in OFFERS_PERSON else None
            text = self.book.fill(self.book.reply(key), self._values(booking))
            return Reply(text, awaiting=awaiting)
        if self.awaiting in SLOT_AWAITS and self.awaiting in found and not _QUESTION.search(text):
            return None  # the answer to the question just asked: the flow goes on
        talk = knowledge.small_talk(text)
        if talk is not None and len(found.keys() & set(BOOKING_SLOTS)) < 2:
            return self._with_question(self.book.fill(self.book.reply(talk), self._values()), carry)
        answer = knowledge.menu_answer(text, agent.menu)
        entry = knowledge.faq_answer(text, agent.faq) if answer is None else None
        if entry is not None:
            answer = self.book.fill(entry.answer, self._values())
        if answer is None:
            return None
        if len(found.keys() & set(BOOKING_SLOTS)) >= 2:
            self.aside = answer  # "tomorrow at 7 with the kids, 4 of us": answer, then book
            return None
        return self._with_question(answer, carry)

    def _label(self, tool: str) -> str:
        spec = self.book.agent.tool(tool)
        return (spec.label if spec is not None else None) or tool.replace("_", " ")

    def _rule_reply(self, intent: str, text: str, prev: str | None) -> Reply:
        rule = self.book.rule(intent)
        if rule is None:
            return Reply(self.book.fallback())
        if rule.tool:
            return self._call(rule.tool, {"reason": text})
        say = self.book.fill(rule.say or self.book.fallback(), self._values())
        return self._with_question(say, prev if self.booking else None)

    def _with_question(self, text: str, awaiting: str | None) -> Reply:
        """``text``, then the pending booking question again so the flow carries on."""
        question = self._question(awaiting) if awaiting else None
        if question is None:
            return Reply(text)
        return Reply(f"{text} {question}".strip(), awaiting=awaiting)

    def _question(self, awaiting: str) -> str | None:
        if awaiting in SLOT_AWAITS:
            return self.book.ask(awaiting, self._values())
        if awaiting == "confirm_booking":
            return self.book.fill(self.book.reply("reask_confirm"), self._values())
        return None

    def _yes_no(self, prev: str, yes: bool) -> Reply:
        if prev == "offer_person":
            human = self.book.rule("human")
            if yes and human is not None and human.tool:
                return self._call(human.tool, {"reason": "asked for a person"})
            return Reply(self.book.reply("offer_declined"), awaiting="anything_else")
        if prev == "confirm_booking":
            return self._booking_step() if yes else Reply(self.book.reply("confirm_declined"))
        if prev == "pick_alternative":
            if yes:
                return self._booking_step()
            return Reply(self.book.reply("alternatives_declined"), awaiting="time")
        if prev == "offer_booking":
            if yes:
                self.booking = True
                return self._booking_step()
            return Reply(self.book.reply("offer_declined"), awaiting="anything_else")
        if yes:
            return Reply(self.book.reply("anything_else_yes"))
        return Reply(self.book.say("bye") or self.book.reply("goodbye"))

    def _cancel(self) -> Reply:
        if not (self.booking or self.slots) and self.bookings:
            text = self.book.fill(
                self.book.reply("booking_change"), self._values(self.bookings[-1])
            )
            return Reply(text, awaiting="offer_person")
        if not (self.booking or self.slots):
            return Reply(self.book.reply("nothing_to_cancel"))
        self._fresh_start()
        return Reply(self.book.reply("cancelled"), awaiting="anything_else")

    def _fresh_start(self) -> None:
        self.slots, self.booking, self.check = {}, False, None

    # --- the booking flow -----------------------------------------------------------------------

    def _booking_step(self) -> Reply:
        """Ask for the next missing slot, check availability, ask for a name, or book."""
        rule = self.book.rule("book")
        needs = tuple(rule.needs) if rule is not None and rule.needs else BOOKING_SLOTS
        early = self._early_refusal()
        if early is not None:
            return early
        missing = [s for s in needs if s not in self.slots]
        if missing:
            return self._ask(missing[0])
        check_tool = rule.tool if rule is not None and rule.tool else CHECK_TOOL
        key = _key(self.slots)
        checked = self.check is not None and self.check.key == key
        if not checked and check_tool in self.tools:
            return self._call(check_tool)
        if self.check is not None and checked and not self.check.available:
            return self._unavailable(self._values())
        if "name" not in self.slots:
            return self._ask("name")
        return self._call(BOOK_TOOL)

    def _early_refusal(self) -> Reply | None:
        """What the venue's rules refuse before the other slots are even asked for: a
        party over the maximum, a day it is closed."""
        if self.venue is None:
            return None
        size = self.slots.get("party_size")
        if isinstance(size, int) and size > self.venue.spec.max_party_size:
            self.slots.pop("party_size")
            values = {**self._values(), **refusal_values(self.venue, None)}
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

    def _ask(self, slot: str) -> Reply:
        return Reply(self.book.ask(slot, self._values()), awaiting=slot)

    def _call(self, tool: str, extra: dict[str, Any] | None = None) -> Reply:
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

    def _after_check(self, values: dict[str, Any], status: str, result: Any) -> Reply:
        key = _key(values)
        if status != "ok" or not isinstance(result, dict) or key is None:
            return Reply(self.book.reply("check_failed"))
        offered = (str(a) for a in result.get("alternatives") or ())
        alternatives = tuple(a for a in offered if a != key[2])  # never the time just refused
        dates = tuple(str(d) for d in result.get("alternative_dates") or ())
        self.check = Check(key, bool(result.get("available")), alternatives, dates)
        shown = self._values(values)
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

    def _after_booking(self, values: dict[str, Any], status: str, result: Any) -> Reply:
        if status == "denied":
            return Reply(self.book.reply("booking_denied"), awaiting="anything_else")
        if status != "ok":
            return Reply(self.book.reply("booking_failed"))
        booked = {**values, **(result if isinstance(result, dict) else {})}
        if booked.get("confirmation"):
            self.bookings.append(booked)
        text = self.book.fill(self.book.reply("booked"), self._values(booked))
        self._fresh_start()
        return Reply(text, awaiting="anything_else")

    def _after_menu(self, status: str, result: Any) -> Reply:
        dishes = knowledge.dishes_of(result) if status == "ok" else []
        if not dishes:
            return Reply(self.book.reply("menu_failed"))
        self.menu = dishes
        names = [knowledge.dish_name(d) for d in dishes[:3]]
        return Reply(
            self.book.fill(self.book.reply("menu"), {"dishes": knowledge.join(names, "and")})
        )

    def _after_other(self, name: str, status: str, result: Any, arguments: dict[str, Any]) -> Reply:
        label = self._label(name)
        if status == "denied":
            lowered = label[:1].lower() + label[1:]
            return Reply(self.book.fill(self.book.reply("tool_denied"), {"action": lowered}))
        if status != "ok":
            return Reply(self.book.fill(self.book.reply("tool_failed"), {"action": label}))
        fields = {**arguments, **(result if isinstance(result, dict) else {"result": result})}
        spec = self.book.agent.tool(name)
        rule_say = next((r.say for r in self.book.agent.rules if r.tool == name and r.say), None)
        template = (spec.say if spec is not None else None) or rule_say
        if template:
            return Reply(self.book.fill(template, self._values(fields)))
        message = result.get("message") if isinstance(result, dict) else None
        if not message:
            return Reply(self.book.fill(self.book.reply("tool_done"), {"action": label}))
        state = str(result.get("status", "")).lower() if isinstance(result, dict) else ""
        if state in ("unavailable", "failed", "busy", "no_answer", "error"):
            key, awaiting = "tool_unavailable", "anything_else"
            return Reply(
                self.book.fill(self.book.reply(key), {"message": message}), awaiting=awaiting
            )
        return Reply(self.book.fill(self.book.reply("tool_message"), {"message": message}))

    # --- the menu ----------------------------------------------------------------------------

    def _dish_in(self, text: str) -> dict[str, Any] | None:
        """The dish of the last menu (else the agent's menu) that ``text`` names."""
        menu = self.menu or [
            {"title": d.name, "description": d.description, "price": d.price}
            for d in self.book.agent.menu
        ]
        return knowledge.dish_named(text, menu)

    def _describe(self, dish: dict[str, Any]) -> Reply:
        price = dish.get("price")
        values = {
            "dish": knowledge.dish_name(dish),
            "description": str(dish.get("description") or dish.get("subtitle") or "").strip(),
            "price": price if price is not None else "",
            "price_sentence": f" It's {price}." if price not in (None, "") else "",
        }
        return Reply(self.book.fill(self.book.reply("dish"), values), awaiting="offer_booking")

    # --- template values --------------------------------------------------------------------------

    def _values(self, values: dict[str, Any] | None = None) -> dict[str, Any]:
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
