"""A transfer's bridge across workers: the caller on one worker, the human on another.

The ``CallerLeg`` (and its ``Bridge``: both directions' converters, both
recognisers) stays on the caller's worker. When the human's leg (the console's
voice socket or the dialled person's phone stream) lands on another worker, the two
talk through the coordinator's pub/sub, one channel per direction:

- ``bridge:{transfer_id}:to_caller`` — the human's worker publishes ``hello`` (the
  human leg's formats and channel), then the human's *wire* audio as it arrives, then
  ``bye`` when the human leg goes. ``CallerRelay`` (caller's worker) feeds it to the
  ``CallerLeg`` exactly as a local human leg would (``connect``/``from_human``/
  ``disconnect``), so converting, ``joined`` and transcription are unchanged.
- ``bridge:{transfer_id}:to_human`` — the caller's audio, already converted to what
  the human leg takes; ``RemoteCaller`` (human's worker) writes it to the socket.

So each direction is converted once, with its own state, on the caller's worker, and
both directions' speech is transcribed (and stored) there, once. Frames are JSON
(``{"t": "a", "d": base64}``), the coordinator's message format; ``bench/relay.py``
measures the cost. ``bridge_caller:{transfer_id}`` (set once the caller's worker is
subscribed) tells the human's worker there is a voice caller to relay to; the human's
worker refreshes ``bridge_human:{transfer_id}`` while its leg lives, and the caller's
worker hangs the human up when that lapses (the human's worker died).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from parley.channels.transfer_desk import CallerLeg, HumanSide, TransferDesk
from parley.clock import Clock
from parley.handoff.bridge import LegFormat
from parley.sessions.coordinator import Coordinator, Subscription

log = logging.getLogger(__name__)

KEEP_S = 3600.0
HUMAN_LEASE_S = 10.0
HUMAN_RENEW_S = 2.0
READY_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 10.0
SendBytes = Callable[[bytes], Awaitable[None]]


def to_caller(transfer_id: str) -> str:
    return f"bridge:{transfer_id}:to_caller"


def to_human(transfer_id: str) -> str:
    return f"bridge:{transfer_id}:to_human"


def caller_key(transfer_id: str) -> str:
    return f"bridge_caller:{transfer_id}"


def human_key(transfer_id: str) -> str:
    return f"bridge_human:{transfer_id}"


def audio_message(data: bytes) -> dict[str, Any]:
    return {"t": "a", "d": base64.b64encode(data).decode("ascii")}


def audio_of(message: dict[str, Any]) -> bytes | None:
    data = message.get("d")
    if message.get("t") != "a" or not isinstance(data, str):
        return None
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        return None


def _format(raw: Any) -> LegFormat:
    if not isinstance(raw, dict):
        raise ValueError("a leg format is an object")
    return LegFormat(raw.get("encoding", "pcm16"), int(raw.get("rate", 16000)))


class CallerRelay:
    """The caller's worker: a human on another worker, fed to the ``CallerLeg``."""

    def __init__(self, coordinator: Coordinator, leg: CallerLeg, events: Subscription) -> None:
        self.coordinator = coordinator
        self.leg = leg
        self.transfer_id = leg.transfer_id
        self.events = events
        self.connected = False  # a remote human is bridged
        self._listening: asyncio.Task[None] | None = None  # its recognisers being made
        self._task = asyncio.create_task(self._run(), name="bridge-relay-caller")

    @classmethod
    async def start(cls, coordinator: Coordinator, leg: CallerLeg) -> CallerRelay:
        """Subscribe, then say so: a human leg elsewhere may relay from now on."""
        events = await coordinator.subscribe(to_caller(leg.transfer_id))
        relay = cls(coordinator, leg, events)
        await coordinator.set(caller_key(leg.transfer_id), "1", KEEP_S)
        return relay

    async def _send(self, data: bytes) -> None:
        await self.coordinator.publish(to_human(self.transfer_id), audio_message(data))

    async def _run(self) -> None:
        async for message in self.events:
            try:
                await self._step(message)
            except Exception:
                log.exception("transfer %s: a relayed frame failed", self.transfer_id)

    async def _step(self, message: dict[str, Any]) -> None:
        kind = message.get("t")
        if kind == "a" and self.connected:
            data = audio_of(message)
            if data:
                await self.leg.from_human(data)
        elif kind == "hello" and not self.connected:
            human, out = _format(message.get("in")), _format(message.get("out"))
            self.connected = True
            # bridged before ``ready``: once the human is told to talk, caller audio
            # goes over; the recognisers are made beside the audio, as for a local leg
            self.leg.attach(human, out, self._send)
            await self.coordinator.publish(to_human(self.transfer_id), {"t": "ready"})
            channel = str(message.get("channel"))
            self._listening = asyncio.create_task(self.leg.listen(human, channel))
        elif kind == "bye" and self.connected:
            await self._let_go()

    async def _let_go(self) -> None:
        """The human left: stop listening, unbridge (a pending utterance is stored)."""
        self.connected = False
        listening, self._listening = self._listening, None
        if listening is not None:
            with contextlib.suppress(Exception):
                await listening
        await self.leg.disconnect()

    async def human_alive(self) -> bool:
        """False once a bridged human's worker stopped renewing its key."""
        if not self.connected:
            return True
        return await self.coordinator.get(human_key(self.transfer_id)) is not None

    async def close(self) -> None:
        """Stop listening: what was already relayed is handled first (a ``bye`` the
        human's worker sent before the final status arrives before it), then the
        human, if still bridged, is let go (a pending utterance is stored)."""
        await self.events.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), CLOSE_TIMEOUT_S)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.coordinator.delete(caller_key(self.transfer_id))
        if self.connected:
            await self._let_go()


