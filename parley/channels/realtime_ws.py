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
``VoiceSession`` built on first use. A response whose modality is text runs on the
brain directly; one that speaks runs on the voice session.

The session's life goes through ``services.lifecycle``, as for ``/v1/voice``: created
for the connection, attached as channel ``realtime`` while the socket lives (a newer
attachment replaces this one: ``error`` ``attachment_replaced``, close), and ended
``USER_ENDED`` when the client closes the socket (a Realtime client cannot resume).
Events of the session made elsewhere arrive on its pub/sub channel: its end
(``parley.session_ended``, then close), time-limit warnings (``parley.warning``, and the
agent's spoken notice), approvals decided over HTTP (``parley.approval_resolved``). The
connection is in ``services.voice_registry``: a draining worker sends ``parley.go_away``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from fastapi import WebSocketDisconnect

from parley.brain.client_tools import ClientTools
from parley.brain.core import UserInput
from parley.brain.errors import TurnRejected
from parley.brain.turn_stream import TurnStream
from parley.channels.http_errors import ApiError
from parley.channels.lifecycle import (
    ATTACHMENT_REPLACED,
    RELAY,
    SESSION_ENDED,
    WARNING,
    warning_text,
)
from parley.channels.raw_ws import ParleyApp, RawWebSocket
from parley.channels.realtime_http import DEFAULT_AGENT, realtime_access
from parley.channels.realtime_voice import RealtimeVoice
from parley.channels.services import Services
from parley.events import (
    ApprovalResolved,
    AssistantMessage,
    Event,
    GoAway,
    SessionEnded,
    SessionWarning,
)
from parley.logs import bind_session
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
    TruncateItem,
)
from parley.realtime.auth import credential_from_upgrade
from parley.realtime.session_config import SessionConfig, parse_session
from parley.realtime.session_state import Phase, RealtimeSession
from parley.realtime.validate import ProtocolError, Reader
from parley.realtime.wire import FunctionCallOutputItem, MessageItem, parse_client_event
from parley.sessions.coordinator import Subscription
from parley.sessions.records import Session

log = logging.getLogger(__name__)

