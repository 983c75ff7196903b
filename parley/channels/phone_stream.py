"""The phone media-stream sockets: ``/v1/telephony/twilio/stream`` and
``/v1/telephony/telnyx/stream`` (PROTOCOL.md "Telephony").

One thin loop per socket on a carrier codec and the sans-I/O ``PhoneCall``: every
text message goes to ``PhoneCall.receive`` and the loop carries out the actions.

1. Until ``start``: ``connected`` is accepted; anything else is a protocol error
   (logged, counted in ``parley_bad_messages{channel="phone"}``, ignored).
2. ``start``: the stream token is checked (``PhoneGate.authorize``; refused → close
   1008, nothing created). A token naming a ``transfer_id`` is the person a warm
   transfer dialled: the stream goes to ``phone_human`` (no AI session). Inbound
   calls create a session of the token's agent with the caller as ``{caller}``;
   outbound calls attach the session named by ``session_id``. The session's channel
   is ``phone`` while the call lasts.
3. The call: caller audio → ``VoiceSession.feed_audio`` (phone-grade STT for the
   embedded recogniser); the agent's speech goes out through ``CarrierOutput``
   (μ-law media, marks, ``clear`` on barge-in); marks echoed → what was heard; DTMF →
   a pending approval (1 = approve, 2 = deny) or a user turn (``dtmf_text``). While
   a transfer holds the caller (``voice_hold.Held``), their audio goes to its
   ``CallerLeg`` instead (hold tone, then the person, μ-law both ways), keys are
   ignored, and after ``joined`` the agent's output is muted (a ``clear`` drops
   what the carrier still had queued).
4. The end, one path: ``stop`` → ``USER_ENDED``; the socket closed without ``stop`` →
   ``DISCONNECTED`` at once (a carrier never reopens a media stream, so there is no
   resume grace); the session ended elsewhere (HTTP ``/end``, time limit, a status
   callback) → the socket is closed, which ends the call.

Bad input never ends the call and never touches stored turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import Any
from urllib.parse import parse_qsl

from fastapi import WebSocketDisconnect

from parley.brain.core import UserInput
from parley.channels.http_errors import ApiError
from parley.channels.lifecycle import (
    ATTACHMENT_REPLACED,
    RELAY,
    SESSION_ENDED,
    WARNING,
    warning_text,
)
from parley.channels.live_decision import DECISION, settle_here
from parley.channels.phone_human import serve_phone_human
from parley.channels.phone_output import CarrierOutput
from parley.channels.phone_status import STATUS_TTL_S, call_session_key
from parley.channels.raw_ws import ParleyApp, RawWebSocket
from parley.channels.s2s_voice import voice_session_for
from parley.channels.services import Services
from parley.channels.telephony_http import StreamRefused
from parley.channels.voice_hold import Held
from parley.channels.voice_ws import _greeting
from parley.engines.base import EngineError, EngineSet
from parley.events import Error, Event
from parley.handoff.bridge import LegFormat
from parley.logs import bind_session
from parley.sessions.coordinator import Subscription
from parley.sessions.records import Session
from parley.telephony.call import (
    Action,
    CallBegan,
    CallEnded,
    CallerAudio,
    CallerPressed,
    Heard,
    PhoneCall,
    approval_answer,
    dtmf_text,
)
from parley.telephony.telnyx_wire import TelnyxCodec
from parley.telephony.twilio_wire import TwilioCodec
from parley.telephony.wire import CarrierCodec, ProtocolError, StreamStarted
from parley.voice.io import VoiceOptions
from parley.voice.session import VoiceSession

log = logging.getLogger(__name__)

TWILIO_STREAM_PATH = "/v1/telephony/twilio/stream"
TELNYX_STREAM_PATH = "/v1/telephony/telnyx/stream"
CHANNEL = "phone"
START_TIMEOUT_S = 15.0
END_ON = {"stop": "USER_ENDED", "hang_up": "USER_ENDED", "disconnected": "DISCONNECTED"}


def phone_options() -> VoiceOptions:
    """Caller audio reaches the session at 16 kHz (``PhoneCall`` resamples 8 → 16 kHz);
    the agent speaks at 8 kHz, the line's rate, so nothing is resampled twice."""
    return VoiceOptions(input_rate=16000, output_rate=8000, channel=CHANNEL, transcripts=False)


