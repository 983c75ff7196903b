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
    anything_else                a booking, a denied booking       no → goodbye

A completed booking (``book_table`` ok) or a "cancel" starts a fresh booking: slots come
from the user messages since then, a later message overriding an earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from parley.brain.rulebook import RuleBook
from parley.brain.slots import extract_slots, on_date, say_time

CHECK_TOOL = "check_availability"
BOOK_TOOL = "book_table"
MENU_TOOL = "show_menu"
BOOKING_SLOTS = ("party_size", "date", "time")
SLOT_AWAITS = frozenset({"party_size", "date", "time", "name"})
YES_NO_AWAITS = frozenset({"confirm_booking", "pick_alternative", "offer_booking", "anything_else"})
WEAK_INTENTS = frozenset({"yes", "no", "greet", "thanks", "bye"})  # yield to the context
FLOW_INTENTS = frozenset({"book", "cancel"}) | WEAK_INTENTS


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


def _key(values: dict[str, Any]) -> tuple[int, str, str] | None:
    try:
        return int(values["party_size"]), str(values["date"]), str(values["time"])
    except (KeyError, TypeError, ValueError):
        return None


class Dialogue:
    """One replay of a conversation. ``tools`` maps offered tool names to their JSON
    schema (``parameters``); the dialogue never calls a tool that is not offered."""

    def __init__(self, book: RuleBook, tools: dict[str, dict[str, Any]]) -> None:
        self.book = book
        self.tools = tools
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
        expecting = "time" if prev == "pick_alternative" else prev
        found = extract_slots(text, expecting if expecting in SLOT_AWAITS else None)
        intents = self.book.intents(text)
        if prev == "pick_alternative" and "yes" in intents and "time" not in found:
            if self.check is not None and self.check.alternatives:
                found["time"] = self.check.alternatives[0]
        self.slots.update(found)
        reply = self._route(text, intents, found, prev)
        self.awaiting = reply.awaiting
        self.interrupted = False
        return reply

    def on_tool_result(
        self, name: str, arguments: dict[str, Any], status: str, result: Any, *, heard: bool
    ) -> Reply:
        """A tool's outcome. ``heard`` is False when the user spoke before the assistant
        could answer it (the reply was never said, so nothing is awaited)."""
        values = {**self.slots, **arguments}
        if name == CHECK_TOOL:
            reply = self._after_check(values, status, result)
        elif name == BOOK_TOOL:
            reply = self._after_booking(values, status, result)
        elif name == MENU_TOOL:
            reply = self._after_menu(status, result)
        else:
            reply = self._after_other(name, status, result)
        self.awaiting = reply.awaiting if heard else None
        return reply

    # --- routing a user message ------------------------------------------------------------

    def _route(
        self, text: str, intents: list[str], found: dict[str, Any], prev: str | None
    ) -> Reply:
        strong = [i for i in intents if i not in FLOW_INTENTS]
        weak = [i for i in intents if i in WEAK_INTENTS]
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
        if found.keys() & set(BOOKING_SLOTS) and self.book.rule("book") is not None:
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
        self.check = Check(key, bool(result.get("available")), alternatives)
        shown = self._values(values)
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
        shown = {**shown, "alternatives": _join(times, "or")}
        return Reply(
            self.book.fill(self.book.reply("unavailable"), shown), awaiting="pick_alternative"
        )

    def _after_booking(self, values: dict[str, Any], status: str, result: Any) -> Reply:
        if status == "denied":
            return Reply(self.book.reply("booking_denied"), awaiting="anything_else")
        if status != "ok":
            return Reply(self.book.reply("booking_failed"))
        booked = {**values, **(result if isinstance(result, dict) else {})}
        text = self.book.fill(self.book.reply("booked"), self._values(booked))
        self._fresh_start()
        return Reply(text, awaiting="anything_else")

    def _after_menu(self, status: str, result: Any) -> Reply:
        dishes = _dishes(result) if status == "ok" else []
        if not dishes:
            return Reply(self.book.reply("menu_failed"))
        self.menu = dishes
        names = [_dish_name(d) for d in dishes[:3]]
        return Reply(self.book.fill(self.book.reply("menu"), {"dishes": _join(names, "and")}))

    def _after_other(self, name: str, status: str, result: Any) -> Reply:
        if status != "ok":
            return Reply(self.book.reply("tool_failed"))
        message = result.get("message") if isinstance(result, dict) else None
        if not message:
            return Reply(self.book.reply("tool_done"))
        state = str(result.get("status", "")).lower() if isinstance(result, dict) else ""
        if state in ("unavailable", "failed", "busy", "no_answer", "error"):
            key, awaiting = "tool_unavailable", "anything_else"
            return Reply(
                self.book.fill(self.book.reply(key), {"message": message}), awaiting=awaiting
            )
        return Reply(self.book.fill(self.book.reply("tool_message"), {"message": message}))

    # --- the menu ----------------------------------------------------------------------------

    def _dish_in(self, text: str) -> dict[str, Any] | None:
        """The dish of the last menu that ``text`` names (a clicked card or a question)."""
        low = text.lower()
        best: tuple[int, dict[str, Any]] | None = None
        for dish in self.menu:
            name = _dish_name(dish).lower()
            words = [w for w in name.split() if len(w) >= 4]
            score = 100 if name and name in low else sum(1 for w in words if w in low)
            if score and (best is None or score > best[0]):
                best = (score, dish)
        return best[1] if best else None

    def _describe(self, dish: dict[str, Any]) -> Reply:
        price = dish.get("price")
        values = {
            "dish": _dish_name(dish),
            "description": str(dish.get("description") or dish.get("subtitle") or "").strip(),
            "price": price if price is not None else "",
            "price_sentence": f" It's {price}." if price not in (None, "") else "",
        }
        return Reply(self.book.fill(self.book.reply("dish"), values), awaiting="offer_booking")

    # --- template values --------------------------------------------------------------------------

    def _values(self, values: dict[str, Any] | None = None) -> dict[str, Any]:
        shown = dict(self.slots if values is None else values)
        if "time" in shown:
            shown["time"] = say_time(str(shown["time"]))
        if "date" in shown:
            shown["on_date"] = on_date(str(shown["date"]))
        return shown


def _join(items: list[str], word: str) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"


def _dishes(result: Any) -> list[dict[str, Any]]:
    if isinstance(result, dict):
        result = result.get("dishes") or result.get("items") or result.get("menu")
    if not isinstance(result, list):
        return []
    return [d for d in result if isinstance(d, dict) and _dish_name(d)]


def _dish_name(dish: dict[str, Any]) -> str:
    return str(dish.get("title") or dish.get("name") or "")