CHANNEL = "realtime"
MAX_FRAME_BYTES = 15 * 1024 * 1024  # as OpenAI: 15 MiB per event
NOTHING_HEARD = "no speech was recognized in the committed audio"


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
        self.ended = False  # the session ended (here or elsewhere): no reconnect
        self.rt: RealtimeSession
        self.voice_session: RealtimeVoice | None = None
        self.cuts: dict[str, str] = {}  # truncated item → the words played, to store
        self.cut_tasks: set[asyncio.Future[None]] = set()

    @property
    def voice(self) -> RealtimeVoice:
        """The connection's voice session, built on first use."""
        if self.voice_session is None:
            self.voice_session = RealtimeVoice(
                self.services,
                self.session.id,
                self.session.agent,
                self._on_voice_event,
                lambda pcm: self.carry_out(self.rt.on_audio(pcm)),
                lambda: self.carry_out(self.rt.fail("no_user_input", NOTHING_HEARD)),
            )
        return self.voice_session

    # --- output ------------------------------------------------------------------

    async def write_loop(self) -> None:
        while (event := await self.outbox.get()) is not None:
            try:
                await self.ws.send_text(json.dumps(event, ensure_ascii=False, default=str))
            except (WebSocketDisconnect, RuntimeError):
                return

    async def send_text(self, text: str) -> None:
        """The drain's ``go_away`` (``VoiceRegistry``), as ``parley.go_away``."""
        message = json.loads(text)
        if message.get("type") == GoAway.type:
            event = GoAway(str(message.get("reason")), str(message.get("resume_token")))
            self.carry_out(self.rt.on_event(event))

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
        """Audio actions go to the voice session in order. ``ClearAudio`` and
        ``DeleteItem`` need nothing more: audio already fed to the VAD and STT is not
        taken back, and the stored history keeps a deleted item's message."""
        config = self.rt.config
        if isinstance(out, FeedAudio):
            pcm = out.pcm
            self.voice.submit(lambda: self.voice.feed(config, pcm))
        elif isinstance(out, CommitAudio):
            self.voice.submit(lambda: self.voice.commit(config))
        elif isinstance(out, ConfigureSession) and self.voice_session is not None:
            self.voice.submit(lambda: self.voice.configure(out.config))
        elif isinstance(out, TruncateItem):
            if self._in_running_response(out.item_id):
                self.voice.submit(lambda: self.voice.stop_at(out.audio_end_ms))
            else:
                self.cuts[out.item_id] = out.heard_text
                self.voice.submit(self._cut_stored)

    async def _cut_stored(self) -> None:
        await self.voice.played_out()
        self._apply_cuts()

    def _apply_cuts(self) -> None:
        """Cut the stored messages of truncated items to the words played, each once
        its message is known (an interrupted turn links it when it has stored it)."""
        for item_id, heard in list(self.cuts.items()):
            message_id = self._message_id(item_id)
            if message_id is None:
                continue
            del self.cuts[item_id]
            update = self.services.store.update_message(message_id, text=heard, interrupted=True)
            task = asyncio.ensure_future(update)
            self.cut_tasks.add(task)
            task.add_done_callback(self.cut_tasks.discard)

    def _on_voice_event(self, event: Event) -> None:
        self.carry_out(self.rt.on_event(event))
        if isinstance(event, AssistantMessage) and self.cuts:
            self._apply_cuts()

    def _in_running_response(self, item_id: str) -> bool:
        response = self.rt.response
        return (
            response is not None
            and self.rt.phase is Phase.ACTIVE
            and any(entry.item_id == item_id for entry in response.output)
        )

    def _message_id(self, item_id: str) -> str | None:
        """The stored message of an item (known once its turn has stored it)."""
        entry = self.rt.conversation.get(item_id)
        return entry.message_id if entry is not None else None

    def _decide(self, decision: DecideApproval) -> None:
        """The continuation speaks when the session does: then the voice session runs it."""
        if "audio" in self.rt.config.output_modalities:
            config = self.rt.config
            call, approved = decision.tool_call_id, decision.approved
            self.voice.submit(lambda: self.voice.decide(config, call, approved))
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
        config = self.rt.config
        tools = ClientTools.from_realtime(start.tools, start.tool_choice)
        outputs = [
            (i.call_id, i.output) for i in start.input if isinstance(i, FunctionCallOutputItem)
        ]
        speaks = "audio" in start.output_modalities
        text = _user_text(start)
        if outputs:  # the client answered its tools: the model goes on
            if speaks:
                self.voice.submit(lambda: self.voice.tool_outputs(config, outputs, text, tools))
            else:
                self._start(
                    self.services.brain.tool_outputs(
                        self.session.id,
                        outputs,
                        channel=CHANNEL,
                        client_tools=tools,
                        user_text=text,
                    )
                )
        elif spoken and self.voice_session is not None:
            # committed speech: the voice session answers what it holds (or the
            # utterance whose transcript is still coming)
            self.voice.submit(lambda: self.voice.release(config, tools))
        elif not text:
            self.carry_out(
                self.rt.fail("no_user_input", "response.create needs a new user item to answer")
            )
        elif speaks:  # the voice session speaks the answer
            self.voice.submit(lambda: self.voice.respond(config, text, tools))
        else:
            user = UserInput(text, CHANNEL)
            self._start(self.services.brain.user_turn(self.session.id, user, tools))

    def _cancel(self) -> None:
        self.cancel_requested = True  # also stops a turn still taking its lock
        if self.stream is not None:
            self.stream.abandon()
        elif self.voice_session is not None:
            done = self.rt.turn_stopped
            self.voice.submit(lambda: self.voice.interrupt(lambda: self.carry_out(done())))
        elif self.turn is None or self.turn.done():
            self.carry_out(self.rt.turn_stopped())  # nothing runs: stopped already

    # --- turns ---------------------------------------------------------------------

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

    async def watch(self, events: Subscription, owner: str) -> None:
        """Events of the session made elsewhere (see the module docstring)."""
        async for message in events:
            kind = message.get("type")
            if kind == SESSION_ENDED:
                self.ended = True
                reason = str(message.get("reason") or "USER_ENDED")
                ended = SessionEnded(reason, str(message.get("detail") or ""))  # type: ignore[arg-type]
                self.carry_out(self.rt.on_event(ended))
                self.outbox.put_nowait(None)
                return
            if kind == WARNING:
                seconds = message.get("seconds_left")
                left = float(seconds) if isinstance(seconds, int | float) else 0.0
                warning = SessionWarning(str(message.get("reason") or "time_limit"), left)
                self.carry_out(self.rt.on_event(warning))
                spoken = warning_text(self.services.agents[self.session.agent], seconds)
                if spoken and self.voice_session is not None:
                    self.voice_session.notice(spoken)
            elif kind == RELAY and isinstance(message.get("event"), dict):
                self._relayed(message["event"])
            elif kind == ATTACHMENT_REPLACED and message.get("owner") == owner:
                self.replaced()
                return

    def _relayed(self, event: dict[str, Any]) -> None:
        """A turn event made on another channel: an approval decided over HTTP."""
        if event.get("type") != ApprovalResolved.type:
            return
        call = str(event.get("tool_call_id"))
        if self.voice_session is not None:
            self.voice_session.decided_elsewhere(call)
        approved = event.get("status") == "approved"
        by = str(event.get("decided_by"))
        resolved = ApprovalResolved(call, "approved" if approved else "denied", by)
        self.carry_out(self.rt.on_event(resolved))

    def replaced(self) -> None:
        """A newer connection took the session over: say so and close this one."""
        if self.ended:
            return
        self.ended = True  # the session goes on elsewhere
        err = ProtocolError(ATTACHMENT_REPLACED, "a newer connection took over this session")
        self.carry_out(self.rt.reject(err))
        self.outbox.put_nowait(None)

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


