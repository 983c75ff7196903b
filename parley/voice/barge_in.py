"""Barge-in policy: when user speech may interrupt the agent (sans-I/O).

Theory of operation
-------------------
The policy watches two things: whether the agent is speaking (one enum,
``AgentState``, driven by ``agent_speaking(bool)``) and the evidence of the user's
current utterance, which ``TurnTaking`` feeds it (``utterance_started``, ``voiced``,
``partial``, ``key_down``, ``utterance_ended``).

An utterance barges in, once per agent response, when the agent is ``SPEAKING`` and

* the user has spoken *continuously* (one voiced run, no unvoiced frame) for at least
  ``min_secs`` — a cough or a click is shorter and never interrupts — **and**
* if ``min_words > 0``, a partial transcript of the utterance has at least
  ``min_words`` words (tokens such as ``<sil>`` or ``[noise]`` do not count).

Both criteria must hold; set ``min_secs=0`` for words only. Evidence is only
counted once the turn-taking machine has confirmed the utterance (``SpeechStarted``),
so the effective minimum duration is ``max(min_secs, start_secs)``. Pressing the
push-to-talk key while the agent speaks is an explicit interruption and barges in at
key-down without evidence.

``BargeIn`` moves the agent to ``INTERRUPTED``: no second barge-in for the same
response, even if its last frames are still draining. The voice loop reports
``agent_speaking(False)`` once it has stopped playback; the next
``agent_speaking(True)`` starts a new, interruptible response.

At the end of an utterance the policy says whether to keep it: speech that ended
while the agent was still ``SPEAKING`` and never barged in (a backchannel, an echo,
noise) is discarded, so it cannot start a turn on top of the agent's own.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class BargeIn:
    """The user interrupted the agent. ``at`` is when it was decided (stop playback
    now); ``speech_onset`` is when the interrupting utterance began."""

    at: float
    speech_onset: float


class AgentState(enum.Enum):
    SILENT = "silent"
    SPEAKING = "speaking"
    INTERRUPTED = "interrupted"


class _AgentInput(enum.Enum):
    STARTED = "agent started speaking"
    STOPPED = "agent stopped speaking"
    BARGE_IN = "barge-in"


# The table is the documentation: anything missing is a bug in the caller.
_AGENT_TRANSITIONS: dict[tuple[AgentState, _AgentInput], AgentState] = {
    (AgentState.SILENT, _AgentInput.STARTED): AgentState.SPEAKING,
    (AgentState.SPEAKING, _AgentInput.STARTED): AgentState.SPEAKING,  # repeated report
    # still draining the interrupted response: it stays interrupted until STOPPED
    (AgentState.INTERRUPTED, _AgentInput.STARTED): AgentState.INTERRUPTED,
    (AgentState.SILENT, _AgentInput.STOPPED): AgentState.SILENT,
    (AgentState.SPEAKING, _AgentInput.STOPPED): AgentState.SILENT,
    (AgentState.INTERRUPTED, _AgentInput.STOPPED): AgentState.SILENT,
    (AgentState.SPEAKING, _AgentInput.BARGE_IN): AgentState.INTERRUPTED,
}


class BargeInError(Exception):
    """An input arrived that the barge-in state table does not allow."""


def count_words(text: str) -> int:
    """Words in a partial transcript; recogniser markers (``<sil>``, ``[noise]``,
    ``(um)``) and bare punctuation are not words."""
    words = 0
    for token in text.split():
        if token[0] in "<[(" and token[-1] in ">])":
            continue
        if any(ch.isalnum() for ch in token):
            words += 1
    return words


class BargeInPolicy:
    """Decides barge-in for one connection; see the module docstring."""

    def __init__(self, min_secs: float = 0.3, min_words: int = 0) -> None:
        if min_secs < 0:
            raise ValueError(f"barge_in_min_secs must be >= 0, got {min_secs}")
        if min_words < 0:
            raise ValueError(f"barge_in_min_words must be >= 0, got {min_words}")
        self.min_secs = min_secs
        self.min_words = min_words
        self._state = AgentState.SILENT
        self._onset: float | None = None  # onset of the current utterance, None outside one
        self._long_enough = False
        self._enough_words = False
        self._interrupted_here = False

    @property
    def state(self) -> AgentState:
        return self._state

    @property
    def echo_guard(self) -> bool:
        """True while agent audio may be reaching the microphone."""
        return self._state is not AgentState.SILENT

    def agent_speaking(self, speaking: bool) -> None:
        self._move(_AgentInput.STARTED if speaking else _AgentInput.STOPPED)

    def utterance_started(self, onset: float) -> None:
        self._onset = onset
        self._long_enough = self.min_secs <= 0
        self._enough_words = self.min_words <= 0
        self._interrupted_here = False

    def voiced(self, run_onset: float, until: float) -> BargeIn | None:
        """The current voiced run has lasted from ``run_onset`` to ``until``."""
        if self._onset is None:
            return None
        if until - run_onset >= self.min_secs - _EPS:
            self._long_enough = True
        return self._maybe_fire(until)

    def partial(self, text: str, now: float) -> BargeIn | None:
        """A partial transcript of the current utterance arrived at ``now``."""
        if self._onset is None:
            return None  # a late partial of an utterance that already ended
        if count_words(text) >= self.min_words:
            self._enough_words = True
        return self._maybe_fire(now)

    def key_down(self, now: float) -> BargeIn | None:
        """Push-to-talk pressed at ``now`` (after ``utterance_started``)."""
        self._long_enough = self._enough_words = True
        return self._maybe_fire(now)

    def utterance_ended(self) -> bool:
        """The current utterance is over; True if it should become a user turn."""
        discard = self._state is AgentState.SPEAKING and not self._interrupted_here
        self._onset = None
        return not discard

    def _maybe_fire(self, now: float) -> BargeIn | None:
        if self._state is not AgentState.SPEAKING or self._onset is None:
            return None
        if not (self._long_enough and self._enough_words):
            return None
        self._move(_AgentInput.BARGE_IN)
        self._interrupted_here = True
        log.debug("barge-in at %.3f (speech from %.3f)", now, self._onset)
        return BargeIn(at=now, speech_onset=self._onset)

    def _move(self, event: _AgentInput) -> None:
        try:
            self._state = _AGENT_TRANSITIONS[(self._state, event)]
        except KeyError:
            raise BargeInError(
                f"illegal barge-in transition: {event.value!r} while the agent is "
                f"{self._state.value}"
            ) from None
