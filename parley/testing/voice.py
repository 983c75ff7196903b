"""Scripted-timeline test kit for the voice loop: virtual time, scripted engines, a harness.

Time is one ``FakeClock`` (``parley.testing.clock``): the voice session and the
scripted engines wait on it with ``clock.sleep``, and ``await time.run_for(secs)``
moves it from one sleeper's deadline to the next, letting everything that becomes
runnable run in between (``settle``). Real I/O (the store) is tracked by
``TrackedStore``, so ``settle`` also waits for store calls in flight: a timeline plays
out the same way however fast the machine is.

The scripted engines (``voice_engines``, re-exported here) make audio easy to read
back: ``ScriptedVAD`` reads a frame's speech probability from its samples,
``ScriptedSTT`` answers from a script, ``ToneTTS`` marks which call made each frame,
``ScriptedLLM`` streams scripted replies, tool calls, pauses and errors.

``Mic`` feeds a connection 20 ms frames in real-time order (the clock advances one
frame, then the frame arrives); ``voice_harness`` wires all of it around a real
``Brain`` on a real SQLite/PostgreSQL store.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from parley.brain.core import Brain
from parley.brain.demo_tools import register_demo_tools
from parley.brain.runtime import AgentRuntime
from parley.brain.tools import ToolFn, ToolRegistry
from parley.config import AgentSpec
from parley.engines.base import EngineSet
from parley.events import Event
from parley.sessions.local import LocalCoordinator
from parley.sessions.records import Message
from parley.sessions.sql import SqlStore
from parley.testing import FakeClock
from parley.testing.voice_engines import (
    HeardUtterance,
    Pause,
    ScriptedEndOfTurn,
    ScriptedLLM,
    ScriptedSTT,
    ScriptedVAD,
    Step,
    ToneTTS,
    book_call,
    tokens,
    vad_frame,
)
from parley.voice.io import AudioOutput, VoiceOptions
from parley.voice.pump import AudioPump
from parley.voice.session import FRAME_SECS, VoiceSession
from parley.voice.turns import VoiceTurns

__all__ = [
    "HeardUtterance",
    "MemoryTransport",
    "Mic",
    "Pause",
    "ScriptedEndOfTurn",
    "ScriptedLLM",
    "ScriptedSTT",
    "ScriptedVAD",
    "Sent",
    "Step",
    "ToneTTS",
    "TrackedStore",
    "VoiceHarness",
    "book_call",
    "scripted_agent",
    "tokens",
    "vad_frame",
    "voice_harness",
]


class TrackedStore:
    """A ``Store`` whose calls ``FakeClock.settle`` waits for (they are real I/O)."""

    def __init__(self, store: Any, time: FakeClock) -> None:
        self._store = store
        self._time = time

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def tracked(*args: Any, **kwargs: Any) -> Any:
            self._time.io_started()
            try:
                return await attr(*args, **kwargs)
            finally:
                self._time.io_finished()

        return tracked


# --- transport -------------------------------------------------------------------------


OutputFactory = Callable[[VoiceOptions, "MemoryTransport", FakeClock], AudioOutput]


@dataclass(frozen=True)
class Sent:
    at: float
    kind: Literal["json", "audio"]
    data: Any


class MemoryTransport:
    """Collects what a voice session sends (its event sink and its pump's audio
    sink), with the virtual time of each send.
    Set ``audio_gate`` (an ``asyncio.Event``) to hold audio sends until it is set.

    The pump sends audio in batches (several frames per message): ``audio()`` counts
    audio by bytes, cut into 20 ms frames (``frame_bytes``, 640 at 16 kHz), while
    ``audio_messages()`` gives the binary messages as sent."""

    def __init__(self, time: FakeClock, frame_bytes: int = 640) -> None:
        self.time = time
        self.frame_bytes = frame_bytes
        self.sent: list[Sent] = []
        self.audio_gate: asyncio.Event | None = None

    async def emit(self, event: Event) -> None:
        await self.send_json(event.to_wire())

    async def send_text(self, text: str) -> None:
        self.sent.append(Sent(self.time.monotonic(), "json", json.loads(text)))

    async def send_json(self, data: dict[str, Any]) -> None:
        wire = json.loads(json.dumps(data))  # must be plain JSON, like on the wire
        self.sent.append(Sent(self.time.monotonic(), "json", wire))

    async def send_audio(self, pcm: bytes) -> None:
        self.sent.append(Sent(self.time.monotonic(), "audio", bytes(pcm)))
        if self.audio_gate is not None:
            await self.audio_gate.wait()

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [s.data for s in self.sent if s.kind == "json" and kind in (None, s.data["type"])]

    def types(self) -> list[str]:
        return [s.data["type"] for s in self.sent if s.kind == "json"]

    def count(self, kind: str) -> int:
        return len(self.events(kind))

    def index(self, kind: str, nth: int = 0) -> int:
        """Position in ``sent`` of the ``nth`` JSON event of ``kind``."""
        found = [i for i, s in enumerate(self.sent) if s.kind == "json" and s.data["type"] == kind]
        return found[nth]

    def audio_messages(self, start: int = 0) -> list[bytes]:
        """The binary messages sent from ``sent[start]`` on."""
        return [s.data for s in self.sent[start:] if s.kind == "audio"]

    def audio(self, start: int = 0) -> list[bytes]:
        """The audio sent from ``sent[start]`` on, each message cut into 20 ms frames
        (a message's last piece may be shorter)."""
        size = self.frame_bytes
        return [m[i : i + size] for m in self.audio_messages(start) for i in range(0, len(m), size)]

    def audio_bytes(self, start: int = 0) -> bytes:
        return b"".join(self.audio_messages(start))

    def first_audio_at(self, start: int = 0) -> float:
        return next(s.at for s in self.sent[start:] if s.kind == "audio")


# --- driving a connection ------------------------------------------------------------


class Mic:
    """Feeds frames in real time: the clock moves one frame, then the frame arrives."""

    def __init__(self, conn: VoiceSession, time: FakeClock) -> None:
        self.conn = conn
        self.time = time

    async def play(self, secs: float, prob: float) -> None:
        for _ in range(round(secs / FRAME_SECS)):
            await self.time.run_for(FRAME_SECS)
            await self.conn.feed_audio(vad_frame(prob))
        await self.time.settle()

    async def speak(self, secs: float, prob: float = 1.0) -> None:
        await self.play(secs, prob)

    async def silence(self, secs: float) -> None:
        await self.play(secs, 0.0)

    async def utterance(self, speech: float = 1.0, before: float = 0.2) -> None:
        """Silence, ``speech`` seconds of speech, then silence until the turn ends."""
        await self.silence(before)
        await self.speak(speech)
        assert self.conn.input is not None, "a cascaded voice session"
        await self.silence(self.conn.input.turn_taking.config.stop_secs)


def scripted_agent(**overrides: Any) -> AgentSpec:
    """A small agent with the demo tools: a filler on ``check_availability`` and
    an approval on ``book_table``."""
    spec: dict[str, Any] = {
        "name": "tester",
        "brain": "rules",
        "tools": [
            {"name": "check_availability", "filler": "Let me check."},
            {"name": "book_table", "requires_approval": True, "approval_prompt": "Book it?"},
        ],
        **overrides,
    }
    return AgentSpec.model_validate(spec)


@dataclass
class VoiceHarness:
    time: FakeClock
    store: Any
    brain: Brain
    session_id: str
    agent: AgentSpec
    engines: EngineSet
    llm: Any
    transport: MemoryTransport = field(init=False)
    conn: VoiceSession = field(init=False)
    mic: Mic = field(init=False)

    def connect(
        self, options: VoiceOptions | None = None, output: OutputFactory | None = None
    ) -> VoiceSession:
        """A (new) connection to the session, with a fresh transport and mic; its audio
        output is ``output(options, transport, clock)`` (default: an ``AudioPump``)."""
        options = options or VoiceOptions()
        self.transport = MemoryTransport(self.time, options.output_rate // 50 * 2)
        self.conn = VoiceSession(
            turns=VoiceTurns(self.brain, self.session_id, options.channel),
            agent=self.agent,
            engines=self.engines,
            events=self.transport,
            audio=(output or AudioPump.for_options)(options, self.transport, self.time),
            options=options,
            clock=self.time,
        )
        self.mic = Mic(self.conn, self.time)
        return self.conn

    async def messages(self, role: str | None = None) -> list[Message]:
        history: list[Message] = await self.store.list_messages(self.session_id)
        return [m for m in history if role in (None, m.role)]

    async def until(self, kind: str, count: int = 1, limit_s: float = 120.0) -> float:
        """Advance virtual time until ``count`` events of ``kind`` have been sent."""
        return await self.time.run_until(lambda: self.transport.count(kind) >= count, limit_s)


@contextlib.asynccontextmanager
async def voice_harness(
    database_url: str,
    *,
    agent: AgentSpec | None = None,
    llm: Any = None,
    stt: Any = None,
    tts: Any = None,
    options: VoiceOptions | None = None,
    output: OutputFactory | None = None,
    channel: str = "voice",
    time: FakeClock | None = None,
    tools: Sequence[ToolFn] = (),
    end_of_turn: Any = None,
) -> AsyncIterator[VoiceHarness]:
    """A ``VoiceSession`` (not started) on a fresh session, all in virtual time.
    Engines whose ``clock`` is None get the harness's virtual clock; ``tools`` are
    Python tools added to the demo tools (the agent still has to list them);
    ``end_of_turn`` is an audio end-of-turn model (e.g. ``ScriptedEndOfTurn``)."""
    time = time or FakeClock()
    agent = agent or scripted_agent()
    llm = llm if llm is not None else ScriptedLLM()
    stt = stt if stt is not None else ScriptedSTT()
    tts = tts if tts is not None else ToneTTS()
    for engine in (llm, stt, tts, end_of_turn):
        if getattr(engine, "clock", False) is None:
            engine.clock = time
    sql = SqlStore(database_url, time)
    await sql.start()
    store = TrackedStore(sql, time)
    client = httpx.AsyncClient()
    registry = ToolRegistry()
    register_demo_tools(registry, time)
    for tool in tools:
        registry.add(tool)
    runtime = AgentRuntime(agent, registry.bind(agent, client), llm, "scripted")
    brain = Brain(store, LocalCoordinator(time), {agent.name: runtime}, clock=time)  # type: ignore[arg-type]
    session = await store.create_session(
        agent=agent.name,
        token_hash="test",
        resume_token=uuid.uuid4().hex,
        template_vars={},
        metadata={},
        expires_at=None,
        channel=channel,
    )
    engines = EngineSet(stt=stt, tts=tts, vad=ScriptedVAD(), end_of_turn=end_of_turn)
    harness = VoiceHarness(time, store, brain, session.id, agent, engines, llm)
    harness.connect(options, output)
    try:
        yield harness
    finally:
        await harness.conn.close()
        await time.settle()
        await sql.close()
        await client.aclose()
