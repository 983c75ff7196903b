"""An agent's ``rules`` made ready for the rules brain: intents and phrasings.

Intents match case-insensitively, by keyword (whole words or phrases) or by regular
expression; a message may match several, listed in the agent file's order, so the
file's order is the priority. Phrasings come from the agent file when it has them:
``say`` (a rule's answer), ``ask`` (the question per slot, usually on the ``book``
rule) and ``replies`` (named phrasings on any rule, e.g. ``booked``), else from
``DEFAULT_REPLIES``. Templates use ``{slot}`` placeholders; unknown ones stay as they are.
"""

from __future__ import annotations

import re
from typing import Any

from parley.config import AgentSpec, ConfigError, RuleSpec

DEFAULT_ASK = {
    "party_size": "How many people will be joining?",
    "date": "What day would you like to come in?",
    "time": "And what time would suit you?",
    "name": "What name should I put the booking under?",
}

DEFAULT_REPLIES = {
    "greeting": "Hi! How can I help?",
    "interrupted": "Sorry, go ahead.",
    "not_understood": "Sorry, I didn't catch that.",
    "available_ask_name": "Good news: we have a table for {party_size} {on_date} at {time}.",
    "available_confirm": (
        "Good news: we have a table for {party_size} {on_date} at {time}. "
        "Shall I book it under {name}?"
    ),
    "reask_confirm": "Shall I go ahead and book it?",
    "unavailable": (
        "Sorry, we're full for {party_size} {on_date} at {time}. "
        "I could do {alternatives} instead. Would one of those work?"
    ),
    "unavailable_no_alternatives": (
        "Sorry, we're fully booked for {party_size} {on_date} at {time}. "
        "What other time would suit you?"
    ),
    "check_failed": "Sorry, I couldn't check our tables just now. Please try again in a moment.",
    "booked": (
        "You're booked, {name}: a table for {party_size} {on_date} at {time}. "
        "Your confirmation is {confirmation}. Anything else I can help with?"
    ),
    "booking_denied": "No problem, I haven't booked anything. Anything else?",
    "booking_failed": (
        "Sorry, something went wrong and the booking didn't go through. "
        "Would you like to try another time?"
    ),
    "confirm_declined": "Okay, I won't book it. Would you like a different day or time?",
    "alternatives_declined": "No problem. What other time would suit you?",
    "offer_declined": "No problem. Anything else I can help with?",
    "anything_else_yes": "Sure, what can I do for you?",
    "goodbye": "Thanks for stopping by. Goodbye!",
    "cancelled": "Okay, I've dropped that booking request. Anything else?",
    "nothing_to_cancel": "There's nothing in progress to cancel. What can I do for you?",
    "menu": "Here's our menu. A few favourites: {dishes}. Tap a dish to hear more.",
    "menu_failed": "Sorry, I can't show the menu right now.",
    "dish": "{dish}: {description}{price_sentence} Would you like to book a table?",
    "tool_message": "{message}",
    "tool_unavailable": "{message} Is there anything else I can help with meanwhile?",
    "tool_done": "Done: {action}. Anything else?",
    "tool_denied": "Okay, I won't {action}. Anything else?",
    "tool_failed": "Sorry, that didn't work ({action}). Could you try again?",
    "tool_missing": "Sorry, I can't help with that here.",
    # a message that was not an answer set a pending approval aside
    "pending_dropped": "(I haven't done the earlier request: {action}.)",
    # the venue's rules (agent file: venue)
    "rule_past": "Sorry, that time has already passed.",
    "rule_closed_day": "Sorry, we're closed on {weekday}s.",
    "rule_outside_hours": "Sorry, on {weekday}s we take bookings from {first} to {last}.",
    "rule_too_many": (
        "Sorry, we can book parties of up to {max} here. For a bigger group, please call "
        "us, or I can get you a person."
    ),
    "rule_too_far": "Sorry, we take bookings up to {days} days ahead. Is there an earlier day?",
    "would_work": "Would {alternatives} work?",
    # small talk
    "how_are_you": "I'm doing well, thanks for asking! How can I help?",
    "what_day": "Today is {today}.",
    "what_time": "It's {now} here, on {today}.",
    "no_such_date": "Sorry, there's no {date}.",
    "who_are_you": "I'm the automated assistant of {name_of_place}. I can get you a person too.",
    # bookings made in this conversation
    "confirmation": (
        "Your confirmation is {confirmation}: a table for {party_size} {on_date} at {time}, "
        "under {name}."
    ),
    "no_booking": (
        "I don't see a booking made in this conversation. If you booked earlier, the "
        "confirmation code is in your booking message, or I can get you a person."
    ),
    "booking_found": (
        "Booking {confirmation}: a table for {party_size} {on_date} at {time}, under {name}."
    ),
    "booking_change": (
        "I can't change or cancel booking {confirmation} myself (a table for {party_size} "
        "{on_date} at {time}). Please call us, or I can get you a person."
    ),
    "booking_unknown": (
        "I can't find booking {confirmation} in this conversation. Please call us to "
        "change it, or I can get you a person."
    ),
    "booking_which": (
        "Which booking is it? Please give me the confirmation code (like BX-1234), or I "
        "can get you a person."
    ),
    "running_late": (
        "Thanks for letting us know! Your table ({confirmation}, {time}) is held for 15 "
        "minutes; if you'll be later than that, please call us."
    ),
    "running_late_unknown": (
        "Thanks for letting us know! We hold tables for 15 minutes; if you'll be later "
        "than that, please call us."
    ),
}