def _user_text(start: StartResponse) -> str:
    """The new user text a response answers (typed, or a transcript)."""
    texts = [i.text for i in start.input if isinstance(i, MessageItem) and i.role == "user"]
    return " ".join(t for t in texts if t)


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
    try:
        new = await services.lifecycle.create(agent, client=ws.client_host, channel=CHANNEL)
    except ApiError as exc:
        await _refuse(ws, credential.subprotocol, exc.code, exc.message)
        return
    await ws.accept(credential.subprotocol)
    bind_session(new.session.id)
    await _serve(ws, services, new.session, _initial_config(agent, grant), new.resume_token)


async def _serve(
    ws: RawWebSocket, services: Services, session: Session, config: SessionConfig, resume: str
) -> None:
    lifecycle = services.lifecycle
    conn = RealtimeConnection(ws, services, session)
    expires = int(session.expires_at.timestamp()) if session.expires_at else None
    conn.rt = RealtimeSession(session.id, config, expires_at=expires, voiced=True)
    events = await lifecycle.subscribe(session.id)
    try:
        attachment = await lifecycle.attach(session.id, CHANNEL, on_replaced=conn.replaced)
    except BaseException:
        await events.close()
        raise
    writer = asyncio.create_task(conn.write_loop())
    watcher = asyncio.create_task(conn.watch(events, attachment.owner))
    live = services.voice_registry.add(session.id, resume, conn)
    conn.carry_out(conn.rt.start())
    try:
        receiver = asyncio.create_task(conn.receive_loop())
        await asyncio.wait([receiver, writer], return_when=asyncio.FIRST_COMPLETED)
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await receiver
    finally:
        services.voice_registry.remove(live)
        watcher.cancel()
        await events.close()
        if conn.voice_session is not None:
            await conn.voice_session.close()
        if conn.cut_tasks:
            await asyncio.gather(*conn.cut_tasks, return_exceptions=True)
        if conn.turn is not None and not conn.turn.done():
            if conn.stream is not None:
                conn.stream.abandon()
            conn.turn.cancel()
        conn.outbox.put_nowait(None)
        await writer
        await lifecycle.detach(attachment)
        if not conn.ended:  # the client closed the socket: a Realtime session ends with it
            await lifecycle.end(session.id, "USER_ENDED", "the Realtime socket closed")
        if ws.open:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await ws.close()


def install(app: ParleyApp, services: Services) -> None:
    """Mount ``/v1/realtime`` (after ``realtime_http.install``, which it relies on)."""

    async def realtime(ws: RawWebSocket) -> None:
        await realtime_endpoint(ws, services)

    app.raw_websocket("/v1/realtime", realtime)