class RemoteCaller:
    """The human's worker: a voice caller on another worker, reached through
    pub/sub; the same calls as a local ``CallerLeg`` for a human leg."""

    def __init__(self, coordinator: Coordinator, clock: Clock, transfer_id: str) -> None:
        self.coordinator = coordinator
        self.clock = clock
        self.transfer_id = transfer_id
        self._events: Subscription | None = None
        self._messages: AsyncIterator[dict[str, Any]] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @staticmethod
    async def there(coordinator: Coordinator, transfer_id: str) -> bool:
        """A voice caller of this transfer is held on some worker."""
        return await coordinator.get(caller_key(transfer_id)) is not None

    async def prepare(self, human: LegFormat, human_out: LegFormat, human_channel: str) -> None:
        """Say hello to the caller's worker and wait until it bridged this leg (its
        ``ready``); caller audio arriving from then on waits for ``connect``.
        ``TimeoutError`` if the caller's worker does not answer."""
        if self._events is not None:
            return
        events = await self.coordinator.subscribe(to_human(self.transfer_id))
        self._events = events
        await self.coordinator.set(human_key(self.transfer_id), "1", HUMAN_LEASE_S)
        hello = {
            "t": "hello",
            "in": {"encoding": human.encoding, "rate": human.rate},
            "out": {"encoding": human_out.encoding, "rate": human_out.rate},
            "channel": human_channel,
        }
        await self.coordinator.publish(to_caller(self.transfer_id), hello)
        self._messages = messages = aiter(events)
        async with asyncio.timeout(READY_TIMEOUT_S):
            while (await anext(messages)).get("t") != "ready":
                pass

    async def connect(
        self, human: LegFormat, human_out: LegFormat, send: SendBytes, human_channel: str
    ) -> None:
        """Bridged: the caller's audio goes to ``send`` (``prepare`` first if not yet)."""
        await self.prepare(human, human_out, human_channel)
        self._tasks = [
            asyncio.create_task(self._forward(send), name="bridge-relay-human"),
            asyncio.create_task(self._renew(), name="bridge-relay-lease"),
        ]

    async def _forward(self, send: SendBytes) -> None:
        assert self._messages is not None
        async for message in self._messages:
            data = audio_of(message)
            if data:
                await send(data)

    async def _renew(self) -> None:
        while True:
            await self.clock.sleep(HUMAN_RENEW_S)
            with contextlib.suppress(Exception):
                await self.coordinator.set(human_key(self.transfer_id), "1", HUMAN_LEASE_S)

    async def from_human(self, data: bytes) -> None:
        if self._events is not None and data:
            await self.coordinator.publish(to_caller(self.transfer_id), audio_message(data))

    async def disconnect(self) -> None:
        if self._events is None:
            return
        events, self._events = self._events, None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await events.close()
        with contextlib.suppress(Exception):
            await self.coordinator.publish(to_caller(self.transfer_id), {"t": "bye"})
            await self.coordinator.delete(human_key(self.transfer_id))


async def caller_side(
    desk: TransferDesk,
    clock: Clock,
    session_id: str,
    transfer_id: str,
    human: LegFormat,
    human_out: LegFormat,
    human_channel: str,
) -> HumanSide | None:
    """What a human leg talks to: the caller's ``CallerLeg`` on this worker, else its
    worker's, through pub/sub (already ``prepare``d: bridged there), else None (no
    voice caller is held, or its worker does not answer)."""
    leg = desk.legs.get(session_id)
    if leg is not None:
        return leg
    coordinator = desk.board.coordinator
    if not await RemoteCaller.there(coordinator, transfer_id):
        return None
    remote = RemoteCaller(coordinator, clock, transfer_id)
    try:
        await remote.prepare(human, human_out, human_channel)
    except (TimeoutError, StopAsyncIteration):
        await remote.disconnect()
        return None
    return remote
