"""Audio for ``/v1/realtime``, for now over today's ``VoiceConnection``.

Interim: the voice session is being split into a transport-neutral session with typed
event and audio sinks (docs/REALTIME.md, "Wiring audio"). Until then this module gives
the Realtime socket one ``VoiceConnection`` per connection, with a transport that turns
the connection's JSON events back into ``parley.events`` (``event_from_wire``) and hands
its audio to the state machine. What changes with the new session: the reparse goes,
and audio leaves unpaced (today it is paced to real time, as for the browser).

Voice operations run one at a time, in the order the state machine asked for them
(``submit``), on one worker task.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from parley.brain.core import UserInput
from parley.channels.services import Services
from parley.engines.factory import EngineHub
from parley.events import (
    ApprovalRequested,
    ApprovalResolved,
    AssistantDelta,
    AssistantMessage,
    Done,
    Error,
    Event,
    GoAway,
    Interrupted,
    SessionEnded,
    ToolCallCompleted,
    ToolCallStarted,
    Transcript,
    Transfer,
    TurnEnd,
    UiOp,
    Vad,
    Warning,
)
from parley.realtime.session_config import SessionConfig
from parley.voice.connection import VoiceConnection, VoiceOptions

log = logging.getLogger(__name__)

CHANNEL = "realtime"
_BY_TYPE: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        AssistantDelta,
        AssistantMessage,
        ToolCallStarted,
        ToolCallCompleted,
        ApprovalRequested,
        ApprovalResolved,
        UiOp,
        Transfer,
        TurnEnd,
        Error,
        Vad,
        Interrupted,
        Done,
        Warning,
        GoAway,
        SessionEnded,
    )
}


def event_from_wire(data: dict[str, Any]) -> Event | None:
    """A voice connection's JSON event back as a ``parley.events`` event; ``None`` for
    the browser-only ones (``assistant_text``, ``pong``, …)."""
    kind = data.get("type")
    if kind in ("transcript_partial", "transcript_final"):
        return Transcript(str(data.get("text", "")), final=kind == "transcript_final")
    cls = _BY_TYPE.get(str(kind))
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


class _Transport:
    def __init__(self, on_event: Callable[[Event], None], on_audio: Callable[[bytes], None]):
        self.on_event = on_event
        self.on_audio = on_audio

    async def send_json(self, data: dict[str, Any]) -> None:
        event = event_from_wire(data)
        if event is not None:
            self.on_event(event)

    async def send_audio(self, pcm: bytes) -> None:
        self.on_audio(pcm)


def _voice_key(config: SessionConfig) -> tuple[int, int, str, float]:
    td = config.turn_detection
    mode = "push_to_talk" if td is None else "hands_free"
    stop = 0.5 if td is None else min(max(td.stop_secs, 0.05), 5.0)
    return config.input_rate, config.output_rate, mode, stop


class RealtimeVoice:
    """One ``VoiceConnection`` for a Realtime socket, (re)built for the session config."""

    def __init__(
        self,
        services: Services,
        session_id: str,
        agent: str,
        on_event: Callable[[Event], None],
        on_audio: Callable[[bytes], None],
    ) -> None:
        self.services = services
        self.session_id = session_id
        self.agent = agent
        self.transport = _Transport(on_event, on_audio)
        self.conn: VoiceConnection | None = None
        self.key: tuple[int, int, str, float] | None = None
        self.ptt_down = False
        self.jobs: asyncio.Queue[Callable[[], Awaitable[Any]] | None] = asyncio.Queue()
        self.worker = asyncio.create_task(self._work())

    def submit(self, job: Callable[[], Awaitable[Any]]) -> None:
        self.jobs.put_nowait(job)

    async def _work(self) -> None:
        while (job := await self.jobs.get()) is not None:
            try:
                await job()
            except Exception:
                log.exception("a realtime voice job of %s failed", self.session_id)
                self.transport.on_event(Error("internal_error", "the voice session failed"))

    async def configure(self, config: SessionConfig) -> VoiceConnection:
        """The connection for ``config``: rebuilt when rates, mode or stop silence change."""
        key = _voice_key(config)
        if self.conn is not None and key == self.key:
            return self.conn
        if self.conn is not None:
            await self.conn.close()
        hub = self.services.extras.get("engine_hub")
        if not isinstance(hub, EngineHub):
            hub = EngineHub(self.services.agents)
            self.services.extras["engine_hub"] = hub
        spec = self.services.agents[self.agent]
        spec = spec.model_copy(
            update={"voice": spec.voice.model_copy(update={"stop_secs": key[3]})}
        )
        self.conn = VoiceConnection(
            brain=self.services.brain,
            session_id=self.session_id,
            agent=spec,
            engines=await hub.engines_for(self.agent),
            transport=self.transport,
            options=VoiceOptions(
                input_rate=key[0], output_rate=key[1], mode=key[2], channel=CHANNEL
            ),
            clock=self.services.clock,
        )
        self.key = key
        self.ptt_down = False
        await self.conn.start()
        return self.conn

    async def feed(self, config: SessionConfig, pcm: bytes) -> None:
        conn = await self.configure(config)
        if config.turn_detection is None and not self.ptt_down:
            self.ptt_down = True
            await conn.ptt(True)
        await conn.feed_audio(pcm)

    async def commit(self, config: SessionConfig) -> None:
        conn = await self.configure(config)
        if self.ptt_down:
            self.ptt_down = False
            await conn.ptt(False)

    async def respond(self, config: SessionConfig, text: str) -> None:
        conn = await self.configure(config)
        conn.user_turn(UserInput(text, CHANNEL))

    async def interrupt(self, then: Callable[[], None]) -> None:
        if self.conn is not None:
            await self.conn.interrupt(notify=False)
        then()

    async def close(self) -> None:
        self.jobs.put_nowait(None)
        with contextlib.suppress(Exception):
            await self.worker
        if self.conn is not None:
            await self.conn.close()
