"""False-interruption recovery: pause, then resume or cut, frame by frame on injected time."""

from __future__ import annotations

from typing import Any

import pytest

from parley.voice.false_interruption import (
    _TRANSITIONS,
    FalseInterruption,
    FalseInterruptionConfig,
    FalseInterruptionError,
    Playback,
    PlaybackCut,
    PlaybackEvent,
    PlaybackPaused,
    PlaybackResumed,
    _In,
    content_words,
    stable_prefix,
)

FRAME = 0.02
SPEECH, SILENCE = 0.9, 0.05


class Run:
    """20 ms frames into a FalseInterruption with the agent speaking; logs (time, event)."""

    def __init__(self, **config: Any) -> None:
        self.fi = FalseInterruption(FalseInterruptionConfig(**config))
        self.k = 0
        self.log: list[tuple[float, PlaybackEvent]] = []
        self.fi.agent_started(0.0)

    @property
    def t(self) -> float:
        return round(self.k * FRAME, 6)

    def feed(self, secs: float, prob: float) -> list[PlaybackEvent]:
        out = []
        for _ in range(round(secs / FRAME)):
            events = self.fi.on_frame(prob, self.t, FRAME)
            self.k += 1
            out += events
            self.log += [(self.t, e) for e in events]
        return out

    def partial(self, text: str) -> list[PlaybackEvent]:
        events = self.fi.on_partial(text, self.t)
        self.log += [(self.t, e) for e in events]
        return events

    def kinds(self) -> list[type]:
        return [type(e) for _, e in self.log]


def test_a_cough_pauses_at_once_and_resumes() -> None:
    r = Run()
    r.feed(1.0, SILENCE)
    assert r.feed(0.04, SPEECH) == [PlaybackPaused(at=pytest.approx(1.04), speech_onset=1.0)]
    assert r.fi.state is Playback.PAUSED
    r.feed(0.16, SPEECH)  # a 0.2 s burst
    assert r.feed(0.28, SILENCE) == []
    assert r.feed(0.02, SILENCE) == [
        PlaybackResumed(at=pytest.approx(1.5), paused_secs=pytest.approx(0.46))
    ]
    assert r.fi.state is Playback.PLAYING


def test_a_backchannel_resumes() -> None:
    r = Run()
    r.feed(0.5, SPEECH)
    assert r.partial("mm-hm yeah") == []
    r.feed(0.3, SILENCE)
    assert r.kinds() == [PlaybackPaused, PlaybackResumed]


def test_words_cut() -> None:
    r = Run()
    r.feed(0.2, SPEECH)
    assert r.partial("wait i want") == []  # the first hypothesis: nothing to agree with yet
    r.feed(0.1, SPEECH)
    assert r.partial("wait i want the") == [PlaybackCut(at=0.3, speech_onset=0.0)]
    assert r.fi.state is Playback.CUT
    assert r.feed(1.0, SPEECH) == []  # nothing more for this response


def test_two_words_cut_once_the_sound_is_long_enough() -> None:
    r = Run()
    r.feed(0.2, SPEECH)
    r.partial("no i")
    assert r.partial("no i") == []
    r.feed(0.28, SPEECH)
    assert r.feed(0.02, SPEECH) == [PlaybackCut(at=pytest.approx(0.5), speech_onset=0.0)]


def test_words_the_recogniser_keeps_changing_are_not_counted() -> None:
    r = Run()
    for text in ("the", "we to", "it you", "to the"):
        r.feed(0.14, SPEECH)
        r.partial(text)
    assert r.kinds() == [PlaybackPaused]  # 0.56 s of sound, no stable words
    r.feed(0.3, SILENCE)
    assert r.kinds() == [PlaybackPaused, PlaybackResumed]


def test_words_heard_in_the_silence_after_the_sound_do_not_count() -> None:
    r = Run()
    r.feed(0.3, SPEECH)
    r.feed(0.14, SILENCE)
    r.partial("book you a")
    assert r.partial("book you a") == []  # 0.14 s into the silence: noise
    r.feed(0.16, SILENCE)
    assert r.kinds() == [PlaybackPaused, PlaybackResumed]


def test_long_speech_without_a_transcript_cuts() -> None:
    r = Run()
    r.feed(0.78, SPEECH)
    assert r.kinds() == [PlaybackPaused]
    assert r.feed(0.02, SPEECH) == [PlaybackCut(at=pytest.approx(0.8), speech_onset=0.0)]


def test_speech_still_going_when_the_window_ends_cuts() -> None:
    r = Run(cut_secs=5.0, window_secs=0.6)
    r.feed(0.2, SPEECH)
    r.feed(0.2, SILENCE)  # shorter than resume_silence_secs
    r.feed(0.2, SPEECH)
    r.feed(0.04, SPEECH)
    assert r.kinds() == [PlaybackPaused, PlaybackCut]
    assert r.log[-1][0] == pytest.approx(0.64)


