"""The page keeps the newest message in view, and menu cards show a designed
placeholder and a scroll affordance when they overflow (real headless Chromium)."""

from __future__ import annotations

import pytest

from tests.test_web_browser import (  # noqa: F401 - fixtures
    CHROMIUM,
    PHONE,
    Browse,
    app,
    app_overrides,
    base_url,
    book_until_approval,
    browse,
    say,
)

pytest.importorskip("playwright.async_api")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium"),
]

NEWEST_IN_VIEW = """() => {
  const items = [...document.querySelectorAll('#transcript-items > *')];
  const newest = items[items.length - 1].getBoundingClientRect();
  const composer = document.getElementById('composer-input').getBoundingClientRect();
  const scroller = document.getElementById('transcript');
  return {
    gap: scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight,
    visible: newest.bottom <= composer.top,
  };
}"""


@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_the_reply_after_booking_and_menu_stays_in_view(browse: Browse, size: str) -> None:  # noqa: F811
    async with browse() as page:
        if size == "phone":
            await page.set_viewport_size(PHONE)
        await book_until_approval(page)
        await page.locator(".card.approval button[data-action=approve]").click()
        await page.wait_for_selector(".card.approval[data-status=approved]")
        await page.wait_for_function("!window.parley.snapshot().busy")
        await say(page, "show me the menu")
        # the reply after the carousel is the newest item; once scrolling settles it shows
        await page.wait_for_function(
            "document.querySelector('#transcript-items > :last-child').matches('.msg-assistant')"
        )
        await page.wait_for_function(
            f"(({NEWEST_IN_VIEW})()).visible && (({NEWEST_IN_VIEW})()).gap < 2"
        )


async def test_menu_cards_have_placeholders_and_a_scroll_affordance(browse: Browse) -> None:  # noqa: F811
    async with browse() as page:
        await page.set_viewport_size(PHONE)
        await say(page, "show me the menu")
        carousel = page.locator(".carousel").last
        await carousel.locator(".carousel-card").first.wait_for()
        # no pictures in the demo menu: each card gets a plate in a colour of its own
        assert await carousel.locator(".carousel-media.placeholder .plate").count() >= 2
        hues = await carousel.locator(".carousel-media").evaluate_all(
            "els => els.map(e => e.style.getPropertyValue('--dish-hue'))"
        )
        assert len(set(hues)) > 1
        # more cards than fit: an arrow and a fade on the right only, at first
        await page.wait_for_function(
            "document.querySelector('.carousel').dataset.moreRight === 'true'"
        )
        assert await carousel.get_attribute("data-more-left") == "false"
        assert await carousel.locator(".carousel-next").is_visible()
        assert await carousel.locator(".carousel-prev").is_hidden()
        await carousel.locator(".carousel-next").click()
        await page.wait_for_function(
            "document.querySelector('.carousel').dataset.moreLeft === 'true'"
        )
        assert await carousel.locator(".carousel-prev").is_visible()
