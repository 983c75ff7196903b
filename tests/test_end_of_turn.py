"""Smart end of turn: the transcript rules, the decision table, the caller's pace, and
TurnTaking in smart mode driven frame by frame on injected time."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.config import VoiceSpec
from parley.voice.end_of_turn import (
    CallerPace,
    EndOfTurnConfig,
    EndOfTurnDetector,
    Verdict,
    transcript_verdict,
)
from parley.voice.turn_taking import (
    EndOfTurnCheck,
    SpeechStarted,
    SpeechStopped,
    TurnDetection,
    TurnState,
    TurnTaking,
    TurnTakingConfig,
    TurnTakingEvent,
    UtteranceEnded,
)

FRAME = 0.02
SPEECH, SILENCE = 0.9, 0.05

# --- transcript rules -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "i would like a table for",
        "and um",
        "so i was thinking that and",
        "what is the",
        "can you tell me what",
        "my number is five five five",
        "my phone number is two",
        "it is seven four",
        "i'd like the, ",
        "send it to my...",
        "well you know",
        "book it for <sil> the",
        "um",
    ],
)
def test_open_endings_are_incomplete(text: str) -> None:
    assert transcript_verdict(text) is Verdict.INCOMPLETE


@pytest.mark.parametrize(
    "text",
    [
        "i would like a table for four",
        "book a table for two people",
        "yes please",
        "what time do you open",
        "thank you",
        "a table for four people.",
        "is it open?",
        "HELLO THERE",
    ],
)
def test_finished_sentences_are_complete(text: str) -> None:
    assert transcript_verdict(text) is Verdict.COMPLETE


@pytest.mark.parametrize("text", ["", "   ", "<sil>", "[noise] (um)", ",", "..."])
def test_no_words_is_unknown(text: str) -> None:
    assert transcript_verdict(text) is Verdict.UNKNOWN


# --- decision table ---------------------------------------------------------------------

COMPLETE, UNKNOWN, INCOMPLETE = "a table for four", "", "a table for"


@pytest.mark.parametrize(
    ("transcript", "score", "pending", "wait"),
    [
        (COMPLETE, None, False, 0.2),
        (UNKNOWN, None, False, 0.5),
        (INCOMPLETE, None, False, 1.5),
        (COMPLETE, 0.9, False, 0.2),
        (UNKNOWN, 0.9, False, 0.2),
        (INCOMPLETE, 0.9, False, 1.5),
        (COMPLETE, 0.1, False, 0.5),
        (UNKNOWN, 0.1, False, 1.5),
        (INCOMPLETE, 0.1, False, 1.5),
        (COMPLETE, None, True, 0.2),  # the transcript does not wait for the model
        (UNKNOWN, None, True, 0.5),  # waiting for the model costs at most stop_secs
        (INCOMPLETE, None, True, 1.5),
    ],
)
def test_decision_table(transcript: str, score: float | None, pending: bool, wait: float) -> None:
    detector = EndOfTurnDetector()
    assert detector.required_silence(transcript, score, pending) == pytest.approx(wait)


def test_max_stop_secs_caps_every_wait() -> None:
    detector = EndOfTurnDetector(EndOfTurnConfig(incomplete_secs=5.0, max_stop_secs=1.0))
    assert detector.required_silence(INCOMPLETE) == 1.0
    for _ in range(5):
        detector.pace.pause_resumed(3.0)  # a very patient caller
    assert detector.pace.factor == 1.5
    assert detector.required_silence(INCOMPLETE, 0.0) == 1.0


def test_pace_adapts_within_bounds() -> None:
    config = EndOfTurnConfig()
    pace = CallerPace(config)
    assert pace.factor == 1.0
    pace.pause_resumed(0.05)  # a gap between words: ignored
    assert pace.factor == 1.0
    pace.pause_resumed(0.3)
    assert pace.factor == pytest.approx(0.7)  # 0.3 / 0.8 = 0.375, clamped up to 0.7
    for _ in range(6):
        pace.pause_resumed(1.2)
    assert 1.4 < pace.factor <= 1.5
    detector = EndOfTurnDetector(config)
    detector.pace.pause_resumed(1.2)
    assert detector.required_silence(INCOMPLETE) == 2.0  # 1.5 * 1.5, capped by max_stop_secs
    assert detector.required_silence(UNKNOWN) == pytest.approx(0.5 * 1.5)
    assert detector.required_silence(COMPLETE) == pytest.approx(0.2)  # never slower when done
    with pytest.raises(ValueError, match="pause_secs must be >= 0"):
        pace.pause_resumed(-1)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"complete_secs": 0.6}, "complete_secs <= stop_secs"),
        ({"stop_secs": 3.0}, "stop_secs must be <= max_stop_secs"),
        ({"model_threshold": 2.0}, "model_threshold"),
        ({"min_pace": 1.2}, "min_pace"),
        ({"incomplete_secs": 0}, "incomplete_secs"),
        ({"pace_smoothing": 0}, "pace_smoothing"),
        ({"reference_pause_secs": 0}, "reference_pause_secs"),
    ],
)
def test_bad_detector_config_is_rejected(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EndOfTurnConfig(**fields)


# --- TurnTaking in smart mode -----------------------------------------------------------


class Clock:
    """Drives a TurnTaking with 20 ms frames; ``t`` is the next frame's start."""

    def __init__(self, tt: TurnTaking) -> None:
        self.tt = tt
        self.k = 0
        self.log: list[tuple[float, TurnTakingEvent]] = []

    @property
    def t(self) -> float:
        return round(self.k * FRAME, 6)

    def feed(self, secs: float, prob: float) -> list[TurnTakingEvent]:
        out = []
        for _ in range(round(secs / FRAME)):
            events = self.tt.on_frame(prob, self.t, FRAME)
            self.k += 1
            self.log += [(self.t, e) for e in events]
            out += events
        return out

    def partial(self, text: str) -> list[TurnTakingEvent]:
        events = self.tt.on_partial(text, self.t)
        self.log += [(self.t, e) for e in events]
        return events

    def ended_at(self) -> float:
        """When (frame end time) the UtteranceEnded was emitted."""
        return next(t for t, e in self.log if isinstance(e, UtteranceEnded))


