"""The browser voice channel: ``GET /v1/voice`` (WebSocket), PROTOCOL.md "Voice WebSocket".

The socket loop of the browser transport: frames are parsed and rendered by the pure
codec ``browser_wire``; a ``VoiceSession`` does the voice work, with ``WsTransport``
as its event sink and an ``AudioPump`` (push-paced) as its audio output.

The first text frame is ``start`` (an existing session, a new one for an agent, or a
resume token); a bad one gets ``error{bad_message}`` and a 1008 close. Then binary
PCM16 frames and JSON control frames both ways: a malformed control frame gets
``error{bad_message}`` and the connection goes on; an oversized frame closes with
1009. While connected the session's channel is ``voice`` (chat answers 409
``wrong_channel``); on close it returns to ``chat`` with one history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import WebSocketDisconnect

from parley.brain.core import UserInput
from parley.channels import browser_wire as wire
from parley.channels.actors import refuse_operator
from parley.channels.http_errors import ApiError
from parley.channels.raw_ws import ParleyApp, RawWebSocket
from parley.channels.services import Services, token_hash
from parley.engines.base import EngineError
from parley.engines.factory import EngineHub
from parley.events import Error, Event, SessionEnded
from parley.sessions.records import Session
from parley.voice.io import VoiceOptions
from parley.voice.pump import AudioPump
from parley.voice.session import VoiceSession
from parley.voice.turns import VoiceTurns

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 256 * 1024
START_TIMEOUT_S = 15.0


class StartRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Replies(Protocol):
    """Where answers to control frames go (``WsTransport``; a test's memory sink)."""

    async def emit(self, event: Event) -> None: ...

    async def send_text(self, text: str) -> None: ...


class WsTransport:
    """The session's event sink and the pump's audio sink on one socket; a send
    after the client left is dropped."""

    def __init__(self, ws: RawWebSocket) -> None:
        self.ws = ws
        self.closed = False
        self.ended = False

    async def end(self, reason: str) -> None:
        """Send ``session_ended`` once, however many paths report the end."""
        if not self.ended:
            self.ended = True
            ended = {"type": SessionEnded.type, "reason": reason, "detail": ""}
            await self.send_text(wire.render_wire(ended))

    async def emit(self, event: Event) -> None:
        await self.send_text(wire.render(event))

    async def send_text(self, text: str) -> None:
        if not self.closed:
            try:
                await self.ws.send_text(text)
            except (WebSocketDisconnect, RuntimeError):
                self.closed = True

    async def send_audio(self, pcm: bytes) -> None:
        if not self.closed:
            try:
                await self.ws.send_bytes(pcm)
            except (WebSocketDisconnect, RuntimeError):
                self.closed = True


async def _resolve_session(
    services: Services, start: dict[str, Any], client: str
) -> tuple[Session, dict[str, str]]:
    """The session a start frame names (or creates); returns it and tokens to report."""
    store = services.store
    if start.get("resume_token"):
        session = await store.get_session_by_resume_token(token_hash(str(start["resume_token"])))
        if session is None:
            raise StartRefused("unknown_resume_token", "no session has this resume token")
        return session, {"resume_token": str(start["resume_token"])}
    if start.get("session_id"):
        try:
            session = await services.authorize(str(start["session_id"]), start.get("session_token"))
            refuse_operator(services, start.get("session_token"), "attach voice")
        except ApiError as exc:
            raise StartRefused(exc.code, exc.message) from None
        resume = secrets.token_urlsafe(32)  # a fresh resume token for this attachment
        await store.update_session(session.id, resume_token=token_hash(resume))
        return session, {"session_token": str(start.get("session_token")), "resume_token": resume}
    agent_name = str(start.get("agent") or "demo")
    if services.agents.get(agent_name) is None:
        raise StartRefused("agent_not_found", f"no agent named {agent_name!r}")
    wait = services.session_limiter.check(client)
    if wait is not None:
        raise StartRefused("rate_limited", "too many sessions created; try again later")
    agent = services.agents[agent_name]
    token, resume = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session = await store.create_session(
        agent=agent.name,
        token_hash=token_hash(token),
        resume_token=token_hash(resume),
        template_vars=dict(start.get("template_vars") or {}),
        metadata={},
        expires_at=services.expires_at(agent),
        channel="voice",
    )
    greeting = agent.render_greeting(session.template_vars)
    if greeting:
        await store.add_message(
            session.id,
            "assistant",
            greeting,
            blocks=[{"type": "text", "text": greeting}],
            channel="voice",
        )
    return session, {"session_token": token, "resume_token": resume}


def _options(start: wire.StartRequest) -> VoiceOptions:
    return VoiceOptions(start.sample_rate, start.output_sample_rate, start.mode, start.transcripts)


async def _read_start(ws: RawWebSocket) -> wire.StartRequest:
    message = await asyncio.wait_for(ws.receive(), START_TIMEOUT_S)
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    try:
        return wire.parse_start(message.get("text"))
    except wire.BadMessage as exc:
        raise StartRefused(exc.code, exc.message) from None


async def _greeting(services: Services, session: Session) -> tuple[str | None, bool]:
    """What to say on first attachment: (static text, or run the LLM opening turn)."""
    agent = services.agents[session.agent]
    if session.agent_state.get("voice_greeted"):
        return None, False
    messages = await services.store.count_messages(session.id, ("user", "assistant"))
    state = {**session.agent_state, "voice_greeted": True}
    if agent.greeting_mode == "llm" and messages == 0:
        await services.store.update_session(session.id, agent_state=state)
        return None, True
    if agent.greeting_mode == "static" and messages == 1:
        await services.store.update_session(session.id, agent_state=state)
        return agent.render_greeting(session.template_vars), False
    return None, False


async def dispatch(session: VoiceSession, msg: wire.ControlMessage, transport: Replies) -> bool:
    """Act on one control message; True for ``end``. A ``ptt`` key-up without a
    key-down gets ``error{bad_message}``."""
    match msg:
        case wire.Ptt(down):
            try:
                await session.ptt(down)
            except ValueError as exc:
                await transport.emit(Error("bad_message", str(exc)))
        case wire.Text(text):
            session.user_turn(UserInput(text, session.options.channel))
        case wire.UiAction(text, display):
            action = {"msg": text, "display": display}
            session.user_turn(UserInput(text, session.options.channel, action))
        case wire.Approval(tool_call_id, approved):
            session.decide(tool_call_id, approved, "user")
        case wire.Interrupt():
            await session.interrupt()
        case wire.Played(ms):
            session.client_played(ms)
        case wire.Ping():
            await transport.send_text(wire.PONG)
        case wire.End():
            return True
    return False


async def handle_text(session: VoiceSession, text: str, transport: Replies) -> bool:
    """One control frame: parsed and acted on, or answered ``error{bad_message}``.
    True when the client ended the session."""
    try:
        msg = wire.parse_control(text)
    except wire.BadMessage as exc:
        await transport.emit(exc.to_event())
        return False
    return await dispatch(session, msg, transport)


@dataclass
class Capacity:
    """Open voice connections of this worker against ``limit`` (0 = no limit)."""

    limit: int
    open: int = 0

    @property
    def full(self) -> bool:
        return bool(self.limit) and self.open >= self.limit


async def voice_endpoint(
    ws: RawWebSocket, services: Services, hub: EngineHub, capacity: Capacity | None = None
) -> None:
    await ws.accept()
    transport = WsTransport(ws)
    capacity = capacity or Capacity(0)
    if capacity.full:
        # At capacity: refuse at once rather than answer every caller late.
        message = f"this worker has its {capacity.limit} voice connections; try again later"
        await transport.emit(Error("server_busy", message))
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await ws.close(1013, "try again later")
        return
    capacity.open += 1
    try:
        await _serve_voice(ws, transport, services, hub)
    finally:
        capacity.open -= 1


async def _serve_voice(
    ws: RawWebSocket, transport: WsTransport, services: Services, hub: EngineHub
) -> None:
    client = ws.client_host
    try:
        start = await _read_start(ws)
        options = _options(start)
        session, tokens = await _resolve_session(services, start.session_fields(), client)
        if session.status != "active":
            raise StartRefused("session_ended", "the session has ended")
        engines = await hub.engines_for(session.agent)
    except (StartRefused, TimeoutError, EngineError) as exc:
        code = getattr(exc, "code", "start_timeout")
        await transport.emit(Error(code, str(exc) or "no start frame"))
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await ws.close(1008)
        return
    except WebSocketDisconnect:
        return
    await services.store.update_session(session.id, current_channel="voice")
    ready = {
        "type": "ready",
        "session_id": session.id,
        **tokens,
        "input_sample_rate": options.input_rate,
        "output_sample_rate": options.output_rate,
        "expires_at": session.expires_at.isoformat() if session.expires_at else None,
    }
    await transport.send_text(wire.render_wire(ready))
    conn = VoiceSession(
        turns=VoiceTurns(services.brain, session.id, options.channel),
        agent=services.agents[session.agent],
        engines=engines,
        events=transport,
        audio=AudioPump.for_options(options, transport, services.clock),
        options=options,
        clock=services.clock,
    )
    await _attach(ws, conn, transport, services, session)


async def _attach(
    ws: RawWebSocket,
    conn: VoiceSession,
    transport: WsTransport,
    services: Services,
    session: Session,
) -> None:
    """Run one ready connection until the client leaves or the session ends."""
    greet, initial = await _greeting(services, session)
    ended = await services.coordinator.subscribe(f"session:{session.id}")
    watcher = asyncio.create_task(_watch_end(ended, transport))
    try:
        await conn.start(greet=greet, initial_turn=initial)
        await _receive_loop(ws, conn, transport, services, session)
    finally:
        watcher.cancel()
        await ended.close()
        await conn.close()
        await services.store.update_session(session.id, current_channel="chat")
        if ws.open:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await ws.close()


async def _receive_loop(
    ws: RawWebSocket,
    conn: VoiceSession,
    transport: WsTransport,
    services: Services,
    session: Session,
) -> None:
    while not transport.ended:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        text = message.get("text")
        if len(data if data is not None else text or "") > MAX_FRAME_BYTES:
            await ws.close(1009, "frame too large")
            return
        if data is not None:
            await conn.feed_audio(data)
            continue
        if await handle_text(conn, text or "", transport):
            if await services.store.end_session(session.id, "USER_ENDED"):
                await services.coordinator.publish(
                    f"session:{session.id}", {"type": "session_ended", "reason": "USER_ENDED"}
                )
            await transport.end("USER_ENDED")
            return


async def _watch_end(subscription: Any, transport: WsTransport) -> None:
    """The session ended elsewhere (HTTP ``/end``, another worker): tell the client
    and close the socket; the receive loop then finishes the connection."""
    async for message in subscription:
        if message.get("type") == "session_ended":
            await transport.end(str(message.get("reason") or "USER_ENDED"))
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await transport.ws.close()
            return


def install(app: ParleyApp, services: Services) -> None:
    hub = EngineHub(services.agents)
    services.extras["engine_hub"] = hub
    capacity = Capacity(services.settings.max_voice_connections)
    services.extras["voice_capacity"] = capacity

    async def voice(ws: RawWebSocket) -> None:
        await voice_endpoint(ws, services, hub, capacity)

    app.raw_websocket("/v1/voice", voice)
