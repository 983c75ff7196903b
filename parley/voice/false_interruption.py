"""False-interruption recovery: pause the agent on a sound, then resume or cut (sans-I/O).

Theory of operation
-------------------
One instance per voice connection, beside ``TurnTaking``. The loop reports whether the
agent's audio is playing (``agent_started`` / ``agent_stopped``), feeds every audio
frame's VAD score (``on_frame(speech_prob, now, frame_secs)``, ``now`` = the frame's
first sample on the audio timeline) and every partial transcript (``on_partial``), and
says whether the agent is waiting for an answer (``set_expecting_answer``: an approval
or a question is pending). Each call returns the events it caused; nothing here reads a
clock or does I/O.

When the caller makes a sound while the agent speaks, playback is paused at once — the
first ``pause_secs`` of voiced audio (a frame or two, far inside one playout batch) —
instead of cut. Within ``window_secs`` the sound is classified:

* **Real interruption** → ``PlaybackCut``: the partial transcripts hold ``min_words``
  words that are not backchannels (or one fewer once the sound has lasted
  ``word_secs``), counting only the words two successive partials agree on
  (``stable_prefix``: a recogniser that cannot make out a sound flips between short
  unrelated words); or the caller has been voiced for ``cut_secs`` in all; or the
  window ends while the caller is still talking. Words in a partial that arrives more
  than ``partial_grace_secs`` into the silence after the sound are not counted (a
  recogniser fed a noise floor invents short words there). While an answer is
  expected, one stable yes/no word ("yes", "no", "okay", ...) is an answer and cuts at
  once. The loop then cuts as today (truncate to what was heard, ``interrupted``).
* **Not words** → ``PlaybackResumed``: the sound stopped (``resume_silence_secs`` of
  silence) having produced no words, or only backchannel words ("mm-hm", "yeah",
  "okay", "right"); or the window ended in silence. The agent goes on from where it
  paused, nothing lost.

Voicing uses hysteresis like ``TurnTaking``: a frame turns voiced at
``speech_prob >= activation`` (the echo threshold, the agent is speaking) and stays
voiced while ``>= deactivation``. ``window_secs = 0`` switches recovery off: the first
``pause_secs`` of sound cut at once, as before this module.

    IDLE ──agent_started──▶ PLAYING ──sound──▶ PAUSED ──words / long / answer──▶ CUT
      ▲                      │  ▲                │                                 │
      │                      │  └──── resumed ───┘                                 │
      └──── agent_stopped ───┴───────────── agent_stopped ─────────────────────────┘
"""

from __future__ import annotations

import enum
import logging
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from parley.voice.turn_taking import TurnTakingConfig

if TYPE_CHECKING:
    from parley.config import VoiceSpec

log = logging.getLogger(__name__)

_EPS = 1e-6

__all__ = [
    "FalseInterruption",
    "FalseInterruptionConfig",
    "FalseInterruptionError",
    "Playback",
    "PlaybackCut",
    "PlaybackEvent",
    "PlaybackPaused",
    "PlaybackResumed",
    "content_words",
    "is_answer",
    "stable_prefix",
]


# --- events (wire: playback_paused / playback_resumed; a cut is today's interrupted) ---


@dataclass(frozen=True, slots=True)
class PlaybackPaused:
    """Stop sending the agent's audio now, keeping its place (``at``: decision time;
    ``speech_onset``: when the caller's sound began)."""

    at: float
    speech_onset: float


@dataclass(frozen=True, slots=True)
class PlaybackResumed:
    """It was not an interruption: play on from where the audio paused."""

    at: float
    paused_secs: float


@dataclass(frozen=True, slots=True)
class PlaybackCut:
    """A real interruption: cut the agent's response as a barge-in does."""

    at: float
    speech_onset: float


PlaybackEvent = PlaybackPaused | PlaybackResumed | PlaybackCut


# --- words ------------------------------------------------------------------------------

_BACKCHANNEL = frozenset(
    "mm mmm mhm mm-hm mm-hmm hm hmm uh-huh uhhuh uh huh um ah oh yeah yes yep yup ok okay "
    "right sure alright cool great nice wow really true exactly indeed".split()
)
_ANSWERS = frozenset(
    "yes yeah yep yup sure okay ok alright correct right no nope nah please cancel stop".split()
)
_TOKEN = re.compile(r"[a-z0-9'-]+")
_MARKER = re.compile(r"[<\[(][^>\])]*[>\])]")  # <sil>, [noise], (um)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(_MARKER.sub(" ", text).lower())


