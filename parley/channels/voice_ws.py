"""The browser voice channel: ``GET /v1/voice`` (WebSocket), PROTOCOL.md "Voice WebSocket".

The first text frame is ``start`` (an existing session, a new one for an agent, or a
resume token); then binary PCM16 frames and JSON control frames both ways. Bad
JSON gets ``error{bad_message}`` and the connection goes on; an oversized frame
closes with 1009. While connected the session's channel is ``voice`` (chat answers
409 ``wrong_channel``); on close it returns to ``chat`` with one history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import WebSocketDisconnect

from parley.brain.core import UserInput
from parley.channels.http_errors import ApiError
from parley.channels.lifecycle import ATTACHMENT_REPLACED, RELAY, SESSION_ENDED
from parley.channels.raw_ws import ParleyApp, RawWebSocket
from parley.channels.services import Capacity, Services
from parley.engines.base import EngineError
from parley.engines.factory import EngineHub
from parley.events import Error, SessionEnded
from parley.logs import bind_session
from parley.sessions.coordinator import Subscription
from parley.sessions.records import Session
from parley.voice.connection import VoiceConnection, VoiceOptions

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 256 * 1024
MAX_TEXT = 8000
START_TIMEOUT_S = 15.0
RATES = range(8000, 48001)


class StartRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class WsTransport:
    """Sends JSON and audio to one socket; a send after the client left is dropped."""

    def __init__(self, ws: RawWebSocket) -> None:
        self.ws = ws
        self.closed = False
        self.ended = False

    async def end(self, reason: str) -> None:
        """Send ``session_ended`` once, however many paths report the end."""
        if not self.ended:
            self.ended = True
            wire = {"type": SessionEnded.type, "reason": reason, "detail": ""}
            await self.send_json(wire)

    async def send_json(self, data: dict[str, Any]) -> None:
        if not self.closed:
            try:
                await self.ws.send_text(json.dumps(data, ensure_ascii=False, default=str))
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
    lifecycle = services.lifecycle
    try:
        if start.get("resume_token"):
            session = await lifecycle.resume(str(start["resume_token"]))
            return session, {"resume_token": str(start["resume_token"])}
        if start.get("session_id"):
            token = start.get("session_token")
            session = await lifecycle.authorize(str(start["session_id"]), token)
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


def _options(start: dict[str, Any]) -> VoiceOptions:
    rate = start.get("sample_rate", 16000)
    if not isinstance(rate, int) or rate not in RATES:
        raise StartRefused("bad_message", "sample_rate must be an integer from 8000 to 48000")
    out_rate = start.get("output_sample_rate", rate)
    if not isinstance(out_rate, int) or out_rate not in RATES:
        raise StartRefused("bad_message", "output_sample_rate must be from 8000 to 48000")
    mode = start.get("mode", "hands_free")
    if mode not in ("hands_free", "push_to_talk"):
        raise StartRefused("bad_message", "mode must be hands_free or push_to_talk")
    return VoiceOptions(rate, out_rate, mode, bool(start.get("transcripts", True)))


async def _read_start(ws: RawWebSocket) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.receive(), START_TIMEOUT_S)
    text = message.get("text")
    if text is None:
        raise StartRefused("bad_message", "the first frame must be a JSON 'start' message")
    try:
        start = json.loads(text)
    except json.JSONDecodeError:
        raise StartRefused("bad_message", "the first frame is not valid JSON") from None
    if not isinstance(start, dict) or start.get("type") != "start":
        raise StartRefused("bad_message", "the first frame must have type 'start'")
    return start


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


async def dispatch(conn: VoiceConnection, msg: dict[str, Any]) -> str | None:
    """Handle one control frame; returns "end" to finish the connection.
    An unknown or incomplete message gets ``error{bad_message}``."""
    kind = msg.get("type")
    problem = None
    if kind == "ptt" and msg.get("state") in ("down", "up"):
        try:
            await conn.ptt(msg["state"] == "down")
        except ValueError as exc:
            problem = str(exc)
    elif kind == "text" and _text(msg.get("text")):
        conn.user_turn(UserInput(msg["text"].strip(), conn.options.channel))
    elif kind == "ui_action" and _text(msg.get("msg")) and _optional_text(msg.get("display")):
        action = {"msg": msg["msg"], "display": msg.get("display")}
        conn.user_turn(UserInput(msg["msg"], conn.options.channel, action))
    elif (
        kind == "approval"
        and _text(msg.get("tool_call_id"))
        and isinstance(msg.get("approved"), bool)
    ):
        conn.decide(msg["tool_call_id"], msg["approved"], "user")
    elif kind == "interrupt":
        await conn.interrupt()
    elif kind == "played" and _number(msg.get("ms")):
        conn.client_played(float(msg["ms"]))
    elif kind == "ping":
        await conn.transport.send_json({"type": "pong"})
    elif kind == "end":
        return "end"
    else:
        problem = f"unknown or incomplete message {str(kind)[:40]!r}"
    if problem is not None:
        await conn.transport.send_json(Error("bad_message", problem).to_wire())
    return None


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= MAX_TEXT


def _optional_text(value: Any) -> bool:
    return value is None or (isinstance(value, str) and len(value) <= MAX_TEXT)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


async def voice_endpoint(
    ws: RawWebSocket, services: Services, hub: EngineHub, capacity: Capacity | None = None
) -> None:
    await ws.accept()
    transport = WsTransport(ws)
    capacity = capacity or Capacity(0)
    if capacity.full:
        # At capacity: refuse at once rather than answer every caller late.
        message = f"this worker has its {capacity.limit} voice connections; try again later"
        await transport.send_json(Error("server_busy", message).to_wire())
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
        session, tokens = await _resolve_session(services, start, client)
        if session.status != "active":
            raise StartRefused("session_ended", "the session has ended")
        engines = await hub.engines_for(session.agent)
    except (StartRefused, TimeoutError, EngineError) as exc:
        code = getattr(exc, "code", "start_timeout")
        await transport.send_json(Error(code, str(exc) or "no start frame").to_wire())
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await ws.close(1008)
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
    }
    conn = VoiceConnection(
        brain=services.brain,
        session_id=session.id,
        agent=services.agents[session.agent],
        engines=engines,
        transport=transport,
        options=options,
        clock=services.clock,
    )
    await _attach(ws, conn, services, session, ready)


async def _attach(
    ws: RawWebSocket,
    conn: VoiceConnection,
    services: Services,
    session: Session,
    ready: dict[str, Any],
) -> None:
    """Hold the session, say ``ready``, then run the connection until the client
    leaves, the session ends or a newer voice connection takes the session over
    (this one hears ``attachment_replaced``). When the client sees ``ready``, the
    session is attached and its events reach this socket."""
    bind_session(session.id)  # every log line of this call (and its tasks) names it
    transport = conn.transport
    assert isinstance(transport, WsTransport)
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
    watcher = asyncio.create_task(_watch_end(events, transport, attachment.owner))
    try:
        await transport.send_json(ready)
        await conn.start(greet=greet, initial_turn=initial)
        await _receive_loop(ws, conn, services, session)
    finally:
        watcher.cancel()
        await events.close()
        await conn.close()
        await lifecycle.detach(attachment)
        if ws.open:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await ws.close()


async def _receive_loop(
    ws: RawWebSocket, conn: VoiceConnection, services: Services, session: Session
) -> None:
    transport = conn.transport
    assert isinstance(transport, WsTransport)
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
        try:
            msg = json.loads(text or "")
            if not isinstance(msg, dict):
                raise ValueError("not an object")
        except ValueError:
            await transport.send_json(
                Error("bad_message", "text frames must be JSON objects").to_wire()
            )
            continue
        if await dispatch(conn, msg) == "end":
            await services.lifecycle.end(session.id, "USER_ENDED")
            await transport.end("USER_ENDED")
            return


async def _watch_end(subscription: Subscription, transport: WsTransport, owner: str) -> None:
    """Events of the session made elsewhere: a decision or turn over HTTP is forwarded
    to the client; the session's end (HTTP ``/end``, another worker) or a newer voice
    connection closes this one — the receive loop then finishes the connection."""
    async for message in subscription:
        kind = message.get("type")
        if kind == RELAY and isinstance(message.get("event"), dict):
            await transport.send_json(message["event"])
        elif kind == SESSION_ENDED:
            await transport.end(str(message.get("reason") or "USER_ENDED"))
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await transport.ws.close()
            return
        elif kind == ATTACHMENT_REPLACED and message.get("owner") == owner:
            await _replaced(transport)
            return


async def _replaced(transport: WsTransport) -> None:
    if transport.closed or transport.ended:
        return
    message = "a newer voice connection took over this session"
    await transport.send_json(Error(ATTACHMENT_REPLACED, message).to_wire())
    transport.ended = True  # no session_ended: the session goes on elsewhere
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await transport.ws.close(1000, "replaced")


def install(app: ParleyApp, services: Services) -> None:
    async def voice(ws: RawWebSocket) -> None:
        await voice_endpoint(ws, services, services.engine_hub, services.voice_capacity)

    app.raw_websocket("/v1/voice", voice)
