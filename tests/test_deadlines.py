"""The pure deadline table, step by step on literal times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from parley.config import LimitsSpec
from parley.sessions.deadlines import Deadlines, End, Warn, due

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_nothing_due_before_the_first_mark_and_the_wake_is_that_mark() -> None:
    d = Deadlines(at(2700), (300.0, 60.0))
    assert due(d, at(0)) == ([], at(2400))


def test_each_mark_warns_once_with_the_time_left() -> None:
    d = Deadlines(at(2700), (300.0, 60.0))
    actions, wake = due(d, at(2400.5))
    assert actions == [Warn(299.5, (300.0,))] and wake == at(2640)
    assert due(d, at(2400.5), warned=[300.0]) == ([], at(2640))
    assert due(d, at(2640), warned=[300.0]) == ([Warn(60.0, (60.0,))], at(2700))


def test_the_end_is_due_at_the_deadline_whatever_was_warned() -> None:
    d = Deadlines(at(2700), (300.0, 60.0))
    assert due(d, at(2700)) == ([End("TIME_LIMIT")], None)
    assert due(d, at(9999), warned=[300.0, 60.0]) == ([End("TIME_LIMIT")], None)


def test_a_late_reconnect_gets_one_warning_with_the_real_time_left() -> None:
    d = Deadlines(at(2700), (300.0, 60.0))
    actions, wake = due(d, at(2690))
    assert actions == [Warn(10.0, (300.0, 60.0))] and wake == at(2700)


def test_a_limit_shorter_than_the_mark_warns_at_once_and_still_ends_on_time() -> None:
    d = Deadlines(at(30), (60.0,))
    assert due(d, at(0)) == ([Warn(30.0, (60.0,))], at(30))
    assert due(d, at(30), warned=[60.0]) == ([End("TIME_LIMIT")], None)


def test_idle_timeout_ends_with_time_limit_and_a_detail() -> None:
    d = Deadlines(None, (), idle_timeout_s=120)
    assert due(d, at(100), last_activity=at(0)) == ([], at(120))
    assert due(d, at(120), last_activity=at(0)) == ([End("TIME_LIMIT", "idle_timeout")], None)
    assert due(d, at(150), last_activity=at(100)) == ([], at(220))


def test_no_limits_never_wake() -> None:
    assert due(Deadlines(None), at(0), last_activity=at(0)) == ([], None)


def test_limits_spec_marks_accept_one_number_or_a_list() -> None:
    assert LimitsSpec(warning_before_s=60).warning_marks == (60.0,)
    assert LimitsSpec(warning_before_s=[60, 300, 60, 0]).warning_marks == (300.0, 60.0)
    assert LimitsSpec().resume_grace_s == 60 and LimitsSpec().idle_timeout_s is None