class _Keep(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, values: dict[str, Any]) -> str:
    """``template`` with ``{name}`` replaced from ``values``; unknown names are kept."""
    try:
        return template.format_map(_Keep(values))
    except (ValueError, IndexError, AttributeError):
        return template


def _matcher(rule: RuleSpec) -> re.Pattern[str] | None:
    parts = [rf"(?<!\w){re.escape(k.strip().lower())}(?!\w)" for k in rule.keywords if k.strip()]
    parts += [f"(?:{p})" for p in rule.patterns]
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


class RuleBook:
    """The compiled rules of one agent; immutable, shared by every call. An unknown
    name under ``replies`` (a typo) raises ``ConfigError``."""

    def __init__(self, agent: AgentSpec) -> None:
        self.agent = agent
        self._rules = {r.intent: r for r in agent.rules}
        self._matchers = [(r.intent, m) for r in agent.rules if (m := _matcher(r)) is not None]
        self._replies: dict[str, str] = dict(DEFAULT_REPLIES)
        for rule in agent.rules:
            unknown = sorted(set(rule.replies) - set(DEFAULT_REPLIES))
            if unknown:
                raise ConfigError(
                    f"agent {agent.name}: rule {rule.intent!r}: unknown replies {unknown} "
                    f"(known: {', '.join(sorted(DEFAULT_REPLIES))})"
                )
            self._replies.update(rule.replies)
        book = self._rules.get("book")
        self._ask = {**DEFAULT_ASK, **(book.ask if book is not None else {})}

    def intents(self, text: str) -> list[str]:
        """Every intent ``text`` matches, in the agent file's order."""
        text = text.replace("\u2019", "'")
        out: list[str] = []
        for intent, matcher in self._matchers:
            if intent not in out and matcher.search(text):
                out.append(intent)
        return out

    def rule(self, intent: str) -> RuleSpec | None:
        return self._rules.get(intent)

    def say(self, intent: str) -> str | None:
        rule = self._rules.get(intent)
        return rule.say if rule is not None else None

    def ask(self, slot: str, values: dict[str, Any]) -> str:
        return fill(self._ask.get(slot, f"What {slot.replace('_', ' ')} would you like?"), values)

    def reply(self, key: str) -> str:
        return self._replies.get(key, DEFAULT_REPLIES.get(key, ""))

    def fill(self, template: str, values: dict[str, Any]) -> str:
        return fill(template, values)

    def fallback(self) -> str:
        return self.agent.fallback

    def greeting(self) -> str:
        static = self.agent.render_greeting({})
        return static or self.say("greet") or self.reply("greeting")
