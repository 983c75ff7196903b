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
from collections.abc import Mapping
from typing import Any, Protocol

from fastapi import WebSocketDisconnect

from parley.brain.core import UserInput
from parley.channels import browser_wire as wire
from parley.channels.actors import refuse_operator
from parley.channels.heartbeat import CLOSE_CODE, Heartbeat
from parley.channels.http_errors import ApiError
from parley.channels.lifecycle import (
    ATTACHMENT_REPLACED,
    RELAY,
    SESSION_ENDED,
    WARNING,
    warning_text,
)
from parley.channels.live_decision import DECISION, settle_here
from parley.channels.operator_leg import serve_human_leg
from parley.channels.raw_ws import ParleyApp, RawWebSocket
from parley.channels.s2s_voice import voice_session_for
from parley.channels.services import Capacity, Services
from parley.channels.transcript_policy import client_wire
from parley.channels.voice_hold import Held, on_hold_frame
from parley.engines.base import EngineError
from parley.engines.factory import EngineHub
from parley.events import (
    Done,
    Error,
    Event,
    HumanMessage,
    Interrupted,
    SessionEnded,
    Transcript,
    Transfer,
)
from parley.logs import bind_session
from parley.metrics import Metrics, observe_turn_latency
from parley.sessions.coordinator import Subscription
from parley.sessions.records import Session
from parley.sessions.stats import SessionStats
from parley.voice.io import VoiceOptions
from parley.voice.pump import AudioPump
from parley.voice.session import VoiceSession

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

    def __init__(self, ws: RawWebSocket, metrics: Metrics | None = None) -> None:
        self.ws = ws
        self.metrics = metrics
        self.closed = False
        self.ended = False
        self.muted = False  # a human has joined: the AI's audio and events stay here
        self.audio_sent = 0  # frames of the AI's audio (the hold tone waits for quiet)
        self.transcripts = True  # the agent's transcripts_to_client
        self.stats = SessionStats()  # flushed to the store at detach (and at the end)

    async def send_event(self, event: Mapping[str, Any]) -> None:
        """A wire dict of a turn, as the agent's transcript policy lets the client see it."""
        shown = client_wire(event, to_client=self.transcripts)
        if shown is not None:
            await self.send_text(wire.render_wire(shown))

    async def end(self, reason: str) -> None:
        """Send ``session_ended`` once, however many paths report the end."""
        if not self.ended:
            self.ended = True
            ended = {"type": SessionEnded.type, "reason": reason, "detail": ""}
            await self.send_text(wire.render_wire(ended))

    async def emit(self, event: Event) -> None:
        if isinstance(event, Error):
            self.stats.error(event.code)
        elif isinstance(event, Interrupted):
            self.stats.interruptions += 1
        elif isinstance(event, Transcript) and event.final:
            self.stats.turns += 1
        if self.metrics is not None and isinstance(event, Done):
            observe_turn_latency(self.metrics, event.latency_ms)
        if self.metrics is not None and isinstance(event, Error):
            self.metrics.errors.labels(event.code).inc()
            if event.code == "bad_message":
                self.metrics.bad_messages.labels("voice").inc()
        if isinstance(event, Transfer):
            return  # the board's announcement (``_watch_end``) tells the client
        if self.muted and not isinstance(event, Error):
            return
        await self.send_event(event.to_wire())

    async def send_text(self, text: str) -> None:
        if not self.closed:
            try:
                await self.ws.send_text(text)
            except (WebSocketDisconnect, RuntimeError):
                self.closed = True

    async def send_audio(self, pcm: bytes) -> None:
        self.audio_sent += 1
        self.stats.audio_frames_out += 1
        if not self.muted:
            await self.send_bridged(pcm)

    async def send_bridged(self, pcm: bytes) -> None:
        """Audio that is not the AI's (the hold tone, the human): never muted."""
        if not self.closed:
            try:
                await self.ws.send_bytes(pcm)
            except (WebSocketDisconnect, RuntimeError):
                self.closed = True