def smart(**fields: Any) -> TurnTaking:
    return TurnTaking(TurnTakingConfig(turn_detection=TurnDetection.SMART, **fields))


def test_a_complete_transcript_ends_the_turn_after_the_short_check() -> None:
    c = Clock(smart())
    c.feed(1.0, SPEECH)
    c.partial("a table for four")
    c.feed(0.18, SILENCE)
    assert c.tt.state is TurnState.STOPPING
    events = c.feed(0.02, SILENCE)
    assert events == [SpeechStopped(at=1.0), UtteranceEnded(0.0, 1.0, 1.0)]
    assert c.ended_at() == pytest.approx(1.2)


def test_a_pause_after_for_is_held_and_the_sentence_goes_on() -> None:
    c = Clock(smart())
    c.feed(1.0, SPEECH)
    c.partial("a table for")
    assert c.feed(1.2, SILENCE) == []  # 1.2 s: silence mode would have ended at 0.5
    c.feed(0.6, SPEECH)
    c.partial("a table for four people")
    c.feed(0.2, SILENCE)
    assert [type(e) for _, e in c.log] == [SpeechStarted, SpeechStopped, UtteranceEnded]
    assert c.log[-1][1] == UtteranceEnded(0.0, 2.8, 2.8)
    assert c.tt.detector.pace.factor == 1.5  # that caller earned patience: 1.2 / 0.8


def test_the_same_pause_ends_the_turn_in_silence_mode() -> None:
    c = Clock(TurnTaking(TurnTakingConfig(turn_detection=TurnDetection.SILENCE)))
    c.feed(1.0, SPEECH)
    c.partial("a table for")
    c.feed(1.2, SILENCE)
    assert c.ended_at() == pytest.approx(1.5)
    c2 = Clock(TurnTaking(TurnTakingConfig(turn_detection=TurnDetection.SILENCE)))
    c2.feed(1.0, SPEECH)
    c2.partial("a table for four")
    c2.feed(0.5, SILENCE)
    assert c2.ended_at() == pytest.approx(1.5)  # no early answer either


def test_an_incomplete_turn_still_ends_at_max_stop_secs() -> None:
    c = Clock(smart(max_stop_secs=1.0))
    c.feed(1.0, SPEECH)
    c.partial("my number is five five")
    c.feed(0.98, SILENCE)
    assert c.tt.state is TurnState.STOPPING
    c.feed(0.02, SILENCE)
    assert c.ended_at() == pytest.approx(2.0)


def test_a_late_partial_that_completes_the_sentence_ends_the_turn_at_once() -> None:
    c = Clock(smart())
    c.feed(1.0, SPEECH)
    c.partial("a table for")
    c.feed(0.3, SILENCE)
    events = c.partial("a table for four")  # the recogniser caught up
    assert events == [SpeechStopped(at=1.0), UtteranceEnded(0.0, 1.0, 1.0)]


