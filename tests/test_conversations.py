"""Conversations with the demo agent over the real HTTP API, one class of request each.

Today is Wednesday 7 January 2026, 11:00 in the venue's time zone (Europe/Amsterdam);
the venue is closed on Mondays, open 12:00-22:00 otherwise, seats up to 8, and
Saturdays at 20:00 are fully booked. ``test_conversations_heldout.py`` holds
different phrasings that were not used while building the dialogue.
"""

from __future__ import annotations

from tests.plugins.conversation import Chat, backend, chat  # noqa: F401


async def _until_approval(chat: Chat) -> None:
    await chat.say("a table for 2 tomorrow at 7pm")
    turn = await chat.say("my name is Ann Lee")
    assert turn.approval is not None


# --- approvals answered in words ---------------------------------------------------------


async def test_sure_approves_the_pending_booking(chat: Chat) -> None:
    await _until_approval(chat)
    turn = await chat.say("sure")
    assert turn.resolved and turn.resolved[0]["status"] == "approved"
    assert turn.ran("book_table") and "booked" in turn.low and "BX-" in turn.text
    assert "great" not in turn.low


async def test_please_book_it_approves(chat: Chat) -> None:
    await _until_approval(chat)
    turn = await chat.say("Yes please, book it!")
    assert turn.ran("book_table")


async def test_no_denies_and_never_says_great(chat: Chat) -> None:
    await _until_approval(chat)
    turn = await chat.say("no, don't")
    assert turn.resolved[0]["status"] == "denied"
    assert not turn.ran("book_table") and "haven't booked" in turn.low
    assert "great" not in turn.low
    assert await chat.bookings() == []


async def test_a_new_request_denies_and_says_what_happened(chat: Chat) -> None:
    await _until_approval(chat)
    turn = await chat.say("actually, what time do you close?")
    assert turn.resolved[0]["status"] == "denied"
    assert turn.resolved[0]["decided_by"] == "user_message"
    assert "haven't" in turn.low and "10 pm" in turn.low
    assert await chat.bookings() == []


async def test_approval_card_and_reply_show_the_same_date_and_time(chat: Chat) -> None:
    await chat.say("a table for 2 tomorrow at 7pm")
    turn = await chat.say("Ann")
    assert turn.approval is not None
    assert turn.approval["arguments"]["date"] == "2026-01-08"
    assert turn.approval["arguments"]["time"] == "19:00"
    assert "Thursday 8 January at 7 pm" in turn.approval["prompt"]
    turn = await chat.say("go ahead")
    assert "Thursday 8 January" in turn.text and "7 pm" in turn.text


# --- real dates ----------------------------------------------------------------------------


async def test_relative_days_become_calendar_dates(chat: Chat) -> None:
    turn = await chat.script("table for 3 next friday at 8pm", "Bea")
    assert turn.approval is not None
    assert turn.approval["arguments"]["date"] == "2026-01-16"
    assert turn.approval["arguments"]["time"] == "20:00"


async def test_the_12th_is_this_months(chat: Chat) -> None:
    turn = await chat.script("table for 2 on the 13th at 1pm", "Cy")
    assert turn.approval is not None and turn.approval["arguments"]["date"] == "2026-01-13"


async def test_nine_oclock_digits_follow_the_hours(chat: Chat) -> None:
    turn = await chat.script("table for 2 tomorrow at 9:00", "Di")
    assert turn.approval is not None and turn.approval["arguments"]["time"] == "21:00"


async def test_what_day_is_it(chat: Chat) -> None:
    turn = await chat.say("what day is it?")
    assert "Wednesday 7 January" in turn.text


# --- the restaurant's rules ------------------------------------------------------------------


async def test_closed_on_monday_offers_tuesday(chat: Chat) -> None:
    turn = await chat.say("table for 2 on monday at 7pm")
    assert "closed on Mondays" in turn.text and "Tuesday 13 January" in turn.text
    assert turn.approval is None
    turn = await chat.script("yes", "Ed")
    assert turn.approval is not None and turn.approval["arguments"]["date"] == "2026-01-13"