class PhoneEvents:
    """The session's event sink on a phone: no text goes to a carrier. Barge-in
    reaches the carrier through ``CarrierOutput.clear``; errors are logged."""

    async def emit(self, event: Event) -> None:
        if isinstance(event, Error):
            log.info("phone session error %s: %s", event.code, event.message)


class _NoGoAway:
    """A carrier has no ``go_away``: the drain waits for the call, then ends it."""

    async def send_text(self, text: str) -> None:
        return None


class Refused(Exception):
    """The stream may not start a call (bad token, no such session, no capacity)."""


class PhoneStream:
    """One media-stream socket, from ``connected`` to the end (module docstring)."""

    def __init__(self, ws: RawWebSocket, services: Services, codec: CarrierCodec) -> None:
        self.ws = ws
        self.services = services
        self.codec = codec
        self.call = PhoneCall(codec, input_rate=phone_options().input_rate)
        self.query = dict(parse_qsl(ws.scope.get("query_string", b"").decode("latin-1")))
        self.end_reason: str | None = None  # set when this socket decides the end
        self.closed_by_us = False
        self._tasks: set[asyncio.Future[None]] = set()
        self._muted = False  # a transfer is joined: the agent's output is dropped
        self.audio_sent = 0  # messages of the agent's output (the hold tone waits for quiet)

    # --- the agent's output and the bridge (``voice_hold.HeldTransport``) ---------------------

    @property
    def muted(self) -> bool:
        return self._muted

    @muted.setter
    def muted(self, value: bool) -> None:
        if value and not self._muted and self.call.stream_id:
            task = asyncio.ensure_future(self.send_text(self.codec.clear(self.call.stream_id)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._muted = value

    async def send_agent(self, text: str) -> None:
        """The agent's media, marks and clears: nothing once a person is bridged."""
        self.audio_sent += 1
        if not self._muted:
            await self.send_text(text)

    async def send_bridged(self, ulaw: bytes) -> None:
        """Bridged (or hold) audio, μ-law 8 kHz, as the call's 20 ms media messages."""
        frame = self.call.frame_bytes
        for i in range(0, len(ulaw), frame):
            await self.send_text(self.codec.media(self.call.stream_id, ulaw[i : i + frame]))

    # --- receiving, sending and bad input ---------------------------------------------------

    def actions(self, message: dict[str, Any]) -> list[Action]:
        """What one received socket message (text or bytes) means for the call."""
        return self.call.receive(_payload(message))

    async def send_text(self, text: str) -> None:
        if self.ws.open:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await self.ws.send_text(text)

    def bad(self, error: ProtocolError) -> None:
        self.services.metrics.bad_messages.labels(CHANNEL).inc()
        log.warning("%s stream: %s: %s", self.codec.name, error.code, error.message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed_by_us = True
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await self.ws.close(code, reason)

    # --- 1. until start ----------------------------------------------------------------------

    async def wait_for_start(self) -> StreamStarted | None:
        """The ``start`` message; None if the stream stopped or the socket closed first."""
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return None
            for action in self.actions(message):
                if isinstance(action, ProtocolError):
                    self.bad(action)
                elif isinstance(action, CallBegan):
                    return action.started
                elif isinstance(action, CallEnded):
                    return None

    # --- 2. the session ---------------------------------------------------------------------

    async def authorize(self, started: StreamStarted) -> dict[str, str]:
        """The parameters the stream's one-time token vouches for (or ``Refused``)."""
        gate = self.services.phone_gate
        if gate is None:
            raise Refused("telephony is not mounted")
        try:
            claims = await gate.authorize(
                started, query=self.query, bind_call=isinstance(self.codec, TwilioCodec)
            )
        except StreamRefused as exc:
            raise Refused(f"stream token refused: {exc}") from None
        return dict(claims.claims)

    async def open_session(self, started: StreamStarted, params: dict[str, str]) -> Session:
        """Create (inbound) or look up (outbound) the session of an authorized stream."""
        services = self.services
        if params.get("session_id"):
            session = await services.store.get_session(params["session_id"])
            if session is None or session.status != "active":
                raise Refused(f"session {params['session_id']} is not active")
        else:
            caller = params.get("caller", "")
            phone = {
                "direction": "inbound",
                "carrier": self.codec.name,
                "call_id": started.call_id,
                "from": caller,
                "to": params.get("called", ""),
            }
            try:
                new = await services.lifecycle.create(
                    params.get("agent") or "demo",
                    client=f"phone:{caller or started.call_id}",
                    template_vars={"caller": caller},
                    metadata={"phone": phone},
                    channel=CHANNEL,
                )
            except ApiError as exc:
                raise Refused(f"{exc.code}: {exc.message}") from None
            session = new.session
        await services.coordinator.set(call_session_key(started.call_id), session.id, STATUS_TTL_S)
        return session

    async def engines(self, agent: str) -> EngineSet:
        """The agent's engines with the phone-grade recogniser (8 kHz speech)."""
        hub = self.services.engine_hub
        engines = await hub.engines_for(agent)
        return dataclasses.replace(engines, stt=await hub.phone_stt(agent))

    # --- 3. the call --------------------------------------------------------------------------

    async def serve(self, session: Session, engines: EngineSet) -> None:
        services = self.services
        bind_session(session.id)
        options = phone_options()
        output = CarrierOutput(self.call, options, services.clock, self.send_agent)
        conn = voice_session_for(
            services,
            session_id=session.id,
            agent_name=session.agent,
            engines=engines,
            events=PhoneEvents(),
            audio=output,
            options=options,
        )
        lifecycle = services.lifecycle
        greet, initial = await _greeting(services, session)
        events = await lifecycle.subscribe(session.id)
        watcher: asyncio.Task[None] | None = None

        def replaced() -> None:
            if watcher is not None and not watcher.done():
                watcher.cancel()
            task = asyncio.ensure_future(self.close(1000, "replaced"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        try:
            attachment = await lifecycle.attach(session.id, CHANNEL, on_replaced=replaced)
        except BaseException:
            await events.close()
            raise
        held = Held(
            services,
            session.id,
            self,
            conn,
            caller_out=LegFormat("ulaw", 8000),
        )
        watcher = asyncio.create_task(self.watch(events, attachment.owner, conn, held))
        live = services.voice_registry.add(session.id, "", _NoGoAway())
        try:
            await conn.start(greet=greet, initial_turn=initial)
            await self.receive_loop(conn, output, session.id)
        finally:
            services.voice_registry.remove(live)
            watcher.cancel()
            await held.caller_left()
            await events.close()
            await conn.close()
            await lifecycle.detach(attachment)
            if self.end_reason is not None:
                await lifecycle.end(session.id, self.end_reason, f"phone call: {self.codec.name}")
            await self.close()

    async def receive_loop(
        self, conn: VoiceSession, output: CarrierOutput, session_id: str
    ) -> None:
        legs = self.services.transfers.legs
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                if not self.closed_by_us:  # the carrier went away without a stop
                    self.call.hang_up("disconnected")
                    self.end_reason = END_ON["disconnected"]
                return
            for action in self.actions(message):
                leg = legs.get(session_id)
                if isinstance(action, CallerAudio):
                    if leg is not None:  # on hold or bridged: never the AI
                        await leg.from_caller(action.pcm)
                    elif action.pcm:
                        await conn.feed_audio(action.pcm)
                elif isinstance(action, Heard):
                    output.heard(action)
                elif isinstance(action, CallerPressed):
                    if leg is None:
                        await press(conn, action.digit)
                elif isinstance(action, ProtocolError):
                    self.bad(action)
                elif isinstance(action, CallEnded):
                    self.end_reason = END_ON.get(action.reason, "USER_ENDED")
                    return

    async def watch(
        self, subscription: Subscription, owner: str, conn: VoiceSession, held: Held
    ) -> None:
        """The session's events made elsewhere: a decision over HTTP (relayed, or a
        ``decision`` a realtime session settles itself), a warning (said at the next
        pause), a transfer's steps, the end or a newer attachment (the socket is closed)."""
        async for message in subscription:
            kind = message.get("type")
            if kind == "transfer":
                await held.step(message)
            elif kind == RELAY and isinstance(message.get("event"), dict):
                event = message["event"]
                if event.get("type") == "approval_resolved":
                    conn.decided_elsewhere(str(event.get("tool_call_id")))
            elif kind == DECISION:
                settle_here(self.services, conn.session_id, conn, message)
            elif kind == WARNING:
                spoken = warning_text(conn.agent, message.get("seconds_left"))
                if spoken:
                    conn.notice(spoken)
            elif kind == SESSION_ENDED or (
                kind == ATTACHMENT_REPLACED and message.get("owner") == owner
            ):
                await self.close(1000, str(message.get("reason") or kind))
                return


async def press(conn: VoiceSession, digit: str) -> None:
    """A DTMF key: 1 / 2 answer a pending approval; otherwise it is user input."""
    pending = conn.responder.pending_approval or await conn.turns.pending_approval()
    decision = approval_answer(digit) if pending is not None else None
    if pending is not None and decision is not None:
        conn.responder.answered()
        conn.decide(pending, decision, "dtmf")
        return
    conn.user_turn(UserInput(dtmf_text(digit), CHANNEL))


def _payload(message: dict[str, Any]) -> str | bytes:
    text = message.get("text")
    if text is not None:
        return str(text)
    data = message.get("bytes")
    return bytes(data) if data is not None else b""


async def stream_endpoint(ws: RawWebSocket, services: Services, codec: CarrierCodec) -> None:
    await ws.accept()
    stream = PhoneStream(ws, services, codec)
    capacity = services.voice_capacity
    if capacity.full:
        log.warning("%s stream refused: this worker is at capacity", codec.name)
        await stream.close(1013, "try again later")
        return
    capacity.open += 1
    try:
        try:
            started = await asyncio.wait_for(stream.wait_for_start(), START_TIMEOUT_S)
            if started is None:
                return
            params = await stream.authorize(started)
            if not params.get("transfer_id"):
                session = await stream.open_session(started, params)
                engines = await stream.engines(session.agent)
        except (Refused, TimeoutError, EngineError) as exc:
            log.warning("%s stream refused: %s", codec.name, exc or "no start message")
            await stream.close(1008, "refused")
            return
        except WebSocketDisconnect:
            return
        if params.get("transfer_id"):  # the person a transfer dialled: no AI session
            log.info(
                "%s call %s for transfer %s", codec.name, started.call_id, params["transfer_id"]
            )
            await serve_phone_human(stream, params["transfer_id"])
            return
        log.info("%s call %s on session %s", codec.name, started.call_id, session.id)
        await stream.serve(session, engines)
    finally:
        capacity.open -= 1


def install(app: ParleyApp, services: Services) -> None:
    """Mount both carriers' stream sockets (called by ``telephony_http.install``)."""

    async def twilio(ws: RawWebSocket) -> None:
        await stream_endpoint(ws, services, TwilioCodec())

    async def telnyx(ws: RawWebSocket) -> None:
        await stream_endpoint(ws, services, TelnyxCodec())

    app.raw_websocket(TWILIO_STREAM_PATH, twilio)
    app.raw_websocket(TELNYX_STREAM_PATH, telnyx)
