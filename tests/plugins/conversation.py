"""A conversation with a running app over the real HTTP API: say, read the reply.

``Chat.say`` sends one message (or ``Chat.decide`` one approval) and returns a
``Turn``: the assistant's text, the tools that ran, the approval asked for. The
clock is a ``FakeClock`` on a fixed wall time, so "today" is known to the tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from parley.client import ParleyClient, SseEvent
from parley.testing import FakeClock
from tests.plugins.apps import AppFactory

# Wednesday 7 January 2026, 11:00 in Amsterdam (the demo venue's time zone).
NOW = datetime(2026, 1, 7, 10, 0, tzinfo=UTC)


@dataclass
class Turn:
    events: list[SseEvent]
    text: str = ""
    tools: list[dict[str, Any]] = field(default_factory=list)
    approval: dict[str, Any] | None = None
    resolved: list[dict[str, Any]] = field(default_factory=list)
    status: str = ""

    def ran(self, name: str) -> dict[str, Any] | None:
        return next((t for t in self.tools if t["name"] == name and t["status"] == "ok"), None)

    @property
    def low(self) -> str:
        return self.text.lower()


async def _turn(stream: AsyncIterator[SseEvent]) -> Turn:
    events = [ev async for ev in stream]
    turn = Turn(events)
    texts = [e.data["text"] for e in events if e.event == "assistant_message"]
    turn.text = " ".join(t for t in texts if t)
    turn.tools = [e.data for e in events if e.event == "tool_call_completed"]
    asked = [e.data for e in events if e.event == "approval_requested"]
    turn.approval = asked[-1] if asked else None
    turn.resolved = [e.data for e in events if e.event == "approval_resolved"]
    ends = [e.data["status"] for e in events if e.event == "turn_end"]
    turn.status = ends[-1] if ends else ""
    return turn


class Chat:
    def __init__(self, client: ParleyClient) -> None:
        self.client = client
        self.last: Turn | None = None

    async def say(self, text: str) -> Turn:
        self.last = await _turn(self.client.send(text))
        return self.last

    async def script(self, *texts: str) -> Turn:
        turn: Turn | None = None
        for text in texts:
            turn = await self.say(text)
        assert turn is not None
        return turn

    async def decide(self, approved: bool) -> Turn:
        assert self.last is not None and self.last.approval is not None
        call = self.last.approval["tool_call_id"]
        self.last = await _turn(self.client.decide(call, approved))
        return self.last

    async def bookings(self) -> list[dict[str, Any]]:
        return [
            b["result"]
            for m in await self.client.messages()
            for b in m["blocks"]
            if b["type"] == "tool_result" and b["name"] == "book_table" and b["status"] == "ok"
        ]


@pytest.fixture
def backend() -> dict[str, Any]:
    """Conversations run on the embedded store (the API path is the same for both)."""
    return {}


@pytest.fixture
async def chat(make_app: AppFactory) -> AsyncIterator[Chat]:
    async with make_app(clock=FakeClock(wall=NOW)) as app:
        client = app.client()
        await client.create_session("demo")
        yield Chat(client)
        await client.aclose()
