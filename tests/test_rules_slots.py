"""Slot extraction for the rules brain: every form of party size, day, time and name."""

from __future__ import annotations

from typing import Any

import pytest

from parley.brain.dates import say_time
from parley.brain.slots import extract_slots, on_date


@pytest.mark.parametrize(
    ("said", "party"),
    [
        ("a table for two", 2),
        ("4 people", 4),
        ("party of six", 6),
        ("table for 2", 2),
        ("we're twelve", 12),
        ("there will be three of us", 3),
        ("just me", 1),
        ("me and my wife", 2),
        ("for twenty one guests", 21),
    ],
)
def test_party_size_forms(said: str, party: int) -> None:
    assert extract_slots(said) == {"party_size": party}


@pytest.mark.parametrize(
    ("said", "date"),
    [
        ("tonight", "tonight"),
        ("this evening", "tonight"),
        ("today", "today"),
        ("tomorrow", "tomorrow"),
        ("the day after tomorrow", "the day after tomorrow"),
        ("on friday", "Friday"),
        ("next Saturday", "next Saturday"),
        ("on the 5th", "the 5th"),
        ("the twenty first", "the 21st"),
        ("March 5th", "5 March"),
        ("the 3rd of june", "3 June"),
        ("2025-03-14", "Friday 14 March 2025"),
        ("friday, no wait, sunday", "Sunday"),
    ],
)
def test_date_forms(said: str, date: str) -> None:
    assert extract_slots(said) == {"date": date}


@pytest.mark.parametrize(
    ("said", "time"),
    [
        ("7pm", "19:00"),
        ("at 7 p.m.", "19:00"),
        ("eight p m", "20:00"),
        ("seven thirty", "19:30"),
        ("at 19:30", "19:30"),
        ("at 7.45pm", "19:45"),
        ("8 o'clock", "20:00"),
        ("eight oclock", "20:00"),
        ("noon", "12:00"),
        ("at seven", "19:00"),
        ("half past eight", "20:30"),
        ("quarter to nine", "20:45"),
        ("nineteen thirty", "19:30"),
        ("11am", "11:00"),
        ("12:30", "12:30"),
    ],
)
def test_time_forms(said: str, time: str) -> None:
    assert extract_slots(said) == {"time": time}


@pytest.mark.parametrize(
    ("said", "name"),
    [
        ("my name is Sam Smith", "Sam Smith"),
        ("it's for jane doe please", "Jane Doe"),
        ("put it under Alex", "Alex"),
        ("under the name of O'Brien", "O'Brien"),
        ("I'm Maria", "Maria"),
        ("i am david jones and thanks", "David Jones"),
        ("a table for Lee", "Lee"),
        ("my name is Will Smith", "Will Smith"),
        ("under the name June Carter", "June Carter"),
    ],
)
def test_name_forms(said: str, name: str) -> None:
    assert extract_slots(said) == {"name": name}


@pytest.mark.parametrize(
    "said",
    ["I'm looking for a table", "this is great", "it's for my birthday", "I'm hungry", "hello"],
)
def test_phrases_that_are_not_names(said: str) -> None:
    assert "name" not in extract_slots(said)


def test_everything_in_one_sentence() -> None:
    said = "Hi, I'm Ana, a table for 4 people next friday at half past seven please"
    assert extract_slots(said) == {
        "party_size": 4,
        "date": "next Friday",
        "time": "19:30",
        "name": "Ana",
    }


@pytest.mark.parametrize(
    ("said", "expecting", "slots"),
    [
        ("four", "party_size", {"party_size": 4}),
        ("8", "party_size", {"party_size": 8}),
        ("seven", "time", {"time": "19:00"}),
        ("nine please", "time", {"time": "21:00"}),
        ("the fifth", "date", {"date": "the 5th"}),
        ("sam smith", "name", {"name": "Sam Smith"}),
        ("june", "name", {"name": "June"}),
        ("Sure, it's Kim", "name", {"name": "Kim"}),
        ("four", None, {}),
        ("sam smith", None, {}),
        ("yes", "name", {}),
    ],
)
def test_bare_answers_fill_the_expected_slot(
    said: str, expecting: str | None, slots: dict[str, Any]
) -> None:
    assert extract_slots(said, expecting) == slots


def test_rendering_times_and_days() -> None:
    assert [say_time(t) for t in ("19:30", "12:00", "00:15", "9:05", "later")] == [
        "7:30 pm",
        "12 pm",
        "12:15 am",
        "9:05 am",
        "later",
    ]
    assert [on_date(d) for d in ("tomorrow", "Friday", "next Friday", "the 5th")] == [
        "tomorrow",
        "on Friday",
        "next Friday",
        "on the 5th",
    ]


def test_adults_and_children_all_count() -> None:
    assert extract_slots("2 adults and 2 kids tomorrow at 6pm")["party_size"] == 4
    assert extract_slots("table for 4 adults and 1 child")["party_size"] == 5


def test_names_in_any_alphabet_and_after_a_comma() -> None:
    assert extract_slots("for 3 persons, name Müller")["name"] == "Müller"
    assert extract_slots("my name is Zoë Dupont")["name"] == "Zoë Dupont"
    assert extract_slots("Renée", "name")["name"] == "Renée"


def test_days_people_say_without_a_weekday() -> None:
    assert extract_slots("in 3 days at 7pm")["date"] == "in 3 days"
    assert extract_slots("on christmas eve")["date"] == "24 December"
    assert extract_slots("tomorrow 7")["time"] == "19:00"
    assert extract_slots("this friday around half 7")["time"] == "19:30"
    assert extract_slots("tomorrow at lunch")["time"] == "12:00"
