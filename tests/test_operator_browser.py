"""The operator console in a real browser (Playwright, Debian's Chromium): a chat caller
on the main page asks for a person; the console shows the waiting transfer with its
briefing; Accept joins; the two talk; the caller's page shows every transfer step.

Set ``PARLEY_SCREENSHOTS_DIR`` to keep the screenshots (README).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.test_voice_ws import Voice
from tests.test_web_browser import Browse, app, base_url, browse, keep_screenshot  # noqa: F401

pytestmark = pytest.mark.browser
KEY = "console-key"
Page = Any


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"operator_key": KEY}


async def keep(page: Page, tmp_path: Path, name: str) -> None:
    await page.wait_for_timeout(250)  # let the rows' fade-in finish before the picture
    path = tmp_path / f"{name}.png"
    await page.screenshot(path=str(path))
    keep_screenshot(path, os.environ.get("PARLEY_SCREENSHOTS_DIR"))


async def test_console_accepts_a_chat_transfer_and_both_talk(
    browse: Browse,  # noqa: F811
    base_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with browse() as caller:
        await caller.wait_for_selector(".msg-assistant")
        await caller.fill("#composer-input", "can I talk to a human please")
        await caller.press("#composer-input", "Enter")
        await caller.wait_for_selector(".note[data-transfer=requested]")

        console = await caller.context.new_page()
        await console.goto(base_url + "/operator")
        await console.fill("#key", "wrong")
        await console.press("#key", "Enter")
        await console.wait_for_selector("#sign-in-error:has-text('not the operator key')")
        await console.fill("#key", KEY)
        await console.press("#key", "Enter")
        card = console.locator(".card.transfer[data-status=dialing]")
        await card.wait_for()
        assert "Reason for the transfer" in await card.inner_text()
        await keep(console, tmp_path, "operator-console-waiting")

        await card.get_by_role("button", name="Accept as chat").click()
        await console.wait_for_selector("#call-status:has-text('joined')")
        # The conversation so far, for the person who takes over.
        await console.wait_for_selector(".note[data-tone=history-user]:has-text('talk to a human')")
        await caller.wait_for_selector(".note[data-transfer=joined]")

        await console.fill("#call-input", "Hi, this is Sam from the team.")
        await console.press("#call-input", "Enter")
        await caller.wait_for_selector(".note[data-role=human_agent]:has-text('Sam from the team')")
        await caller.fill("#composer-input", "thanks Sam")
        await caller.press("#composer-input", "Enter")
        await console.wait_for_selector(".note[data-tone=caller]:has-text('thanks Sam')")
        await caller.wait_for_selector(".msg-user:has-text('thanks Sam')")
        assert await caller.locator(".note[data-transfer=joined]").count() == 1
        await keep(console, tmp_path, "operator-console-call")
        await keep(caller, tmp_path, "caller-with-a-person")

        await console.get_by_role("button", name="Hang up").click()
        await caller.wait_for_selector(".note[data-transfer=ended]")
        await caller.wait_for_selector(".msg-assistant:has-text('left the conversation')")


async def test_console_accepts_a_voice_transfer_with_the_microphone(
    browse: Browse,  # noqa: F811
    base_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A voice caller (a real WebSocket client) asks for a person; the console accepts
    with its (fake) microphone: audio flows both ways, so both sides hear ``joined``."""
    url = base_url.replace("http", "ws", 1) + "/v1/voice"
    async with websockets.connect(url) as ws, browse() as page:
        caller = Voice(ws)
        await caller.send({"type": "start", "agent": "demo", "sample_rate": 16000})
        await caller.until("ready")
        await caller.send({"type": "text", "text": "can I talk to a human please"})
        await caller.until("transfer", status="dialing")

        await page.goto(base_url + "/operator")
        await page.fill("#key", KEY)
        await page.press("#key", "Enter")
        card = page.locator(".card.transfer[data-status=dialing]")
        await card.get_by_role("button", name="Accept", exact=True).click()
        await caller.until("transfer", status="briefing")
        for _ in range(25):  # half a second of the caller's voice
            await caller.send(b"\x10\x00" * 320)
        # `joined` needs audio both ways: the console's microphone reached the caller.
        await caller.until("transfer", status="joined")
        await page.wait_for_selector("#call-status:has-text('joined')")
        await page.get_by_role("button", name="Hang up").click()
        await caller.until("transfer", status="ended")
