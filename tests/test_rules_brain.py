"""The rules brain, driven directly with OpenAI-format message lists (no server).

``Convo`` plays the turn core: it streams the brain's reply, appends the assistant
message (with its tool calls) and, when told, the tool result, then asks again.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from dataclasses import dataclass
from typing import Any

import pytest

from parley.brain.history import INITIAL_TURN_PROMPT, INTERRUPTED_NOTE
from parley.brain.rules import RulesBrain, message_text, tool_call_id, tool_outcome
from parley.config import BUILTIN_AGENTS_DIR, AgentSpec, ConfigError, load_agents, parse_agent
from parley.engines.base import TextDelta, ToolCallRequest
from parley.testing import FakeClock


def _schema(tool: str, **props: str) -> dict[str, Any]:
    properties = {k: {"type": v} for k, v in props.items()}
    return {
        "type": "function",
        "function": {
            "name": tool,
            "description": tool,
            "parameters": {"type": "object", "properties": properties, "required": list(props)},
        },
    }


TOOLS = [
    _schema("check_availability", date="string", time="string", party_size="integer"),
    _schema("book_table", name="string", date="string", time="string", party_size="integer"),
    _schema("show_menu"),
    _schema("transfer_to_human", reason="string"),
]
MENU = {
    "dishes": [
        {"title": "Mushroom risotto", "price": "€16", "description": "Creamy arborio rice."},
        {"title": "Steak frites", "price": "€24", "description": "Sirloin with fries."},
        {"title": "Sea bass", "price": "€22", "description": "With lemon butter."},
        {"title": "Chocolate fondant", "price": "€9", "description": "Warm, molten centre."},
    ]
}


@dataclass
class Step:
    text: str
    call: ToolCallRequest | None
    deltas: list[str]


class Convo:
    def __init__(self, brain: RulesBrain, tools: list[dict[str, Any]] | None = None) -> None:
        self.brain = brain
        self.tools = TOOLS if tools is None else tools
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": "instructions"}]

    async def user(self, text: str) -> Step:
        self.messages.append({"role": "user", "content": text})
        return await self.step()

    async def result(self, result: Any = None, *, status: str = "ok", why: str = "") -> Step:
        """Answer the last tool call as the core would, and ask again."""
        self.add_result(result, status=status, why=why)
        return await self.step()

    def add_result(self, result: Any = None, *, status: str = "ok", why: str = "") -> None:
        call = self.messages[-1]["tool_calls"][0]
        payload: dict[str, Any] = {"status": status}
        payload.update({"ok": {"result": result}, "denied": {"reason": why}}.get(status, {}))
        if status == "error":
            payload["error"] = why
        content = json.dumps(payload)
        self.messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})

    async def step(self) -> Step:
        chunks = [c async for c in self.brain.stream(self.messages, self.tools)]
        deltas = [c.text for c in chunks if isinstance(c, TextDelta)]
        calls = [c for c in chunks if isinstance(c, ToolCallRequest)]
        assert len(calls) <= 1
        text = "".join(deltas)
        msg: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            msg["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.raw_arguments},
                }
                for c in calls
            ]
        self.messages.append(msg)
        return Step(text, calls[0] if calls else None, deltas)


def available(date: str, time: str, party: int) -> dict[str, Any]:
    return {"available": True, "date": date, "time": time, "party_size": party, "alternatives": []}


def full(date: str, time: str, party: int, alternatives: list[str]) -> dict[str, Any]:
    return {
        "available": False,
        "date": date,
        "time": time,
        "party_size": party,
        "alternatives": alternatives,
    }


@pytest.fixture
def demo() -> AgentSpec:
    return load_agents()["demo"]


# "today" is Wednesday 7 January 2026: tomorrow is the 8th, Friday the 9th, Saturday the 10th
CLOCK = FakeClock(wall=datetime(2026, 1, 7, 10, 0, tzinfo=UTC))
TOMORROW, FRIDAY, SATURDAY = "2026-01-08", "2026-01-09", "2026-01-10"


@pytest.fixture
def convo(demo: AgentSpec) -> Convo:
    return Convo(RulesBrain(demo, CLOCK))


# --- the agent file ------------------------------------------------------------------------------


def test_demo_agent_file_parses_with_its_tools_and_rules(demo: AgentSpec) -> None:
    text = (BUILTIN_AGENTS_DIR / "demo.yaml").read_text(encoding="utf-8")
    assert parse_agent(text, "demo.yaml") == demo
    assert demo.brain == "auto" and demo.greeting_mode == "static"
    assert [t.name for t in demo.tools] == [
        "check_availability",
        "book_table",
        "show_menu",
        "transfer_to_human",
    ]
    book_table = demo.tool("book_table")
    assert book_table is not None and book_table.requires_approval
    assert not demo.tool("check_availability").requires_approval  # type: ignore[union-attr]
    assert demo.tool("check_availability").filler == "Let me check that for you."  # type: ignore[union-attr]
    intents = [r.intent for r in demo.rules]
    for intent in ("human", "menu", "book", "thanks", "bye", "yes", "no"):
        assert intent in intents
    phrases = demo.voice.phrases
    assert len(phrases) > 100 and all(isinstance(p, str) for p in phrases)
    assert not [p for p in phrases if any(ch.isdigit() for ch in p)]  # numbers as words
    assert "table for two tomorrow at seven" in phrases and "yes" in phrases


def test_a_bad_rule_pattern_is_a_clear_config_error() -> None:
    text = "name: x\nrules:\n  - intent: a\n    patterns: ['(unclosed']\n"
    with pytest.raises(ConfigError, match=r"x.yaml:4: rules.0.patterns: .*invalid regular"):
        parse_agent(text, "x.yaml")


def test_an_unknown_reply_name_is_a_clear_config_error() -> None:
    agent = parse_agent("name: x\nrules:\n  - intent: book\n    replies: {bookd: Done}\n", "x.yaml")
    with pytest.raises(ConfigError, match=r"rule 'book': unknown replies \['bookd'\]"):
        RulesBrain(agent)


# --- opening turn, streaming, ids ----------------------------------------------------------------


async def test_initial_turn_answers_with_the_greeting_in_word_deltas(demo: AgentSpec) -> None:
    brain = RulesBrain(demo, CLOCK)
    messages = [
        {"role": "system", "content": "instructions"},
        {"role": "system", "content": INITIAL_TURN_PROMPT},
    ]
    chunks = [c async for c in brain.stream(messages, [])]
    assert all(isinstance(c, TextDelta) for c in chunks)
    assert len(chunks) > 5
    assert "".join(c.text for c in chunks) == demo.greeting  # type: ignore[union-attr]


async def test_agent_without_greeting_or_rules_still_greets_and_falls_back() -> None:
    agent = AgentSpec(name="bare", fallback="Say again?")
    convo = Convo(RulesBrain(agent))
    convo.messages.append({"role": "system", "content": INITIAL_TURN_PROMPT})
    assert (await convo.step()).text == "Hi! How can I help?"
    step = await convo.user("book a table for two tomorrow at 7")
    assert step.text == "Say again?" and step.call is None


async def test_tool_call_ids_are_deterministic_and_unique_per_history(convo: Convo) -> None:
    first = await convo.user("table for 2 tomorrow at 7pm")
    assert first.call is not None and first.call.id.startswith("call_0_")
    again = [c async for c in convo.brain.stream(convo.messages[:-1], TOOLS)]
    assert next(c for c in again if isinstance(c, ToolCallRequest)).id == first.call.id
    await convo.result(available(TOMORROW, "19:00", 2))
    second = await convo.user("under Kim")
    assert second.call is not None and second.call.id.startswith("call_1_")
    assert second.call.id != first.call.id
    other = [{"role": "user", "content": "something else"}, *convo.messages[1:-1]]
    assert tool_call_id(other) != tool_call_id(convo.messages[:-1])


# --- the booking flow ----------------------------------------------------------------------------


async def test_full_booking_flow_step_by_step(convo: Convo) -> None:
    step = await convo.user("Hi, I'd like to book a table")
    assert step.text == "How many people will be joining?" and step.call is None
    assert len(step.deltas) == len(step.text.split())
    step = await convo.user("four")
    assert step.text == "What day would you like to come in?"
    step = await convo.user("tomorrow")
    assert step.text == "And what time would suit you?"
    step = await convo.user("seven thirty")
    assert step.call is not None and step.text == ""
    assert step.call.name == "check_availability"
    assert step.call.arguments == {"date": TOMORROW, "time": "19:30", "party_size": 4}
    assert json.loads(step.call.raw_arguments) == step.call.arguments
    step = await convo.result(available(TOMORROW, "19:30", 4))
    assert step.call is None
    assert step.text == (
        "Good news: we have a table for 4 tomorrow (Thursday 8 January) at 7:30 pm. "
        "What name should I put the booking under?"
    )
    step = await convo.user("Sam Smith")
    assert step.call is not None and step.call.name == "book_table"
    assert step.call.arguments == {
        "name": "Sam Smith",
        "date": TOMORROW,
        "time": "19:30",
        "party_size": 4,
    }
    booked = {"confirmation": "BX-1234", **step.call.arguments}
    step = await convo.result(booked)
    assert step.text == (
        "You're booked, Sam Smith: a table for 4 tomorrow (Thursday 8 January) at 7:30 pm. "
        "Your confirmation is BX-1234. Anything else I can help with?"
    )
    step = await convo.user("no thanks")
    assert step.text == "Thanks for visiting Bistro. Have a lovely day!"


async def test_all_slots_in_one_message_and_name_known_asks_to_confirm(convo: Convo) -> None:
    step = await convo.user("Can I get a table for 2 on Friday at 8pm? It's under Alex.")
    assert step.call is not None
    assert step.call.arguments == {"date": FRIDAY, "time": "20:00", "party_size": 2}
    step = await convo.result(available("Friday", "20:00", 2))
    assert (
        step.text.endswith("Shall I book it under Alex?")
        and "on Friday 9 January at 8 pm" in step.text
    )
    step = await convo.user("yes please")
    assert step.call is not None and step.call.name == "book_table"
    assert step.call.arguments["name"] == "Alex"


async def test_declining_the_confirmation_books_nothing(convo: Convo) -> None:
    await convo.user("table for 2 on Friday at 8pm under Alex")
    await convo.result(available("Friday", "20:00", 2))
    step = await convo.user("no")
    assert step.call is None and step.text.startswith("Okay, I won't book it.")
    step = await convo.user("make it 9pm then")
    assert step.call is not None and step.call.name == "check_availability"
    assert step.call.arguments["time"] == "21:00"


async def test_later_messages_override_earlier_slots(convo: Convo) -> None:
    step = await convo.user("a table for 2 tomorrow at 7")
    assert step.call is not None and step.call.arguments["party_size"] == 2
    await convo.result(available(TOMORROW, "19:00", 2))
    step = await convo.user("actually we're 5 people, and make it Saturday at 8:30pm")
    assert step.call is not None and step.call.name == "check_availability"
    assert step.call.arguments == {"date": SATURDAY, "time": "20:30", "party_size": 5}


async def test_a_completed_booking_starts_the_next_one_fresh(convo: Convo) -> None:
    await convo.user("table for 2 tomorrow at 7 under Kim")
    await convo.result(available(TOMORROW, "19:00", 2))
    step = await convo.user("yes")
    assert step.call is not None and step.call.name == "book_table"
    await convo.result({"confirmation": "BX-0001"})
    step = await convo.user("I'd like to book another table")
    assert step.text == "How many people will be joining?" and step.call is None
    step = await convo.user("3")
    assert step.text.endswith("What day would you like to come in?")


async def test_booking_denied_by_the_approver(convo: Convo) -> None:
    await convo.user("table for 2 tomorrow at 7")
    await convo.result(available(TOMORROW, "19:00", 2))
    step = await convo.user("my name is Lee")
    assert step.call is not None and step.call.name == "book_table"
    step = await convo.result(status="denied", why="The user declined.")
    assert step.text == "No problem, I haven't booked anything. Anything else?"
    assert step.call is None
    step = await convo.user("yes, book it after all")
    assert step.call is not None and step.call.name == "book_table"  # slots survive a denial


async def test_a_new_message_instead_of_a_decision_is_read_without_the_unsaid_reply(
    convo: Convo,
) -> None:
    await convo.user("table for 2 tomorrow at 7 for Lee")
    await convo.result(available(TOMORROW, "19:00", 2))
    step = await convo.user("yes")
    assert step.call is not None
    convo.add_result(status="denied", why="The user sent a new message instead of deciding.")
    step = await convo.user("no")  # not "goodbye": "Anything else?" was never said
    assert (
        step.text
        == "(I haven't done the earlier request: book a table.) Alright. Is there anything else I can help with?"
    )


async def test_booking_error_apologises(convo: Convo) -> None:
    await convo.user("table for 2 tomorrow at 7 under Lee")
    await convo.result(available(TOMORROW, "19:00", 2))
    await convo.user("go ahead")
    step = await convo.result(status="error", why="ValueError: no table")
    assert step.text.startswith("Sorry, something went wrong") and step.call is None


async def test_availability_error_apologises(convo: Convo) -> None:
    await convo.user("table for 2 tomorrow at 7")
    step = await convo.result(status="error", why="timed out")
    assert step.text.startswith("Sorry, I couldn't check our tables")


async def test_full_slot_offers_alternatives_and_yes_takes_the_first(convo: Convo) -> None:
    await convo.user("table for two on saturday at 8pm")
    step = await convo.result(full(SATURDAY, "20:00", 2, ["18:00", "18:30", "21:30"]))
    assert step.text == (
        "Sorry, we're full for 2 on Saturday 10 January at 8 pm. I could do 6 pm, 6:30 pm or "
        "9:30 pm instead. Would one of those work?"
    )
    step = await convo.user("yes")
    assert step.call is not None and step.call.name == "check_availability"
    assert step.call.arguments["time"] == "18:00"


async def test_full_slot_user_picks_another_alternative(convo: Convo) -> None:
    await convo.user("table for two on saturday at 8pm")
    await convo.result(full(SATURDAY, "20:00", 2, ["18:00", "21:30"]))
    step = await convo.user("half past nine")
    assert step.call is not None and step.call.arguments["time"] == "21:30"
    step = await convo.result(available(SATURDAY, "21:30", 2))
    assert "on Saturday 10 January at 9:30 pm" in step.text and step.text.endswith("under?")


async def test_a_message_with_booking_details_starts_a_booking(convo: Convo) -> None:
    step = await convo.user("do you have anything free on saturday at eight")
    assert step.text == "How many people will be joining?"
    step = await convo.user("we are four")  # (over 8 is refused before any check now)
    assert step.call is not None
    assert step.call.arguments == {"date": SATURDAY, "time": "20:00", "party_size": 4}
    step = await convo.result(full(SATURDAY, "20:00", 4, ["18:00", "20:00"]))
    assert "I could do 6 pm instead." in step.text  # never the time just refused


async def test_a_party_over_the_maximum_is_refused_before_any_check(convo: Convo) -> None:
    step = await convo.user("table for 12 tomorrow at 8pm")
    assert step.call is None and "up to 8" in step.text


async def test_full_slot_without_alternatives_asks_for_another_time(convo: Convo) -> None:
    await convo.user("table for 6 tomorrow at 8pm")
    step = await convo.result(full(TOMORROW, "20:00", 6, []))
    assert step.text.endswith("What other time would suit you?")
    step = await convo.user("nine")
    assert step.call is not None and step.call.arguments["time"] == "21:00"


async def test_unclear_answer_repeats_the_pending_question(convo: Convo) -> None:
    await convo.user("I want to reserve a table")
    step = await convo.user("hmm purple")
    assert step.text == "Sorry, I didn't catch that. How many people will be joining?"
    step = await convo.user("two")
    assert step.text == "What day would you like to come in?"


async def test_side_question_is_answered_and_the_booking_question_asked_again(
    convo: Convo,
) -> None:
    await convo.user("book a table for 3")
    step = await convo.user("are you open on mondays?")
    assert step.text.startswith("We're open Tuesday to Sunday")
    assert step.text.endswith("What day would you like to come in?")
    step = await convo.user("Tuesday")  # the day question is still pending
    assert step.text == "And what time would suit you?"


async def test_cancel_drops_the_booking_in_progress(convo: Convo) -> None:
    await convo.user("table for 3 tomorrow")
    step = await convo.user("never mind")
    assert step.text.startswith("Okay, I've dropped that booking request.")
    step = await convo.user("book a table")
    assert step.text == "How many people will be joining?"


# --- menu, transfer, small talk ------------------------------------------------------------------


async def test_menu_then_a_clicked_card_then_booking(convo: Convo) -> None:
    step = await convo.user("What's on the menu?")
    assert step.call is not None and step.call.name == "show_menu" and step.call.arguments == {}
    step = await convo.result(MENU)
    assert "Mushroom risotto, Steak frites and Sea bass" in step.text
    step = await convo.user("Tell me about the mushroom risotto")
    assert step.call is None
    assert step.text == (
        "Mushroom risotto: Creamy arborio rice. It's €16. Would you like to book a table?"
    )
    step = await convo.user("tell me about the fondant")  # partial names work too
    assert step.text.startswith("Chocolate fondant: Warm, molten centre.")
    step = await convo.user("yes")
    assert step.text == "How many people will be joining?"


async def test_transfer_relays_the_tools_message(convo: Convo) -> None:
    step = await convo.user("Can I speak to a real person please?")
    assert step.call is not None and step.call.name == "transfer_to_human"
    assert step.call.arguments == {"reason": "Can I speak to a real person please?"}
    result = {"status": "unavailable", "message": "Nobody is around right now."}
    step = await convo.result(result)
    assert step.text == (
        "Nobody is around right now. Is there anything else I can help with meanwhile?"
    )
    step = await convo.user("no")
    assert step.text == "Thanks for visiting Bistro. Have a lovely day!"


async def test_transfer_in_progress_relays_the_message_alone(convo: Convo) -> None:
    await convo.user("get me a human")
    step = await convo.result({"status": "dialing", "message": "Connecting you now."})
    assert step.text == "Connecting you now."


@pytest.mark.parametrize(
    ("said", "starts"),
    [
        ("what are your opening hours?", "We're open Tuesday to Sunday"),
        ("where are you located?", "We're at 12 Harbour Street"),
        ("hello", "Hello! I can book a table"),
        ("thank you", "You're welcome!"),
        ("ok bye", "Thanks for visiting Bistro."),
        ("the moon is made of cheese", "Sorry, I didn't catch that."),
        ("", "Sorry, I didn't catch that."),
    ],
)
async def test_static_answers_and_fallback(convo: Convo, said: str, starts: str) -> None:
    step = await convo.user(said)
    assert step.call is None and step.text.startswith(starts)


async def test_only_offered_tools_are_called(demo: AgentSpec) -> None:
    convo = Convo(RulesBrain(demo, CLOCK), tools=[TOOLS[0]])
    step = await convo.user("show me the menu")
    assert step.call is None and step.text == "Sorry, I can't help with that here."
    step = await convo.user("table for 2 tomorrow at 7")
    assert step.call is not None and step.call.name == "check_availability"


async def test_interrupted_reply_is_acknowledged(convo: Convo) -> None:
    convo.messages += [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "Hello! I can book"},
        {"role": "system", "content": INTERRUPTED_NOTE},
    ]
    step = await convo.user("uh")
    assert step.text == "Sorry, go ahead."
    step = await convo.user("uh")  # only right after the interruption
    assert step.text.startswith("Sorry, I didn't catch that.")


async def test_the_brain_is_stateless_and_deterministic(demo: AgentSpec) -> None:
    one, two = Convo(RulesBrain(demo, CLOCK)), Convo(RulesBrain(demo, CLOCK))
    for convo in (one, two):
        await convo.user("table for 4 tomorrow at 8")
        await convo.result(available(TOMORROW, "20:00", 4))
        await convo.user("Robin")
    assert one.messages == two.messages
    brain = RulesBrain(demo, CLOCK)
    before = [c async for c in brain.stream(one.messages[:4], TOOLS)]
    assert before == [c async for c in brain.stream(one.messages[:4], TOOLS)]


# --- helpers -------------------------------------------------------------------------------------


def test_message_text_and_tool_outcome_forms() -> None:
    parts = {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image"}]}
    assert message_text(parts) == "hi"
    assert message_text({"role": "assistant", "content": None}) == ""
    assert tool_outcome('{"status": "ok", "result": {"a": 1}}') == ("ok", {"a": 1})
    assert tool_outcome('{"status": "denied", "reason": "no"}') == ("denied", "no")
    assert tool_outcome('{"status": "error", "error": "boom"}') == ("error", "boom")
    assert tool_outcome('{"status": "unavailable", "message": "m"}') == (
        "ok",
        {"status": "unavailable", "message": "m"},
    )
    assert tool_outcome("not json") == ("ok", "not json")
