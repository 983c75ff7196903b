"""This worker's side of warm transfers (issue 11): open, hold, bridge, give back.

- ``open``: a tool asked for a person (``Brain.on_transfer``): the transfer goes on
  the shared ``TransferBoard`` with its target — the agent's ``transfer_to`` number,
  else ``PARLEY_TRANSFER_TO``, else ``console`` — the briefing is written and kept
  next to it, and it is offered (``dial``): the console shows it, or ``dialer``
  (``phone_dialer.PhoneDialer``) places the outbound call.
- ``CallerLeg``: a voice caller (browser or phone) while a transfer holds it. Its
  audio no longer reaches the AI (``voice_ws`` / ``phone_stream`` route it here); it
  hears a soft tone until a human joins, then the human through a ``Bridge``.
  ``joined`` is applied only once audio has flowed both ways. While bridged, each
  direction's speech is transcribed (``bridge_speech``) and stored (``user`` /
  ``human_agent``).
- Text both ways: what the caller types goes to the human (``caller_message`` on the
  session channel), what the human types reaches the caller as ``human_message``;
  both are stored (roles ``user`` / ``human_agent``).
- ``finished``: a transfer that became final here: an outbound call still up is
  cancelled or hung up (REST), and ``give_back`` hands the conversation back to the
  AI, which says so (spoken on a voice leg, an ``assistant_message`` in chat).
- ``run``: the board's timeouts, swept on a timer.

- Across workers: a voice caller's worker also listens for a human leg elsewhere
  (``bridge_relay.CallerRelay``, kept in ``relays``); the audio of each direction then
  goes through the coordinator's pub/sub, and the bridge, its converters and both
  recognisers stay here. Text (chat callers, ``text`` frames) goes through pub/sub
  anyway.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from parley.audio.g711 import encode_ulaw
from parley.brain.core import Brain
from parley.channels.bridge_speech import BridgeTranscriber
from parley.channels.lifecycle import RELAY, SessionLifecycle, session_channel
from parley.clock import Clock
from parley.engines.base import STT
from parley.events import AssistantMessage, HumanMessage
from parley.handoff.board import TransferBoard
from parley.handoff.bridge import Bridge, LegFormat
from parley.handoff.briefing import write_briefing
from parley.handoff.state import IllegalTransition, Status, Transfer
from parley.sessions.store import Store

if TYPE_CHECKING:
    from parley.engines.factory import EngineHub

log = logging.getLogger(__name__)

CONSOLE = "console"
CALLER_MESSAGE = "caller_message"
SWEEP_EVERY_S = 1.0
TONE_EVERY_S = 3.0
KEEP_S = 3600.0
BACK_AFTER = {
    "failed": "Sorry, nobody from the team could take your call right now. "
    "I'm back with you; how else can I help?",
    "ended": "The team member has left the conversation. I'm here if you need anything else.",
}

SendBytes = Callable[[bytes], Awaitable[None]]


class Dialer(Protocol):
    """Places and ends the outbound call of a phone transfer (``phone_dialer``)."""

    async def dial(self, transfer: Transfer) -> None: ...

    async def end_call(self, transfer: Transfer) -> None: ...


def hold_tone(rate: int, seconds: float = 0.25, freq: float = 440.0, level: float = 0.05) -> bytes:
    """A soft beep (PCM16) for the hold loop."""
    t = np.arange(int(rate * seconds)) / rate
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.02)
    return (np.sin(2 * np.pi * freq * t) * fade * level * 32767).astype("<i2").tobytes()


def back_text(status: str) -> str | None:
    """What the AI says when a transfer of this final status gives the caller back."""
    return BACK_AFTER.get(status)


class HumanSide(Protocol):
    """What a human's leg talks to: the caller's ``CallerLeg`` on this worker, or
    ``bridge_relay.RemoteCaller`` for a caller on another worker."""

    async def connect(
        self, human: LegFormat, human_out: LegFormat, send: SendBytes, human_channel: str
    ) -> None: ...

    async def from_human(self, data: bytes) -> None: ...

    async def disconnect(self) -> None: ...


class Relay(Protocol):
    """A held caller's link to human legs on other workers (``bridge_relay``)."""

    async def human_alive(self) -> bool: ...

    async def close(self) -> None: ...


