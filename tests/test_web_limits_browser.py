"""A chat-only page on an agent with a short time limit (Playwright + Debian's Chromium):
the page follows ``/v1/sessions/{id}/events`` and shows the time-limit banner, then the
session's end, with no message sent and no voice socket.

The limit is real time (4 s, warned 2 s before) because the sweeper of the real server
ends it; the waits are bounded by the page's default timeout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.test_web_browser import (  # noqa: F401 (fixtures)
    Browse,
    app,
    base_url,
    browse,
    snapshot,
)

pytestmark = pytest.mark.browser

SHORT = """
name: demo
brain: rules
greeting: "Hi, this is a short one."
fallback: "Pardon?"
limits: {max_duration_s: 4, warning_before_s: 2}
"""


@pytest.fixture
def app_overrides(tmp_path: Path) -> dict[str, Any]:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "demo.yaml").write_text(SHORT)
    return {"agents_dir": agents}


async def test_a_chat_page_shows_the_time_limit_banner_and_then_the_end(
    browse: Browse,  # noqa: F811
) -> None:
    async with browse() as page:
        assert (await snapshot(page))["channel"] == "chat"
        assert await page.locator(".banner[data-key=time]").count() == 0
        warned = page.locator(".banner[data-key=time]")
        await warned.wait_for()
        assert "seconds left" in await warned.inner_text()
        ended = page.locator(".banner[data-key=ended]")
        await ended.wait_for()
        assert "time limit" in await ended.inner_text()
        assert await warned.count() == 0  # the end replaces the warning
        assert await page.locator("#composer-input").is_disabled()
