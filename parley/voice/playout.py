"""Paced audio output bookkeeping: what to send when, and what the user has heard.

Theory of operation
-------------------
One ``Playout`` per voice connection holds the agent's current response: PCM16 mono
audio cut into frames of ``frame_ms``, each tagged with the text it speaks. The async
voice loop asks ``due_frames(now)`` for what to send and ``next_due(now)`` (or
``room_at(now, secs)``, for a batch) for when to ask again; nothing here sleeps or
reads a clock.

Pacing. The client starts playing a frame as soon as it arrives (network delay is
ignored) and plays continuously; if we had nothing to send it stalls and resumes with
the next frame. We keep ``buffered_until``, the time at which the client will have
played everything sent, so ``ahead(now) = buffered_until - now`` (≥ 0) is the audio
waiting in its buffer. A frame is due when ``ahead + frame <= lead`` — or at once when
nothing is buffered, so the first frame goes out immediately even with ``lead_ms=0``.
So at most ``lead_ms`` of audio is ever ahead of real time, and an interruption
(``clear``, plus the ``interrupted`` message telling the client to drop its buffer)
silences the agent within ``lead_ms``.

Playback truth. ``played_secs(now) = sent - ahead(now)``. A client that reports its
playback position (``client_played(ms, now)``: ms of *this response's* audio played,
counted from its first frame) overrides the estimate: from then on
``played = min(estimate, reported + (now - reported_at))`` (we extrapolate at real
speed but never beyond what was sent), and pacing uses that number too.

Heard text. Each ``enqueue`` call is a *segment* (usually one sentence) with its text.
``heard_text(now)`` joins, with single spaces, the text of every segment fully played,
plus, for the segment playing at ``now``, its first ``floor(words * fraction)`` words
where ``fraction`` is the share of its audio played — speech is assumed to be spread
evenly over its words, and a word counts only once its whole share has played.

Pausing. ``pause(now)`` holds the response where it is (a sound over the agent that
may not be an interruption, ``parley.voice.false_interruption``): nothing more is due,
and the client, told ``playback_paused``, stops playing its buffer, so the played
position freezes at ``now``. ``resume(now)`` plays on from there: the client's buffer
and a reported position move later by the pause. Nothing queued is lost; ``clear``
and a new generation end a pause.

Generations. Every response has a generation number. ``new_generation()`` starts a
response (dropping anything left of the previous one); ``clear(now)`` ends one on
interruption and bumps the number too. ``enqueue(..., generation)`` with an older
number is ignored, so late TTS audio of a cancelled response never plays.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

from parley.audio.pcm import SAMPLE_WIDTH

log = logging.getLogger(__name__)

_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class _Segment:
    text: str
    start: float  # offset of its first sample in this response's audio, seconds
    duration: float


class Playout:
    """Pacing and playback bookkeeping for one connection (see the module docstring)."""

    def __init__(self, sample_rate: int, frame_ms: float = 20, lead_ms: float = 200) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
        if frame_ms <= 0:
            raise ValueError(f"frame_ms must be > 0, got {frame_ms}")
        if lead_ms < 0:
            raise ValueError(f"lead_ms must be >= 0, got {lead_ms}")
        self.sample_rate = sample_rate
        self.frame_bytes = max(1, round(sample_rate * frame_ms / 1000)) * SAMPLE_WIDTH
        self.lead_secs = lead_ms / 1000
        self._generation = 0
        self._last_now = -math.inf
        self._reset()

    def _reset(self) -> None:
        self._frames: deque[bytes] = deque()
        self._segments: list[_Segment] = []
        self._queued_secs = 0.0  # audio enqueued in this response
        self._sent_secs = 0.0  # audio handed out by due_frames
        self._buffered_until = -math.inf  # when the client will have played all sent audio
        self._report: tuple[float, float] | None = None  # (played secs, at)
        self._paused_at: float | None = None  # playback held since then

    # --- generations -----------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._generation

    def new_generation(self) -> int:
        """Start a new response; returns its generation number for ``enqueue``."""
        if self._frames:
            log.debug("new generation drops %d queued frames", len(self._frames))
        self._generation += 1
        self._reset()
        return self._generation

    def clear(self, now: float) -> str:
        """Interruption: what was heard by ``now``; then drop all queued audio and
        bump the generation so late audio of this response is ignored."""
        heard = self.heard_text(now)
        dropped = len(self._frames)
        self._generation += 1
        self._reset()
        log.debug("cleared at %.3f: dropped %d frames, heard %r", now, dropped, heard)
        return heard

    # --- pausing ---------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def pause(self, now: float) -> None:
        """Hold playback at ``now``, keeping everything queued (a repeated pause is a no-op)."""
        self._advance_time(now)
        if self._paused_at is None:
            self._paused_at = now

    def resume(self, now: float) -> float:
        """Play on from where the pause began; returns how long it lasted (0 if not paused)."""
        self._advance_time(now)
        paused_at = self._paused_at
        if paused_at is None:
            return 0.0
        self._paused_at = None
        held = now - paused_at
        if self._buffered_until > paused_at:
            self._buffered_until += held  # the client's buffer waited with us
        if self._report is not None:
            played, at = self._report
            self._report = (played, at + held if at <= paused_at else paused_at + held)
        return held

    # --- input -----------------------------------------------------------------------

    def enqueue(
        self, pcm: bytes, text_span: str, generation: int | None = None, *, extend: bool = False
    ) -> bool:
        """Queue a segment of audio (PCM16 mono at ``sample_rate``) speaking
        ``text_span``. Returns False, dropping it, if ``generation`` is stale.
        ``extend=True`` appends streamed audio to the last segment (same text)."""
        if generation is not None and generation != self._generation:
            log.debug("dropped %d bytes of stale generation %d", len(pcm), generation)
            return False
        if len(pcm) % SAMPLE_WIDTH:
            raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm)}")
        duration = len(pcm) / SAMPLE_WIDTH / self.sample_rate
        if extend and self._segments:
            last = self._segments[-1]
            self._segments[-1] = _Segment(last.text, last.start, last.duration + duration)
        else:
            self._segments.append(_Segment(text_span.strip(), self._queued_secs, duration))
        self._queued_secs += duration
        step = self.frame_bytes
        self._frames.extend(pcm[i : i + step] for i in range(0, len(pcm), step))
        return True

    def client_played(self, ms: float, now: float) -> None:
        """The client says it has played ``ms`` of this response's audio at ``now``."""
        if not ms >= 0:
            raise ValueError(f"played ms must be >= 0, got {ms}")
        self._advance_time(now)
        self._report = (min(ms / 1000, self._sent_secs), now)

    # --- output ----------------------------------------------------------------------

    def due_frames(self, now: float) -> list[bytes]:
        """The frames to send at ``now`` (oldest first), keeping at most ``lead_ms`` ahead."""
        self._advance_time(now)
        out: list[bytes] = []
        while self._frames and self._paused_at is None:
            frame_secs = self._secs(self._frames[0])
            ahead = self._ahead(now)
            if ahead > _EPS and ahead + frame_secs > self.lead_secs + _EPS:
                break
            out.append(self._frames.popleft())
            self._sent_secs += frame_secs
            self._buffered_until = max(self._buffered_until, now) + frame_secs
        return out

    def next_due(self, now: float) -> float | None:
        """When the next frame will be due (``now`` if already), None if none is queued."""
        if not self._frames:
            return None
        return self.room_at(now, self._secs(self._frames[0]))

    def room_at(self, now: float, secs: float) -> float:
        """When ``secs`` of audio will be due (``now`` if already), queued or not: once
        the client's buffer has fallen to ``lead - secs``, or has run empty."""
        if self._paused_at is not None:
            return math.inf  # nothing is due until resume
        ahead = self._ahead(now)
        if ahead <= _EPS:
            return now
        fits_in_lead = max(0.0, ahead + secs - self.lead_secs)
        return now + min(ahead, fits_in_lead)  # whichever rule of due_frames comes first

    @property
    def frame_secs(self) -> float:
        """The duration of one full frame."""
        return self.frame_bytes / SAMPLE_WIDTH / self.sample_rate

    @property
    def has_queued(self) -> bool:
        """True while audio is queued here (not yet sent)."""
        return bool(self._frames)

    # --- playback truth --------------------------------------------------------------

    def played_secs(self, now: float) -> float:
        """Seconds of this response's audio the client has played by ``now``."""
        if self._paused_at is not None:
            now = min(now, self._paused_at)  # the client holds its buffer while paused
        estimate = self._sent_secs - max(0.0, self._buffered_until - now)
        if self._report is not None:
            played, at = self._report
            estimate = min(estimate, played + max(0.0, now - at))
        return max(0.0, estimate)

    def heard_text(self, now: float) -> str:
        """The text of this response heard by ``now`` (rule in the module docstring)."""
        played = self.played_secs(now)
        parts: list[str] = []
        for seg in self._segments:
            if played >= seg.start + seg.duration - _EPS:
                parts.append(seg.text)
                continue
            if played > seg.start and seg.duration > 0:
                words = seg.text.split()
                fraction = (played - seg.start) / seg.duration
                parts.append(" ".join(words[: math.floor(len(words) * fraction + _EPS)]))
            break
        return " ".join(p for p in parts if p)

    def ahead_secs(self, now: float) -> float:
        """Audio sent that the client has not played by ``now``."""
        return max(0.0, self._ahead(now))

    def drained(self, now: float) -> bool:
        """True when nothing is queued and the client has played everything sent
        (never while paused: the paused response still owns the output)."""
        if self._paused_at is not None:
            return False
        return not self._frames and self.played_secs(now) >= self._sent_secs - _EPS

    @property
    def queued_secs(self) -> float:
        """Audio still queued here (not yet sent)."""
        return sum(self._secs(f) for f in self._frames)

    def _ahead(self, now: float) -> float:
        return self._sent_secs - self.played_secs(now)

    def _secs(self, frame: bytes) -> float:
        return len(frame) / SAMPLE_WIDTH / self.sample_rate

    def _advance_time(self, now: float) -> None:
        if math.isnan(now) or now < self._last_now - 1e-6:
            raise ValueError(f"time went backwards: {now} after {self._last_now}")
        self._last_now = max(self._last_now, now)