async def _resolve_session(
    services: Services, start: dict[str, Any], client: str
) -> tuple[Session, dict[str, str]]:
    """The session a start frame names (or creates); returns it and tokens to report."""
    lifecycle = services.lifecycle
    try:
        if start.get("resume_token") and not start.get("session_token"):
            session = await lifecycle.resume(str(start["resume_token"]))
            resume = await lifecycle.rotate_resume_token(session)  # the old one is spent
            return session, {"resume_token": resume}
        if start.get("session_id"):
            token = start.get("session_token")
            session = await lifecycle.authorize(str(start["session_id"]), token)
            refuse_operator(services, token, "attach voice")
            resume = await lifecycle.rotate_resume_token(session)  # fresh for this attachment
            return session, {"session_token": str(token), "resume_token": resume}
        new = await lifecycle.create(
            str(start.get("agent") or "demo"),
            client=client,
            template_vars=dict(start.get("template_vars") or {}),
            channel="voice",
        )
    except ApiError as exc:
        raise StartRefused(exc.code, exc.message) from None
    return new.session, {"session_token": new.token, "resume_token": new.resume_token}


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
    """What to say on first attachment: (static text, or run the LLM opening turn).
    Claimed atomically: two first connections never both greet."""
    agent = services.agents[session.agent]
    if session.agent_state.get("voice_greeted"):
        return None, False
    messages = await services.store.count_messages(session.id, ("user", "assistant"))
    if agent.greeting_mode == "llm" and messages == 0:
        return None, await services.lifecycle.claim_greeting(session)
    if agent.greeting_mode == "static" and messages == 1:
        if await services.lifecycle.claim_greeting(session):
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


async def voice_endpoint(
    ws: RawWebSocket, services: Services, hub: EngineHub, capacity: Capacity | None = None
) -> None:
    await ws.accept()
    transport = WsTransport(ws, services.metrics)
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
    except (StartRefused, TimeoutError) as exc:
        await _refuse(ws, transport, exc)
        return
    except WebSocketDisconnect:
        return
    if start.transfer_id is not None:  # a human joining a transfer, not a caller
        await serve_human_leg(ws, transport.send_text, transport.send_bridged, services, start)
        return
    try:
        options = _options(start)
        session, tokens = await _resolve_session(services, start.session_fields(), client)
        if session.status != "active":
            raise StartRefused("session_ended", "the session has ended")
        engines = await hub.engines_for(session.agent)
        transport.transcripts = services.agents[session.agent].transcripts_to_client
    except (StartRefused, TimeoutError, EngineError) as exc:
        await _refuse(ws, transport, exc)
        return
    except WebSocketDisconnect:
        return
    ready = {
        "type": "ready",
        "session_id": session.id,
        **tokens,
        "input_sample_rate": options.input_rate,
        "output_sample_rate": options.output_rate,
        "expires_at": session.expires_at.isoformat() if session.expires_at else None,
        "heartbeat_s": services.agents[session.agent].limits.heartbeat_s,
    }
    conn = voice_session_for(
        services,
        session_id=session.id,
        agent_name=session.agent,
        engines=engines,
        events=transport,
        audio=AudioPump.for_options(options, transport, services.clock),
        options=options,
    )
    await _attach(ws, conn, transport, services, session, ready)


async def _attach(
    ws: RawWebSocket,
    conn: VoiceSession,
    transport: WsTransport,
    services: Services,
    session: Session,
    ready: dict[str, Any],
) -> None:
    """Hold the session, say ``ready``, then run the connection until the client
    leaves, the session ends or a newer voice connection takes the session over
    (this one hears ``attachment_replaced``). When the client sees ``ready``, the
    session is attached and its events reach this socket."""
    bind_session(session.id)  # every log line of this call (and its tasks) names it
    lifecycle = services.lifecycle
    greet, initial = await _greeting(services, session)
    events = await lifecycle.subscribe(session.id)
    watcher: asyncio.Task[None] | None = None
    closing: set[asyncio.Task[None]] = set()

    def replaced() -> None:  # the lease was lost to a newer connection
        if watcher is not None and not watcher.done():
            watcher.cancel()
        task = asyncio.ensure_future(_replaced(transport))
        closing.add(task)
        task.add_done_callback(closing.discard)

    try:
        attachment = await lifecycle.attach(session.id, "voice", on_replaced=replaced)
    except BaseException:
        await events.close()
        raise
    held = Held(services, session.id, transport, conn)
    watcher = asyncio.create_task(
        _watch_end(events, transport, attachment.owner, conn, held, services)
    )
    heartbeat = Heartbeat(services.clock, services.agents[session.agent].limits.heartbeat_s)
    pulse = asyncio.create_task(_watch_heartbeat(heartbeat, transport))
    live = services.voice_registry.add(session.id, str(ready["resume_token"]), transport)
    lifecycle.count(session.id, transport.stats)
    try:
        await transport.send_text(wire.render_wire(ready))
        await conn.start(greet=greet, initial_turn=initial)
        await _receive_loop(ws, conn, transport, services, session, heartbeat)
    finally:
        services.voice_registry.remove(live)
        watcher.cancel()
        pulse.cancel()
        await held.caller_left()
        await events.close()
        await conn.close()
        await lifecycle.uncount(session.id, transport.stats)
        await lifecycle.detach(attachment)
        if not transport.ended:  # dropped, not ended: resumable for a while
            lifecycle.dropped(session.id, services.agents[session.agent].limits.resume_grace_s)
        if ws.open:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await ws.close()


