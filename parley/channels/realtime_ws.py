"""``GET /v1/realtime`` (WebSocket): the OpenAI-Realtime-compatible socket.

This loop runs one ``parley.realtime.session_state.RealtimeSession`` over a raw
WebSocket: it authorizes the upgrade (``parley.realtime.access``), creates a Parley
session for the agent named by ``?model=`` (or by the client secret), sends
``session.created``, then parses each text frame (``parley.realtime.wire``), feeds the
state machine, and carries out its actions. ``StartResponse`` runs
``brain.user_turn(...)`` on the new user text; ``DecideApproval`` runs ``brain.decide``;
``CancelResponse`` abandons the running turn. Turn events go back through the state
machine; every server event leaves through one writer queue, so the order the state
machine chose is the order on the wire.

Audio (input audio, server VAD, spoken responses) goes through ``realtime_voice``: a
voice connection built on first use. A response whose modality is text runs on the
brain directly; one that speaks runs on the voice connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from typing import Any
from urllib.parse import parse_qs

from fastapi import WebSocketDisconnect

from parley.brain.core import UserInput
from parley.brain.errors import TurnRejected
from parley.brain.turn_stream import TurnStream
from parley.channels.raw_ws import ParleyApp, RawWebSocket
from parley.channels.realtime_http import DEFAULT_AGENT, realtime_access
from parley.channels.realtime_voice import RealtimeVoice
from parley.channels.services import Services, token_hash
from parley.events import SessionEnded
from parley.realtime.access import AccessDenied, RealtimeGrant
from parley.realtime.actions import (
    CancelResponse,
    CommitAudio,
    ConfigureSession,
    DecideApproval,
    FeedAudio,
    Output,
    Send,
    StartResponse,
)
from parley.realtime.auth import credential_from_upgrade
from parley.realtime.session_config import SessionConfig, parse_session
from parley.realtime.session_state import RealtimeSession
from parley.realtime.validate import ProtocolError, Reader
from parley.realtime.wire import FunctionCallOutputItem, MessageItem, parse_client_event
from parley.sessions.records import Session

log = logging.getLogger(__name__)

CHANNEL = "realtime"
MAX_FRAME_BYTES = 15 * 1024 * 1024  # as OpenAI: 15 MiB per event


class RealtimeConnection:
    """One socket: the state machine, the writer queue and the running turn."""

    def __init__(self, ws: RawWebSocket, services: Services, session: Session) -> None:
        self.ws = ws
        self.services = services
        self.session = session
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.turn: asyncio.Task[None] | None = None
        self.stream: TurnStream | None = None
        self.cancel_requested = False
        self.rt: RealtimeSession
        self.voice_session: RealtimeVoice | None = None

    @property
    def voice(self) -> RealtimeVoice:
        """The connection's voice session, built on first use."""
        if self.voice_session is None:
            self.voice_session = RealtimeVoice(
                self.services,
                self.session.id,
                self.session.agent,
                lambda event: self.carry_out(self.rt.on_event(event)),
                lambda pcm: self.carry_out(self.rt.on_audio(pcm)),
            )
        return self.voice_session

    # --- output ------------------------------------------------------------------

    async def write_loop(self) -> None:
        while (event := await self.outbox.get()) is not None:
            try:
                await self.ws.send_text(json.dumps(event, ensure_ascii=False, default=str))
            except (WebSocketDisconnect, RuntimeError):
                return

    def carry_out(self, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, Send):
                self.outbox.put_nowait(out.event)
            elif isinstance(out, StartResponse):
                self._start_response(out)
            elif isinstance(out, DecideApproval):
                self._decide(out)
            elif isinstance(out, CancelResponse):
                self._cancel()
            else:
                self._voice_action(out)

    def _voice_action(self, out: Output) -> None:
        """Audio actions go to the voice session in order; ``ClearAudio``,
        ``TruncateItem`` and ``DeleteItem`` need nothing more today (the voice loop
        stores what its own playout clock says was heard)."""
        config = self.rt.config
        if isinstance(out, FeedAudio):
            pcm = out.pcm
            self.voice.submit(lambda: self.voice.feed(config, pcm))
        elif isinstance(out, CommitAudio):
            self.voice.submit(lambda: self.voice.commit(config))
        elif isinstance(out, ConfigureSession) and self.voice_session is not None:
            self.voice.submit(lambda: self.voice.configure(out.config))

    def _decide(self, decision: DecideApproval) -> None:
        """The continuation speaks when the session does: then the voice session runs it."""
        if "audio" in self.rt.config.output_modalities:
            config = self.rt.config

            async def decide() -> None:
                conn = await self.voice.configure(config)
                conn.decide(decision.tool_call_id, decision.approved, "user")

            self.voice.submit(decide)
            return
        stream = self.services.brain.decide(
            self.session.id,
            decision.tool_call_id,
            decision.approved,
            reason=decision.reason,
            channel=CHANNEL,
        )
        self._start(stream)

    def _start_response(self, start: StartResponse) -> None:
        spoken = any(
            isinstance(i, MessageItem) and any(p.type == "input_audio" for p in i.content)
            for i in start.input
        )
        if spoken and self.voice_session is not None:
            return  # the voice session answers committed speech itself, in this response
        text = self._user_text(start)
        if isinstance(text, tuple):
            self.carry_out(self.rt.fail(*text))
        elif "audio" in start.output_modalities:  # the voice session speaks the answer
            config = self.rt.config
            self.voice.submit(lambda: self.voice.respond(config, text))
        else:
            self._start(self.services.brain.user_turn(self.session.id, UserInput(text, CHANNEL)))

    def _cancel(self) -> None:
        self.cancel_requested = True  # also stops a turn still taking its lock
        if self.stream is not None:
            self.stream.abandon()
        elif self.voice_session is not None:
            done = self.rt.turn_stopped
            self.voice.submit(lambda: self.voice.interrupt(lambda: self.carry_out(done())))

    # --- turns ---------------------------------------------------------------------

    @staticmethod
    def _user_text(start: StartResponse) -> str | tuple[str, str]:
        """The new user text to answer, or why the response cannot run (code, message)."""
        if any(isinstance(i, FunctionCallOutputItem) for i in start.input):
            return ("unsupported", "function_call_output is not wired to the brain yet")
        texts = [i.text for i in start.input if isinstance(i, MessageItem) and i.role == "user"]
        text = " ".join(t for t in texts if t)
        if not text:
            return ("no_user_input", "response.create needs a new user item to answer")
        return text

    def _start(self, turn: TurnStream) -> None:
        self.cancel_requested = False
        self.turn = asyncio.create_task(self._run(turn))

    async def _run(self, turn: TurnStream) -> None:
        """A turn on the brain directly (text responses, unspoken approvals)."""
        self.stream = turn
        try:
            try:
                await turn.start()
            except TurnRejected as exc:
                self.carry_out(self.rt.fail(exc.code, exc.message))
                return
            except Exception:  # the store or coordinator failed: the response fails
                log.exception("realtime turn of %s could not start", self.session.id)
                self.carry_out(self.rt.fail("internal_error", "the turn could not start"))
                return
            if self.cancel_requested:
                turn.abandon()
            async for event in turn:
                self.carry_out(self.rt.on_event(event))
        finally:
            self.stream = None
            self.carry_out(self.rt.turn_stopped())

    async def watch_end(self) -> None:
        """The session ended elsewhere (HTTP ``/end``, the operator, another worker):
        ``parley.session_ended``, then close; the receive loop then finishes."""
        subscription = await self.services.coordinator.subscribe(f"session:{self.session.id}")
        try:
            async for message in subscription:
                if message.get("type") == "session_ended":
                    reason = str(message.get("reason") or "USER_ENDED")
                    ended = SessionEnded(reason)  # type: ignore[arg-type]
                    self.carry_out(self.rt.on_event(ended))
                    self.outbox.put_nowait(None)
                    return
        finally:
            await subscription.close()

    # --- input -----------------------------------------------------------------------

    async def receive_loop(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                err = ProtocolError(
                    "invalid_type", "Realtime events are JSON text frames, not binary."
                )
                self.carry_out(self.rt.reject(err))
                continue
            if len(text) > MAX_FRAME_BYTES:
                await self.ws.close(1009, "event too large")
                return
            try:
                event = parse_client_event(text)
            except ProtocolError as err:
                self.carry_out(self.rt.reject(err))
                continue
            self.carry_out(self.rt.receive(event))


async def _create_session(services: Services, agent_name: str) -> Session:
    agent = services.agents[agent_name]
    return await services.store.create_session(
        agent=agent.name,
        token_hash=token_hash(secrets.token_urlsafe(32)),
        resume_token=token_hash(secrets.token_urlsafe(32)),
        template_vars={},
        metadata={"channel": CHANNEL},
        expires_at=services.expires_at(agent),
        channel=CHANNEL,
    )


def _initial_config(agent: str, grant: RealtimeGrant) -> SessionConfig:
    config = SessionConfig(model=agent)
    if grant.secret is not None and grant.secret.session:
        config = config.apply(parse_session(Reader(grant.secret.session, "session")))
    return config


async def _refuse(ws: RawWebSocket, subprotocol: str | None, code: str, message: str) -> None:
    """Accept only to say why, then close (1008): clients show the message."""
    await ws.accept(subprotocol)
    event = {
        "type": "error",
        "event_id": "event_refused",
        "error": {
            "type": "invalid_request_error",
            "code": code,
            "message": message,
            "param": None,
            "event_id": None,
        },
    }
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await ws.send_text(json.dumps(event))
        await ws.close(1008, code)


async def realtime_endpoint(ws: RawWebSocket, services: Services) -> None:
    scope = ws.scope
    credential = credential_from_upgrade(scope.get("headers", []), scope.get("subprotocols", []))
    try:
        grant = await realtime_access(services).authorize(credential)
    except AccessDenied:
        await ws.deny()
        return
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    agent = grant.secret.agent if grant.secret else (query.get("model") or [DEFAULT_AGENT])[0]
    if agent not in services.agents:
        names = ", ".join(sorted(services.agents))
        await _refuse(ws, credential.subprotocol, "agent_not_found", f"no agent {agent!r}: {names}")
        return
    if services.session_limiter.check(ws.client_host) is not None:
        await _refuse(ws, credential.subprotocol, "rate_limited", "too many sessions; try later")
        return
    session = await _create_session(services, agent)
    await ws.accept(credential.subprotocol)
    conn = RealtimeConnection(ws, services, session)
    expires = int(session.expires_at.timestamp()) if session.expires_at else None
    config = _initial_config(agent, grant)
    conn.rt = RealtimeSession(session.id, config, expires_at=expires, voiced=True)
    writer = asyncio.create_task(conn.write_loop())
    watcher = asyncio.create_task(conn.watch_end())
    conn.carry_out(conn.rt.start())
    try:
        receiver = asyncio.create_task(conn.receive_loop())
        await asyncio.wait([receiver, writer], return_when=asyncio.FIRST_COMPLETED)
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await receiver
    finally:
        watcher.cancel()
        if conn.voice_session is not None:
            await conn.voice_session.close()
        if conn.turn is not None and not conn.turn.done():
            if conn.stream is not None:
                conn.stream.abandon()
            conn.turn.cancel()
        conn.outbox.put_nowait(None)
        await writer
        await services.store.update_session(session.id, current_channel="chat")
        if ws.open:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await ws.close()


def install(app: ParleyApp, services: Services) -> None:
    """Mount ``/v1/realtime`` (after ``realtime_http.install``, which it relies on)."""

    async def realtime(ws: RawWebSocket) -> None:
        await realtime_endpoint(ws, services)

    app.raw_websocket("/v1/realtime", realtime)