class CallerLeg:
    """A browser voice caller on hold or bridged to a human."""

    def __init__(
        self,
        desk: TransferDesk,
        transfer_id: str,
        session_id: str,
        caller: LegFormat,
        caller_out: LegFormat,
        send: SendBytes,
    ) -> None:
        self.desk = desk
        self.transfer_id = transfer_id
        self.session_id = session_id
        self.caller = caller
        self.caller_out = caller_out
        self.send = send  # to the caller's socket, past the AI's muted output
        self.bridge: Bridge | None = None
        self.human_send: SendBytes | None = None
        self.joined = False
        self.caller_words: BridgeTranscriber | None = None
        self.human_words: BridgeTranscriber | None = None
        # Called once audio flows both ways, before ``joined`` is announced: the
        # caller's connection mutes the AI then (``voice_hold.Held``).
        self.on_joined: Callable[[], None] | None = None

    async def connect(
        self, human: LegFormat, human_out: LegFormat, send: SendBytes, human_channel: str
    ) -> None:
        """The human's voice leg joins this worker's caller; each direction's speech
        is transcribed from here on."""
        self.attach(human, human_out, send)
        await self.listen(human, human_channel)

    def attach(self, human: LegFormat, human_out: LegFormat, send: SendBytes) -> None:
        """Bridged: audio flows both ways from now on (not yet transcribed)."""
        self.bridge = Bridge(self.caller, human, caller_out=self.caller_out, human_out=human_out)
        self.human_send = send

    async def listen(self, human: LegFormat, human_channel: str) -> None:
        """One recogniser per direction, for an attached human."""
        words = await self.desk.transcribers(
            self.session_id, self.transfer_id, self.caller, human, human_channel
        )
        if self.bridge is None:  # the human left while the recognisers were made
            for transcriber in words:
                if transcriber is not None:
                    await transcriber.close()
            return
        self.caller_words, self.human_words = words

    async def disconnect(self) -> None:
        self.bridge = None
        self.human_send = None
        words = [w for w in (self.caller_words, self.human_words) if w is not None]
        self.caller_words = self.human_words = None
        for transcriber in words:
            await transcriber.close()

    async def from_caller(self, data: bytes) -> None:
        """Caller audio: to the human when bridged, else nowhere (never the AI)."""
        if self.bridge is None or self.human_send is None:
            return
        await self.human_send(self.bridge.from_caller(data))
        if self.caller_words is not None:
            self.caller_words.feed(data)
        await self._maybe_joined()

    async def from_human(self, data: bytes) -> None:
        if self.bridge is None:
            return
        await self.send(self.bridge.from_human(data))
        if self.human_words is not None:
            self.human_words.feed(data)
        await self._maybe_joined()

    async def _maybe_joined(self) -> None:
        if self.joined or self.bridge is None or not self.bridge.flowing:
            return
        self.joined = True
        if self.on_joined is not None:
            self.on_joined()
        with contextlib.suppress(IllegalTransition):
            await self.desk.board.apply(self.transfer_id, "bridge")

    async def hold_loop(self, clock: Clock, ai_idle: Callable[[], bool]) -> None:
        """A soft tone every few seconds while nobody is bridged and the AI is quiet."""
        beep = hold_tone(self.caller_out.rate)
        if self.caller_out.encoding == "ulaw":
            beep = encode_ulaw(beep)
        while True:
            await clock.sleep(TONE_EVERY_S)
            if self.bridge is None and ai_idle():
                await self.send(beep)


