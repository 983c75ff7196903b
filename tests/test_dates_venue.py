"""Calendar dates from words, the venue's booking rules, and typing fixes: pure functions."""

from __future__ import annotations

import datetime as dt

import pytest

from parley.brain.dates import on_day, resolve_day, say_date, say_time
from parley.brain.slots import extract_slots
from parley.brain.typos import TypingFixer
from parley.brain.venue import Venue, parse_hours
from parley.config import ConfigError, VenueSpec, parse_agent

WED = dt.date(2026, 1, 7)  # a Wednesday


@pytest.mark.parametrize(
    "said,day",
    [
        ("today", "2026-01-07"),
        ("tonight", "2026-01-07"),
        ("tomorrow", "2026-01-08"),
        ("the day after tomorrow", "2026-01-09"),
        ("Friday", "2026-01-09"),
        ("this Friday", "2026-01-09"),
        ("Wednesday", "2026-01-07"),
        ("next Friday", "2026-01-16"),
        ("next Monday", "2026-01-12"),
        ("the 12th", "2026-01-12"),
        ("the 3rd", "2026-02-03"),
        ("14 March", "2026-03-14"),
        ("2 January", "2027-01-02"),
        ("2026-02-01", "2026-02-01"),
        ("Friday 14 March 2025", "2025-03-14"),
    ],
)
def test_days_resolve_from_today(said: str, day: str) -> None:
    assert resolve_day(said, WED) == dt.date.fromisoformat(day)


def test_impossible_days_resolve_to_nothing() -> None:
    assert resolve_day("30 February", WED) is None
    assert resolve_day("2026-02-30", WED) is None
    assert resolve_day("someday", WED) is None


def test_dates_and_times_as_people_read_them() -> None:
    assert say_date("2026-01-09") == "Friday 9 January"
    assert say_date("2027-01-02", WED) == "Saturday 2 January 2027"
    assert on_day("2026-01-08", WED) == "tomorrow (Thursday 8 January)"
    assert on_day("2026-01-07", WED) == "today (Wednesday 7 January)"
    assert on_day("2026-01-16", WED) == "on Friday 16 January"
    assert say_time("19:30") == "7:30 pm" and say_time("12:00") == "12 pm"


BISTRO = VenueSpec(
    hours={"mon": "closed", "tue-sun": "12:00-22:00"}, last_booking_min=30, max_party_size=8
)
NOON_WED = dt.datetime(2026, 1, 7, 11, 0)


def test_hours_parse_ranges_and_split_days() -> None:
    hours = parse_hours(
        {"mon": "closed", "tue-sat": "12:00-15:00, 18:00-23:00", "sun": "12:00-16:00"}
    )
    assert hours[0] == [] and hours[1] == [(720, 900), (1080, 1380)] and hours[6] == [(720, 960)]
    assert parse_hours({"fri-mon": "18:00-02:00"})[4] == [(1080, 1560)]  # past midnight


@pytest.mark.parametrize(
    "day,time,party,reason",
    [
        ("2026-01-08", "19:00", 2, "ok"),
        ("2026-01-12", "19:00", 2, "closed_day"),
        ("2026-01-08", "09:00", 2, "outside_hours"),
        ("2026-01-08", "21:45", 2, "outside_hours"),  # last booking 21:30
        ("2026-01-07", "10:00", 2, "past"),
        ("2026-01-06", "19:00", 2, "past"),
        ("2026-01-08", "19:00", 9, "too_many"),
        ("2026-06-01", "19:00", 2, "too_far"),
    ],
)
def test_venue_rules(day: str, time: str, party: int, reason: str) -> None:
    verdict = Venue(BISTRO).check(dt.date.fromisoformat(day), time, party, NOON_WED)
    assert verdict.reason == reason and verdict.ok == (reason == "ok")


def test_closed_day_suggests_the_next_open_days() -> None:
    verdict = Venue(BISTRO).check(dt.date(2026, 1, 12), "19:00", 2, NOON_WED)
    assert verdict.dates == (dt.date(2026, 1, 13), dt.date(2026, 1, 14))


def test_outside_hours_suggests_the_nearest_bookable_times() -> None:
    verdict = Venue(BISTRO).check(dt.date(2026, 1, 8), "23:00", 2, NOON_WED)
    assert verdict.times == ("20:30", "21:00", "21:30")


def test_hours_described_in_words() -> None:
    assert Venue(BISTRO).describe() == "Tuesday to Sunday from 12 pm to 10 pm; closed on Mondays"


def test_bad_venue_data_is_a_load_error() -> None:
    with pytest.raises(ConfigError, match="hours"):
        parse_agent("name: x\nvenue: {hours: {funday: '12:00-22:00'}}\n", "x.yaml")
    with pytest.raises(ConfigError, match="time zone"):
        parse_agent("name: x\nvenue: {timezone: Mars/Base}\n", "x.yaml")


def test_nine_oclock_follows_the_hours() -> None:
    open_evenings = Venue(BISTRO)

    def bookable(hhmm: str) -> bool:
        h, m = hhmm.split(":")
        return open_evenings.open_any_day(int(h) * 60 + int(m))

    assert extract_slots("at 9:00")["time"] == "09:00"  # as written, with no hours known
    assert extract_slots("at 9:00", bookable=bookable)["time"] == "21:00"
    assert extract_slots("at seven")["time"] == "19:00"
    assert extract_slots("9am", bookable=bookable)["time"] == "09:00"  # said outright


@pytest.mark.parametrize(
    "typed,reads",
    [
        ("table 4 too people tmrw @ 7pm 😊", "table 4 two people tomorrow at 7pm"),
        ("can i make a reservaton for tomorow", "can i make a reservation for tomorrow"),
        ("4 ppl sat 8pm pls", "4 people saturday 8pm please"),
        ("Table for too tomorow", "Table for two tomorrow"),
        ("is the risoto vegan", "is the risotto vegan"),
        ("my name is Ann Lee", "my name is Ann Lee"),
    ],
)
def test_typing_fixes(typed: str, reads: str) -> None:
    assert TypingFixer(["mushroom risotto"]).fix(typed) == reads


def test_names_are_not_corrected() -> None:
    fixer = TypingFixer()
    assert fixer.fix("my name is Fridah") == "my name is Fridah"
    assert fixer.fix("fridah") == "friday"  # lower case and alone: taken for the day
