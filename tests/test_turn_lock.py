"""The turn owns its lock and its reply: renewal, loss → cancel, the reply stored as
it streams. A real SQLite store and the in-process coordinator on a fake clock; the
lock's renewal sleeps are released one by one by the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from parley.brain.core import Brain, UserInput
from parley.brain.runtime import AgentRuntime
from parley.brain.turn_stream import TurnStream
from parley.config import load_agents
from parley.engines.base import LLMChunk, TextDelta
from parley.events import Error, Event, TurnEnd
from parley.sessions import LocalCoordinator, Message, SqlStore
from parley.testing import FakeClock
from tests.manual_sleep import ManualSleep
from tests.plugins.stores import sqlite_url

TTL = 3.0
BOUND_S = 5.0  # a guard against hanging; nothing waits for it on success


class GateLLM:
    """A model whose deltas the test hands over one at a time (``None`` ends a reply)."""

    def __init__(self) -> None:
        self.deltas: asyncio.Queue[str | None] = asyncio.Queue()

    async def stream(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]
    ) -> AsyncIterator[LLMChunk]:
        while (delta := await self.deltas.get()) is not None:
            yield TextDelta(delta)


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock()
        self.sleep = ManualSleep(self.clock)
        self.store = SqlStore(sqlite_url(tmp_path), self.clock)
        self.coordinator = LocalCoordinator(self.clock)
        self.llm = GateLLM()
        agent = load_agents(None)["demo"]
        runtime = AgentRuntime(agent, {}, self.llm, "scripted")
        self.brain = Brain(
            self.store,
            self.coordinator,
            {agent.name: runtime},
            clock=self.clock,
            turn_lock_ttl_s=TTL,
            sleep=self.sleep,
        )
        self.session_id = ""

    async def start(self) -> None:
        await self.store.start()
        session = await self.store.create_session(
            agent="demo",
            token_hash="t",
            resume_token="r",
            template_vars={},
            metadata={},
            expires_at=None,
        )
        self.session_id = session.id

    async def turn(self, text: str) -> TurnStream:
        turn = self.brain.user_turn(self.session_id, UserInput(text))
        await turn.start()
        return turn

    async def history(self) -> list[tuple[str, str, bool]]:
        return [(m.role, m.text, m.interrupted) for m in await self.messages()]

    async def messages(self) -> list[Message]:
        return await self.store.list_messages(self.session_id)

    async def until_stored(self, role: str, text: str) -> Message:
        """Poll the store (bounded) until a message of ``role`` holds ``text``."""
        async with asyncio.timeout(BOUND_S):
            while True:
                for message in await self.messages():
                    if message.role == role and message.text == text:
                        return message
                await asyncio.sleep(0)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(tmp_path)
    await r.start()
    try:
        yield r
    finally:
        await r.store.close()


async def next_event(events: AsyncIterator[Event]) -> Event:
    async with asyncio.timeout(BOUND_S):
        return await anext(events)


async def test_a_turn_that_loses_its_lock_is_cancelled_and_keeps_its_cut_reply(rig: Rig) -> None:
    turn = await rig.turn("hello")
    events = aiter(turn)
    await rig.llm.deltas.put("Hello there. ")
    assert (await next_event(events)).to_wire() == {
        "type": "assistant_delta",
        "text": "Hello there. ",
    }
    # the worker stalls past the TTL; another worker takes the expired lock
    assert await rig.sleep.next() == TTL / 3
    rig.clock.advance(TTL)
    assert await rig.coordinator.acquire_lock(f"turn:{rig.session_id}", "other", TTL)
    await rig.sleep.release()  # the renewal runs, finds the lock gone: the turn stops
    rest = [await next_event(events), await next_event(events)]
    assert rest == [
        Error("turn_lock_lost", "the turn lost the session's lock and was stopped"),
        TurnEnd("error"),
    ]
    await turn.wait()
    assert not turn.running and turn.ended_status == "error"
    assert await rig.history() == [("user", "hello", False), ("assistant", "Hello there. ", True)]
    # the cancelled turn did not release the new owner's lock
    assert await rig.coordinator.lock_owner(f"turn:{rig.session_id}") == "other"


async def test_a_renewed_lock_outlives_a_long_turn(rig: Rig) -> None:
    turn = await rig.turn("tell me a long story")
    for _ in range(12):  # 12 s of fake time, four TTLs
        await rig.sleep.release()
    await rig.sleep.next()
    assert turn.running
    await rig.llm.deltas.put("The end.")
    await rig.llm.deltas.put(None)
    wire = [event.to_wire() async for event in turn]
    assert wire[-1] == {"type": "turn_end", "status": "completed", "session_status": "active"}
    assert await rig.history() == [
        ("user", "tell me a long story", False),
        ("assistant", "The end.", False),
    ]
    assert await rig.coordinator.lock_owner(f"turn:{rig.session_id}") is None


async def test_the_reply_is_stored_sentence_by_sentence_while_it_streams(rig: Rig) -> None:
    turn = await rig.turn("hi")
    events = aiter(turn)
    await rig.llm.deltas.put("First ")
    await next_event(events)
    draft = await rig.until_stored("assistant", "First ")
    assert draft.interrupted  # a crash now leaves it marked as cut
    for delta in ("sentence. ", "Second "):
        await rig.llm.deltas.put(delta)
        await next_event(events)
    await rig.until_stored("assistant", "First sentence. ")
    await rig.llm.deltas.put("one!")
    await next_event(events)
    await rig.until_stored("assistant", "First sentence. Second one!")
    await rig.llm.deltas.put(None)
    assert [e.to_wire()["type"] async for e in turn] == ["assistant_message", "turn_end"]
    assert await rig.history() == [
        ("user", "hi", False),
        ("assistant", "First sentence. Second one!", False),
    ]
    assert [m.id for m in await rig.messages()][1] == draft.id  # one row, updated in place


async def test_a_user_message_left_without_a_reply_by_a_crash_gets_an_empty_cut_one(
    rig: Rig,
) -> None:
    await rig.store.add_message(rig.session_id, "user", "are you there?")  # then the worker died
    turn = await rig.turn("hello?")
    await rig.llm.deltas.put("Yes.")
    await rig.llm.deltas.put(None)
    _ = [event async for event in turn]
    assert await rig.history() == [
        ("user", "are you there?", False),
        ("assistant", "", True),
        ("user", "hello?", False),
        ("assistant", "Yes.", False),
    ]
