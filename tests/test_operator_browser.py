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
