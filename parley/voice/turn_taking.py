"""Turn-taking: when the user starts and stops talking (sans-I/O state machine).

Theory of operation
-------------------
One instance per voice connection. The voice loop feeds it, in time order, one call
per audio frame — ``on_frame(speech_prob, now, frame_secs)`` where ``now`` is the
time of the frame's *first* sample and the frame spans ``[now, now + frame_secs)`` —
plus push-to-talk keys, partial transcripts and whether the agent is speaking. Every
call returns the events it caused; nothing here reads a clock or does I/O. The loop
should use the audio's own timeline (samples received / sample rate) for ``now``.

Hands-free mode. A frame is *voiced* with hysteresis: it turns voiced at
``speech_prob >= activation`` and stays voiced until ``speech_prob < deactivation``.
While the agent speaks, ``echo_activation`` (higher) replaces ``activation`` so the
agent's own voice leaking into the microphone is less likely to count as speech.

    QUIET ──voiced──▶ STARTING ──voiced for start_secs──▶ SPEAKING ──unvoiced──▶ STOPPING
      ▲                  │                                   ▲                      │  │
      └──── unvoiced ────┘                                   └─────── voiced ───────┘  │
      ▲                                                                                │
      └──────────────────────────── unvoiced for stop_secs ────────────────────────────┘

* ``SpeechStarted(at=onset)`` when STARTING is confirmed; a shorter blip yields nothing.
* After ``stop_secs`` of silence: ``SpeechStopped(at=silence onset)`` and then
  ``UtteranceEnded(started_at, ended_at, duration)`` — or ``UtteranceDiscarded`` when
  the utterance (onset to silence onset) is shorter than ``min_utterance_secs``, or when
  it was spoken over the agent without barging in (see ``barge_in``). Every
  ``SpeechStarted`` is followed by exactly one ``SpeechStopped`` and one
  ``UtteranceEnded`` / ``UtteranceDiscarded``.

Push-to-talk mode. VAD never opens or ends a turn; frames while the key is up are
ignored. ``ptt_down`` opens the turn at once (QUIET → SPEAKING, ``SpeechStarted`` at
key-down; a ``BargeIn`` if the agent is speaking); ``ptt_up`` ends it exactly at key-up
(SPEAKING → QUIET, ``SpeechStopped`` and ``UtteranceEnded`` at key-up). A push-to-talk
turn that received audio always ends with ``UtteranceEnded`` — no minimum duration,
speech detection or agent-speaking rule — so the recogniser decides whether anything
was said; a key press with no audio frame at all gives ``UtteranceDiscarded``
(``no_audio``). A repeated ``ptt_down`` while the key is held is ignored (keyboard
auto-repeat); ``ptt_up`` without a key-down, or either key in hands-free mode, raises.

Barge-in. ``set_agent_speaking`` tells the machine whether the agent's audio is
playing; the ``BargeInPolicy`` (``parley.voice.barge_in``) then turns long enough user
speech (``barge_in_min_secs`` of one voiced run, and ``barge_in_min_words`` of partial
transcript when set) into one ``BargeIn`` per agent response, emitted by ``on_frame``,
``on_partial`` or ``ptt_down``. The user's utterance goes on and ends as usual.

Turn detection. With ``turn_detection=silence`` a pause ends the turn after exactly
``stop_secs``, as drawn above. With ``smart`` the STOPPING → QUIET edge is taken when
the silence reaches what an ``EndOfTurnDetector`` (``parley.voice.end_of_turn``) asks
for, recomputed on every frame, partial transcript (``on_partial``) and audio score:
0.2 s after a transcript that reads complete, up to ``max_stop_secs`` after "a table
for...". When the loop has an audio end-of-turn model (``audio_scores=True``), the
machine emits at most one ``EndOfTurnCheck`` per pause once the silence reaches the
detector's ``complete_secs`` — only when the answer can change the decision: not when
the turn ends in that frame anyway (the words read complete, or ``stop_secs`` equals
``complete_secs``), nor while the words read incomplete (``score_matters``); the
model costs ~55 ms of CPU a call. The loop scores the utterance's audio and answers with
``on_end_of_turn_score`` (a late answer for a pause that is over is ignored). A pause
the caller resumes speaking after is reported to the detector's ``CallerPace``. With
no partials and no model, ``smart`` waits ``stop_secs`` like ``silence``.

Pause deadline (wall clock). ``now`` is the audio's own timeline, so a client that
stops sending frames mid-pause (audio gated on a button, a phone leg whose media
pauses) would leave the turn open for ever. While hands-free and STOPPING,
``pause_onset`` is the silence onset; the loop arms a timer on its own clock for
``pause_deadline_secs`` (the longest wait, ``max(max_stop_secs, stop_secs)``, in either
mode) and calls ``on_pause_deadline(onset, now)`` when it fires. If that pause is still
open the turn ends at its silence onset by the usual rules; a deadline of a pause the
caller resumed after (or that has ended) is ignored.

Switching mode (``set_mode``) closes an open turn first, by the rules of the old mode,
at ``now``: a STARTING blip is dropped, an utterance ends at ``now`` (or at the silence
onset if it was STOPPING), a held key is released at ``now``.
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass
from typing import Literal

from parley.voice.barge_in import AgentState, BargeIn, BargeInPolicy
from parley.voice.end_of_turn import EndOfTurnDetector
from parley.voice.turn_config import Mode, TurnDetection, TurnTakingConfig

__all__ = [
    "EndOfTurnCheck",
    "Mode",
    "SpeechStarted",
    "SpeechStopped",
    "TurnDetection",
    "TurnState",
    "TurnTaking",
    "TurnTakingConfig",
    "TurnTakingError",
    "TurnTakingEvent",
    "UtteranceDiscarded",
    "UtteranceEnded",
]

log = logging.getLogger(__name__)

_EPS = 1e-6  # seconds; far below any audio frame, far above float noise


# --- events --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The user started speaking at ``at`` (the onset, before confirmation)."""

    at: float


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The user stopped speaking at ``at`` (the silence onset, or key-up)."""

    at: float


@dataclass(frozen=True, slots=True)
class UtteranceEnded:
    """A user turn is complete: transcribe it and answer."""

    started_at: float
    ended_at: float
    duration: float


DiscardReason = Literal["too_short", "agent_speaking", "no_audio"]


@dataclass(frozen=True, slots=True)
class UtteranceDiscarded:
    """An utterance that must not become a turn (cancel its transcription)."""

    started_at: float
    ended_at: float
    duration: float
    reason: DiscardReason


@dataclass(frozen=True, slots=True)
class EndOfTurnCheck:
    """Smart mode with an audio model: score the utterance's audio from ``started_at``
    to ``silence_onset`` and answer with ``TurnTaking.on_end_of_turn_score``."""

    at: float
    started_at: float
    silence_onset: float


TurnTakingEvent = (
    SpeechStarted | SpeechStopped | UtteranceEnded | UtteranceDiscarded | BargeIn | EndOfTurnCheck
)


# --- state machine -------------------------------------------------------------------


class TurnState(enum.Enum):
    QUIET = "quiet"
    STARTING = "starting"
    SPEAKING = "speaking"
    STOPPING = "stopping"


class _Input(enum.Enum):
    VOICE_ONSET = "voiced frame"
    ONSET_CONFIRMED = "voiced for start_secs"
    ONSET_REJECTED = "unvoiced before start_secs"
    SILENCE_ONSET = "unvoiced frame"
    VOICE_RESUMED = "voiced again"
    SILENCE_CONFIRMED = "unvoiced for stop_secs (smart: as long as the detector asks)"
    PAUSE_DEADLINE = "no audio ended the pause by its wall-clock deadline"
    KEY_DOWN = "ptt_down"
    KEY_UP = "ptt_up"
    CLOSED = "mode switch"


_S, _I = TurnState, _Input
# The table is the documentation: a pair that is not here is an illegal transition.
_TRANSITIONS: dict[tuple[TurnState, _Input], TurnState] = {
    # hands-free
    (_S.QUIET, _I.VOICE_ONSET): _S.STARTING,
    (_S.STARTING, _I.ONSET_CONFIRMED): _S.SPEAKING,
    (_S.STARTING, _I.ONSET_REJECTED): _S.QUIET,
    (_S.SPEAKING, _I.SILENCE_ONSET): _S.STOPPING,
    (_S.STOPPING, _I.VOICE_RESUMED): _S.SPEAKING,
    (_S.STOPPING, _I.SILENCE_CONFIRMED): _S.QUIET,
    (_S.STOPPING, _I.PAUSE_DEADLINE): _S.QUIET,
    # push-to-talk
    (_S.QUIET, _I.KEY_DOWN): _S.SPEAKING,
    (_S.SPEAKING, _I.KEY_UP): _S.QUIET,
    # a mode switch closes whatever is open
    (_S.STARTING, _I.CLOSED): _S.QUIET,
    (_S.SPEAKING, _I.CLOSED): _S.QUIET,
    (_S.STOPPING, _I.CLOSED): _S.QUIET,
}


class TurnTakingError(Exception):
    """An input that the current state or mode does not allow."""


class TurnTaking:
    """Turn-taking and barge-in for one voice connection (see the module docstring)."""

    def __init__(
        self,
        config: TurnTakingConfig | None = None,
        mode: Mode | str = Mode.HANDS_FREE,
        *,
        detector: EndOfTurnDetector | None = None,
        audio_scores: bool = False,
    ) -> None:
        self.config = config or TurnTakingConfig()
        self._smart = self.config.turn_detection is TurnDetection.SMART
        self.detector = detector or EndOfTurnDetector(self.config.end_of_turn_config())
        self._audio_scores = audio_scores
        self._transcript = ""  # latest partial transcript of the open utterance
        self._score: float | None = None  # audio end-of-turn score for this pause
        self._score_asked = False
        self._moot_for: str | None = None  # words this pause's score cannot matter for
        self._mode = _parse_mode(mode)
        self._state = TurnState.QUIET
        self._barge = BargeInPolicy(self.config.barge_in_min_secs, self.config.barge_in_min_words)
        self._last_now = -math.inf
        self._onset = 0.0  # start of the current utterance (or STARTING blip)
        self._run_onset = 0.0  # start of the current voiced run
        self._silence_onset = 0.0  # start of the current STOPPING pause
        self._ptt_audio = False  # a frame arrived while the key was held

    @property
    def state(self) -> TurnState:
        return self._state

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def agent_state(self) -> AgentState:
        return self._barge.state

    @property
    def pause_onset(self) -> float | None:
        """The silence onset of the open hands-free pause (STOPPING), else None."""
        return self._silence_onset if self._state is TurnState.STOPPING else None

    @property
    def pause_deadline_secs(self) -> float:
        """The longest a pause can keep a turn open: ``max(max_stop_secs, stop_secs)``."""
        return self.detector.config.max_stop_secs

    @property
    def transcript(self) -> str:
        """The latest partial transcript of the open utterance ("" before any)."""
        return self._transcript

    # --- inputs ----------------------------------------------------------------------

    def on_frame(self, speech_prob: float, now: float, frame_secs: float) -> list[TurnTakingEvent]:
        """One audio frame starting at ``now``, ``frame_secs`` long, with its VAD score."""
        if not 0.0 <= speech_prob <= 1.0 or math.isnan(speech_prob):
            raise ValueError(f"speech_prob must be in [0, 1], got {speech_prob}")
        if not frame_secs > 0:
            raise ValueError(f"frame_secs must be > 0, got {frame_secs}")
        self._advance_time(now)
        if self._mode is Mode.PUSH_TO_TALK:
            if self._state is TurnState.SPEAKING:
                self._ptt_audio = True
            return []
        return self._hands_free_frame(speech_prob, now, now + frame_secs)

    def on_partial(self, text: str, now: float) -> list[TurnTakingEvent]:
        """A partial transcript of the current utterance (barge-in words, smart turns)."""
        self._advance_time(now)
        if self._state in (TurnState.SPEAKING, TurnState.STOPPING):
            self._transcript = text
        barge = self._barge.partial(text, now)
        events: list[TurnTakingEvent] = [barge] if barge else []
        if self._smart and self._state is TurnState.STOPPING:
            events += self._check_silence(now)  # the new words may settle the pause
        return events

    def on_end_of_turn_score(self, score: float, now: float) -> list[TurnTakingEvent]:
        """The audio model's answer to the last ``EndOfTurnCheck`` (probability that the
        turn is complete); ignored when that pause is already over."""
        if not 0.0 <= score <= 1.0 or math.isnan(score):
            raise ValueError(f"end-of-turn score must be in [0, 1], got {score}")
        self._advance_time(now)
        if self._state is not TurnState.STOPPING or not self._score_asked:
            return []
        self._score = score
        return self._check_silence(now)

    def on_pause_deadline(self, silence_onset: float, now: float) -> list[TurnTakingEvent]:
        """The wall-clock deadline of the pause that began at ``silence_onset`` passed
        with no audio ending it: end the turn there (ignored if that pause is over)."""
        self._advance_time(now)
        if self.pause_onset is None or abs(self._silence_onset - silence_onset) > _EPS:
            return []
        log.debug("pause at %.3f outlasted its deadline with no audio", silence_onset)
        return self._finish(self._silence_onset, _I.PAUSE_DEADLINE)

    def ptt_down(self, now: float) -> list[TurnTakingEvent]:
        self._require_ptt("ptt_down")
        self._advance_time(now)
        if self._state is TurnState.SPEAKING:
            return []  # auto-repeat of a held key
        self._move(_I.KEY_DOWN)
        self._onset = now
        self._transcript = ""
        self._ptt_audio = False
        self._barge.utterance_started(now)
        events: list[TurnTakingEvent] = [SpeechStarted(at=now)]
        barge = self._barge.key_down(now)
        if barge:
            events.append(barge)
        return events

    def ptt_up(self, now: float) -> list[TurnTakingEvent]:
        self._require_ptt("ptt_up")
        if self._state is not TurnState.SPEAKING:
            raise TurnTakingError("ptt_up without ptt_down: the talk key is not held")
        self._advance_time(now)
        return self._finish(now, _I.KEY_UP)

    def set_mode(self, mode: Mode | str, now: float) -> list[TurnTakingEvent]:
        """Switch between hands-free and push-to-talk, closing any open turn at ``now``."""
        new_mode = _parse_mode(mode)
        self._advance_time(now)
        if new_mode is self._mode:
            return []
        events: list[TurnTakingEvent] = []
        if self._state is TurnState.STARTING:
            self._move(_I.CLOSED)
        elif self._state is TurnState.STOPPING:
            events = self._finish(self._silence_onset, _I.CLOSED)
        elif self._state is TurnState.SPEAKING:
            events = self._finish(now, _I.CLOSED)
        log.debug("turn-taking mode %s -> %s", self._mode, new_mode)
        self._mode = new_mode
        return events

    def set_agent_speaking(self, speaking: bool, now: float) -> None:
        """The agent's audio started (True) or has stopped / was cleared (False)."""
        self._advance_time(now)
        self._barge.agent_speaking(speaking)

    # --- hands-free ------------------------------------------------------------------

    def _hands_free_frame(self, prob: float, now: float, end: float) -> list[TurnTakingEvent]:
        activation = (
            self.config.echo_activation if self._barge.echo_guard else self.config.activation
        )
        voiced_now = prob >= activation
        still_voiced = prob >= self.config.deactivation
        state = self._state
        if state is TurnState.QUIET:
            if not voiced_now:
                return []
            self._move(_I.VOICE_ONSET)
            self._onset = self._run_onset = now
            return self._check_onset(end)
        if state is TurnState.STARTING:
            if not still_voiced:
                self._move(_I.ONSET_REJECTED)
                return []
            return self._check_onset(end)
        if state is TurnState.SPEAKING:
            if still_voiced:
                return self._voiced(end)
            self._move(_I.SILENCE_ONSET)
            self._silence_onset = now
            self._score, self._score_asked, self._moot_for = None, False, None
            return self._check_silence(end)
        # STOPPING
        if voiced_now:
            self._move(_I.VOICE_RESUMED)
            self.detector.pace.pause_resumed(now - self._silence_onset)
            self._run_onset = now
            return self._voiced(end)
        return self._check_silence(end)

    def _check_onset(self, end: float) -> list[TurnTakingEvent]:
        if end - self._onset < self.config.start_secs - _EPS:
            return []
        self._move(_I.ONSET_CONFIRMED)
        self._transcript = ""
        self._barge.utterance_started(self._onset)
        return [SpeechStarted(at=self._onset), *self._voiced(end)]

    def _voiced(self, end: float) -> list[TurnTakingEvent]:
        barge = self._barge.voiced(self._run_onset, end)
        return [barge] if barge else []

    def _check_silence(self, end: float) -> list[TurnTakingEvent]:
        silence = end - self._silence_onset
        if not self._smart:
            if silence < self.config.stop_secs - _EPS:
                return []
            return self._finish(self._silence_onset, _I.SILENCE_CONFIRMED)
        detector = self.detector
        check_at = detector.config.complete_secs
        if self._audio_scores and not self._score_asked and silence >= check_at - _EPS:
            # Ask only when the answer can matter: not when the pause ends in this very
            # frame whatever the model says (its answer would come too late), nor when
            # no score changes the wait for these words (asked later if they change).
            if silence >= detector.required_silence(self._transcript, None, True) - _EPS:
                return self._finish(self._silence_onset, _I.SILENCE_CONFIRMED)
            if self._transcript != self._moot_for and detector.score_matters(self._transcript):
                self._score_asked = True
                return [EndOfTurnCheck(end, self._onset, self._silence_onset)]
            self._moot_for = self._transcript
        pending = self._score_asked and self._score is None
        required = detector.required_silence(self._transcript, self._score, pending)
        if silence < required - _EPS:
            return []
        return self._finish(self._silence_onset, _I.SILENCE_CONFIRMED)

    # --- shared ----------------------------------------------------------------------

    def _finish(self, ended_at: float, how: _Input) -> list[TurnTakingEvent]:
        """Close the open utterance at ``ended_at`` by the current mode's rules."""
        self._move(how)
        keep = self._barge.utterance_ended()
        start = self._onset
        duration = max(0.0, ended_at - start)
        reason: DiscardReason | None = None
        if self._mode is Mode.PUSH_TO_TALK:
            reason = None if self._ptt_audio else "no_audio"
        elif not keep:
            reason = "agent_speaking"
        elif duration < self.config.min_utterance_secs - _EPS:
            reason = "too_short"
        end_event: TurnTakingEvent
        if reason is None:
            end_event = UtteranceEnded(started_at=start, ended_at=ended_at, duration=duration)
        else:
            end_event = UtteranceDiscarded(start, ended_at, duration, reason)
        log.debug("utterance %.3f-%.3f: %s", start, ended_at, reason or "ended")
        return [SpeechStopped(at=ended_at), end_event]

    def _move(self, how: _Input) -> None:
        try:
            self._state = _TRANSITIONS[(self._state, how)]
        except KeyError:
            raise TurnTakingError(
                f"illegal turn-taking transition: {how.value!r} in state {self._state.name}"
            ) from None

    def _advance_time(self, now: float) -> None:
        if math.isnan(now) or now < self._last_now - _EPS:
            raise ValueError(f"time went backwards: {now} after {self._last_now}")
        self._last_now = max(self._last_now, now)

    def _require_ptt(self, what: str) -> None:
        if self._mode is not Mode.PUSH_TO_TALK:
            raise TurnTakingError(
                f"{what} in {self._mode} mode: switch to push_to_talk first (set_mode)"
            )


def _parse_mode(mode: Mode | str) -> Mode:
    try:
        return Mode(mode)
    except ValueError:
        choices = ", ".join(m.value for m in Mode)
        raise ValueError(f"unknown turn-taking mode {mode!r} (choose {choices})") from None