async def test_too_big_a_party(chat: Chat) -> None:
    turn = await chat.say("a table for 12 people tomorrow at 7pm")
    assert "up to 8" in turn.text and turn.approval is None


async def test_outside_opening_hours(chat: Chat) -> None:
    turn = await chat.say("table for two tomorrow at 11pm")
    assert "from 12 pm to 9:30 pm" in turn.text and turn.approval is None


async def test_earlier_today_has_passed(chat: Chat) -> None:
    turn = await chat.say("table for 2 today at 10am")
    assert "passed" in turn.low and turn.approval is None


# --- choosing from what was offered -------------------------------------------------------------


async def test_the_later_one(chat: Chat) -> None:
    turn = await chat.say("table for 2 on saturday at 8pm")
    assert "full" in turn.low and "6 pm" in turn.text
    turn = await chat.script("the later one", "Flo")
    assert turn.approval is not None and turn.approval["arguments"]["time"] == "21:30"


async def test_six_thirty_works(chat: Chat) -> None:
    await chat.say("table for 2 on saturday at 8pm")
    turn = await chat.script("6:30 works", "Gus")
    assert turn.approval is not None and turn.approval["arguments"]["time"] == "18:30"


async def test_the_first_one(chat: Chat) -> None:
    await chat.say("table for 2 on saturday at 8pm")
    turn = await chat.script("the first one", "Hal")
    assert turn.approval is not None and turn.approval["arguments"]["time"] == "18:00"


# --- menu, FAQ, bookings, small talk ------------------------------------------------------------


async def test_price_without_showing_the_menu(chat: Chat) -> None:
    turn = await chat.say("how much is the steak frites?")
    assert "€24" in turn.text and not turn.tools


async def test_vegetarian_options(chat: Chat) -> None:
    turn = await chat.say("do you have vegetarian dishes?")
    assert "Mushroom risotto" in turn.text and "Steak" not in turn.text


async def test_risotto_contains_nuts(chat: Chat) -> None:
    turn = await chat.say("does the risotto have nuts in it?")
    assert "contains nuts" in turn.text


async def test_unknown_allergens_are_not_promised(chat: Chat) -> None:
    turn = await chat.say("is the chocolate fondant safe for a sesame allergy")
    assert "can't promise" in turn.text


async def test_is_the_salad_vegan(chat: Chat) -> None:
    turn = await chat.say("is the garden salad vegan?")
    assert turn.text.startswith("Yes")


async def test_faq_answers(chat: Chat) -> None:
    assert "card" in (await chat.say("can I pay by card?")).low
    assert "dogs" in (await chat.say("are dogs allowed?")).low
    assert "high chairs" in (await chat.say("do you have a high chair for my son")).low
    assert "takeaway" in (await chat.say("do you do takeaway?")).low
    assert "Harbour Street" in (await chat.say("where are you located?")).text
    assert "Monday" in (await chat.say("what are your opening hours?")).text


async def test_confirmation_number_is_repeated(chat: Chat) -> None:
    await _until_approval(chat)
    booked = await chat.say("yes")
    code = (await chat.bookings())[0]["confirmation"]
    assert code in booked.text
    turn = await chat.say("what's my confirmation number?")
    assert code in turn.text


async def test_running_late_and_cancel_are_about_the_booking(chat: Chat) -> None:
    await _until_approval(chat)
    await chat.say("ok")
    code = (await chat.bookings())[0]["confirmation"]
    assert "15 minutes" in (await chat.say("I'm running late")).text
    turn = await chat.say(f"cancel {code}")
    assert code in turn.text and "cancel" in turn.low and not turn.approval
    turn = await chat.say("cancel BX-0000")
    assert "can't find" in turn.low


async def test_small_talk_does_not_start_a_booking(chat: Chat) -> None:
    turn = await chat.say("how are you?")
    assert "well" in turn.low and "how many" not in turn.low


