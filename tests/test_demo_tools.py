"""The demo's tools on a fake clock: the venue's rules, words or ISO dates, clear errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from parley.brain.demo_tools import register_demo_tools
from parley.brain.tools import ToolContext, ToolOutcome, ToolRegistry
from parley.config import load_agents
from parley.testing import FakeClock

NOW = datetime(2026, 1, 7, 10, 0, tzinfo=UTC)  # Wednesday, 11:00 in Amsterdam


async def run(tool: str, **args: Any) -> ToolOutcome:
    agent = load_agents()["demo"]
    registry = ToolRegistry()
    register_demo_tools(registry, FakeClock(wall=NOW))
    async with httpx.AsyncClient() as client:
        bound = registry.bind(agent, client)[tool]
        return await bound.execute(ToolContext("s1", agent, {}), args)


async def test_words_and_iso_dates_give_the_same_answer() -> None:
    by_words = await run("check_availability", date="tomorrow", time="7pm", party_size=2)
    by_iso = await run("check_availability", date="2026-01-08", time="19:00", party_size=2)
    assert by_words.result == by_iso.result
    assert by_iso.result["available"] is True
    assert by_iso.result["when"] == "Thursday 8 January at 7 pm"


@pytest.mark.parametrize(
    "date,time,party,reason",
    [
        ("2026-01-12", "19:00", 2, "closed_day"),
        ("2026-01-08", "23:00", 2, "outside_hours"),
        ("2026-01-07", "10:00", 2, "past"),
        ("2026-01-08", "19:00", 9, "too_many"),
        ("2026-01-10", "20:00", 2, "full"),
    ],
)
async def test_what_cannot_be_booked_says_why(
    date: str, time: str, party: int, reason: str
) -> None:
    outcome = await run("check_availability", date=date, time=time, party_size=party)
    assert outcome.status == "ok"
    assert outcome.result["available"] is False and outcome.result["reason"] == reason
    assert outcome.result["message"]


async def test_book_table_refuses_what_the_rules_refuse() -> None:
    outcome = await run("book_table", name="Ann", date="2026-01-12", time="19:00", party_size=2)
    assert outcome.status == "error" and "closed on Mondays" in outcome.result


async def test_a_date_that_is_no_date_is_a_clear_error() -> None:
    outcome = await run("check_availability", date="someday", time="19:00", party_size=2)
    assert outcome.status == "error" and "like 2026-01-07" in outcome.result
