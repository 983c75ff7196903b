"""The web page in a real browser: Playwright driving Debian's Chromium against the real app.

Each test starts the app on 127.0.0.1 (SQLite, in-process coordination, the rules brain)
and a fresh Chromium profile. The page's own test hooks (``window.parley``) report its
state; everything else is asserted on what a person sees (bubbles, cards, toasts) and on
the stored history. Set ``PARLEY_SCREENSHOTS_DIR`` to keep the desktop and phone shots.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from parley.app import create_app
from parley.audio.pcm import silence
from parley.audio.wav import write_wav
from parley.config import Settings
from parley.testing import speech
from parley.testing.servers import serve_app
from tests.plugins.stores import sqlite_url

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)"
    ),
]

BASE_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
FAKE_MEDIA_FLAGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
TIMEOUT_MS = 20_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

Page = Any  # playwright.async_api.Page
Browse = Callable[..., AbstractAsyncContextManager[Page]]


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    """Extra settings for the app under test (parametrize this name to change them)."""
    return {}


@pytest.fixture
async def app(tmp_path: Path, app_overrides: dict[str, Any]) -> AsyncIterator[FastAPI]:
    settings = Settings(
        data_dir=tmp_path / "data", database_url=sqlite_url(tmp_path), **app_overrides
    )
    application = create_app(settings)
    async with serve_app(application) as url:
        application.state.base_url = url
        yield application


@pytest.fixture
def base_url(app: FastAPI) -> str:
    url: str = app.state.base_url
    return url


@pytest.fixture
def browse(tmp_path: Path, base_url: str) -> Browse:
    """``browse(mic_wav=None, deny_mic=False, path="/")``: a page on the app in a fresh
    profile."""

    @asynccontextmanager
    async def open_page(
        mic_wav: Path | None = None, deny_mic: bool = False, path: str = "/"
    ) -> AsyncIterator[Page]:
        flags = list(BASE_FLAGS)
        if deny_mic:  # a fake device exists, but the permission prompt is turned down
            flags += ["--use-fake-device-for-media-stream", "--deny-permission-prompts"]
        else:
            flags += FAKE_MEDIA_FLAGS
        if mic_wav is not None:
            flags.append(f"--use-file-for-fake-audio-capture={mic_wav}%noloop")
        profile = tempfile.mkdtemp(prefix="profile-", dir=tmp_path)  # a fresh, empty profile
        async with playwright_api.async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                headless=True,
                args=flags,
                viewport=DESKTOP,
            )
            page = context.pages[0] if context.pages else await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            try:
                await page.goto(base_url + path)
                await page.wait_for_function("window.parley && window.parley.snapshot().sessionId")
                yield page
            finally:
                await context.close()
            assert errors == [], f"uncaught errors in the page: {errors}"

    return open_page


# --- helpers -----------------------------------------------------------------------------


async def snapshot(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate("window.parley.snapshot()")
    return result


async def say(page: Page, text: str) -> None:
    """Type a message, send it with Enter, and wait until the turn is over."""
    before = await page.locator(".msg-assistant, .card.approval").count()
    await page.fill("#composer-input", text)
    await page.press("#composer-input", "Enter")
    await page.wait_for_function(
        "n => !window.parley.snapshot().busy && "
        "document.querySelectorAll('.msg-assistant, .card.approval').length > n",
        arg=before,
    )


async def last_assistant_text(page: Page) -> str:
    text: str = await page.locator(".msg-assistant .bubble").last.inner_text()
    return text


async def saved_session(page: Page) -> dict[str, str]:
    """What the page keeps in localStorage to survive a reload."""
    saved: dict[str, str] = await page.evaluate(
        "JSON.parse(localStorage.getItem('parley.session.demo'))"
    )
    return saved


async def stored_messages(base_url: str, saved: dict[str, str]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base_url) as http:
        answer = await http.get(
            f"/v1/sessions/{saved['session_id']}/messages",
            headers={"Authorization": f"Bearer {saved['session_token']}"},
        )
    assert answer.status_code == 200
    messages: list[dict[str, Any]] = answer.json()
    return messages


async def book_until_approval(page: Page) -> None:
    await say(page, "I'd like a table for two next Wednesday at 7pm")
    await say(page, "my name is Ann")
    await page.wait_for_selector(".card.approval[data-status=pending]")


async def shoot(page: Page, tmp_path: Path, name: str) -> None:
    """Screenshots at desktop and phone sizes; kept when PARLEY_SCREENSHOTS_DIR is set."""
    keep = os.environ.get("PARLEY_SCREENSHOTS_DIR")
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.set_viewport_size(size)
        await page.evaluate("document.getElementById('transcript').scrollTop = 1e9")
        await page.wait_for_timeout(250)  # let the layout settle before the picture
        path = tmp_path / f"{name}-{label}.png"
        await page.screenshot(path=str(path))
        keep_screenshot(path, keep)
    await page.set_viewport_size(DESKTOP)


def keep_screenshot(path: Path, keep: str | None) -> None:
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


# --- chat --------------------------------------------------------------------------------


async def test_greeting_is_shown_for_a_new_session(browse: Browse) -> None:
    async with browse() as page:
        await page.wait_for_selector(".msg-assistant")
        assert "Bistro" in await last_assistant_text(page)
        assert (await snapshot(page))["channel"] == "chat"
        assert await page.get_attribute("#transcript-items", "aria-live") == "polite"


async def test_typed_booking_through_the_approval_card(
    browse: Browse, base_url: str, tmp_path: Path
) -> None:
    async with browse() as page:
        await book_until_approval(page)
        card = page.locator(".card.approval")
        assert "Book a table" in await card.locator(".card-title").inner_text()
        details = await card.locator(".card-args").inner_text()
        assert "Ann" in details and "Party size" in details and "2" in details
        await shoot(page, tmp_path, "approval")

        await card.get_by_role("button", name="Approve book a table").click()
        await page.wait_for_selector(".card.approval[data-status=approved]")
        await page.wait_for_function("!window.parley.snapshot().busy")
        assert (await card.locator(".badge").inner_text()).startswith("Approved")
        assert await card.get_by_role("button", name="Approve book a table").is_hidden()
        reply = (await last_assistant_text(page)).lower()
        assert "ann" in reply or "booked" in reply or "confirm" in reply
        saved = await saved_session(page)

    results = [
        b
        for m in await stored_messages(base_url, saved)
        for b in m["blocks"]
        if b["type"] == "tool_result" and b["name"] == "book_table"
    ]
    assert [r["status"] for r in results] == ["ok"]


async def test_denying_shows_a_denied_badge(browse: Browse, base_url: str) -> None:
    async with browse() as page:
        await book_until_approval(page)
        await page.get_by_role("button", name="Deny book a table").press("Enter")  # by keyboard
        await page.wait_for_selector(".card.approval[data-status=denied]")
        assert await page.evaluate("document.activeElement.classList.contains('approval')")
        assert "Denied" in await page.locator(".card.approval .badge").inner_text()
        await page.wait_for_function("!window.parley.snapshot().busy")
        saved = await saved_session(page)
    statuses = [
        b["status"]
        for m in await stored_messages(base_url, saved)
        for b in m["blocks"]
        if b["type"] == "approval"
    ]
    assert statuses == ["denied"]


async def test_carousel_click_sends_a_ui_action(
    browse: Browse, base_url: str, tmp_path: Path
) -> None:
    async with browse() as page:
        await say(page, "show me the menu")
        cards = page.locator(".carousel-card")
        await cards.first.wait_for()
        assert await cards.count() >= 2
        await shoot(page, tmp_path, "menu")
        title = await cards.first.locator(".carousel-title").inner_text()
        before = await page.locator(".msg-assistant").count()
        await cards.first.click()
        await page.wait_for_function(
            "n => !window.parley.snapshot().busy && "
            "document.querySelectorAll('.msg-assistant').length > n",
            arg=before,
        )
        assert title.lower() in (await last_assistant_text(page)).lower()
        saved = await saved_session(page)
    actions = [
        b
        for m in await stored_messages(base_url, saved)
        if m["role"] == "user"
        for b in m["blocks"]
        if b["type"] == "ui_action"
    ]
    assert len(actions) == 1 and title.lower() in actions[0]["msg"].lower()


async def test_reload_keeps_the_conversation_and_its_pending_card(browse: Browse) -> None:
    async with browse() as page:
        await book_until_approval(page)
        session = (await snapshot(page))["sessionId"]
        bubbles = await page.locator(".msg").all_inner_texts()

        await page.reload()
        await page.wait_for_selector(".card.approval[data-status=pending]")
        assert (await snapshot(page))["sessionId"] == session
        assert await page.locator(".msg").all_inner_texts() == bubbles

        await page.get_by_role("button", name="Approve book a table").click()
        await page.wait_for_selector(".card.approval[data-status=approved]")
        await page.reload()
        badge = page.locator(".card.approval[data-status=approved] .badge")
        assert (await badge.inner_text()).startswith("Approved")
        assert await page.get_by_role("button", name="Approve book a table").count() == 0


async def test_new_conversation_starts_over(browse: Browse) -> None:
    async with browse() as page:
        await say(page, "what are your opening hours")
        first = (await snapshot(page))["sessionId"]
        await page.get_by_role("button", name="New conversation").click()
        await page.wait_for_function("s => window.parley.snapshot().sessionId !== s", arg=first)
        await page.wait_for_selector(".msg-assistant")
        assert await page.locator(".msg-user").count() == 0


async def test_server_text_is_escaped(browse: Browse) -> None:
    async with browse() as page:
        rendered = await page.evaluate(
            """async () => {
                const { renderMarkdown } = await import('/web/js/render.js');
                const box = document.createElement('div');
                box.innerHTML = renderMarkdown(
                    '**Hi** <img src=x onerror="window.pwned=1"> [x](javascript:alert(1))\\n' +
                    '- one\\n- [two](https://example.com)');
                return { tags: [...box.querySelectorAll('*')].map(n => n.tagName),
                         hrefs: [...box.querySelectorAll('a')].map(a => a.href),
                         text: box.textContent };
            }"""
        )
        assert rendered["tags"] == ["P", "STRONG", "UL", "LI", "LI", "A"]
        assert rendered["hrefs"] == ["https://example.com/"]
        assert "<img" in rendered["text"]
        await say(page, "<b>hello</b> there")
        assert await page.locator(".msg-user .bubble").last.inner_text() == "<b>hello</b> there"
        assert await page.locator(".msg-user .bubble b").count() == 0


async def test_ended_session_shows_toast_and_banner(browse: Browse, base_url: str) -> None:
    async with browse() as page:
        saved = await saved_session(page)
        async with httpx.AsyncClient(base_url=base_url) as http:
            ended = await http.post(
                f"/v1/sessions/{saved['session_id']}/end",
                headers={"Authorization": f"Bearer {saved['session_token']}"},
            )
        assert ended.status_code == 200
        await page.fill("#composer-input", "hello?")
        await page.press("#composer-input", "Enter")
        await page.wait_for_selector(".toast[data-code=session_ended]")
        await page.wait_for_selector(".banner[data-key=ended]")
        assert await page.locator("#composer-input").is_disabled()
        assert "Not sent" in await page.locator(".msg-user").last.inner_text()


async def test_busy_server_shows_a_toast_and_keeps_the_text(browse: Browse, app: FastAPI) -> None:
    async with browse() as page:
        session = (await snapshot(page))["sessionId"]
        lock = f"turn:{session}"
        coordinator = app.state.services.coordinator
        assert await coordinator.acquire_lock(lock, "another-writer", 30.0)
        await page.fill("#composer-input", "what are your opening hours")
        await page.press("#composer-input", "Enter")
        await page.wait_for_selector(".toast[data-code=session_busy]")
        assert "Not sent" in await page.locator(".msg-user").last.inner_text()
        assert await page.input_value("#composer-input") == "what are your opening hours"

        assert await coordinator.release_lock(lock, "another-writer")
        before = await page.locator(".msg-assistant").count()
        await page.press("#composer-input", "Enter")
        await page.wait_for_function(
            "n => document.querySelectorAll('.msg-assistant').length > n", arg=before
        )


@pytest.mark.parametrize("app_overrides", [{"session_rate_limit": 1}])
async def test_rate_limited_new_conversation_shows_a_toast(browse: Browse) -> None:
    async with browse() as page:
        first = (await snapshot(page))["sessionId"]
        await page.get_by_role("button", name="New conversation").click()
        toast = page.locator(".toast[data-code=rate_limited]")
        await toast.wait_for()
        assert "try again" in (await toast.inner_text()).lower()
        await page.wait_for_selector(".banner[data-key=load]")
        assert (await snapshot(page))["sessionId"] != first


# --- microphone --------------------------------------------------------------------------


async def test_denied_microphone_shows_a_toast(browse: Browse) -> None:
    async with browse(deny_mic=True) as page:
        await page.click("#mic")
        toast = page.locator(".toast[data-code=mic_denied]")
        await toast.wait_for()
        assert "permission" in (await toast.inner_text()).lower()
        state = await snapshot(page)
        assert state["channel"] == "chat" and state["framesSent"] == 0
        assert await page.locator("#voice-panel").is_hidden()


# --- voice (needs the /v1/voice channel) -------------------------------------------------


@pytest.fixture
def voice_channel() -> None:
    pytest.importorskip("parley.channels.voice_ws", reason="the /v1/voice channel is not built yet")


# Records every state the orb takes (its ``data-state``), the label shown with it and
# whether the page's player was holding its queue (``snapshot().paused``) at that moment.
ORB_WATCH = """() => {
  window.orbStates = [];
  const orb = document.getElementById('orb');
  const label = document.getElementById('orb-label');
  new MutationObserver(() => {
    const last = window.orbStates[window.orbStates.length - 1];
    if (last && last.state === orb.dataset.state) return;
    window.orbStates.push({
      state: orb.dataset.state, label: label.textContent,
      paused: window.parley.snapshot().paused,
    });
  }).observe(orb, { attributes: true, attributeFilter: ['data-state'] });
}"""


async def events_of(page: Page, kind: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await page.evaluate(
        "k => window.parley.events().filter(e => e.type === k)", kind
    )
    return found


async def test_spoken_request_gets_a_transcript_a_reply_and_audible_playback(
    voice_channel: None, browse: Browse, tmp_path: Path
) -> None:
    # Leading silence lets a spoken greeting finish before the request starts.
    wav = speech.write_speech_wav(
        tmp_path, "I would like to book a table for two tonight", before_s=7.0, after_s=8.0
    )
    async with browse(mic_wav=wav) as page:
        await page.wait_for_selector(".msg-assistant")
        await page.click("#mic")  # a click: hands-free
        await page.wait_for_function("window.parley.snapshot().channel === 'voice'")
        assert await page.get_attribute("#mic", "aria-pressed") == "true"
        await page.wait_for_function(
            "window.parley.events().some(e => e.type === 'transcript_final' && e.text)",
            timeout=40_000,
        )
        final = (await events_of(page, "transcript_final"))[-1]["text"]
        assert "table" in final.lower()
        await page.wait_for_selector(".msg-user[data-channel=voice]")
        await page.wait_for_function(
            "window.parley.snapshot().maxPlaybackLevel > 0.05", timeout=40_000
        )
        await page.wait_for_function(
            "window.parley.snapshot().playedReports > 0 && !window.parley.snapshot().playing",
            timeout=40_000,
        )
        state = await snapshot(page)
        assert state["framesSent"] > 100  # 20 ms frames: more than 2 s of audio went up
        assert state["audioFramesReceived"] > 0
        replies = page.locator(".msg-user[data-channel=voice] ~ .msg-assistant")
        assert await replies.count() >= 1
        await shoot(page, tmp_path, "voice")


async def test_holding_the_mic_stops_the_agent_and_chat_continues_after_voice(
    voice_channel: None, browse: Browse, base_url: str, tmp_path: Path
) -> None:
    quiet = tmp_path / "silence.wav"
    write_wav(quiet, silence(30.0, 16000), 16000)
    async with browse(mic_wav=quiet) as page:
        await page.wait_for_selector(".msg-assistant")
        await page.click("#mic")  # hands-free on: connects voice
        await page.wait_for_function("window.parley.snapshot().channel === 'voice'")
        await page.click("#mic")  # hands-free off: the mic only sends while held
        assert not (await snapshot(page))["handsFree"]
        await page.wait_for_function(  # the greeting, spoken on first attachment
            "window.parley.events().some(e => e.type === 'done')", timeout=30_000
        )
        assert (await snapshot(page))["interruptions"] == 0
        await page.fill("#composer-input", "show me the menu")
        await page.press("#composer-input", "Enter")  # goes over the WebSocket as `text`
        await page.wait_for_function(
            "window.parley.snapshot().playing && window.parley.snapshot().playbackLevel > 0.02",
            timeout=40_000,
        )
        await page.evaluate("document.activeElement.blur()")
        await page.keyboard.down("Space")  # held past the click threshold: push-to-talk
        await page.wait_for_function("window.parley.snapshot().pttHeld")
        await page.wait_for_function("!window.parley.snapshot().playing", timeout=1_000)
        await page.wait_for_function(
            "window.parley.events().some(e => e.type === 'interrupted')", timeout=10_000
        )
        await page.wait_for_function("window.parley.snapshot().playbackLevel < 0.01", timeout=500)
        await page.keyboard.up("Space")
        await page.wait_for_selector(".msg-assistant.interrupted")
        await page.click("#leave-voice")
        await page.wait_for_function("window.parley.snapshot().channel === 'chat'")
        await say(page, "what are your opening hours")  # back over HTTP, same conversation
        assert "tuesday" in (await last_assistant_text(page)).lower()
        saved = await saved_session(page)
    stored = await stored_messages(base_url, saved)
    assert any(m["role"] == "assistant" and m["interrupted"] for m in stored)
    users = [(m["channel"], m["text"]) for m in stored if m["role"] == "user"]
    assert ("voice", "show me the menu") in users
    assert ("chat", "what are your opening hours") in users


async def test_a_backchannel_over_the_greeting_pauses_and_resumes_its_playback(
    voice_channel: None, browse: Browse, tmp_path: Path
) -> None:
    # "okay" 2.5 s after the mic opens: while the ~7 s greeting plays
    wav = speech.write_speech_wav(tmp_path, "okay", before_s=2.5, after_s=20.0)
    async with browse(mic_wav=wav) as page:
        await page.wait_for_selector(".msg-assistant")
        await page.evaluate(ORB_WATCH)  # every state the orb shows, with the player's facts
        await page.click("#mic")  # hands-free
        keep = os.environ.get("PARLEY_SCREENSHOTS_DIR")
        if keep:  # a picture of the paused orb (only then: the pause lasts well under a second)
            await page.wait_for_function(
                "window.parley.snapshot().orb === 'paused'", polling=10, timeout=30_000
            )
            path = tmp_path / "voice-paused.png"
            await page.screenshot(path=str(path))
            keep_screenshot(path, keep)
        await page.wait_for_function(
            "window.parley.events().some(e => e.type === 'playback_resumed')", timeout=30_000
        )
        assert (await snapshot(page))["pauses"] == 1  # the page held its player
        # the pause was shown, distinctly, while it lasted, and went away on the resume
        await page.wait_for_function("window.parley.snapshot().orb !== 'paused'", timeout=1_000)
        shown = await page.evaluate("window.orbStates")
        states = [entry["state"] for entry in shown]
        assert "paused" in states, states
        at = states.index("paused")
        assert "speaking" in states[:at], states  # the greeting was playing when it paused
        assert states[at + 1] == "speaking", states  # and plays on after the resume
        assert all(
            entry["paused"] and entry["label"].startswith("Paused")
            for entry in shown
            if entry["state"] == "paused"
        ), shown
        assert not (await snapshot(page))["paused"]
        label = await page.locator("#orb-label").inner_text()
        assert "Paused" not in label
        await page.wait_for_function(
            "window.parley.events().some(e => e.type === 'done')", timeout=30_000
        )
        # the player went on after the pause and played the greeting to its end
        await page.wait_for_function("!window.parley.snapshot().playing", timeout=10_000)
        types = [e["type"] for e in await page.evaluate("window.parley.events()")]
        assert types.index("playback_paused") < types.index("playback_resumed")
        assert "interrupted" not in types and "transcript_final" not in types
        assert (await snapshot(page))["interruptions"] == 0


async def test_approval_card_works_over_voice(
    voice_channel: None, browse: Browse, base_url: str, tmp_path: Path
) -> None:
    quiet = tmp_path / "silence.wav"
    write_wav(quiet, silence(30.0, 16000), 16000)
    async with browse(mic_wav=quiet) as page:
        await page.wait_for_selector(".msg-assistant")
        await page.click("#mic")
        await page.wait_for_function("window.parley.snapshot().channel === 'voice'")
        await page.click("#mic")  # hands-free off: only typed input from here on
        for text in ("I'd like a table for two next Wednesday at 7pm", "my name is Ann"):
            turns = len(await events_of(page, "turn_end"))
            await page.fill("#composer-input", text)
            await page.press("#composer-input", "Enter")
            await page.wait_for_function(
                "n => window.parley.events().filter(e => e.type === 'turn_end').length > n",
                arg=turns,
                timeout=30_000,
            )
        await page.get_by_role("button", name="Approve book a table").click()
        await page.wait_for_selector(".card.approval[data-status=approved]", timeout=30_000)
        resolved = await events_of(page, "approval_resolved")
        assert [e["status"] for e in resolved] == ["approved"]
        await page.wait_for_function(
            "window.parley.events().some(e => e.type === 'tool_call_completed' "
            "&& e.name === 'book_table')"
        )
        assert "Done: book a table" in await page.locator(".card.approval").inner_text()
        saved = await saved_session(page)
    results = [
        b["status"]
        for m in await stored_messages(base_url, saved)
        for b in m["blocks"]
        if b["type"] == "tool_result" and b["name"] == "book_table"
    ]
    assert results == ["ok"]


async def test_session_ended_while_in_voice_shows_the_banner(
    voice_channel: None, browse: Browse, base_url: str, tmp_path: Path
) -> None:
    quiet = tmp_path / "silence.wav"
    write_wav(quiet, silence(30.0, 16000), 16000)
    async with browse(mic_wav=quiet) as page:
        await page.click("#mic")
        await page.wait_for_function("window.parley.snapshot().channel === 'voice'")
        saved = await saved_session(page)
        async with httpx.AsyncClient(base_url=base_url) as http:
            ended = await http.post(
                f"/v1/sessions/{saved['session_id']}/end",
                headers={"Authorization": f"Bearer {saved['session_token']}"},
            )
        assert ended.status_code == 200
        banner = page.locator(".banner[data-key=ended]")
        await banner.wait_for()
        assert "ended" in (await banner.inner_text()).lower()
        await page.wait_for_function("window.parley.snapshot().channel === 'chat'")
        assert await page.locator("#mic").is_disabled()
        assert [e["reason"] for e in await events_of(page, "session_ended")] == ["USER_ENDED"]
