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
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import WebSocketDisconnect

from parley.brain.core import UserInput
from parley.channels.actors import refuse_operator
from parley.channels.http_errors import ApiError
from parley.channels.raw_ws import ParleyApp, RawWebSocket
from parley.channels.services import Services, token_hash
from parley.engines.base import EngineError
from parley.engines.factory import EngineHub
from parley.events import Error, SessionEnded
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
    await services.store.update_session(session.id, current_channel="voice")
    await transport.send_json(
        {
            "type": "ready",
            "session_id": session.id,
            **tokens,
            "input_sample_rate": options.input_rate,
            "output_sample_rate": options.output_rate,
            "expires_at": session.expires_at.isoformat() if session.expires_at else None,
        }
    )
    conn = VoiceConnection(
        brain=services.brain,
        session_id=session.id,
        agent=services.agents[session.agent],
        engines=engines,
        transport=transport,
        options=options,
        clock=services.clock,
    )
    await _attach(ws, conn, services, session)


async def _attach(
    ws: RawWebSocket, conn: VoiceConnection, services: Services, session: Session
) -> None:
    """Run one ready connection until the client leaves or the session ends."""
    transport = conn.transport
    assert isinstance(transport, WsTransport)
    greet, initial = await _greeting(services, session)
    ended = await services.coordinator.subscribe(f"session:{session.id}")
    watcher = asyncio.create_task(_watch_end(ended, transport))
    try:
        await conn.start(greet=greet, initial_turn=initial)
        await _receive_loop(ws, conn, services, session)
    finally:
        watcher.cancel()
        await ended.close()
        await conn.close()
        await services.store.update_session(session.id, current_channel="chat")
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