async def _refuse(ws: RawWebSocket, transport: WsTransport, exc: Exception) -> None:
    """A start that cannot be served: an ``error`` frame naming why, then close 1008."""
    code = getattr(exc, "code", "start_timeout")
    await transport.emit(Error(code, str(exc) or "no start frame"))
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await ws.close(1008)


async def _receive_loop(
    ws: RawWebSocket,
    conn: VoiceSession,
    transport: WsTransport,
    services: Services,
    session: Session,
    heartbeat: Heartbeat,
) -> None:
    while not transport.ended:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        heartbeat.beat()
        data = message.get("bytes")
        text = message.get("text")
        if data is not None:
            transport.stats.audio_frames_in += 1
        if len(data if data is not None else text or "") > MAX_FRAME_BYTES:
            await ws.close(1009, "frame too large")
            return
        leg = services.transfers.legs.get(session.id)
        if leg is not None:  # on hold or bridged: nothing reaches the AI
            if await on_hold_frame(services, leg, data, text, transport):
                await services.lifecycle.end(session.id, "USER_ENDED")
                await transport.end("USER_ENDED")
                return
            continue
        if data is not None:
            await conn.feed_audio(data)
            continue
        if await handle_text(conn, text or "", transport):
            await services.lifecycle.end(session.id, "USER_ENDED")
            await transport.end("USER_ENDED")
            return


async def _watch_end(
    subscription: Subscription,
    transport: WsTransport,
    owner: str,
    conn: VoiceSession,
    held: Held,
    services: Services,
) -> None:
    """Events of the session made elsewhere: a decision or turn over HTTP is forwarded
    to the client (a realtime session settles a ``decision`` itself, see
    ``live_decision``); the session's end (HTTP ``/end``, another worker) or a newer voice
    connection closes this one — the receive loop then finishes the connection."""
    async for message in subscription:
        kind = message.get("type")
        if kind == "transfer":
            await transport.send_text(wire.render_wire(message))
            await held.step(message)
        elif kind == HumanMessage.type:
            await transport.send_text(wire.render_wire(message))
        elif kind == DECISION:
            settle_here(services, conn.session_id, conn, message)
        elif kind == RELAY and isinstance(message.get("event"), dict):
            event = message["event"]
            if event.get("type") == "approval_resolved":
                conn.decided_elsewhere(str(event.get("tool_call_id")))
            await transport.send_event(event)
        elif kind == SESSION_ENDED:
            await transport.end(str(message.get("reason") or "USER_ENDED"))
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await transport.ws.close()
            return
        elif kind == WARNING:
            await transport.send_text(wire.render_wire(message))
            spoken = warning_text(conn.agent, message.get("seconds_left"))
            if spoken:
                conn.notice(spoken)
        elif kind == ATTACHMENT_REPLACED and message.get("owner") == owner:
            await _replaced(transport)
            return


async def _watch_heartbeat(heartbeat: Heartbeat, transport: WsTransport) -> None:
    """Close a connection whose client went silent (a drop: it may resume)."""
    await heartbeat.silence()
    if transport.closed or transport.ended:
        return
    log.info("voice connection closed: %s", heartbeat.reason())
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await transport.ws.close(CLOSE_CODE, "heartbeat timed out")


async def _replaced(transport: WsTransport) -> None:
    if transport.closed or transport.ended:
        return
    message = "a newer voice connection took over this session"
    await transport.emit(Error(ATTACHMENT_REPLACED, message))
    transport.ended = True  # no session_ended: the session goes on elsewhere
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await transport.ws.close(1000, "replaced")


def install(app: ParleyApp, services: Services) -> None:
    async def voice(ws: RawWebSocket) -> None:
        await voice_endpoint(ws, services, services.engine_hub, services.voice_capacity)

    app.raw_websocket("/v1/voice", voice)
