"""``SttFeed``: one connection's speech recogniser calls, run in order on one task.

The voice loop must not wait for the recogniser while it reads audio (barge-in is
decided on the incoming frames), yet an ``STTStream`` is one stateful recogniser:
the audio of the next utterance must not reach it before the previous utterance's
``finish`` has run. So every call — ``push`` of a frame, ``finish``, ``cancel`` — is
queued and one worker task performs them in order. All three return at once;
``finish`` gives a future of the final transcript.

Each utterance has a number. A partial transcript is reported (``on_partial``) only
while its utterance is still the open one, so a late partial cannot count towards
the next utterance. A failed ``push`` is remembered and raised by that utterance's
``finish`` (after cancelling the recogniser's utterance), so the caller reports one
error per utterance, not one per frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from parley.engines.base import EngineError, STTMode, STTStream

log = logging.getLogger(__name__)

OnPartial = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Push:
    utterance: int
    pcm: bytes


@dataclass(frozen=True, slots=True)
class _Finish:
    utterance: int
    result: asyncio.Future[str]


@dataclass(frozen=True, slots=True)
class _Cancel:
    utterance: int


_Op = _Push | _Finish | _Cancel


class SttFeed:
    """Queue of recogniser calls for one connection (see the module docstring)."""

    def __init__(self, stream: STTStream, on_partial: OnPartial) -> None:
        self.stream = stream
        self._on_partial = on_partial
        self._ops: asyncio.Queue[_Op] = asyncio.Queue()
        self._utterance = 0  # the open utterance; bumped by finish and cancel
        self._failed: dict[int, EngineError] = {}
        self._worker: asyncio.Task[None] | None = None

    def push(self, pcm: bytes) -> None:
        """Queue audio of the open utterance."""
        self._put(_Push(self._utterance, pcm))

    def cancel(self) -> None:
        """Drop the open utterance."""
        self._put(_Cancel(self._utterance))
        self._utterance += 1

    def finish(self) -> asyncio.Future[str]:
        """Close the open utterance now; the future gets its final transcript (or the
        ``EngineError``). Audio pushed after this call belongs to the next utterance."""
        result: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._put(_Finish(self._utterance, result))
        self._utterance += 1
        return result

    def set_mode(self, mode: STTMode) -> None:
        """Vocabulary for the next utterance (the stream applies it when one starts)."""
        self.stream.set_mode(mode)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while not self._ops.empty():
            op = self._ops.get_nowait()
            if isinstance(op, _Finish) and not op.result.done():
                op.result.cancel()
        await self.stream.close()

    # --- worker ----------------------------------------------------------------------

    def _put(self, op: _Op) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name="stt-feed")
        self._ops.put_nowait(op)

    async def _work(self) -> None:
        while True:
            op = await self._ops.get()
            try:
                await self._perform(op)
            except Exception:  # a recogniser bug must not stop the connection's STT
                log.exception("stt call failed unexpectedly")
                if isinstance(op, _Finish) and not op.result.done():
                    op.result.set_exception(EngineError("speech recognition crashed"))

    async def _perform(self, op: _Op) -> None:
        if isinstance(op, _Push):
            if op.utterance in self._failed:
                return
            try:
                partial = await self.stream.push(op.pcm)
            except EngineError as exc:
                log.warning("stt push failed: %s", exc)
                self._failed[op.utterance] = exc
                return
            if partial and op.utterance == self._utterance:
                await self._on_partial(partial)
        elif isinstance(op, _Cancel):
            self._failed.pop(op.utterance, None)
            self.stream.cancel()
        else:
            await self._finish(op)

    async def _finish(self, op: _Finish) -> None:
        failure = self._failed.pop(op.utterance, None)
        if failure is not None:
            self.stream.cancel()
            if not op.result.done():
                op.result.set_exception(failure)
            return
        try:
            text = await self.stream.finish()
        except EngineError as exc:
            if not op.result.done():
                op.result.set_exception(exc)
            return
        if not op.result.done():
            op.result.set_result(text)
