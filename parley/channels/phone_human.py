"""The person a warm transfer dialled, on their phone's media stream.

``phone_stream`` hands over a stream whose token names a ``transfer_id`` (the answer
URL ``phone_dialer`` gave Twilio). Then:

1. The transfer is ``answer``ed (``briefing``, the human is the dialled number) —
   only while it is ``dialing``; otherwise the stream is closed (1008).
2. The briefing is spoken with the agent's TTS, then the choice: "press 1 or say
   connect to take the call, press 2 or say decline". Keys and words are both
   accepted (a phone-grade recogniser built for the answer words alone,
   ``EngineHub.phone_answer_stt``, listens to the human until they choose).
3. Accept: the briefing is cut (``clear``) and the stream is bridged to the caller's
   ``CallerLeg`` on this worker, or on another one through pub/sub
   (``bridge_relay.RemoteCaller``) (μ-law both ways; ``joined`` once audio has
   flowed both ways). Decline: ``failed{declined}``, the AI takes the caller back.
4. The end: the human hangs up (``stop`` or the socket closing) → ``ended`` once
   joined, ``failed{declined}`` before; a final status or the session's end closes
   the stream (Twilio then ends the call).

A caller who is no voice caller held on any worker (or whose worker does not answer)
cannot be connected: the person hears so and the transfer fails with ``error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import TYPE_CHECKING

from parley.channels.bridge_relay import caller_side
from parley.channels.bridge_speech import BridgeTranscriber
from parley.channels.operator_leg import hang_up_human
from parley.channels.phone_dialer import KEEP_S, answered_key
from parley.channels.transfer_desk import HumanSide, status_of
from parley.engines.base import STT, EngineSet
from parley.handoff.bridge import LegFormat
from parley.handoff.state import FINAL, IllegalTransition, Transfer
from parley.sessions.coordinator import Subscription
from parley.telephony.call import CallEnded, CallerAudio, CallerPressed
from parley.telephony.wire import ProtocolError

if TYPE_CHECKING:
    from parley.channels.phone_stream import PhoneStream

log = logging.getLogger(__name__)

CHANNEL = "phone"
INTRO = "Hello, this is Parley with a caller for you."
CHOICE = "Press 1 or say connect to take the call. Press 2 or say decline to decline."
ELSEWHERE = "Sorry, the caller cannot be connected from here. Goodbye."
ACCEPT_WORDS = frozenset({"connect", "accept", "yes"})
DECLINE_WORDS = frozenset({"decline", "no"})
ANSWER_PHRASES = ("connect", "connect me", "yes connect", "accept", "decline", "no decline")
HUMAN_IN = LegFormat("pcm16", 16000)  # ``PhoneCall`` hands over 16 kHz PCM
HUMAN_OUT = LegFormat("ulaw", 8000)


def choice_in(words: str) -> str | None:
    """``accept``/``decline`` if the words say so (decline wins a tie), else None."""
    said = set(re.findall(r"[a-z]+", words.lower()))
    if said & DECLINE_WORDS:
        return "decline"
    if said & ACCEPT_WORDS:
        return "accept"
    return None


class PhoneHuman:
    def __init__(
        self, stream: PhoneStream, transfer: Transfer, engines: EngineSet, answers: STT
    ) -> None:
        self.stream = stream
        self.services = stream.services
        self.desk = stream.services.transfers
        self.transfer = transfer
        self.engines = engines
        self.leg: HumanSide | None = None
        self.done = False
        self.accepting = False
        self.briefing_task: asyncio.Task[None] | None = None
        self._closing: asyncio.Future[None] | None = None  # the answer recogniser stopping
        self.words: BridgeTranscriber | None = BridgeTranscriber(
            answers, engines.vad, HUMAN_IN, self.heard
        )

    # --- the briefing ------------------------------------------------------------------------

    async def brief(self) -> None:
        briefing = await self.desk.briefing(self.transfer.id)
        await self.speak(f"{INTRO} {briefing} {CHOICE}")

    async def speak(self, text: str) -> None:
        """TTS to the phone, as fast as it comes (the carrier queues it)."""
        tts = self.engines.tts
        call = self.stream.call
        async for pcm in tts.synthesize(text):
            for send in call.speak(pcm, tts.capabilities.sample_rate, "", 1):
                await self.stream.send_text(send.text)

    # --- the choice ----------------------------------------------------------------------------

    async def heard(self, words: str) -> None:
        choice = choice_in(words)
        log.info("transfer %s: the human said %r (%s)", self.transfer.id, words, choice)
        if choice == "accept":
            await self.accept()
        elif choice == "decline":
            await self.decline()

    async def accept(self) -> None:
        if self.leg is not None or self.done or self.accepting:
            return
        self.accepting = True  # keys and words may both accept, while this awaits
        # a caller on another worker is bridged there first: when the briefing is
        # cut, the person's words already reach the caller
        leg = await caller_side(
            self.desk,
            self.services.clock,
            self.transfer.session_id,
            self.transfer.id,
            HUMAN_IN,
            HUMAN_OUT,
            CHANNEL,
        )
        if self.briefing_task is not None:
            self.briefing_task.cancel()
        self.stream.call.interrupt()  # the rest of the briefing goes (marks dropped)
        await self.stream.send_text(self.stream.codec.clear(self.stream.call.stream_id))
        if leg is None:
            self.done = True
            await self.speak(ELSEWHERE)
            with contextlib.suppress(IllegalTransition):
                await self.desk.apply(self.transfer.id, "error")
            return
        self._stop_listening()  # in the background: the human's audio keeps flowing
        self.leg = leg
        await leg.connect(HUMAN_IN, HUMAN_OUT, self.stream.send_bridged, CHANNEL)

    async def decline(self) -> None:
        if self.leg is not None or self.done or self.accepting:
            return
        self.done = True
        with contextlib.suppress(IllegalTransition):
            await self.desk.apply(self.transfer.id, "declined")

    def _stop_listening(self) -> None:
        words, self.words = self.words, None
        if words is not None:
            self._closing = asyncio.ensure_future(words.close())

    # --- the stream ----------------------------------------------------------------------------

    async def receive_loop(self) -> None:
        stream = self.stream
        while True:
            message = await stream.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            for action in stream.actions(message):
                if isinstance(action, CallerAudio):
                    if self.leg is not None:
                        await self.leg.from_human(action.pcm)
                    elif self.words is not None:
                        self.words.feed(action.pcm)
                elif isinstance(action, CallerPressed):
                    if action.digit == "1":
                        await self.accept()
                    elif action.digit == "2":
                        await self.decline()
                elif isinstance(action, ProtocolError):
                    stream.bad(action)
                elif isinstance(action, CallEnded):
                    return

    async def watch(self, events: Subscription) -> None:
        """A final status of the transfer or the session's end closes the stream."""
        async for message in events:
            status = status_of(message)
            over = status in FINAL and message.get("transfer_id") == self.transfer.id
            if over or message.get("type") == "session_ended":
                break
        await self.stream.close(1000, "transfer over")

    async def stop(self) -> None:
        if self.briefing_task is not None:
            self.briefing_task.cancel()
        self._stop_listening()
        if self._closing is not None:
            await self._closing
        if self.leg is not None:
            await self.leg.disconnect()