def test_silence_when_the_window_ends_resumes() -> None:
    r = Run(resume_silence_secs=2.0, window_secs=0.5)
    r.feed(0.2, SPEECH)
    r.feed(0.4, SILENCE)
    assert r.kinds() == [PlaybackPaused, PlaybackResumed]
    assert r.log[-1][0] == pytest.approx(0.54)


def test_a_yes_while_an_approval_is_pending_is_an_answer() -> None:
    r = Run()
    r.fi.set_expecting_answer(True)
    r.feed(0.2, SPEECH)
    assert r.partial("yes") == []
    r.feed(0.1, SPEECH)
    assert r.partial("yes") == [PlaybackCut(at=0.3, speech_onset=0.0)]
    r2 = Run()  # the same "yes" with nothing pending is a backchannel
    r2.feed(0.4, SPEECH)
    r2.partial("yes")
    r2.partial("yes")
    r2.feed(0.3, SILENCE)
    assert r2.kinds() == [PlaybackPaused, PlaybackResumed]


def test_window_zero_cuts_at_once() -> None:
    r = Run(window_secs=0)
    assert r.feed(0.04, SPEECH) == [PlaybackCut(at=pytest.approx(0.04), speech_onset=0.0)]


def test_a_one_frame_click_does_not_pause() -> None:
    r = Run()
    r.feed(0.02, SPEECH)
    r.feed(0.5, SILENCE)
    assert r.log == []


def test_sound_while_the_agent_is_silent_is_not_its_business() -> None:
    fi = FalseInterruption()
    assert fi.on_frame(SPEECH, 0.0, 1.0) == []
    assert fi.on_partial("stop", 1.0) == []
    fi.agent_started(1.0)
    fi.agent_stopped(1.5)
    assert fi.state is Playback.IDLE


def test_the_agent_stopping_while_paused_ends_the_pause() -> None:
    r = Run()
    r.feed(0.1, SPEECH)
    r.fi.agent_stopped(r.t)
    assert r.fi.state is Playback.IDLE
    assert r.feed(1.0, SPEECH) == []


def test_after_a_resume_a_new_sound_pauses_again() -> None:
    r = Run()
    r.feed(0.1, SPEECH)
    r.feed(0.3, SILENCE)
    r.feed(0.6, SILENCE)
    r.feed(0.1, SPEECH)
    assert r.kinds() == [PlaybackPaused, PlaybackResumed, PlaybackPaused]


def test_stable_prefix() -> None:
    assert stable_prefix("no i will", "no i want") == "no i"
    assert stable_prefix("the", "we to") == ""
    assert stable_prefix("", "wait") == ""


def test_content_words() -> None:
    assert content_words("mm-hm yeah okay <sil> [noise]") == 0
    assert content_words("wait what about the") == 4
    assert content_words("yes no", expecting_answer=True) == 2
    assert content_words("yes okay") == 0
    assert content_words("no") == 1  # "no" over the agent is a disagreement, not a backchannel


def test_bad_input_is_rejected() -> None:
    fi = FalseInterruption()
    with pytest.raises(ValueError, match="speech_prob"):
        fi.on_frame(1.5, 0.0, FRAME)
    with pytest.raises(ValueError, match="frame_secs"):
        fi.on_frame(0.5, 0.0, 0)
    fi.on_frame(0.5, 1.0, FRAME)
    with pytest.raises(ValueError, match="time went backwards"):
        fi.on_frame(0.5, 0.5, FRAME)
    with pytest.raises(FalseInterruptionError, match="'sound while playing' in state IDLE"):
        fi._move(_In.SOUND)
    with pytest.raises(ValueError, match="min_words"):
        FalseInterruptionConfig(min_words=1)
    with pytest.raises(ValueError, match="window_secs"):
        FalseInterruptionConfig(window_secs=-1)
    with pytest.raises(ValueError, match="deactivation"):
        FalseInterruptionConfig(deactivation=0.9)


def test_every_state_leaves_on_agent_stopped() -> None:
    assert {s for (s, i) in _TRANSITIONS if i is _In.STOPPED} == set(Playback)


def test_config_from_agent_voice_spec() -> None:
    from parley.config import VoiceSpec

    default = FalseInterruptionConfig.from_voice_spec(VoiceSpec())
    assert (default.window_secs, default.activation, default.deactivation) == (1.0, 0.7, 0.35)
    spec = VoiceSpec(false_interruption_secs=0, echo_activation=0.9)
    config = FalseInterruptionConfig.from_voice_spec(spec)
    assert (config.window_secs, config.activation) == (0, 0.9)
    with pytest.raises(ValueError):
        VoiceSpec(false_interruption_secs=-1)


def test_the_pure_parts_import_no_asyncio() -> None:
    import subprocess
    import sys

    code = (
        "import sys, parley.voice.end_of_turn, parley.voice.false_interruption, "
        "parley.voice.turn_taking; assert 'asyncio' not in sys.modules, 'asyncio imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