def stable_prefix(previous: str, text: str) -> str:
    """The words two successive partials agree on, from the start: a recogniser that
    cannot make out a sound flips between unrelated short words ("the" → "we to" →
    "it you"); real words persist from one partial to the next."""
    old, new = _tokens(previous), _tokens(text)
    n = 0
    while n < min(len(old), len(new)) and old[n] == new[n]:
        n += 1
    return " ".join(new[:n])


def is_answer(text: str) -> bool:
    """Holds a yes/no-style answer ("yes", "okay", "no", "cancel")."""
    return any(t in _ANSWERS for t in _tokens(text))


def content_words(text: str, expecting_answer: bool = False) -> int:
    """Words in a partial transcript that make an interruption: not backchannels
    ("mm-hm", "yeah", "okay") — unless an answer is expected, then a yes/no counts."""
    tokens = _tokens(text)
    if expecting_answer:
        return sum(1 for t in tokens if t in _ANSWERS or t not in _BACKCHANNEL)
    return sum(1 for t in tokens if t not in _BACKCHANNEL)


# --- configuration ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FalseInterruptionConfig:
    window_secs: float = 1.0  # voice.false_interruption_secs; 0 = cut at once
    pause_secs: float = 0.04
    resume_silence_secs: float = 0.3
    cut_secs: float = 0.8
    word_secs: float = 0.5
    min_words: int = 3
    partial_grace_secs: float = 0.1
    activation: float = 0.7
    deactivation: float = 0.35

    def __post_init__(self) -> None:
        for name in (
            "window_secs",
            "pause_secs",
            "resume_silence_secs",
            "cut_secs",
            "word_secs",
            "partial_grace_secs",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"false-interruption config: {name} must be >= 0")
        if self.min_words < 2:
            raise ValueError("false-interruption config: min_words must be >= 2")
        if not 0 < self.deactivation <= self.activation <= 1:
            raise ValueError("false-interruption config: need 0 < deactivation <= activation <= 1")

    @classmethod
    def from_voice_spec(cls, spec: VoiceSpec) -> FalseInterruptionConfig:
        """From an agent's ``voice:`` section: ``false_interruption_secs`` is the window;
        voicing uses the turn-taking thresholds while the agent speaks
        (``echo_activation``, ``deactivation``)."""
        turn = TurnTakingConfig.from_voice_spec(spec)
        return cls(
            window_secs=spec.false_interruption_secs,
            activation=turn.echo_activation,
            deactivation=turn.deactivation,
        )


# --- state machine ----------------------------------------------------------------------


class Playback(enum.Enum):
    IDLE = "idle"  # the agent is not speaking
    PLAYING = "playing"
    PAUSED = "paused"  # a sound is being classified
    CUT = "cut"  # interrupted; draining until agent_stopped


class _In(enum.Enum):
    STARTED = "agent started"
    STOPPED = "agent stopped"
    SOUND = "sound while playing"
    RESUME = "not an interruption"
    CUT = "real interruption"


_P = Playback
# The table is the documentation: a pair that is not here is an illegal transition.
_TRANSITIONS: dict[tuple[Playback, _In], Playback] = {
    (_P.IDLE, _In.STARTED): _P.PLAYING,
    (_P.PLAYING, _In.STARTED): _P.PLAYING,  # repeated report
    (_P.PAUSED, _In.STARTED): _P.PAUSED,
    (_P.CUT, _In.STARTED): _P.CUT,  # still draining the cut response
    (_P.IDLE, _In.STOPPED): _P.IDLE,
    (_P.PLAYING, _In.STOPPED): _P.IDLE,
    (_P.PAUSED, _In.STOPPED): _P.IDLE,
    (_P.CUT, _In.STOPPED): _P.IDLE,
    (_P.PLAYING, _In.SOUND): _P.PAUSED,
    (_P.PAUSED, _In.RESUME): _P.PLAYING,
    (_P.PAUSED, _In.CUT): _P.CUT,
    (_P.PLAYING, _In.CUT): _P.CUT,  # window_secs = 0: no pause, cut at once
}


class FalseInterruptionError(Exception):
    """An input the playback state table does not allow."""


