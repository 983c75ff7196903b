"""Turn-taking and barge-in: scripted frame-by-frame timelines with injected time."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.config import VoiceSpec
from parley.voice.barge_in import (
    _AGENT_TRANSITIONS,
    AgentState,
    BargeIn,
    BargeInError,
    BargeInPolicy,
    _AgentInput,
    count_words,
)
from parley.voice.turn_taking import (
    _TRANSITIONS,
    Mode,
    SpeechStarted,
    SpeechStopped,
    TurnState,
    TurnTaking,
    TurnTakingConfig,
    TurnTakingError,
    TurnTakingEvent,
    UtteranceDiscarded,
    UtteranceEnded,
    _Input,
)

FRAME = 0.02
SPEECH, SILENCE = 0.9, 0.05


def norm(event: Any) -> Any:
    """The event with its float fields rounded to the microsecond."""
    values = {
        f.name: round(v, 6) if isinstance(v := getattr(event, f.name), float) else v
        for f in dataclasses.fields(event)
    }
    return type(event)(**values)


class Timeline:
    """Feeds 20 ms frames to a TurnTaking; records (time the event was emitted, event)."""

    def __init__(self, tt: TurnTaking | None = None, frame: float = FRAME) -> None:
        self.tt = tt or TurnTaking()
        self.frame = frame
        self.k = 0  # index of the next frame

    @property
    def now(self) -> float:
        return round(self.k * self.frame, 6)

    def feed(self, secs: float, prob: float) -> list[tuple[float, TurnTakingEvent]]:
        frames = round(secs / self.frame)
        assert abs(frames * self.frame - secs) < 1e-9, "use whole frames"
        out = []
        for _ in range(frames):
            start = self.k * self.frame
            for event in self.tt.on_frame(prob, start, self.frame):
                out.append((round(start + self.frame, 6), norm(event)))
            self.k += 1
        return out

    def events(self, *segments: tuple[float, float]) -> list[tuple[float, TurnTakingEvent]]:
        out = []
        for secs, prob in segments:
            out += self.feed(secs, prob)
        return out


def agent_speaking_timeline(frame: float = FRAME, **config: Any) -> Timeline:
    line = Timeline(TurnTaking(TurnTakingConfig(**config)), frame)
    line.tt.set_agent_speaking(True, 0.0)
    return line


# --- hands-free ------------------------------------------------------------------------


def test_utterance_has_exact_start_and_end_times() -> None:
    line = Timeline()
    got = line.events((1.0, SILENCE), (1.5, SPEECH), (0.6, SILENCE))
    assert got == [
        (1.2, SpeechStarted(at=1.0)),
        (3.0, SpeechStopped(at=2.5)),
        (3.0, UtteranceEnded(started_at=1.0, ended_at=2.5, duration=1.5)),
    ]
    assert line.tt.state is TurnState.QUIET


def test_states_follow_the_timeline() -> None:
    line = Timeline()
    line.feed(0.1, SPEECH)
    assert line.tt.state is TurnState.STARTING
    line.feed(0.2, SPEECH)
    assert line.tt.state is TurnState.SPEAKING
    line.feed(0.1, SILENCE)
    assert line.tt.state is TurnState.STOPPING
    line.feed(0.1, SPEECH)
    assert line.tt.state is TurnState.SPEAKING


def test_short_noise_produces_nothing() -> None:
    line = Timeline()
    assert line.events((0.5, SILENCE), (0.1, SPEECH), (1.0, SILENCE)) == []
    assert line.tt.state is TurnState.QUIET


def test_speech_exactly_start_secs_starts_and_just_less_does_not() -> None:
    assert Timeline().events((0.18, SPEECH), (1.0, SILENCE)) == []
    got = Timeline().events((0.2, SPEECH), (1.0, SILENCE))
    assert got[0] == (0.2, SpeechStarted(at=0.0))


def test_utterance_shorter_than_minimum_is_discarded() -> None:
    got = Timeline().events((0.22, SPEECH), (0.6, SILENCE))
    assert got == [
        (0.2, SpeechStarted(at=0.0)),
        (0.72, SpeechStopped(at=0.22)),
        (0.72, UtteranceDiscarded(0.0, 0.22, 0.22, "too_short")),
    ]


def test_utterance_of_exactly_the_minimum_is_kept() -> None:
    got = Timeline(frame=0.01).events((0.25, SPEECH), (0.5, SILENCE))
    assert got[-1] == (0.75, UtteranceEnded(0.0, 0.25, 0.25))


def test_pause_shorter_than_stop_secs_keeps_one_utterance() -> None:
    got = Timeline().events((1.0, SPEECH), (0.48, SILENCE), (1.0, SPEECH), (0.5, SILENCE))
    assert [e for _, e in got] == [
        SpeechStarted(at=0.0),
        SpeechStopped(at=2.48),
        UtteranceEnded(0.0, 2.48, 2.48),
    ]


def test_hysteresis_between_thresholds() -> None:
    middle = 0.4  # above deactivation (0.35), below activation (0.5)
    line = Timeline()
    assert line.feed(0.5, middle) == []  # never starts
    got = line.events((0.1, SPEECH), (0.5, middle))  # started, sustained by 0.4
    assert got == [(0.7, SpeechStarted(at=0.5))]
    assert line.tt.state is TurnState.SPEAKING
    line.feed(0.02, 0.3)  # below deactivation: stopping
    assert line.tt.state is TurnState.STOPPING
    got = line.feed(0.48, middle)  # 0.4 does not resume a stopped run
    assert [e for _, e in got] == [SpeechStopped(at=1.1), UtteranceEnded(0.5, 1.1, 0.6)]


def test_rejected_onset_restarts_the_clock() -> None:
    got = Timeline().events((0.1, SPEECH), (0.02, SILENCE), (0.3, SPEECH), (0.6, SILENCE))
    assert got[0] == (0.32, SpeechStarted(at=0.12))
    assert got[-1][1] == UtteranceEnded(0.12, 0.42, 0.3)


def test_zero_start_secs_starts_on_the_first_voiced_frame() -> None:
    line = Timeline(TurnTaking(TurnTakingConfig(start_secs=0)))
    assert line.events((0.04, SILENCE), (0.02, SPEECH)) == [(0.06, SpeechStarted(at=0.04))]


def test_frames_longer_than_stop_secs_end_at_once() -> None:
    tt = TurnTaking(TurnTakingConfig(start_secs=0.1, stop_secs=0.1, min_utterance_secs=0))
    assert tt.on_frame(SPEECH, 0.0, 0.2) == [SpeechStarted(at=0.0)]
    assert tt.on_frame(SILENCE, 0.2, 0.2) == [
        SpeechStopped(at=0.2),
        UtteranceEnded(0.0, 0.2, 0.2),
    ]


# --- push-to-talk ------------------------------------------------------------------------


def test_push_to_talk_ends_exactly_on_key_up_even_without_speech() -> None:
    line = Timeline(TurnTaking(mode="push_to_talk"))
    assert line.feed(1.0, SPEECH) == []  # VAD alone never opens a turn
    assert line.tt.ptt_down(1.0) == [SpeechStarted(at=1.0)]
    assert line.feed(2.0, SILENCE) == []  # VAD never ends it either
    assert line.tt.state is TurnState.SPEAKING
    assert [norm(e) for e in line.tt.ptt_up(3.345)] == [
        SpeechStopped(at=3.345),
        UtteranceEnded(1.0, 3.345, 2.345),
    ]
    assert line.tt.state is TurnState.QUIET


def test_push_to_talk_short_press_with_audio_still_ends_the_turn() -> None:
    tt = TurnTaking(mode=Mode.PUSH_TO_TALK)
    tt.ptt_down(1.0)
    tt.on_frame(SILENCE, 1.0, FRAME)
    assert tt.ptt_up(1.05)[-1] == UtteranceEnded(1.0, 1.05, pytest.approx(0.05))


def test_push_to_talk_without_audio_is_discarded() -> None:
    tt = TurnTaking(mode="push_to_talk")
    tt.ptt_down(1.0)
    assert tt.ptt_up(2.0) == [
        SpeechStopped(at=2.0),
        UtteranceDiscarded(1.0, 2.0, 1.0, "no_audio"),
    ]


def test_push_to_talk_key_repeat_is_ignored() -> None:
    tt = TurnTaking(mode="push_to_talk")
    tt.ptt_down(1.0)
    assert tt.ptt_down(1.5) == []
    tt.on_frame(SPEECH, 1.5, FRAME)
    assert tt.ptt_up(2.0)[-1] == UtteranceEnded(1.0, 2.0, 1.0)  # from the first key-down


def test_push_to_talk_key_errors_say_what_is_wrong() -> None:
    tt = TurnTaking()
    with pytest.raises(TurnTakingError, match="ptt_down in hands_free mode"):
        tt.ptt_down(0.0)
    with pytest.raises(TurnTakingError, match="ptt_up in hands_free mode"):
        tt.ptt_up(0.0)
    tt.set_mode("push_to_talk", 0.0)
    with pytest.raises(TurnTakingError, match="ptt_up without ptt_down"):
        tt.ptt_up(0.0)


def test_key_down_while_agent_speaks_barges_in_at_once() -> None:
    tt = TurnTaking(mode="push_to_talk")
    tt.set_agent_speaking(True, 0.5)
    assert tt.ptt_down(1.0) == [SpeechStarted(at=1.0), BargeIn(at=1.0, speech_onset=1.0)]
    assert tt.agent_state is AgentState.INTERRUPTED
    tt.on_frame(SPEECH, 1.0, FRAME)
    assert tt.ptt_up(1.5)[-1] == UtteranceEnded(1.0, 1.5, 0.5)


# --- mode switches ---------------------------------------------------------------------------


def test_switch_mode_while_speaking_ends_the_utterance_now() -> None:
    line = Timeline()
    line.feed(1.0, SPEECH)
    got = [norm(e) for e in line.tt.set_mode("push_to_talk", 1.0)]
    assert got == [SpeechStopped(at=1.0), UtteranceEnded(0.0, 1.0, 1.0)]
    assert line.tt.mode is Mode.PUSH_TO_TALK
    assert line.tt.state is TurnState.QUIET


def test_switch_mode_while_stopping_ends_at_the_silence_onset() -> None:
    line = Timeline()
    line.events((1.0, SPEECH), (0.2, SILENCE))
    got = [norm(e) for e in line.tt.set_mode(Mode.PUSH_TO_TALK, line.now)]
    assert got == [SpeechStopped(at=1.0), UtteranceEnded(0.0, 1.0, 1.0)]


def test_switch_mode_while_starting_drops_the_blip() -> None:
    line = Timeline()
    line.feed(0.1, SPEECH)
    assert line.tt.set_mode("push_to_talk", line.now) == []
    assert line.tt.state is TurnState.QUIET


def test_switch_to_hands_free_releases_a_held_key() -> None:
    tt = TurnTaking(mode="push_to_talk")
    tt.ptt_down(1.0)
    tt.on_frame(SPEECH, 1.0, FRAME)
    assert tt.set_mode("hands_free", 1.5) == [
        SpeechStopped(at=1.5),
        UtteranceEnded(1.0, 1.5, 0.5),
    ]
    assert tt.mode is Mode.HANDS_FREE
    assert tt.set_mode("hands_free", 1.6) == []  # same mode: nothing happens


def test_switch_mode_while_quiet_emits_nothing() -> None:
    tt = TurnTaking()
    assert tt.set_mode("push_to_talk", 0.0) == []
    assert tt.mode is Mode.PUSH_TO_TALK


# --- barge-in --------------------------------------------------------------------------------


def test_barge_in_after_min_secs_of_speech_while_agent_speaks() -> None:
    line = agent_speaking_timeline()
    got = line.events((1.0, SILENCE), (1.0, SPEECH), (0.5, SILENCE))
    assert got == [
        (1.2, SpeechStarted(at=1.0)),
        (1.3, BargeIn(at=1.3, speech_onset=1.0)),
        (2.5, SpeechStopped(at=2.0)),
        (2.5, UtteranceEnded(1.0, 2.0, 1.0)),
    ]
    assert line.tt.agent_state is AgentState.INTERRUPTED


def test_short_speech_over_the_agent_never_interrupts() -> None:
    line = agent_speaking_timeline(frame=0.01)
    assert line.events((0.15, SPEECH), (1.0, SILENCE)) == []
    got = line.events((0.29, SPEECH), (0.5, SILENCE))  # started, but under 0.3 s
    assert [e for _, e in got] == [
        SpeechStarted(at=1.15),
        SpeechStopped(at=1.44),
        UtteranceDiscarded(1.15, 1.44, 0.29, "agent_speaking"),
    ]
    assert line.tt.agent_state is AgentState.SPEAKING


def test_barge_in_needs_continuous_speech() -> None:
    line = agent_speaking_timeline()
    got = line.events((0.24, SPEECH), (0.1, SILENCE), (0.24, SPEECH), (0.5, SILENCE))
    assert not any(isinstance(e, BargeIn) for _, e in got)
    assert got[-1][1] == UtteranceDiscarded(0.0, 0.58, 0.58, "agent_speaking")


def test_echo_threshold_is_higher_while_the_agent_speaks() -> None:
    quiet = 0.6  # above activation (0.5), below echo_activation (0.7)
    assert agent_speaking_timeline().events((1.0, quiet)) == []
    assert Timeline().events((1.0, quiet))[0] == (0.2, SpeechStarted(at=0.0))
    loud = agent_speaking_timeline(echo_activation=0.95).events((1.0, SPEECH))
    assert loud == []


def test_barge_in_by_words() -> None:
    line = agent_speaking_timeline(barge_in_min_words=2)
    got = line.feed(1.0, SPEECH)  # long enough, but no words yet
    assert [e for _, e in got] == [SpeechStarted(at=0.0)]
    assert line.tt.on_partial("<sil> hello [noise]", 1.0) == []
    assert line.tt.on_partial("hello there", 1.1) == [BargeIn(at=1.1, speech_onset=0.0)]
    assert line.tt.on_partial("hello there you", 1.2) == []  # once per response


def test_barge_in_by_words_also_needs_the_duration() -> None:
    line = agent_speaking_timeline(barge_in_min_words=1, barge_in_min_secs=0.5)
    line.feed(0.3, SPEECH)
    assert line.tt.on_partial("stop", 0.3) == []
    got = line.feed(0.3, SPEECH)
    assert got == [(0.5, BargeIn(at=0.5, speech_onset=0.0))]


def test_words_only_barge_in_with_zero_min_secs() -> None:
    line = agent_speaking_timeline(barge_in_min_words=1, barge_in_min_secs=0)
    line.feed(0.4, SPEECH)
    assert line.tt.on_partial("wait", 0.4) == [BargeIn(at=0.4, speech_onset=0.0)]


def test_partial_outside_an_utterance_is_ignored() -> None:
    line = agent_speaking_timeline(barge_in_min_words=1, barge_in_min_secs=0)
    assert line.tt.on_partial("late words", 0.0) == []


def test_barge_in_once_per_response_and_rearmed_by_the_next() -> None:
    line = agent_speaking_timeline()
    first = line.events((0.5, SPEECH), (0.5, SILENCE))
    assert sum(isinstance(e, BargeIn) for _, e in first) == 1
    # the interrupted response is still draining: no second barge-in, speech is kept
    line.tt.set_agent_speaking(True, line.now)
    again = line.events((0.5, SPEECH), (0.5, SILENCE))
    assert not any(isinstance(e, BargeIn) for _, e in again)
    assert isinstance(again[-1][1], UtteranceEnded)
    line.tt.set_agent_speaking(False, line.now)
    line.tt.set_agent_speaking(True, line.now)  # a new response
    third = line.events((0.5, SPEECH), (0.5, SILENCE))
    assert third[1] == (2.3, BargeIn(at=2.3, speech_onset=2.0))


def test_agent_starting_mid_utterance_can_be_barged_into() -> None:
    line = Timeline()
    line.feed(1.0, SPEECH)
    line.tt.set_agent_speaking(True, 1.0)
    assert line.feed(0.02, SPEECH) == [(1.02, BargeIn(at=1.02, speech_onset=0.0))]


def test_agent_stopping_mid_utterance_keeps_the_utterance() -> None:
    line = agent_speaking_timeline(barge_in_min_secs=5)
    line.feed(1.0, SPEECH)
    line.tt.set_agent_speaking(False, 1.0)
    got = line.events((1.0, SPEECH), (0.5, SILENCE))
    assert got[-1][1] == UtteranceEnded(0.0, 2.0, 2.0)


def test_no_barge_in_when_the_agent_is_silent() -> None:
    got = Timeline().events((2.0, SPEECH), (0.5, SILENCE))
    assert not any(isinstance(e, BargeIn) for _, e in got)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("prob", [-0.1, 1.5, float("nan")])
def test_speech_prob_out_of_range_is_rejected(prob: float) -> None:
    with pytest.raises(ValueError, match="speech_prob"):
        TurnTaking().on_frame(prob, 0.0, FRAME)


def test_bad_frame_length_and_backwards_time_are_rejected() -> None:
    tt = TurnTaking()
    with pytest.raises(ValueError, match="frame_secs"):
        tt.on_frame(0.5, 0.0, 0.0)
    tt.on_frame(0.5, 1.0, FRAME)
    with pytest.raises(ValueError, match="time went backwards"):
        tt.on_frame(0.5, 0.5, FRAME)
    with pytest.raises(ValueError, match="time went backwards"):
        tt.set_agent_speaking(True, float("nan"))


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown turn-taking mode 'walkie'"):
        TurnTaking(mode="walkie")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"start_secs": -1}, "start_secs must be >= 0"),
        ({"stop_secs": 0}, "stop_secs must be > 0"),
        ({"activation": 1.5}, r"activation must be in \(0, 1\]"),
        ({"deactivation": 0.6}, "deactivation must be <= activation"),
        ({"echo_activation": 0.4}, "echo_activation must be >= activation"),
        ({"barge_in_min_words": -1}, "barge_in_min_words must be >= 0"),
    ],
)
def test_bad_config_is_rejected(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TurnTakingConfig(**fields)


def test_config_from_agent_voice_spec() -> None:
    spec = VoiceSpec(stop_secs=0.8, barge_in_min_words=2, echo_activation=0.9)
    config = TurnTakingConfig.from_voice_spec(spec)
    assert config.stop_secs == 0.8
    assert config.barge_in_min_words == 2
    assert config.echo_activation == 0.9
    assert config.activation == 0.5
    assert TurnTakingConfig.from_voice_spec(VoiceSpec()) == TurnTakingConfig()
    with pytest.raises(ValueError, match="activation must be a number, got 'high'"):
        TurnTakingConfig.from_voice_spec(VoiceSpec(activation="high"))


def test_illegal_transition_names_the_input_and_state() -> None:
    tt = TurnTaking()
    with pytest.raises(TurnTakingError, match="'ptt_up' in state QUIET"):
        tt._move(_Input.KEY_UP)


def test_transition_table_reaches_every_state() -> None:
    assert {to for to in _TRANSITIONS.values()} == set(TurnState)
    assert {frm for frm, _ in _TRANSITIONS} == set(TurnState)


# --- barge-in policy alone ------------------------------------------------------------------


def test_count_words_ignores_markers_and_punctuation() -> None:
    assert count_words("") == 0
    assert count_words("<s> hello , [noise] (um) world ! </s>") == 2


def test_barge_in_policy_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="barge_in_min_secs"):
        BargeInPolicy(min_secs=-1)
    with pytest.raises(ValueError, match="barge_in_min_words"):
        BargeInPolicy(min_words=-1)


def test_barge_in_policy_ignores_voice_outside_an_utterance() -> None:
    policy = BargeInPolicy()
    policy.agent_speaking(True)
    assert policy.voiced(0.0, 1.0) is None
    assert policy.echo_guard


def test_agent_table_illegal_transition_raises() -> None:
    policy = BargeInPolicy()
    with pytest.raises(BargeInError, match="'barge-in' while the agent is silent"):
        policy._move(_AgentInput.BARGE_IN)
    assert set(_AGENT_TRANSITIONS.values()) == set(AgentState)


# --- properties -----------------------------------------------------------------------------


@settings(database=None, max_examples=150, deadline=None)
@given(
    probs=st.lists(st.sampled_from([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]), max_size=400),
    agent=st.lists(st.booleans(), max_size=8),
)
def test_events_are_always_well_formed(probs: list[float], agent: list[bool]) -> None:
    """Started → (BargeIn) → Stopped → Ended|Discarded, in order, times never decreasing."""
    tt = TurnTaking()
    events: list[TurnTakingEvent] = []
    for i, prob in enumerate(probs):
        if agent and i % 50 == 0:
            tt.set_agent_speaking(agent[(i // 50) % len(agent)], i * FRAME)
        events += tt.on_frame(prob, i * FRAME, FRAME)
    open_utterance = None
    for event in events:
        if isinstance(event, SpeechStarted):
            assert open_utterance is None
            open_utterance = event.at
        elif isinstance(event, BargeIn):
            assert open_utterance is not None and event.speech_onset == open_utterance
            assert event.at - event.speech_onset >= 0.3 - 1e-6
        elif isinstance(event, SpeechStopped):
            assert open_utterance is not None and event.at > open_utterance
        else:
            assert open_utterance is not None and event.started_at == open_utterance
            if isinstance(event, UtteranceEnded):
                assert event.duration >= 0.25 - 1e-6
            open_utterance = None
