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

The dialogue reads inputs, routes them and answers from data (bookings, small talk, the
menu, the FAQ); the booking itself — slots, checks, refusals, the template values —
is its ``BookingFlow`` (``rules_booking.py``).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from parley.brain import rules_knowledge as knowledge
from parley.brain.choices import pick_offered
from parley.brain.dates import minutes, resolve_day
from parley.brain.rulebook import RuleBook
from parley.brain.rules_booking import (
    BOOK_TOOL,
    BOOKING_SLOTS,
    CHECK_TOOL,
    BookingFlow,
    Reply,
)
from parley.brain.slots import extract_slots
from parley.brain.typos import TypingFixer

MENU_TOOL = "show_menu"
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

__all__ = ["Dialogue", "Reply"]


class Dialogue:
    """One replay of a conversation. ``tools`` maps offered tool names to their JSON
    schema (``parameters``); the dialogue never calls a tool that is not offered."""

    def __init__(
        self,
        book: RuleBook,
        tools: dict[str, dict[str, Any]],
        today: dt.date | None = None,
        fixer: TypingFixer | None = None,
        now_time: str | None = None,
    ) -> None:
        self.book = book
        self.fixer = fixer or TypingFixer()
        self.flow = BookingFlow(book, tools, today, now_time)
        self.dropped: str | None = None  # a pending action a new message set aside
        self.bad_date: str | None = None  # a day that does not exist ("31 February")
        self.aside: str | None = None  # an answer given on the way to a booking step
        self.awaiting: str | None = None
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
        if prev == "pick_alternative" and self.flow.check is not None:
            offered = self.flow.check.alternatives or self.flow.check.dates
            key = "time" if self.flow.check.alternatives else "date"
            found.update(pick_offered(text, intents, found, key, offered))
        self.flow.slots.update(found)
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
        return self.flow.venue is not None and at is not None and self.flow.venue.open_any_day(at)

    def _to_calendar(self, found: dict[str, Any]) -> None:
        """Readable days ("next Friday") become ISO dates, seen from today."""
        if "date" not in found or self.flow.today is None:
            return
        day = resolve_day(str(found["date"]), self.flow.today)
        if day is None:
            self.bad_date = str(found.pop("date"))
        else:
            found["date"] = day.isoformat()

    def on_tool_result(
        self, name: str, arguments: dict[str, Any], status: str, result: Any, *, heard: bool
    ) -> Reply:
        """A tool's outcome. ``heard`` is False when the user spoke before the assistant
        could answer it (the reply was never said, so nothing is awaited)."""
        values = {**self.flow.slots, **arguments}
        if status == "denied" and not heard:
            label = self._label(name)  # said with the reply to the new message
            self.dropped = label[:1].lower() + label[1:]
        if name == CHECK_TOOL:
            reply = self.flow.after_check(values, status, result)
        elif name == BOOK_TOOL:
            reply = self.flow.after_booking(values, status, result)
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
            return self.flow.cancel()
        dish = self._dish_in(text) if "book" not in intents else None
        if dish is not None:
            return self._describe(dish)
        if strong:
            return self._rule_reply(strong[0], text, prev)
        if "book" in intents:
            self.flow.booking = True
            return self.flow.step()
        if prev in YES_NO_AWAITS and not found and ({"yes", "no"} & set(intents)):
            return self._yes_no(prev, "yes" in intents and "no" not in intents)
        if len(found.keys() & set(BOOKING_SLOTS)) >= 2 and self.book.rule("book") is not None:
            self.flow.booking = True  # "anything free on Saturday at 8?" is a booking too
        if self.flow.booking and found:
            return self.flow.step()
        if self.flow.booking and prev in SLOT_AWAITS:
            if weak and weak[0] not in ("yes", "no"):
                return self._rule_reply(weak[0], text, prev)
            return self._with_question("" if weak else self.book.reply("not_understood"), prev)
        if weak:
            return self._rule_reply(weak[0], text, prev)
        if self.interrupted:
            return Reply(self.book.reply("interrupted"))
        return self._with_question(self.book.fallback(), prev if self.flow.booking else None)

    def _known_answer(self, text: str, found: dict[str, Any]) -> Reply | None:
        """Answers from data: existing bookings, small talk, the menu, the FAQ."""
        agent = self.book.agent
        carry = self.awaiting if self.flow.booking and self.awaiting in SLOT_AWAITS else None
        asked = knowledge.booking_question(text, self.flow.bookings)
        if asked is not None:
            key, booking = asked
            awaiting = "offer_person" if key in OFFERS_PERSON else None
            text = self.book.fill(self.book.reply(key), self.flow.values(booking))
            return Reply(text, awaiting=awaiting)
        if self.awaiting in SLOT_AWAITS and self.awaiting in found and not _QUESTION.search(text):
            return None  # the answer to the question just asked: the flow goes on
        talk = knowledge.small_talk(text)
        if talk is not None and len(found.keys() & set(BOOKING_SLOTS)) < 2:
            return self._with_question(
                self.book.fill(self.book.reply(talk), self.flow.values()), carry
            )
        answer = knowledge.menu_answer(text, agent.menu)
        entry = knowledge.faq_answer(text, agent.faq) if answer is None else None
        if entry is not None:
            answer = self.book.fill(entry.answer, self.flow.values())
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
            return self.flow.call(rule.tool, {"reason": text})
        say = self.book.fill(rule.say or self.book.fallback(), self.flow.values())
        return self._with_question(say, prev if self.flow.booking else None)

    def _with_question(self, text: str, awaiting: str | None) -> Reply:
        """``text``, then the pending booking question again so the flow carries on."""
        question = self._question(awaiting) if awaiting else None
        if question is None:
            return Reply(text)
        return Reply(f"{text} {question}".strip(), awaiting=awaiting)

    def _question(self, awaiting: str) -> str | None:
        if awaiting in SLOT_AWAITS:
            return self.book.ask(awaiting, self.flow.values())
        if awaiting == "confirm_booking":
            return self.book.fill(self.book.reply("reask_confirm"), self.flow.values())
        return None

    def _yes_no(self, prev: str, yes: bool) -> Reply:
        if prev == "offer_person":
            human = self.book.rule("human")
            if yes and human is not None and human.tool:
                return self.flow.call(human.tool, {"reason": "asked for a person"})
            return Reply(self.book.reply("offer_declined"), awaiting="anything_else")
        if prev == "confirm_booking":
            return self.flow.step() if yes else Reply(self.book.reply("confirm_declined"))
        if prev == "pick_alternative":
            if yes:
                return self.flow.step()
            return Reply(self.book.reply("alternatives_declined"), awaiting="time")
        if prev == "offer_booking":
            if yes:
                self.flow.booking = True
                return self.flow.step()
            return Reply(self.book.reply("offer_declined"), awaiting="anything_else")
        if yes:
            return Reply(self.book.reply("anything_else_yes"))
        return Reply(self.book.say("bye") or self.book.reply("goodbye"))

    # --- other tools' results ---------------------------------------------------------------

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
            return Reply(self.book.fill(template, self.flow.values(fields)))
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