class FalseInterruption:
    """Pause / resume / cut decisions for one connection (see the module docstring)."""

    def __init__(self, config: FalseInterruptionConfig | None = None) -> None:
        self.config = config or FalseInterruptionConfig()
        self._state = Playback.IDLE
        self._expecting_answer = False
        self._last_now = -math.inf
        self._voiced = False
        self._run_onset = 0.0  # start of the current voiced run while PLAYING
        self._onset = 0.0  # start of the sound that paused playback
        self._paused_at = 0.0
        self._voiced_secs = 0.0  # voiced time since the sound began
        self._silence_onset: float | None = None  # start of the current silence, PAUSED
        self._words = 0
        self._last_partial = ""

    @property
    def state(self) -> Playback:
        return self._state

    # --- inputs -----------------------------------------------------------------------

    def agent_started(self, now: float) -> None:
        self._advance(now)
        self._move(_In.STARTED)

    def agent_stopped(self, now: float) -> None:
        """Playback finished or was cleared; a paused response that ends is over too."""
        self._advance(now)
        self._move(_In.STOPPED)

    def set_expecting_answer(self, expecting: bool) -> None:
        """An approval or a question is pending: a yes/no is an answer, not a backchannel."""
        self._expecting_answer = expecting

    def on_frame(self, speech_prob: float, now: float, frame_secs: float) -> list[PlaybackEvent]:
        if not 0.0 <= speech_prob <= 1.0 or math.isnan(speech_prob):
            raise ValueError(f"speech_prob must be in [0, 1], got {speech_prob}")
        if not frame_secs > 0:
            raise ValueError(f"frame_secs must be > 0, got {frame_secs}")
        self._advance(now)
        c = self.config
        threshold = c.deactivation if self._voiced else c.activation
        was_voiced, self._voiced = self._voiced, speech_prob >= threshold
        end = now + frame_secs
        if self._state is Playback.PLAYING:
            if not self._voiced:
                return []
            if not was_voiced:
                self._run_onset = now
            if end - self._run_onset < c.pause_secs - _EPS:
                return []
            return self._sound(end)
        if self._state is not Playback.PAUSED:
            return []
        if self._voiced:
            self._voiced_secs += frame_secs
            self._silence_onset = None
        elif self._silence_onset is None:
            self._silence_onset = now
        return self._decide(end)

    def on_partial(self, text: str, now: float) -> list[PlaybackEvent]:
        """A partial transcript of the caller's current sound."""
        self._advance(now)
        if self._state is not Playback.PAUSED:
            return []
        quiet_since = self._silence_onset
        if quiet_since is not None and now - quiet_since > self.config.partial_grace_secs + _EPS:
            return self._decide(now)  # words "heard" in the silence after the sound: noise
        stable = stable_prefix(self._last_partial, text)
        self._last_partial = text
        self._words = max(self._words, content_words(stable, self._expecting_answer))
        if self._expecting_answer and is_answer(stable):
            return self._cut(now)  # "yes" to a pending question is the caller's turn
        return self._decide(now)

    # --- decisions --------------------------------------------------------------------

    def _sound(self, end: float) -> list[PlaybackEvent]:
        self._onset = self._run_onset
        if self.config.window_secs <= 0:
            self._move(_In.CUT)
            return [PlaybackCut(end, self._onset)]
        self._move(_In.SOUND)
        self._paused_at = end
        self._voiced_secs = end - self._onset
        self._silence_onset = None
        self._words = 0
        self._last_partial = ""
        log.debug("playback paused at %.3f (sound from %.3f)", end, self._onset)
        return [PlaybackPaused(end, self._onset)]

    def _decide(self, now: float) -> list[PlaybackEvent]:
        c = self.config
        words_cut = self._words >= c.min_words or (
            self._words >= c.min_words - 1 and self._voiced_secs >= c.word_secs - _EPS
        )
        if words_cut or self._voiced_secs >= c.cut_secs - _EPS:
            return self._cut(now)
        quiet_for = 0.0 if self._silence_onset is None else now - self._silence_onset
        if quiet_for >= c.resume_silence_secs - _EPS:
            return self._resume(now)  # the sound is over and said nothing
        if now - self._paused_at >= c.window_secs - _EPS:
            return self._cut(now) if self._silence_onset is None else self._resume(now)
        return []

    def _cut(self, now: float) -> list[PlaybackEvent]:
        self._move(_In.CUT)
        log.debug("interruption confirmed at %.3f (%d words)", now, self._words)
        return [PlaybackCut(now, self._onset)]

    def _resume(self, now: float) -> list[PlaybackEvent]:
        self._move(_In.RESUME)
        self._voiced = False
        log.debug("false interruption: resumed at %.3f", now)
        return [PlaybackResumed(now, now - self._paused_at)]

    def _move(self, how: _In) -> None:
        try:
            self._state = _TRANSITIONS[(self._state, how)]
        except KeyError:
            raise FalseInterruptionError(
                f"illegal playback transition: {how.value!r} in state {self._state.name}"
            ) from None

    def _advance(self, now: float) -> None:
        if math.isnan(now) or now < self._last_now - _EPS:
            raise ValueError(f"time went backwards: {now} after {self._last_now}")
        self._last_now = max(self._last_now, now)