async def serve_phone_human(stream: PhoneStream, transfer_id: str) -> None:
    """Run the dialled person's leg until either side hangs up (module docstring)."""
    desk = stream.services.transfers
    transfer = await desk.board.get(transfer_id)
    try:
        if transfer is None:
            raise IllegalTransition(f"transfer {transfer_id} is not live")
        transfer = await desk.apply(transfer_id, "answer", human=transfer.target)
    except IllegalTransition as exc:
        log.warning("transfer stream %s refused: %s", transfer_id, exc)
        await stream.close(1008, "refused")
        return
    await stream.services.coordinator.set(answered_key(transfer_id), "1", KEEP_S)
    try:
        session = await stream.services.store.get_session(transfer.session_id)
        agent = session.agent if session is not None else ""
        engines = await stream.engines(agent)
        answers = await stream.services.engine_hub.phone_answer_stt(agent, ANSWER_PHRASES)
    except Exception as exc:  # no engines to brief with: nobody can take the call
        log.warning("transfer %s: cannot brief the human (%s)", transfer_id, exc)
        with contextlib.suppress(IllegalTransition):
            await desk.apply(transfer_id, "error")
        await stream.close(1011, "no speech engines")
        return
    events = await stream.services.lifecycle.subscribe(transfer.session_id)
    human = PhoneHuman(stream, transfer, engines, answers)
    watcher = asyncio.create_task(human.watch(events))
    human.briefing_task = asyncio.create_task(human.brief())
    try:
        await human.receive_loop()
    finally:
        watcher.cancel()
        await events.close()
        await human.stop()
        await hang_up_human(desk, transfer_id)
        await stream.close()
