"""One spoken agent response: turn events → sentences → TTS → the session's audio output.

A ``Response`` consumes a ``TurnStream``: it emits every turn event to the client,
feeds assistant deltas to the sentence chunker, and a speaker task synthesises the
sentences in order into the ``AudioOutput`` (tagged with the response's generation, so
audio of a cancelled response is dropped). Fillers (a tool's own, or a generic one
when a tool without one runs longer than ``SLOW_TOOL_SECS``) and spoken approval
prompts are played but are not part of the stored assistant text. ``cancel(heard)`` stops the
turn and truncates the stored assistant message to what the user heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from parley.audio.polyphase import RationalResampler
from parley.audio.resample import Resampler, stream_resampler
from parley.brain.turn_stream import TurnStream
from parley.clock import Clock
from parley.engines.base import TTS, EngineError
from parley.events import (
    ApprovalRequested,
    ApprovalResolved,
    AssistantDelta,
    AssistantMessage,
    AssistantText,
    Error,
    Event,
    ToolCallCompleted,
    ToolCallStarted,
)
from parley.voice.chunker import SentenceChunker, speakable
from parley.voice.io import AudioOutput

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong on my side."
SLOW_TOOL_SECS = 1.0  # a tool without a filler that runs longer than this gets one
SLOW_TOOL_FILLER = "One moment, please."
Emit = Callable[[Event], Awaitable[None]]


@dataclass
class Timings:
    """Monotonic timestamps of one voice turn, for the latency breakdown."""

    vad_end: float | None = None
    stt_final: float | None = None
    first_token: float | None = None
    first_audio: float | None = None

    def breakdown_ms(self) -> dict[str, float]:
        if self.vad_end is None:
            return {}
        out: dict[str, float] = {}
        for name in ("stt_final", "first_token", "first_audio"):
            value = getattr(self, name)
            if value is not None:
                out[name] = round((value - self.vad_end) * 1000, 1)
        return out


@dataclass
class SpokenText:
    """The stored text the response put into the playout, grouped per assistant
    message, to tell which part of everything heard belongs to the last message."""

    messages: list[list[str]] = field(default_factory=list)  # sentences per message
    open: bool = False  # the model is writing a message that is not stored yet

    def add(self, sentence: str) -> None:
        if not self.open:
            self.messages.append([])
            self.open = True
        self.messages[-1].append(sentence)

    def delta(self) -> None:
        """The model wrote text (maybe not yet a whole sentence)."""
        if not self.open:
            self.messages.append([])
            self.open = True

    def message_done(self) -> None:
        self.open = False

    def heard_of_last(self, heard_all: str) -> str:
        """From everything heard, the part that belongs to the last message (the one
        being written, else the last stored one): "" if none of it was heard."""
        if not self.messages:
            return ""
        earlier = [s.strip() for group in self.messages[:-1] for s in group if s.strip()]
        prefix = " ".join(earlier)
        if not prefix:
            return heard_all
        if heard_all.startswith(prefix + " "):
            return heard_all[len(prefix) + 1 :]
        return ""


class Response:
    def __init__(
        self,
        *,
        turn: TurnStream | None,
        tts: TTS,
        output: AudioOutput,
        generation: int,
        output_rate: int,
        emit: Emit,
        clock: Clock,
        on_event: Callable[[Event], Awaitable[None]] | None = None,
        timings: Timings | None = None,
    ) -> None:
        self.turn = turn
        self.tts = tts
        self.output = output
        self.generation = generation
        self.output_rate = output_rate
        self.emit = emit
        self.clock = clock
        self.on_event = on_event
        self.timings = timings or Timings()
        self._slow_tools: dict[str, asyncio.Task[None]] = {}
        self.spoken = SpokenText()
        self.tts_failed = False
        self._sentences: asyncio.Queue[tuple[str, bool] | None] = asyncio.Queue()
        self._speaker: asyncio.Task[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.finished = asyncio.Event()  # run() has returned (or failed)
        self.model_started = asyncio.Event()  # the model answered: the input is stored

    # --- speaking ----------------------------------------------------------------

    def say(self, text: str, *, stored: bool = True) -> None:
        """Queue text to speak; ``stored=False`` for fillers and prompts."""
        if not speakable(text):
            return
        if stored:
            self.spoken.add(text)
        self._sentences.put_nowait((text, stored))
        if self._speaker is None:
            self._speaker = asyncio.create_task(self._speak_all())

    async def _speak_all(self) -> None:
        while (item := await self._sentences.get()) is not None:
            if self.tts_failed:
                continue  # the rest of this response stays text-only
            text, stored = item
            try:
                await self._speak(text, stored)
            except EngineError as exc:
                await self._tts_failed(exc)

    async def _tts_failed(self, exc: EngineError) -> None:
        """Report a TTS failure once and try to say a short apology instead."""
        log.warning("tts failed: %s", exc)
        self.tts_failed = True
        await self.emit(Error(exc.code, f"speech output failed: {exc}"))
        try:
            await self._speak(APOLOGY, stored=False)
        except EngineError as again:
            log.warning("tts failed again, the apology stays unspoken: %s", again)

    async def _speak(self, text: str, stored: bool) -> None:
        rate = self.tts.capabilities.sample_rate
        resampler: Resampler | RationalResampler | None = None
        if rate != self.output_rate:  # 16 kHz TTS to a 24 kHz Realtime client, to a phone's 8
            resampler = stream_resampler(rate, self.output_rate)
        first = True
        chunks = self.tts.synthesize(speakable(text))
        try:
            async for chunk in chunks:
                pcm = resampler.process(chunk) if resampler else chunk
                if pcm:
                    span = text if stored else ""
                    if not self.output.enqueue(pcm, span, self.generation, extend=not first):
                        return  # this response was cancelled
                    first = False
            if resampler is not None:
                tail = resampler.flush()
                span = text if stored and first else ""
                if tail:
                    self.output.enqueue(tail, span, self.generation, extend=not first)
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    # --- running the turn ------------------------------------------------------------

    async def run(self) -> None:
        """Forward and speak the turn's events; returns when all audio is queued."""
        try:
            await self.emit(AssistantText("start"))
            chunker = SentenceChunker()
            if self.turn is not None:
                async for event in self.turn:
                    if not isinstance(event, ApprovalResolved):
                        self.model_started.set()
                    await self._handle(event, chunker)
            for sentence in chunker.flush():
                self.say(sentence)
            self._forget_slow_tools()
            await self.finish_speaking()
            await self.emit(AssistantText("end"))
        finally:
            self._forget_slow_tools()
            self.finished.set()

    async def superseded(self) -> None:
        """Wait until interrupting this response loses nothing the user said: its
        turn has stored its input (the model has started answering) or it is over."""
        if self.turn is None or self.model_started.is_set() or self.finished.is_set():
            return
        waits = [asyncio.ensure_future(e.wait()) for e in (self.model_started, self.finished)]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def finish_speaking(self) -> None:
        self._sentences.put_nowait(None)
        if self._speaker is not None:
            await self._speaker

    async def _handle(self, event: Event, chunker: SentenceChunker) -> None:
        if isinstance(event, AssistantDelta):
            if self.timings.first_token is None:
                self.timings.first_token = self.clock.monotonic()
            self.spoken.delta()
            await self.emit(AssistantText("chunk", event.text))
            for sentence in chunker.push(event.text):
                self.say(sentence)
        elif isinstance(event, AssistantMessage):
            for sentence in chunker.flush():
                self.say(sentence)
            self.spoken.message_done()
        elif isinstance(event, ToolCallStarted):
            if event.filler:
                self.say(event.filler, stored=False)
            else:
                self._watch_slow_tool(event.tool_call_id)
        elif isinstance(event, ToolCallCompleted):
            self._forget_slow_tools(event.tool_call_id)
        elif isinstance(event, ApprovalRequested):
            self.say(event.prompt, stored=False)
        elif isinstance(event, Error):
            self.say(APOLOGY, stored=False)
        if self.on_event is not None:
            await self.on_event(event)
        await self.emit(event)

    def _watch_slow_tool(self, tool_call_id: str) -> None:
        async def filler_if_slow() -> None:
            await self.clock.sleep(SLOW_TOOL_SECS)
            self.say(SLOW_TOOL_FILLER, stored=False)

        self._slow_tools[tool_call_id] = asyncio.create_task(filler_if_slow())

    def _forget_slow_tools(self, tool_call_id: str | None = None) -> None:
        ids = [tool_call_id] if tool_call_id is not None else list(self._slow_tools)
        for key in ids:
            task = self._slow_tools.pop(key, None)
            if task is not None:
                task.cancel()

    async def cancel(self, heard_all: str) -> None:
        """Stop everything; store only what was heard of the last message."""
        for task in (self.task, self._speaker):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.turn is not None:
            await self.turn.cancel(self.spoken.heard_of_last(heard_all))