def test_no_transcript_and_no_model_waits_stop_secs() -> None:
    c = Clock(smart())
    c.feed(1.0, SPEECH)
    c.feed(0.48, SILENCE)
    assert c.tt.state is TurnState.STOPPING
    c.feed(0.02, SILENCE)
    assert c.ended_at() == pytest.approx(1.5)


def test_audio_model_is_asked_once_per_pause_and_its_score_decides() -> None:
    tt = TurnTaking(TurnTakingConfig(), audio_scores=True)
    c = Clock(tt)
    c.feed(1.0, SPEECH)
    c.feed(0.18, SILENCE)
    assert c.feed(0.02, SILENCE) == [EndOfTurnCheck(at=1.2, started_at=0.0, silence_onset=1.0)]
    assert c.feed(0.04, SILENCE) == []  # waiting for the score, not asked again
    events = tt.on_end_of_turn_score(0.93, c.t)
    assert events == [SpeechStopped(at=1.0), UtteranceEnded(0.0, 1.0, 1.0)]
    assert tt.on_end_of_turn_score(0.9, c.t) == []  # late answer: ignored


def test_a_low_audio_score_holds_the_turn_and_a_new_pause_asks_again() -> None:
    tt = TurnTaking(TurnTakingConfig(), audio_scores=True)
    c = Clock(tt)
    c.feed(1.0, SPEECH)
    c.feed(0.2, SILENCE)
    assert tt.on_end_of_turn_score(0.1, c.t) == []
    assert c.feed(0.8, SILENCE) == []  # 1.0 s of silence, the model said "not done"
    c.feed(0.5, SPEECH)
    checks = [e for e in c.feed(0.2, SILENCE) if isinstance(e, EndOfTurnCheck)]
    assert checks == [EndOfTurnCheck(at=pytest.approx(2.7), started_at=0.0, silence_onset=2.5)]


def test_a_model_that_never_answers_costs_at_most_stop_secs() -> None:
    c = Clock(TurnTaking(TurnTakingConfig(), audio_scores=True))
    c.feed(1.0, SPEECH)
    c.feed(0.5, SILENCE)
    assert c.ended_at() == pytest.approx(1.5)


def test_a_complete_transcript_ends_the_turn_without_asking_the_model() -> None:
    tt = TurnTaking(TurnTakingConfig(), audio_scores=True)
    c = Clock(tt)
    c.feed(1.0, SPEECH)
    c.partial("thank you")
    c.feed(0.2, SILENCE)
    # the turn ends in the check's frame whatever the model says: no call (~55 ms CPU)
    assert [type(e) for _, e in c.log] == [SpeechStarted, SpeechStopped, UtteranceEnded]
    assert c.ended_at() == pytest.approx(1.2)
    assert tt.on_end_of_turn_score(0.1, c.t) == []  # an unasked answer changes nothing


def test_no_check_when_stop_secs_is_the_check_point() -> None:
    """``bench_smart``: stop_secs = complete_secs = 0.2, no words: the pause ends the
    turn at the check point whatever the model would say."""
    tt = TurnTaking(TurnTakingConfig(stop_secs=0.2), audio_scores=True)
    c = Clock(tt)
    c.feed(1.0, SPEECH)
    c.feed(0.2, SILENCE)
    assert [type(e) for _, e in c.log] == [SpeechStarted, SpeechStopped, UtteranceEnded]
    assert c.ended_at() == pytest.approx(1.2)


def test_no_check_while_the_words_read_incomplete_then_one_when_they_stop_doing_so() -> None:
    tt = TurnTaking(TurnTakingConfig(), audio_scores=True)
    c = Clock(tt)
    c.feed(1.0, SPEECH)
    c.partial("a table for")
    assert c.feed(0.3, SILENCE) == []  # incomplete_secs whatever the model says: not asked
    # the recogniser took its words back (a marker only): now the score decides
    assert c.partial("<sil>") == [EndOfTurnCheck(at=1.3, started_at=0.0, silence_onset=1.0)]
    assert c.feed(0.04, SILENCE) == []
    assert tt.on_end_of_turn_score(0.9, c.t) == [SpeechStopped(1.0), UtteranceEnded(0, 1, 1)]


