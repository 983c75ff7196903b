"""Preemptive generation: when to start, keep, use or drop a draft reply (sans-I/O).

Theory of operation
-------------------
A voice turn ends some time after the caller falls silent (``stop_secs``, or what the
end-of-turn detector asks for), and only then does the brain start on the reply. With
preemptive generation the brain starts on a *draft* the moment the silence begins —
on the partial transcript heard so far — so when the turn does end, the model's answer
is already under way or done. One instance per voice connection; the loop feeds it
what turn-taking saw and carries out the actions it returns. Nothing here reads a
clock or does I/O.

Inputs: ``pause_started(transcript)`` (a pause has lasted ``voice.draft_after_secs`` —
``VoiceInput`` holds it back until then, so a gap between words starts nothing — or a
newer partial arrived later in it), ``pause_cancelled()`` (the caller spoke on, or the
utterance was dropped), ``turn_ended()`` (the pause ended the turn; the final
transcript follows) and ``final(text)`` (that transcript).

    IDLE ──pause(words)──▶ DRAFTING ──turn ended──▶ ENDED ──final == draft's words──▶ IDLE  UseDraft
      ▲                     │  │                      │
      │                     │  └─pause(other words)───┼──▶ DRAFTING   DropDraft, StartDraft
      └──── cancelled ──────┘      DropDraft          └─final differs / new pause─▶  DropDraft

A draft is used only when the final transcript is exactly the words it was started on
(the recogniser's final decode may differ from its last partial; then the draft is
dropped and the turn runs as without preemption). Dropping leaves no trace: a draft
stores nothing, sends nothing to the client and is never spoken. What a draft may do
is decided where it runs (``parley.brain.draft``): the model's first answer only, no
tool is run until the turn is confirmed. No draft is started while ``blocked`` (a
spoken approval is awaited: the words are an answer, not a request) or when the
transcript has no words.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from parley.voice.end_of_turn import Verdict, transcript_verdict

__all__ = ["DropDraft", "Preemption", "PreemptionAction", "StartDraft", "UseDraft"]


@dataclass(frozen=True, slots=True)
class StartDraft:
    """Start a draft reply to ``text`` (nothing stored, nothing sent)."""

    text: str


@dataclass(frozen=True, slots=True)
class DropDraft:
    """Cancel the running draft and forget it."""


@dataclass(frozen=True, slots=True)
class UseDraft:
    """The turn was ``text``, as the draft assumed: run the turn on the draft."""

    text: str


PreemptionAction = StartDraft | DropDraft | UseDraft


class PreemptionState(enum.Enum):
    IDLE = "idle"  # no draft
    DRAFTING = "drafting"  # a draft runs; the pause is open
    ENDED = "ended"  # a draft runs; the turn ended, its final transcript is awaited


class _Input(enum.Enum):
    PAUSE = "pause with words"
    REDRAFT = "pause with other words"
    CANCELLED = "caller spoke on / utterance dropped"
    TURN_ENDED = "turn ended"
    FINAL = "final transcript"


_S, _I = PreemptionState, _Input
_TRANSITIONS: dict[tuple[PreemptionState, _Input], PreemptionState] = {
    (_S.IDLE, _I.PAUSE): _S.DRAFTING,
    (_S.DRAFTING, _I.REDRAFT): _S.DRAFTING,
    (_S.DRAFTING, _I.CANCELLED): _S.IDLE,
    (_S.DRAFTING, _I.TURN_ENDED): _S.ENDED,
    (_S.ENDED, _I.FINAL): _S.IDLE,
    (_S.ENDED, _I.REDRAFT): _S.DRAFTING,  # a new utterance paused before the final came
    (_S.ENDED, _I.CANCELLED): _S.IDLE,
}


class Preemption:
    """The draft-reply decisions of one voice connection (see the module docstring)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._state = PreemptionState.IDLE
        self._text = ""  # the words the running draft answers

    @property
    def state(self) -> PreemptionState:
        return self._state

    @property
    def text(self) -> str:
        """The words the running draft answers ("" when there is none)."""
        return self._text if self._state is not PreemptionState.IDLE else ""

    def pause_started(self, transcript: str, *, blocked: bool = False) -> list[PreemptionAction]:
        """A pause opened with ``transcript`` heard so far (or a newer partial came)."""
        text = transcript.strip()
        wanted = self.enabled and not blocked and transcript_verdict(text) is not Verdict.UNKNOWN
        if self._state is PreemptionState.IDLE:
            if not wanted:
                return []
            self._move(_I.PAUSE)
            self._text = text
            return [StartDraft(text)]
        if wanted and text == self._text and self._state is PreemptionState.DRAFTING:
            return []  # the same words: the draft stands
        if not wanted:
            self._move(_I.CANCELLED)
            return [DropDraft()]
        self._move(_I.REDRAFT)
        self._text = text
        return [DropDraft(), StartDraft(text)]

    def pause_cancelled(self) -> list[PreemptionAction]:
        """The caller spoke on, or the utterance was dropped: the draft is wrong."""
        if self._state is PreemptionState.IDLE:
            return []
        self._move(_I.CANCELLED)
        return [DropDraft()]

    def turn_ended(self) -> list[PreemptionAction]:
        """The pause ended the turn; keep the draft until its final transcript."""
        if self._state is PreemptionState.DRAFTING:
            self._move(_I.TURN_ENDED)
        return []

    def final(self, text: str) -> list[PreemptionAction]:
        """The ended turn's final transcript: use the draft if it answered these words."""
        if self._state is not PreemptionState.ENDED:
            return []  # no draft for this turn (or one for a newer pause: it stands)
        self._move(_I.FINAL)
        if text.strip() == self._text:
            return [UseDraft(self._text)]
        return [DropDraft()]

    def _move(self, how: _Input) -> None:
        try:
            self._state = _TRANSITIONS[(self._state, how)]
        except KeyError:
            raise RuntimeError(
                f"illegal preemption transition: {how.value!r} in state {self._state.name}"
            ) from None
