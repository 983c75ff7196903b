"""End of turn: how long a pause must last before the user's turn is over (sans-I/O).

Theory of operation
-------------------
``TurnTaking`` in ``smart`` mode consults an ``EndOfTurnDetector`` while the user is
silent (state STOPPING). Instead of one fixed ``stop_secs``, the detector answers
"how much silence, counted from the silence onset, ends this turn?" from three kinds of
evidence, and the turn ends as soon as the silence reaches that figure. The evidence
may change during the pause — a later partial transcript, an audio model's score — so
the answer is recomputed on every frame, partial and score; nothing here reads a clock.

1. **The transcript so far** (``transcript_verdict``): a pure text rule. A trailing
   conjunction, preposition, article, filler, auxiliary or question word ("a table
   for", "and um", "what is the"), a trailing comma or ellipsis, or a number being read
   out ("my number is five five") is ``INCOMPLETE``; any other words are ``COMPLETE``;
   no words yet is ``UNKNOWN``.
2. **An audio end-of-turn model** (optional, e.g. Smart Turn v3): the probability that
   the speech so far ends a turn, judged from how it was said. ``None`` when there is
   no model or its answer has not come back yet.
3. **A maximum wait**, ``max_stop_secs``: every answer is capped by it, so a caller is
   never left hanging whatever the evidence says.

Decision table (waits before the caller's pace is applied; ``ok`` = model score
``>= model_threshold``)::

    transcript \\ model   no model      ok              not ok
    COMPLETE             complete      complete        stop_secs
    UNKNOWN              stop_secs     complete        incomplete
    INCOMPLETE           incomplete    incomplete      incomplete

``complete_secs`` is short (0.2 s) — the point of the detector is to answer sooner —
``stop_secs`` is the plain-silence wait of ``silence`` mode, ``incomplete_secs``
(1.5 s) outlasts a thinking pause. The model is asked once the silence reaches
``complete_secs``; a transcript that reads complete does not wait for its answer (on
the turn-taking corpus the transcript is the better judge, and waiting costs the
inference time), so in practice the model decides the turns with no words yet — a
recogniser without partials, or one that has not caught up. While its answer is
pending such a turn waits at most ``stop_secs``, what ``silence`` mode would. The
model is not asked at all when its answer cannot matter (``TurnTaking`` asks
``score_matters`` first): when the pause ends the turn at the check point anyway (a
complete transcript, or ``stop_secs`` equal to ``complete_secs``), or when the words
read incomplete (the same wait whatever the score; asked later if a newer partial
changes that).

**The caller's pace** (``CallerPace``): each pause of at least ``complete_secs`` that
the caller resumed speaking after (one that did *not* end the turn; shorter gaps are
between words) is remembered as an exponential moving average.
``pace = clamp(average / reference_pause_secs, min_pace, max_pace)`` (documented
bounds 0.7–1.5, 1.0 before any pause was seen) scales ``stop_secs`` and
``incomplete_secs``: a caller who pauses long mid-thought earns patience, a quick one
gets quick answers. ``complete_secs`` is not scaled down below the check point and
``max_stop_secs`` is never exceeded.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass

__all__ = [
    "CallerPace",
    "EndOfTurnConfig",
    "EndOfTurnDetector",
    "Verdict",
    "transcript_verdict",
]


class Verdict(enum.Enum):
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
    UNKNOWN = "unknown"


# Words after which an English sentence is not over.
_CONJUNCTIONS = (
    "and or but so because cause cuz if then than when while although though unless "
    "until whether since nor plus also"
)
_PREPOSITIONS = (
    "for to of with from at in on by about into onto between without after before "
    "around near under over through via per towards toward"
)
_DETERMINERS = (
    "a an the my your his her our their its this these those some any each every another no"
)
_AUXILIARIES = (
    "is are was were am be been being will would can could should shall may might must "
    "do does did have has had want wanna need gonna like i i'm im we we're you're "
    "it's let's there's get give make"
)
_FILLERS = "um uh er erm uhm hmm hm mm ah eh like well"
_QUESTION_WORDS = "what where when which who whom whose why how"
_TRAILING_BIGRAMS = {("you", "know"), ("i", "mean"), ("kind", "of"), ("sort", "of")}

_OPEN_ENDS = frozenset(
    " ".join(
        (_CONJUNCTIONS, _PREPOSITIONS, _DETERMINERS, _AUXILIARIES, _FILLERS, _QUESTION_WORDS)
    ).split()
)
_NUMBER_WORDS = frozenset(
    "zero oh o one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty "
    "seventy eighty ninety hundred thousand double triple".split()
)
_NUMBER_CONTEXT = frozenset(
    "number phone code card account digits zip postcode pin reference order mobile "
    "extension".split()
)
_TOKEN = re.compile(r"[a-z0-9']+")
_MARKER = re.compile(r"[<\[(][^>\])]*[>\])]")  # recogniser markers: <sil>, [noise], (um)


def _is_number(token: str) -> bool:
    return token.isdigit() or token in _NUMBER_WORDS


@functools.lru_cache(maxsize=1024)
def transcript_verdict(text: str) -> Verdict:
    """Does the transcript so far read like a finished turn? (see the module docstring)
    Cached: during a pause the same partial is judged on every 20 ms frame."""
    stripped = _MARKER.sub(" ", text).strip()
    if stripped.endswith((",", "...", "…", "-", "—", ":")):
        return Verdict.INCOMPLETE if _TOKEN.search(stripped.lower()) else Verdict.UNKNOWN
    tokens = _TOKEN.findall(stripped.lower())
    if not tokens:
        return Verdict.UNKNOWN
    if stripped.endswith(("?", ".", "!")):
        return Verdict.COMPLETE
    last = tokens[-1]
    if last in _OPEN_ENDS or tuple(tokens[-2:]) in _TRAILING_BIGRAMS:
        return Verdict.INCOMPLETE
    if _is_number(last):
        trailing = 0
        for token in reversed(tokens):
            if not _is_number(token):
                break
            trailing += 1
        if trailing >= 2 or _NUMBER_CONTEXT.intersection(tokens):
            return Verdict.INCOMPLETE  # digits being read out: more may follow
    return Verdict.COMPLETE


@dataclass(frozen=True, slots=True)
class EndOfTurnConfig:
    """Waits in seconds of silence counted from the silence onset."""

    complete_secs: float = 0.2
    stop_secs: float = 0.5
    incomplete_secs: float = 1.5
    max_stop_secs: float = 2.0
    model_threshold: float = 0.5
    reference_pause_secs: float = 0.8
    min_pace: float = 0.7
    max_pace: float = 1.5
    pace_smoothing: float = 0.5  # weight of the newest pause in the moving average

    def __post_init__(self) -> None:
        if not 0 < self.complete_secs <= self.stop_secs:
            raise ValueError("end-of-turn config: need 0 < complete_secs <= stop_secs")
        if not self.stop_secs <= self.max_stop_secs:
            raise ValueError("end-of-turn config: stop_secs must be <= max_stop_secs")
        if not self.incomplete_secs > 0:
            raise ValueError("end-of-turn config: incomplete_secs must be > 0")
        if not 0.0 <= self.model_threshold <= 1.0:
            raise ValueError("end-of-turn config: model_threshold must be in [0, 1]")
        if not 0 < self.min_pace <= 1.0 <= self.max_pace:
            raise ValueError("end-of-turn config: need 0 < min_pace <= 1 <= max_pace")
        if not self.reference_pause_secs > 0:
            raise ValueError("end-of-turn config: reference_pause_secs must be > 0")
        if not 0 < self.pace_smoothing <= 1:
            raise ValueError("end-of-turn config: pace_smoothing must be in (0, 1]")


class CallerPace:
    """A moving average of the pauses this caller resumed speaking after."""

    def __init__(self, config: EndOfTurnConfig) -> None:
        self._config = config
        self._average: float | None = None

    @property
    def factor(self) -> float:
        """The scale applied to the waits, within ``[min_pace, max_pace]``."""
        if self._average is None:
            return 1.0
        c = self._config
        return min(c.max_pace, max(c.min_pace, self._average / c.reference_pause_secs))

    def pause_resumed(self, pause_secs: float) -> None:
        """The caller was silent ``pause_secs`` and then went on with the same turn."""
        if pause_secs < 0:
            raise ValueError(f"pause_secs must be >= 0, got {pause_secs}")
        if pause_secs < self._config.complete_secs:
            return  # a gap between words, not a pause the detector was consulted on
        if self._average is None:
            self._average = pause_secs
        else:
            w = self._config.pace_smoothing
            self._average = w * pause_secs + (1 - w) * self._average


class EndOfTurnDetector:
    """The end-of-turn decision for one connection (see the module docstring)."""

    def __init__(self, config: EndOfTurnConfig | None = None) -> None:
        self.config = config or EndOfTurnConfig()
        self.pace = CallerPace(self.config)

    def required_silence(
        self, transcript: str, model_score: float | None = None, score_pending: bool = False
    ) -> float:
        """Seconds of silence after which the turn is over, given the evidence so far."""
        c = self.config
        verdict = transcript_verdict(transcript)
        pace = self.pace.factor
        stop = c.stop_secs * pace
        incomplete = c.incomplete_secs * pace
        complete = c.complete_secs
        if model_score is None:
            wait = {
                Verdict.COMPLETE: complete,
                Verdict.UNKNOWN: stop,
                Verdict.INCOMPLETE: incomplete,
            }[verdict]
            if score_pending and verdict is Verdict.UNKNOWN:
                wait = min(stop, c.stop_secs)  # a slow model costs at most stop_secs
        elif model_score >= c.model_threshold:
            wait = incomplete if verdict is Verdict.INCOMPLETE else complete
        else:
            wait = stop if verdict is Verdict.COMPLETE else incomplete
        return min(wait, c.max_stop_secs)

    def score_matters(self, transcript: str) -> bool:
        """Could an audio model's answer change the wait for ``transcript``? (Not for
        words that read incomplete: they wait ``incomplete_secs`` whatever it says.)"""
        return self.required_silence(transcript, 0.0) != self.required_silence(transcript, 1.0)