@pytest.mark.parametrize(
    ("fields", "text", "asked"),
    [
        ({}, None, True),  # no words: model ok -> 0.2 s, not ok -> 1.5 s
        ({"stop_secs": 0.3}, None, True),  # ends at 0.3 s if the model is slow
        ({"stop_secs": 0.2}, None, False),  # ends at the check point anyway
        ({}, "thank you", False),
        ({"stop_secs": 0.2}, "thank you", False),
        ({}, "a table for", False),
        ({}, "my number is five five", False),
    ],
)
def test_the_model_is_asked_exactly_when_its_answer_can_matter(
    fields: dict[str, Any], text: str | None, asked: bool
) -> None:
    tt = TurnTaking(TurnTakingConfig(**fields), audio_scores=True)
    c = Clock(tt)
    c.feed(1.0, SPEECH)
    if text is not None:
        c.partial(text)
    events = c.feed(2.0, SILENCE)
    checks = [e for e in events if isinstance(e, EndOfTurnCheck)]
    assert checks == ([EndOfTurnCheck(at=1.2, started_at=0.0, silence_onset=1.0)] if asked else [])
    assert isinstance(events[-1], UtteranceEnded)  # the turn ended all the same


def test_bad_score_is_rejected() -> None:
    with pytest.raises(ValueError, match="end-of-turn score must be in"):
        TurnTaking().on_end_of_turn_score(1.5, 0.0)


def test_partials_outside_an_utterance_are_not_remembered() -> None:
    c = Clock(smart())
    c.partial("a table for")  # stale partial of a turn that is over
    c.feed(1.0, SPEECH)
    c.feed(0.5, SILENCE)
    assert c.ended_at() == pytest.approx(1.5)  # no transcript: stop_secs, not 1.5 s


def test_smart_is_the_agent_default_and_silence_can_be_chosen() -> None:
    assert TurnTakingConfig.from_voice_spec(VoiceSpec()).turn_detection is TurnDetection.SMART
    spec = VoiceSpec(turn_detection="silence", max_stop_secs=3.0, stop_secs=0.7)
    config = TurnTakingConfig.from_voice_spec(spec)
    assert (config.turn_detection, config.max_stop_secs) == (TurnDetection.SILENCE, 3.0)
    eot = config.end_of_turn_config()
    assert (eot.stop_secs, eot.max_stop_secs, eot.complete_secs) == (0.7, 3.0, 0.2)
    # a stop_secs longer than max_stop_secs raises the cap rather than failing
    assert TurnTakingConfig(stop_secs=4.0).end_of_turn_config().max_stop_secs == 4.0
    with pytest.raises(ValueError):
        VoiceSpec(turn_detection="sometimes")


# --- properties -------------------------------------------------------------------------

_TEXTS = ["", "a table for", "a table for four", "and um", "thank you", "my number is five"]


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.2, 0.9]),  # frame score
            st.none() | st.sampled_from(_TEXTS),  # a partial after the frame
            st.none() | st.floats(0.0, 1.0),  # an audio score after the frame
        ),
        max_size=300,
    ),
    audio=st.booleans(),
)
def test_smart_turns_end_between_the_check_and_max_stop_secs(
    steps: list[tuple[float, str | None, float | None]], audio: bool
) -> None:
    """Whatever the evidence, a pause ends the turn no sooner than complete_secs and no
    later than max_stop_secs (plus a frame); events stay well formed."""
    tt = TurnTaking(TurnTakingConfig(max_stop_secs=1.0), audio_scores=audio)
    log: list[tuple[float, TurnTakingEvent]] = []
    silence_onset: float | None = None
    for i, (prob, text, score) in enumerate(steps):
        now, end = round(i * FRAME, 6), round((i + 1) * FRAME, 6)
        state_before = tt.state
        events = tt.on_frame(prob, now, FRAME)
        if state_before is TurnState.SPEAKING and tt.state is TurnState.STOPPING:
            silence_onset = now
        if tt.state is TurnState.STOPPING:
            assert silence_onset is not None
            assert end - silence_onset < 1.0 + FRAME  # max_stop_secs bounds the wait
        if text is not None:
            events += tt.on_partial(text, end)
        if score is not None:
            events += tt.on_end_of_turn_score(score, end)
        log += [(end, e) for e in events]
    open_at = None
    for at, event in log:
        if isinstance(event, SpeechStarted):
            assert open_at is None
            open_at = event.at
        elif isinstance(event, EndOfTurnCheck):
            assert audio and open_at is not None and event.started_at == open_at
            assert event.at - event.silence_onset >= 0.2 - 1e-6
        elif isinstance(event, UtteranceEnded):
            assert open_at is not None and event.started_at == open_at
            assert at - event.ended_at >= 0.2 - 1e-6  # never before the check
            assert at - event.ended_at <= 1.0 + 1e-6
            open_at = None
        elif not isinstance(event, SpeechStopped):
            open_at = None  # a discarded blip
