"""The unchanged web page with a ``brain: realtime`` agent, in a real Chromium.

The app runs on 127.0.0.1 with a Gemini Live agent pointed at the local fake
(``FakeGeminiLive``); Chromium's fake microphone plays espeak speech. The page is the
one every agent uses (``/?agent=rt``): a spoken turn shows its transcript and the model's
answer and plays its audio; a typed request in voice gets an approval card that a click
decides, the tool result goes back to the model and its answer shows; after leaving
voice, typed chat goes to the same model (a text turn) and one history holds it all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from parley.testing import speech
from parley.testing.fake_gemini_live import FakeGeminiLive
from parley.testing.s2s_script import Reply
from tests.test_web_browser import (  # the same browser harness as the page's own tests
    Browse,
    events_of,
    last_assistant_text,
    say,
    snapshot,
    stored_messages,
)
from tests.test_web_browser import app as app
from tests.test_web_browser import base_url as base_url
from tests.test_web_browser import browse as browse
from tests.test_web_browser import pytestmark as pytestmark

AGENT = """
name: rt
brain: realtime
engines: {s2s: gemini_live, stt: fake, tts: espeak, vad: fake_energy}
instructions: "You are the booking assistant of Bistro."
tools:
  - name: book_table
    label: Book a table
    requires_approval: true
    approval_prompt: "Book a table for {party_size} under {name}?"
"""
BOOKING = {"name": "Ann", "date": "2031-06-03", "time": "19:00", "party_size": 2}
TURN_BYTES = 96_000  # the fake's "server VAD": 3 s of the caller's 16 kHz audio


@pytest.fixture
async def fake() -> AsyncIterator[FakeGeminiLive]:
    server = FakeGeminiLive(
        [
            Reply(
                heard="I would like a table for two tonight.",
                says="Sure, under which name?",
                chunks=40,
            ),
            Reply(tool_call=("book_table", BOOKING)),
            Reply(says="You are booked, Ann.", chunks=10),
            Reply(says="We open at noon.", chunks=2),  # the chat turn's own connection
        ],
        bytes_per_turn=TURN_BYTES,
    )
    async with server.running():
        yield server


@pytest.fixture
def app_overrides(tmp_path: Path, fake: FakeGeminiLive) -> dict[str, Any]:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "rt.yaml").write_text(AGENT)
    return {"agents_dir": agents, "gemini_api_key": "k", "gemini_base_url": fake.base_url}


async def test_the_page_works_unchanged_with_a_realtime_agent(
    browse: Browse,
    base_url: str,
    fake: FakeGeminiLive,
    tmp_path: Path,
) -> None:
    wav = speech.write_speech_wav(
        tmp_path, "I would like to book a table for two tonight", before_s=0.5, after_s=3.0
    )
    async with browse(mic_wav=wav, path="/?agent=rt") as page:
        await page.click("#mic")  # hands-free: the voice socket opens
        await page.wait_for_function("window.parley.snapshot().channel === 'voice'")
        await page.wait_for_function(
            "window.parley.events().some(e => e.type === 'transcript_final' && e.text)",
            timeout=30_000,
        )
        fake.bytes_per_turn = 10**12  # no more spoken turns: the rest is typed
        await page.click("#mic")  # hands-free off
        final = (await events_of(page, "transcript_final"))[-1]["text"]
        assert final == "I would like a table for two tonight."
        await page.wait_for_selector(".msg-user[data-channel=voice]")
        await page.wait_for_function(
            "window.parley.snapshot().playedReports > 0 && !window.parley.snapshot().playing",
            timeout=30_000,
        )
        assert (await snapshot(page))["audioFramesReceived"] > 0
        assert await last_assistant_text(page) == "Sure, under which name?"

        await page.fill("#composer-input", "Ann")
        await page.press("#composer-input", "Enter")  # over the voice socket as `text`
        await page.wait_for_selector(".card.approval[data-status=pending]", timeout=30_000)
        await page.get_by_role("button", name="Approve book a table").click()
        await page.wait_for_selector(".card.approval[data-status=approved]", timeout=30_000)
        await page.wait_for_function(
            "window.parley.events().some(e => e.type === 'tool_call_completed')"
        )
        await page.wait_for_function(
            "[...document.querySelectorAll('.msg-assistant .bubble')]"
            ".some(b => b.innerText.includes('You are booked, Ann.'))",
            timeout=30_000,
        )
        await page.click("#leave-voice")
        await page.wait_for_function("window.parley.snapshot().channel === 'chat'")
        await say(page, "when do you open")  # over HTTP: a text turn of the same model
        assert await last_assistant_text(page) == "We open at noon."
        saved: dict[str, str] = await page.evaluate(
            "JSON.parse(localStorage.getItem('parley.session.rt'))"
        )
    stored = await stored_messages(base_url, saved)
    users = [(m["channel"], m["text"]) for m in stored if m["role"] == "user"]
    assert users == [
        ("voice", "I would like a table for two tonight."),
        ("voice", "Ann"),
        ("chat", "when do you open"),
    ]
    assert fake.connections[0].tool_results[0]["name"] == "book_table"
    assert fake.connections[-1].seeded[0] == ("user", "I would like a table for two tonight.")
