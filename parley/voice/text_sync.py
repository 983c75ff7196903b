"""``TextInStep``: assistant text goes to the client in step with the agent's audio.

A model streams a token every few milliseconds; sent one by one, each token costs two
messages (``assistant_text`` chunk and ``assistant_delta``). While the agent's audio
will be spoken (a response runs and its speech output works, or audio is queued or
playing), this ``EventSink`` wrapper holds the text and sends what gathered as one
chunk and one delta when the next batch of audio goes out (``flush``, called by the
audio output), when playback ends, or before any other event (so the order of
events never changes). A coalesced delta is still a delta: the client appends it as
it would the tokens. When nothing will be spoken (no response, or the speech output
failed) the text goes out at once, so a text-only answer still streams.
"""

from __future__ import annotations

from collections.abc import Callable

from parley.events import AssistantDelta, AssistantText, Event
from parley.voice.io import EventSink

__all__ = ["TextInStep"]


class TextInStep:
    """An ``EventSink`` that coalesces assistant text while ``holding()`` is true."""

    def __init__(self, inner: EventSink, holding: Callable[[], bool]) -> None:
        self.inner = inner
        self.holding = holding
        self._chunks: list[str] = []
        self._deltas: list[str] = []

    @property
    def pending(self) -> bool:
        return bool(self._chunks or self._deltas)

    async def emit(self, event: Event) -> None:
        if isinstance(event, AssistantDelta):
            if self.holding():
                self._deltas.append(event.text)
                return
        elif isinstance(event, AssistantText) and event.status == "chunk":
            if self.holding():
                self._chunks.append(event.text)
                return
        if self._chunks or self._deltas:
            await self.flush()
        await self.inner.emit(event)

    async def flush(self) -> None:
        """Send the held text: one chunk and one delta."""
        chunks, deltas = self._chunks, self._deltas
        if not (chunks or deltas):
            return
        self._chunks, self._deltas = [], []
        if chunks:
            await self.inner.emit(AssistantText("chunk", "".join(chunks)))
        if deltas:
            await self.inner.emit(AssistantDelta("".join(deltas)))
