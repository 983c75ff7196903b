"""Playout: pacing with a lead, playback truth, heard text, generations, clear()."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.voice.playout import Playout

RATE = 16000
FRAME_BYTES = 640  # 20 ms at 16 kHz


def audio(secs: float, rate: int = RATE) -> bytes:
    return b"\x01\x00" * round(secs * rate)


def sent_secs(frames: list[bytes], rate: int = RATE) -> float:
    return sum(len(f) for f in frames) / 2 / rate


# --- pacing ---------------------------------------------------------------------------


def test_first_burst_fills_the_lead_then_one_frame_per_frame_time() -> None:
    playout = Playout(RATE, frame_ms=20, lead_ms=200)
    playout.enqueue(audio(1.0), "One second of speech.")
    assert len(playout.due_frames(0.0)) == 10  # 200 ms lead at once
    assert playout.due_frames(0.0) == []
    assert len(playout.due_frames(0.02)) == 1
    assert len(playout.due_frames(0.1)) == 4
    assert len(playout.due_frames(0.1)) == 0
    assert playout.played_secs(0.1) == pytest.approx(0.1)


def test_a_late_loop_lets_the_client_stall_then_refills_only_the_lead() -> None:
    playout = Playout(RATE)
    playout.enqueue(audio(2.0), "")
    assert len(playout.due_frames(0.0)) == 10  # buffered until 0.2
    assert len(playout.due_frames(0.5)) == 10  # client stalled 0.2-0.5: again 200 ms
    assert playout.played_secs(0.5) == pytest.approx(0.2)
    assert playout.played_secs(0.6) == pytest.approx(0.3)


def test_frames_are_cut_to_frame_ms_with_a_short_tail() -> None:
    playout = Playout(RATE, frame_ms=20, lead_ms=1000)
    assert playout.frame_bytes == FRAME_BYTES
    playout.enqueue(b"\x00" * 700, "x")
    frames = playout.due_frames(0.0)
    assert [len(f) for f in frames] == [640, 60]
    assert b"".join(frames) == b"\x00" * 700


def test_frames_keep_their_order_across_segments() -> None:
    playout = Playout(RATE, lead_ms=10_000)
    playout.enqueue(b"\x01\x00" * 320, "a")
    playout.enqueue(b"\x02\x00" * 320, "b")
    assert playout.due_frames(0.0) == [b"\x01\x00" * 320, b"\x02\x00" * 320]


def test_zero_lead_sends_one_frame_at_a_time_and_the_first_at_once() -> None:
    playout = Playout(RATE, frame_ms=20, lead_ms=0)
    playout.enqueue(audio(0.1), "")
    assert len(playout.due_frames(0.0)) == 1
    assert playout.due_frames(0.01) == []
    assert len(playout.due_frames(0.02)) == 1
    assert playout.next_due(0.02) == pytest.approx(0.04)


def test_next_due_says_when_to_ask_again() -> None:
    playout = Playout(RATE)
    assert playout.next_due(0.0) is None
    playout.enqueue(audio(0.3), "")  # 15 frames
    assert playout.next_due(0.0) == 0.0
    playout.due_frames(0.0)
    assert playout.next_due(0.0) == pytest.approx(0.02)
    assert playout.next_due(0.05) == pytest.approx(0.05)
    assert len(playout.due_frames(0.05)) == 2  # 0.15 s buffered: two frames fit
    assert len(playout.due_frames(1.0)) == 3
    assert playout.next_due(1.0) is None


def test_room_at_says_when_a_batch_fits_queued_or_not() -> None:
    playout = Playout(RATE, lead_ms=200)
    assert playout.frame_secs == pytest.approx(0.02)
    assert playout.room_at(0.0, 0.06) == 0.0  # nothing buffered: room at once
    assert not playout.has_queued
    playout.enqueue(audio(0.3), "")
    assert playout.has_queued
    assert len(playout.due_frames(0.0)) == 10  # 0.2 s buffered
    assert playout.room_at(0.0, 0.06) == pytest.approx(0.06)  # buffer down to 0.14 s
    assert playout.room_at(0.05, 0.06) == pytest.approx(0.06)
    assert playout.room_at(0.1, 0.06) == pytest.approx(0.1)  # already fits
    assert playout.room_at(0.0, 0.2) == pytest.approx(0.2)  # a whole lead: once played
    assert playout.room_at(0.0, 0.5) == pytest.approx(0.2)  # more than the lead: same
    assert len(playout.due_frames(0.06)) == 3
    assert len(playout.due_frames(0.12)) == 2  # all that was left
    assert not playout.has_queued
    assert playout.room_at(0.12, 0.06) == pytest.approx(0.16)  # queued or not
    assert playout.room_at(0.5, 0.06) == 0.5


@settings(database=None, max_examples=100, deadline=None)
@given(
    steps=st.lists(st.floats(min_value=0, max_value=0.3), min_size=1, max_size=60),
    lead_ms=st.sampled_from([0, 20, 60, 200]),
    secs=st.floats(min_value=0.01, max_value=3.0),
)
def test_never_more_than_lead_ahead(steps: list[float], lead_ms: int, secs: float) -> None:
    playout = Playout(RATE, lead_ms=lead_ms)
    playout.enqueue(audio(secs), "text")
    now, total = 0.0, 0.0
    for step in steps:
        now += step
        frames = playout.due_frames(now)
        total += sent_secs(frames)
        ahead = total - playout.played_secs(now)
        assert ahead <= max(lead_ms / 1000, 0.02) + 1e-9
        if playout.queued_secs > 0:  # whatever could go, went
            assert ahead > lead_ms / 1000 - 0.02 - 1e-9
    assert playout.played_secs(now) <= total + 1e-9


# --- playback truth ------------------------------------------------------------------------


def test_client_report_overrides_the_estimate_and_slows_pacing() -> None:
    playout = Playout(RATE)
    playout.enqueue(audio(1.0), "")
    playout.due_frames(0.0)
    playout.due_frames(0.1)  # 15 frames sent, estimate: 0.1 played
    playout.client_played(50, 0.1)  # the client is 50 ms behind our estimate
    assert playout.played_secs(0.1) == pytest.approx(0.05)
    assert playout.played_secs(0.15) == pytest.approx(0.1)
    assert playout.due_frames(0.15) == []  # the client still holds 0.2 s (estimate: 0.15)
    assert playout.next_due(0.15) == pytest.approx(0.17)
    # a report can never claim more than was sent, nor beat the estimate
    playout.client_played(10_000, 0.2)
    assert playout.played_secs(0.2) == pytest.approx(0.2)
    assert len(playout.due_frames(0.2)) == 5


def test_drained_when_everything_sent_has_played() -> None:
    playout = Playout(RATE)
    assert playout.drained(0.0)
    playout.enqueue(audio(0.1), "")
    assert not playout.drained(0.0)
    playout.due_frames(0.0)
    assert playout.queued_secs == 0
    assert not playout.drained(0.05)
    assert playout.drained(0.1)


# --- heard text ------------------------------------------------------------------------------


def speak_two_sentences() -> Playout:
    playout = Playout(RATE, lead_ms=200)
    gen = playout.new_generation()
    playout.enqueue(audio(0.5), "Hello there.", gen)
    playout.enqueue(audio(1.0), "How are you doing today?", gen)
    now = 0.0
    while now <= 1.6:  # a loop calling due_frames every 20 ms
        playout.due_frames(now)
        now = round(now + 0.02, 6)
    return playout


@pytest.mark.parametrize(
    ("now", "heard"),
    [
        (0.0, ""),
        (0.24, ""),  # 0.48 of "Hello there.": not yet one whole word's share
        (0.25, "Hello"),
        (0.5, "Hello there."),
        (0.69, "Hello there."),  # 0.19 of 1.0 s, 5 words: not yet one
        (0.7, "Hello there. How"),
        (1.0, "Hello there. How are"),
        (1.49, "Hello there. How are you doing"),
        (1.5, "Hello there. How are you doing today?"),
        (9.0, "Hello there. How are you doing today?"),
    ],
)
def test_heard_text_at_several_points(now: float, heard: str) -> None:
    assert speak_two_sentences().heard_text(now) == heard


def test_streamed_audio_extends_its_segment() -> None:
    playout = Playout(RATE, lead_ms=10_000)
    playout.enqueue(audio(0.25), "one two")
    playout.enqueue(audio(0.25), "ignored", extend=True)  # same sentence, more audio
    playout.due_frames(0.0)
    assert playout.heard_text(0.49) == "one"
    assert playout.heard_text(0.5) == "one two"


def test_heard_text_counts_only_audio_that_was_sent() -> None:
    playout = Playout(RATE, lead_ms=200)
    playout.enqueue(audio(1.0), "one two three four")
    playout.due_frames(0.0)  # 0.2 s sent, then the loop stalls
    assert playout.heard_text(5.0) == ""  # 0.2 of 1.0 s: under one word's share (0.25)
    playout.due_frames(5.0)
    assert playout.heard_text(5.1) == "one"  # 0.3 s played


# --- generations and clear -------------------------------------------------------------------


def test_clear_returns_what_was_heard_and_drops_the_rest() -> None:
    playout = speak_two_sentences()
    generation = playout.generation
    assert playout.clear(0.7) == "Hello there. How"
    assert playout.generation == generation + 1
    assert playout.due_frames(2.0) == []
    assert playout.heard_text(2.0) == ""
    assert playout.played_secs(2.0) == 0.0
    assert playout.drained(2.0)


def test_late_frames_of_a_cancelled_turn_are_dropped() -> None:
    playout = Playout(RATE)
    old = playout.new_generation()
    playout.enqueue(audio(0.5), "Cancelled answer.", old)
    playout.clear(0.0)
    assert playout.enqueue(audio(0.5), "Late sentence.", old) is False
    assert playout.due_frames(0.0) == []
    new = playout.new_generation()
    assert new > old
    assert playout.enqueue(audio(0.1), "Fresh.", new) is True
    assert playout.enqueue(audio(0.1), "Still stale.", old) is False
    assert sent_secs(playout.due_frames(1.0)) == pytest.approx(0.1)
    assert playout.heard_text(1.1) == "Fresh."


def test_new_generation_starts_a_fresh_timeline() -> None:
    playout = Playout(RATE)
    playout.enqueue(audio(1.0), "left over")  # untagged: the current generation
    playout.due_frames(0.0)
    playout.new_generation()
    assert playout.queued_secs == 0
    playout.enqueue(audio(0.1), "next")
    assert len(playout.due_frames(0.05)) == 5  # the old client buffer is not counted
    assert playout.heard_text(0.15) == "next"


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_rate": 0}, "sample_rate"),
        ({"sample_rate": RATE, "frame_ms": 0}, "frame_ms"),
        ({"sample_rate": RATE, "lead_ms": -1}, "lead_ms"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Playout(**kwargs)  # type: ignore[arg-type]


def test_bad_input_is_rejected() -> None:
    playout = Playout(RATE)
    with pytest.raises(ValueError, match="even number of bytes"):
        playout.enqueue(b"\x00\x00\x00", "odd")
    with pytest.raises(ValueError, match="played ms"):
        playout.client_played(-5, 0.0)
    playout.due_frames(1.0)
    with pytest.raises(ValueError, match="time went backwards"):
        playout.due_frames(0.5)


# --- pause and resume (false interruptions) -------------------------------------------------


def test_a_pause_holds_the_position_and_the_queue_and_resume_plays_on() -> None:
    playout = Playout(RATE, frame_ms=20, lead_ms=200)
    playout.enqueue(audio(1.0), "one two three four five six seven eight nine ten")
    assert sent_secs(playout.due_frames(0.0)) == pytest.approx(0.2)
    assert sent_secs(playout.due_frames(0.1)) == pytest.approx(0.1)
    assert sent_secs(playout.due_frames(0.2)) == pytest.approx(0.1)  # 0.4 s sent
    playout.pause(0.34)
    assert playout.paused and playout.due_frames(0.5) == []
    assert playout.room_at(0.5, 0.06) == float("inf")
    assert playout.played_secs(0.9) == pytest.approx(0.34)  # the client holds its buffer
    assert playout.heard_text(0.9) == "one two three"
    assert not playout.drained(0.9)
    assert playout.resume(0.9) == pytest.approx(0.56)
    assert not playout.paused
    assert playout.played_secs(0.93) == pytest.approx(0.37)  # plays on from 0.34
    assert playout.ahead_secs(0.93) == pytest.approx(0.03)  # the held buffer first
    assert sent_secs(playout.due_frames(0.93)) == pytest.approx(0.16)  # then up to the lead
    assert playout.queued_secs == pytest.approx(0.44)  # nothing was lost


def test_a_reported_position_moves_with_the_pause() -> None:
    playout = Playout(RATE, frame_ms=20, lead_ms=200)
    playout.enqueue(audio(1.0), "a b c d e f g h i j")
    playout.due_frames(0.0)
    playout.client_played(100, 0.15)  # the client is 50 ms behind our estimate
    assert sent_secs(playout.due_frames(0.15)) == pytest.approx(0.1)  # 0.3 s sent
    playout.pause(0.2)
    assert playout.played_secs(0.5) == pytest.approx(0.15)
    playout.resume(0.5)
    assert playout.played_secs(0.6) == pytest.approx(0.25)  # the report moved by 0.3 s
    playout.pause(0.6)
    playout.client_played(240, 0.7)  # reported while paused: that position, held
    assert playout.played_secs(0.8) == pytest.approx(0.24)
    playout.resume(1.0)
    assert playout.played_secs(1.0) == pytest.approx(0.24)
    assert playout.played_secs(1.05) == pytest.approx(0.29)


def test_clear_and_a_new_response_end_a_pause() -> None:
    playout = Playout(RATE, frame_ms=20, lead_ms=200)
    playout.enqueue(audio(0.5), "a b c d e")
    playout.due_frames(0.0)
    playout.pause(0.1)
    assert playout.clear(0.5) == "a"  # heard before the pause: 0.1 s of 0.5 s
    assert not playout.paused
    playout.pause(0.6)
    generation = playout.new_generation()
    assert not playout.paused
    playout.enqueue(audio(0.1), "x", generation)
    assert sent_secs(playout.due_frames(0.7)) == pytest.approx(0.1)
    assert playout.resume(0.8) == 0.0  # nothing to resume
