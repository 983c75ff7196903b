"""Held-out phrasings: written before the dialogue work was tuned, never tuned against.

Each case is a short conversation with the demo agent over the HTTP API and one check
on the last reply. The pass rate of this file is reported as-is (failures are xfail-free
on purpose: a failing case here is a real gap, not a test to rewrite).
Today is Wednesday 7 January 2026, 11:00 in the venue's time zone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests.plugins.conversation import Chat, Turn, backend, chat  # noqa: F401

Check = Callable[[Chat, Turn], Awaitable[bool]]


async def _approval_on(chat: Chat, turn: Turn, date: str, time: str | None = None) -> bool:
    a = turn.approval
    return (
        a is not None
        and a["arguments"]["date"] == date
        and (time is None or a["arguments"]["time"] == time)
    )


CASES: list[tuple[str, list[str], Check]] = [
    (
        "approve_certainly",
        ["book a table for 3 on friday at 8pm", "my name is Kim Park", "Certainly, go on"],
        lambda c, t: _ok(bool(t.ran("book_table")) and "booked" in t.low),
    ),
    (
        "approve_yes_do_that",
        ["a table for 2 tomorrow at 7:30pm please", "it's under Rosa", "yes do that thanks"],
        lambda c, t: _ok(bool(t.ran("book_table"))),
    ),
    (
        "deny_no_thank_you",
        ["table for two on friday at 7pm", "name's Omar", "no thank you"],
        lambda c, t: _ok(not t.ran("book_table") and "great" not in t.low),
    ),
    (
        "deny_please_dont",
        ["table for 4 tomorrow 8pm", "under Lee", "please don't"],
        lambda c, t: _ok(not t.ran("book_table") and "great" not in t.low),
    ),
    (
        "other_message_denies_and_says_so",
        ["table for 2 tomorrow at 7pm", "name is Ada", "what do you have for vegans?"],
        lambda c, t: _ok(not t.ran("book_table") and "salad" in t.low and "haven't" in t.low),
    ),
    (
        "date_this_saturday",
        ["I want to reserve for 2 people this saturday at 6pm", "Jo Smith"],
        lambda c, t: _approval_on(c, t, "2026-01-10", "18:00"),
    ),
    (
        "date_on_the_20th",
        ["can we book for 5 on the 20th at 7", "Pat"],
        lambda c, t: _approval_on(c, t, "2026-01-20", "19:00"),
    ),
    (
        "date_day_after_tomorrow",
        ["table for 3 the day after tomorrow at 1pm", "Nia"],
        lambda c, t: _approval_on(c, t, "2026-01-09", "13:00"),
    ),
    (
        "closed_monday_suggests",
        ["could I get a table for two on monday evening at 7"],
        lambda c, t: _ok("closed" in t.low and "monday" in t.low and not t.approval),
    ),
    (
        "too_early",
        ["table for 2 tomorrow at 9am"],
        lambda c, t: _ok(not t.approval and ("12 pm" in t.low or "noon" in t.low)),
    ),
    (
        "party_too_big",
        ["we need a table for 14 people on friday at 7pm"],
        lambda c, t: _ok(not t.approval and "8" in t.text),
    ),
    (
        "past_time_today",
        ["a table for 2 today at 10am"],
        lambda c, t: _ok(not t.approval and "passed" in t.low),
    ),
    (
        "pick_second_option",
        ["table for 2 on saturday at 8pm", "the second one please", "Max"],
        lambda c, t: _approval_on(c, t, "2026-01-10", "18:30"),
    ),
    (
        "pick_time_said",
        ["table for 2 on saturday at 8pm", "9:30 is fine", "Max"],
        lambda c, t: _approval_on(c, t, "2026-01-10", "21:30"),
    ),
    (
        "price_of_sea_bass",
        ["what does the sea bass cost?"],
        lambda c, t: _ok("22" in t.text),
    ),
    (
        "fondant_nuts_honest",
        ["is there any nut in the chocolate fondant"],
        lambda c, t: _ok("can't promise" in t.low or "staff" in t.low),
    ),
    (
        "dairy_free_question",
        ["I can't have dairy, what can I eat?"],
        lambda c, t: _ok("salad" in t.low and "staff" in t.low),
    ),
    (
        "faq_cards",
        ["do you accept visa?"],
        lambda c, t: _ok("card" in t.low),
    ),
    (
        "faq_pets",
        ["can I bring my pup? it's a small dog"],
        lambda c, t: _ok("dog" in t.low and "welcome" in t.low),
    ),
    (
        "faq_take_out",
        ["can I order food to take out"],
        lambda c, t: _ok("takeaway" in t.low),
    ),
    (
        "hours_sunday",
        ["what time do you close on sundays"],
        lambda c, t: _ok("10 pm" in t.low),
    ),
    (
        "confirmation_again",
        ["table for 2 tomorrow at 7pm", "Bo", "yes", "sorry, what was the booking reference?"],
        lambda c, t: _ok("BX-" in t.text),
    ),
    (
        "late_existing",
        ["hi, we have a table at 8 tonight but we're going to be 20 minutes late"],
        lambda c, t: _ok("late" in t.low or "hold" in t.low and not t.approval),
    ),
    (
        "small_talk_day",
        ["what's the date today?"],
        lambda c, t: _ok("7 january" in t.low),
    ),
    (
        "small_talk_how",
        ["hey how's it going"],
        lambda c, t: _ok(not t.approval and "party" not in t.low and "how many" not in t.low),
    ),
    (
        "typos",
        ["resrvation for 3 ppl tmrw at 7pm pls", "Sam"],
        lambda c, t: _approval_on(c, t, "2026-01-08", "19:00"),
    ),
    (
        "typo_too",
        ["Table for too tomorow at 6pm", "Lin"],
        lambda c, t: _ok(t.approval is not None and t.approval["arguments"]["party_size"] == 2),
    ),
    (
        "caps_emoji",
        ["BOOK A TABLE FOR 4 ON FRIDAY AT 7PM 🎉🎉", "Rui"],
        lambda c, t: _approval_on(c, t, "2026-01-09", "19:00"),
    ),
]


async def _ok(value: bool) -> bool:
    return value


@pytest.mark.parametrize("name,script,check", CASES, ids=[c[0] for c in CASES])
async def test_heldout(chat: Chat, name: str, script: list[str], check: Check) -> None:
    turn = await chat.script(*script)
    assert await check(chat, turn), f"{name}: {turn.text!r} approval={turn.approval}"