# --- typing like people type ------------------------------------------------------------------------


async def test_abbreviations_and_misspellings(chat: Chat) -> None:
    turn = await chat.script("can i make a reservaton for 4 ppl tmrw at 8pm", "Ivy")
    assert turn.approval is not None
    assert turn.approval["arguments"] == {
        "name": "Ivy",
        "date": "2026-01-08",
        "time": "20:00",
        "party_size": 4,
    }


async def test_too_people_and_emoji(chat: Chat) -> None:
    turn = await chat.script("TABLE FOR TOO PEOPLE TOMOROW 7PM 🙂", "Jay")
    assert turn.approval is not None and turn.approval["arguments"]["party_size"] == 2


async def test_an_offered_person_is_fetched_on_yes(chat: Chat) -> None:
    turn = await chat.say("I want to change my booking")
    assert "confirmation code" in turn.text
    turn = await chat.say("yes please")
    assert turn.ran("transfer_to_human") and "member of our team" in turn.text
    assert "transfer_to_human" not in turn.text


async def test_a_name_that_looks_like_a_typo_is_kept(chat: Chat) -> None:
    await chat.say("table for 2 tomorrow at 7pm")
    turn = await chat.say("fridah")
    assert turn.approval is not None and turn.approval["arguments"]["name"] == "Fridah"


async def test_a_closed_day_is_said_before_asking_the_time(chat: Chat) -> None:
    turn = await chat.say("table for 2 on monday")
    assert "closed on Mondays" in turn.text and "time" not in turn.low
    turn = await chat.script("the second one", "7pm", "Kai")
    assert turn.approval is not None and turn.approval["arguments"]["date"] == "2026-01-14"


async def test_a_day_that_does_not_exist_is_said(chat: Chat) -> None:
    turn = await chat.say("table for 2 on 31 february at 7pm")
    assert "no 31 February" in turn.text and turn.approval is None


async def test_in_three_days_and_a_bare_hour_after_the_day(chat: Chat) -> None:
    turn = await chat.script("table for 2 in 3 days at 7", "Lou")
    assert turn.approval is not None
    assert (turn.approval["arguments"]["date"], turn.approval["arguments"]["time"]) == (
        "2026-01-10",
        "19:00",
    )
    await chat.say("no")
    turn = await chat.say("2 ppl tmrw 7")  # the name is known by now
    checked = turn.ran("check_availability")
    assert checked is not None
    assert (checked["result"]["date"], checked["result"]["time"]) == ("2026-01-08", "19:00")
    assert "Shall I book it under Lou?" in turn.text


async def test_cancel_after_booking_is_about_that_booking(chat: Chat) -> None:
    await _until_approval(chat)
    await chat.say("yes")
    code = (await chat.bookings())[0]["confirmation"]
    turn = await chat.say("cancel it")
    assert code in turn.text and "person" in turn.text


async def test_what_time_is_it(chat: Chat) -> None:
    assert "11 am" in (await chat.say("what time is it?")).text


async def test_small_talk_with_a_day_in_it(chat: Chat) -> None:
    turn = await chat.say("how are you doing today?")
    assert "well" in turn.low and "how many" not in turn.low


async def test_kids_count_as_guests_and_the_question_is_answered_too(chat: Chat) -> None:
    turn = await chat.say("2 adults and 2 kids tomorrow at 6pm")
    assert "high chairs" in turn.text and "table for 4" in turn.text


async def test_more_menu_questions_from_data(chat: Chat) -> None:
    turn = await chat.say("any nut free desserts?")
    assert "Mushroom risotto contains nuts" in turn.text and "can't promise" in turn.text
    assert "Chocolate fondant" not in turn.text  # its allergens are not known: never promised
    assert "Garden salad" in (await chat.say("anything for someone who doesn't eat meat?")).text
    assert "€9" in (await chat.say("what's the cheapest thing on the menu")).text
    assert "assistant" in (await chat.say("who am I speaking with?")).text
