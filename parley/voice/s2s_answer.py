"""``ModelAnswer``: the bookkeeping of one speech-to-speech answer (pure, no I/O).

A model answer arrives as audio chunks (24 kHz) and transcript deltas, perhaps over
several provider items (OpenAI names each one; a tool call in the middle splits it),
and ends with ``TurnComplete``. To store it and to cut it where the caller barged in,
the session needs: how much audio was queued (and where each item starts in it), the
transcript so far and the part of it already stored (the text before a tool call is
stored with the call), and — after a cut — what was heard.

Heard text. Speech is assumed spread evenly over the answer's words, the same rule the
playout applies per sentence: of the transcript received, the first
``floor(words * played / queued)`` words were heard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from parley.audio.pcm import SAMPLE_WIDTH
from parley.s2s.base import OUTPUT_RATE

_EPS = 1e-9


@dataclass
class ModelAnswer:
    generation: int | None = None  # the playout generation its audio plays in
    queued_secs: float = 0.0  # model audio queued for the caller so far
    items: dict[str, float] = field(default_factory=dict)  # item id -> start offset (secs)
    last_item: str | None = None
    parts: list[str] = field(default_factory=list)  # transcript deltas not yet stored
    stored: str = ""  # transcript already stored (text before a tool call)
    started: bool = False  # ``assistant_text{start}`` was sent
    muted: bool = False  # cut by a barge-in: later audio of this answer is dropped
    heard: str | None = None  # set by a cut: what the caller heard
    final_seen: bool = False  # the provider's final transcript arrived
    message_id: str | None = None  # the stored assistant message (once written)

    def add_audio(self, pcm24k_bytes: int, item_id: str | None) -> None:
        if item_id is not None and item_id not in self.items:
            self.items[item_id] = self.queued_secs
        if item_id is not None:
            self.last_item = item_id
        self.queued_secs += pcm24k_bytes / SAMPLE_WIDTH / OUTPUT_RATE

    def add_text(self, delta: str) -> None:
        self.parts.append(delta)

    @property
    def text(self) -> str:
        """Everything the model said in this answer so far."""
        return (self.stored + "".join(self.parts)).strip()

    def take_unstored(self) -> str:
        """The text not stored yet, now marked stored (it goes with a tool call)."""
        text = "".join(self.parts).strip()
        self.stored = (self.stored + " " + text).strip() if text else self.stored
        self.parts = []
        return text

    def final_text(self, final: str) -> str:
        """The part of the provider's final transcript not stored yet."""
        final = final.strip()
        if self.stored and final.startswith(self.stored):
            return final[len(self.stored) :].strip()
        return final if final else "".join(self.parts).strip()

    def heard_of(self, played_secs: float) -> str:
        """What the caller heard of the transcript once ``played_secs`` were played."""
        words = self.text.split()
        if self.queued_secs <= 0 or not words:
            return ""
        fraction = min(1.0, max(0.0, played_secs / self.queued_secs))
        return " ".join(words[: math.floor(len(words) * fraction + _EPS)])

    def unstored_heard(self, heard: str) -> str:
        """Of ``heard`` (the whole answer), the part after the stored text."""
        if self.stored and heard.startswith(self.stored):
            return heard[len(self.stored) :].strip()
        return "" if self.stored and len(heard) <= len(self.stored) else heard

    def truncation(self, played_secs: float) -> tuple[str, int] | None:
        """``(item_id, audio_end_ms)`` of the item playing at ``played_secs``."""
        if self.last_item is None:
            return None
        item, start = self.last_item, self.items[self.last_item]
        for candidate, offset in sorted(self.items.items(), key=lambda kv: kv[1]):
            if offset <= played_secs + _EPS:
                item, start = candidate, offset
        return item, max(0, round((played_secs - start) * 1000))
