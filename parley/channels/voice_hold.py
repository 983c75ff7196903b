"""A voice caller (browser or phone) during a transfer: on hold, bridged, given back.

``Held`` follows the board's ``transfer`` events for the connection's session: while
the transfer is live the connection's frames go to a ``CallerLeg`` (its audio never
reaches the AI; a soft tone plays while nobody is bridged; a ``CallerRelay`` lets a
human leg on another worker reach it), ``joined`` mutes the AI
(it stops speaking and its events stay off the socket), and a final status hands the
conversation back: the AI says so (``failed``, ``ended``). ``on_hold_frame`` is the
receive loop's answer to one frame while held.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Protocol

from parley.channels import browser_wire as wire
from parley.channels.bridge_relay import CallerRelay
from parley.channels.services import Services
from parley.channels.transfer_desk import CallerLeg, back_text, status_of
from parley.handoff.bridge import LegFormat
from parley.handoff.state import FINAL, Status
from parley.voice.session import VoiceSession

if TYPE_CHECKING:
    from parley.channels.voice_ws import Replies

log = logging.getLogger(__name__)


class HeldTransport(Protocol):
    """What ``Held`` needs of the caller's socket (``voice_ws.WsTransport``)."""

    muted: bool
    audio_sent: int

    async def send_bridged(self, pcm: bytes) -> None: ...


class Held:
    def __init__(
        self,
        services: Services,
        session_id: str,
        transport: HeldTransport,
        conn: VoiceSession,
        *,
        caller_out: LegFormat | None = None,
    ) -> None:
        """The caller's leg sends PCM16 at the connection's input rate and takes
        ``caller_out`` (default PCM16 at its output rate; a phone takes μ-law). The
        channel (stored with what the AI says) is the connection's own."""
        self.services = services
        self.session_id = session_id
        self.transport = transport
        self.conn = conn
        self.caller_in = LegFormat("pcm16", conn.options.input_rate)
        self.caller_out = caller_out or LegFormat("pcm16", conn.options.output_rate)
        self.channel = conn.options.channel
        self.tone: asyncio.Task[None] | None = None
        self._last_sent = -1

    def _ai_idle(self) -> bool:
        sent = self.transport.audio_sent
        idle = sent == self._last_sent
        self._last_sent = sent
        return idle

    async def step(self, message: dict[str, Any]) -> None:
        """One ``transfer`` event of this session, from the board."""
        status = status_of(message)
        desk = self.services.transfers
        if status is None:
            return
        if status in FINAL:
            self._stop_tone()
            leg = desk.legs.pop(self.session_id, None)
            if leg is not None:
                await desk.drop_relay(leg.transfer_id)
            self.transport.muted = False
            text = back_text(status.value)
            if text is not None:
                await self.services.store.add_message(
                    self.session_id,
                    "assistant",
                    text,
                    blocks=[{"type": "text", "text": text}],
                    channel=self.channel,
                )
                self.conn.notice(text)
            return
        if self.session_id not in desk.legs:
            desk.legs[self.session_id] = leg = CallerLeg(
                desk,
                str(message.get("transfer_id")),
                self.session_id,
                self.caller_in,
                self.caller_out,
                self.transport.send_bridged,
            )
            leg.on_joined = self._joined
            self.tone = asyncio.create_task(leg.hold_loop(self.services.clock, self._ai_idle))
            # a human leg on another worker reaches this caller through pub/sub
            try:
                relay = await CallerRelay.start(desk.board.coordinator, leg)
            except Exception as exc:  # only a human leg on this worker can join then
                log.warning("transfer %s: no cross-worker relay (%s)", leg.transfer_id, exc)
            else:
                desk.relays[leg.transfer_id] = relay
        if status is Status.JOINED:
            self._stop_tone()
            self.transport.muted = True
            await self.conn.interrupt(notify=False)

    def _joined(self) -> None:
        """Audio flows both ways: from now on nothing of the AI reaches the caller."""
        self._stop_tone()
        self.transport.muted = True

    def _stop_tone(self) -> None:
        if self.tone is not None:
            self.tone.cancel()
            self.tone = None

    async def caller_left(self) -> None:
        """The caller's socket closed: a live transfer is cancelled (or ended)."""
        self._stop_tone()
        with contextlib.suppress(Exception):
            await self.services.transfers.caller_left(self.session_id)


async def on_hold_frame(
    services: Services, leg: CallerLeg, data: bytes | None, text: str | None, replies: Replies
) -> bool:
    """One frame of a held caller; True when the caller ended the session."""
    if data is not None:
        await leg.from_caller(data)
        return False
    try:
        msg = wire.parse_control(text or "")
    except wire.BadMessage as exc:
        await replies.emit(exc.to_event())
        return False
    match msg:
        case wire.Text(typed):
            await services.transfers.caller_text(leg.session_id, leg.transfer_id, typed, "voice")
        case wire.Ping():
            await replies.send_text(wire.PONG)
        case wire.End():
            return True
    return False
