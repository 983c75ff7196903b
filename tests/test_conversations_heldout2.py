"""A second held-out set, written after the first one had been run once (and general
fixes made from it), before any further tuning. Its first-run pass rate is reported
as-is. Today is Wednesday 7 January 2026, 11:00 in the venue's time zone."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.plugins.conversation import Chat, Turn, backend, chat  # noqa: F401

Check = Callable[[Turn], bool]


def booked_on(date: str, time: str | None = None) -> Check:
    def check(t: Turn) -> bool:
        a = t.approval
        return a is not None and a["arguments"]["date"] == date and (
            time is None or a["arguments"]["time"] == time
        )

    return check


CASES: list[tuple[str, list[str], Check]] = [
    ("approve_yup", ["table for 2 on thursday at 7pm", "Tom", "yup 👍"],
     lambda t: bool(t.ran("book_table"))),
    ("approve_perfect_thanks", ["can I book for 6 tomorrow evening at 8", "Vera", "perfect thank you"],
     lambda t: bool(t.ran("book_table"))),
    ("approve_confirm", ["2 people friday 1pm", "Eli", "confirm"],
     lambda t: bool(t.ran("book_table"))),
    ("deny_nah", ["table for 3 tomorrow at 6pm", "Una", "nah"],
     lambda t: not t.ran("book_table") and "great" not in t.low),
    ("deny_wait", ["table for 3 tomorrow at 6pm", "Una", "wait, no"],
     lambda t: not t.ran("book_table")),
    ("change_instead_of_answer", ["table for 3 tomorrow at 6pm", "Una", "can we make it 7 instead?"],
     lambda t: t.approval is None or t.approval["arguments"]["time"] == "19:00"),
    ("date_sunday_after_next", ["table for 2 next sunday at 2pm", "Al"], booked_on("2026-01-18", "14:00")),
    ("date_in_feb", ["table for 4 on 14 february at 7:30pm", "Al"], booked_on("2026-02-14", "19:30")),
    ("date_the_ninth", ["book for 2 on the 9th at 12:30", "Al"], booked_on("2026-01-09", "12:30")),
    ("closed_monday_next", ["table for 2 next monday 8pm"],
     lambda t: "closed" in t.low and t.approval is None),
    ("late_night", ["table for 2 friday at midnight"], lambda t: t.approval is None),
    ("big_group", ["we are a group of 20 for saturday lunch at 1pm"],
     lambda t: t.approval is None and "8" in t.text),
    ("pick_earliest", ["table for 2 saturday at 8pm", "earliest please", "Bo"],
     booked_on("2026-01-10", "18:00")),
    ("pick_last", ["table for 2 saturday at 8pm", "the last one", "Bo"],
     booked_on("2026-01-10", "21:30")),
    ("menu_vegan", ["anything vegan on the menu?"], lambda t: "salad" in t.low),
    ("menu_gluten", ["what can a coeliac eat here"], lambda t: "steak" in t.low or "sea bass" in t.low),
    ("menu_price_fondant", ["how much for the fondant"], lambda t: "9" in t.text),
    ("menu_describe", ["what's in the steak frites?"], lambda t: "sirloin" in t.low),
    ("allergy_eggs_risotto", ["does the risotto contain egg"], lambda t: "can't promise" in t.low or "staff" in t.low),
    ("faq_wheelchair", ["is it wheelchair accessible?"], lambda t: "step-free" in t.low),
    ("faq_contactless", ["can i pay contactless"], lambda t: "contactless" in t.low),
    ("faq_parking", ["is there somewhere to park"], lambda t: "parking" in t.low or "quay" in t.low),
    ("confirmation_code_again", ["table for 2 tomorrow at 7pm", "Ro", "yes", "what was my code again?"],
     lambda t: "BX-" in t.text),
    ("cancel_unknown_code", ["please cancel my booking BX-12AB"], lambda t: "BX-12AB" in t.text and t.approval is None),
    ("thanks_bye", ["thanks, bye!"], lambda t: "bye" in t.low or "day" in t.low),
    ("are_you_a_bot", ["am i talking to a robot?"], lambda t: t.approval is None and "how many" not in t.low),
    ("typo_vegeterian", ["do u have vegeterian food"], lambda t: "risotto" in t.low),
    ("typo_saturdy", ["table for 2 saturdy at 7pm", "Ky"], booked_on("2026-01-10", "19:00")),
    ("typo_lowercase_all", ["i want a resevation for four people on friday at half past seven", "ky"],
     booked_on("2026-01-09", "19:30")),
]


@pytest.mark.parametrize("name,script,check", CASES, ids=[c[0] for c in CASES])
async def test_heldout2(chat: Chat, name: str, script: list[str], check: Check) -> None:
    turn = await chat.script(*script)
    assert check(turn), f"{name}: {turn.text!r} approval={turn.approval}"
