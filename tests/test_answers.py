"""Reading words as an answer to a pending approval (``parley.brain.answers``)."""

from __future__ import annotations

import pytest

from parley.brain.answers import action_words, classify, yes_or_no

BOOK = action_words("book_table", "Book a table")


@pytest.mark.parametrize(
    "text",
    [
        "yes",
        "Yes!",
        "y",
        "yeah",
        "yep",
        "sure",
        "Sure thing",
        "ok",
        "OK then",
        "okay",
        "go ahead",
        "Go for it",
        "please do",
        "please book it",
        "yes please, book the table",
        "do it",
        "sounds good",
        "that works",
        "perfect, thanks",
        "absolutely",
        "of course",
        "confirm",
        "👍",
        "yes please 👍",
        "alright",
        "fine by me",
    ],
)
def test_approvals(text: str) -> None:
    assert classify(text, BOOK) == "approve"


@pytest.mark.parametrize(
    "text",
    [
        "no",
        "No.",
        "n",
        "nope",
        "nah",
        "no thanks",
        "no thank you",
        "don't",
        "please don't",
        "do not book it",
        "cancel",
        "cancel that",
        "never mind",
        "forget it",
        "stop",
        "I changed my mind",
        "not now",
        "👎",
        "hold on",
        "no, don't book it",
    ],
)
def test_denials(text: str) -> None:
    assert classify(text, BOOK) == "deny"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yes but at 8pm",
        "actually make it four people",
        "what's on the menu?",
        "not sure",
        "maybe",
        "yes no",
        "thanks",
        "hmm",
        "can you do 7 instead",
        "is it vegetarian?",
    ],
)
def test_anything_else_is_no_answer(text: str) -> None:
    assert classify(text, BOOK) == "other"


def test_the_actions_own_words_count_only_for_that_action() -> None:
    assert classify("please transfer me", action_words("transfer_to_human")) == "approve"
    assert classify("please transfer me", BOOK) == "other"


def test_yes_or_no_is_the_voice_shaped_verdict() -> None:
    assert yes_or_no("yeah go ahead") is True
    assert yes_or_no("nope") is False
    assert yes_or_no("what time is it") is None