class TransferDesk:
    def __init__(
        self,
        board: TransferBoard,
        store: Store,
        lifecycle: SessionLifecycle,
        brain: Brain,
        clock: Clock,
    ) -> None:
        self.board = board
        self.store = store
        self.lifecycle = lifecycle
        self.brain = brain
        self.clock = clock
        self.legs: dict[str, CallerLeg] = {}  # by session id: voice callers of this worker
        self.relays: dict[str, Relay] = {}  # by transfer id: those callers' cross-worker links
        self.held: set[str] = set()  # transfers this worker opened: it renews their lease
        self.default_target: str | None = None  # PARLEY_TRANSFER_TO
        self.dialer: Dialer | None = None  # set when telephony can place calls
        self.engine_hub: EngineHub | None = None  # recognisers of bridged speech

    # --- opening ---------------------------------------------------------------------

    def target_for(self, agent: str | None, channel: str) -> str:
        """The agent's ``transfer_to``, else ``PARLEY_TRANSFER_TO``, else the console.
        A chat caller always goes to the console (its chat box); a number with no way
        to dial it (telephony not configured) falls back to the console, with a
        warning."""
        spec = self.lifecycle.agents.get(agent) if agent else None
        number = (spec.transfer_to if spec is not None else None) or self.default_target
        if channel == "chat":
            return CONSOLE
        if number and self.dialer is None:
            log.warning("transfer target %s: outbound calls are not configured", number)
            return CONSOLE
        return number or CONSOLE

    async def open(self, session_id: str, transfer_id: str, reason: str) -> None:
        """``Brain.on_transfer``: put the transfer on the board, brief, offer it."""
        session = await self.store.get_session(session_id)
        channel = session.current_channel if session is not None else "chat"
        target = self.target_for(session.agent if session is not None else None, channel)
        await self.board.open(session_id, reason, target, transfer_id=transfer_id)
        self.held.add(transfer_id)
        runtime = self.brain.runtime_for(session) if session is not None else None
        llm = runtime.llm if runtime is not None and runtime.brain_kind == "llm" else None
        messages = await self.store.list_messages(session_id)
        try:
            briefing = await write_briefing(reason, messages, llm)
        except Exception as exc:  # the LLM failed: the history still briefs
            log.warning("transfer %s: the LLM briefing failed (%s)", transfer_id, exc)
            briefing = await write_briefing(reason, messages, None)
        await self.board.coordinator.set(f"transfer_briefing:{transfer_id}", briefing, KEEP_S)
        await self.board.coordinator.set(f"session_transfer:{session_id}", transfer_id, KEEP_S)
        transfer = await self.board.apply(transfer_id, "dial")  # the console "rings"
        if target != CONSOLE and self.dialer is not None:
            try:
                await self.dialer.dial(transfer)
            except Exception as exc:
                log.warning("transfer %s: dialling %s failed (%s)", transfer_id, target, exc)
                with contextlib.suppress(IllegalTransition):
                    await self.apply(transfer_id, "error")

    async def briefing(self, transfer_id: str) -> str:
        return await self.board.coordinator.get(f"transfer_briefing:{transfer_id}") or ""

    async def live_for(self, session_id: str) -> Transfer | None:
        """The session's transfer while it is not final."""
        transfer_id = await self.board.coordinator.get(f"session_transfer:{session_id}")
        if transfer_id is None:
            return None
        transfer = await self.board.get(transfer_id)
        return transfer if transfer is not None and not transfer.final else None

    async def listing(self) -> list[dict[str, Any]]:
        """``GET /v1/operator/transfers``: waiting and live transfers."""
        now = self.clock.monotonic()
        out = []
        lost: list[Transfer] = []  # announced here: finished here too, as by ``sweep``
        live = await self.board.live(lost)
        for transfer in lost:
            await self.finished(transfer)
        for transfer in live:
            session = await self.store.get_session(transfer.session_id)
            out.append(
                {
                    "transfer_id": transfer.id,
                    "session_id": transfer.session_id,
                    "status": transfer.status.value,
                    "reason": transfer.reason,
                    "briefing": await self.briefing(transfer.id),
                    "caller_channel": session.current_channel if session else None,
                    "agent": session.agent if session else None,
                    "age_s": round(max(0.0, now - transfer.since), 1),  # in this status
                }
            )
        return out

    # --- moving on -------------------------------------------------------------------

    async def apply(self, transfer_id: str, event: str, *, human: str | None = None) -> Transfer:
        """Apply ``event``; a final status gives the caller back to the AI."""
        transfer = await self.board.apply(transfer_id, event, human=human)
        if transfer.final:
            await self.finished(transfer)
        return transfer

    async def finished(self, transfer: Transfer) -> None:
        """A transfer became final here: end its outbound call, give the caller back."""
        if self.dialer is not None and transfer.target != CONSOLE:
            try:
                await self.dialer.end_call(transfer)
            except Exception:
                log.exception("transfer %s: ending the outbound call failed", transfer.id)
        await self.give_back(transfer)

    async def give_back(self, transfer: Transfer) -> None:
        """A chat caller hears the AI again here (a voice leg speaks it itself)."""
        text = back_text(transfer.status.value)
        if text is None:
            return
        if await self.lifecycle.current_channel(transfer.session_id) != "chat":
            return  # the voice connection's watcher says it
        await self.say(transfer.session_id, text, "chat")

    async def say(self, session_id: str, text: str, channel: str) -> None:
        """Store what the AI says when it comes back, and tell the live channels."""
        blocks = [{"type": "text", "text": text}]
        msg = await self.store.add_message(
            session_id, "assistant", text, blocks=blocks, channel=channel
        )
        await self.lifecycle.relay(session_id, AssistantMessage(msg.id, text))

    async def caller_text(self, session_id: str, transfer_id: str, text: str, channel: str) -> None:
        """The caller typed to the human: stored as ``user``, sent to the human."""
        await self.store.add_message(
            session_id, "user", text, blocks=[{"type": "text", "text": text}], channel=channel
        )
        message = {"type": CALLER_MESSAGE, "transfer_id": transfer_id, "text": text}
        await self.board.coordinator.publish(session_channel(session_id), message)

    async def human_text(self, session_id: str, text: str, channel: str = "operator") -> None:
        """The human typed (or said) it to the caller: stored as ``human_agent``, a
        ``human_message``."""
        msg = await self.store.add_message(
            session_id,
            "human_agent",
            text,
            blocks=[{"type": "text", "text": text}],
            channel=channel,
        )
        event = HumanMessage(text, msg.id)
        await self.board.coordinator.publish(session_channel(session_id), event.to_wire())

    async def caller_left(self, session_id: str) -> None:
        """The caller's connection closed while a transfer was live."""
        leg = self.legs.pop(session_id, None)
        if leg is not None:
            await self.drop_relay(leg.transfer_id)
        transfer = await self.live_for(session_id)
        if transfer is not None:
            with contextlib.suppress(IllegalTransition):
                await self.apply(transfer.id, "caller_left")

    async def drop_relay(self, transfer_id: str) -> None:
        relay = self.relays.pop(transfer_id, None)
        if relay is not None:
            await relay.close()

    async def transcribers(
        self,
        session_id: str,
        transfer_id: str,
        caller: LegFormat,
        human: LegFormat,
        human_channel: str,
    ) -> tuple[BridgeTranscriber | None, BridgeTranscriber | None]:
        """One recogniser per direction of a voice bridge: the caller's words are
        stored as ``user`` (and shown to the human), the human's as ``human_agent``
        (a ``human_message`` to the caller). None without engines."""
        session = await self.store.get_session(session_id)
        if self.engine_hub is None or session is None:
            return None, None
        hub, agent = self.engine_hub, session.agent
        channel = session.current_channel or "voice"

        async def stt_for(leg: LegFormat, leg_channel: str) -> STT:
            # a phone leg's audio is narrowband even when handed over at 16 kHz
            if leg_channel == "phone":
                return await hub.phone_stt(agent)
            return await hub.stt_for_rate(agent, leg.rate)

        try:
            vad = (await hub.engines_for(agent)).vad
            caller_stt = await stt_for(caller, channel)
            human_stt = await stt_for(human, human_channel)
        except Exception as exc:
            log.warning("transfer %s: bridged speech is not transcribed (%s)", transfer_id, exc)
            return None, None

        async def said_by_caller(text: str) -> None:
            await self.caller_text(session_id, transfer_id, text, channel)

        async def said_by_human(text: str) -> None:
            await self.human_text(session_id, text, human_channel)

        return (
            BridgeTranscriber(caller_stt, vad, caller, said_by_caller),
            BridgeTranscriber(human_stt, vad, human, said_by_human),
        )

    # --- timeouts --------------------------------------------------------------------

    async def sweep(self) -> list[Transfer]:
        changed = await self.board.sweep()
        for transfer in changed:
            if transfer.final:
                await self.finished(transfer)
        return changed

    async def renew(self) -> None:
        """Extend the lease of every live transfer this worker opened; if this worker
        dies, they expire and read as ``failed`` (``error``) everywhere."""
        for transfer_id in list(self.held):
            transfer = await self.board.get(transfer_id)
            if transfer is None or transfer.final or not await self.board.renew(transfer_id):
                self.held.discard(transfer_id)
        for transfer_id, relay in list(self.relays.items()):
            if not await relay.human_alive():  # the human's worker is gone
                log.warning("transfer %s: the human's worker stopped answering", transfer_id)
                await self.drop_relay(transfer_id)
                with contextlib.suppress(IllegalTransition):
                    await self.apply(transfer_id, "hang_up")

    async def run(self) -> None:
        """Renew the leases and sweep the board's timeouts until cancelled."""
        while True:
            await self.clock.sleep(SWEEP_EVERY_S)
            try:
                await self.renew()
                await self.sweep()
            except Exception:
                log.exception("sweeping transfers failed")


def relayed(message: dict[str, Any]) -> dict[str, Any] | None:
    """The turn event inside a ``relay`` message, if it is one."""
    if message.get("type") == RELAY and isinstance(message.get("event"), dict):
        return dict(message["event"])
    return None


def status_of(message: dict[str, Any]) -> Status | None:
    """The status of a ``transfer`` message published by the board."""
    if message.get("type") != "transfer":
        return None
    with contextlib.suppress(ValueError):
        return Status(str(message.get("status")))
    return None
