"""``/docs`` in real headless Chromium: the Swagger UI renders the API without a single
request leaving 127.0.0.1 (no CDN, no validator badge, no font service)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.test_web_browser import (  # noqa: F401 - fixtures
    BASE_FLAGS,
    CHROMIUM,
    TIMEOUT_MS,
    app,
    app_overrides,
    base_url,
)

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium"),
]


async def test_docs_page_works_offline(base_url: str, tmp_path: Path) -> None:  # noqa: F811
    requested: list[str] = []
    profile = tempfile.mkdtemp(prefix="profile-", dir=tmp_path)
    async with playwright_api.async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=BASE_FLAGS
        )
        context.on("request", lambda request: requested.append(request.url))
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            await page.goto(base_url + "/docs")
            # operations are drawn only after the bundle ran and the schema was loaded
            await page.locator(".opblock-summary-path", has_text="/v1/sessions").first.wait_for()
            title = await page.locator(".swagger-ui .title").first.inner_text()
            await page.screenshot(path=str(tmp_path / "docs.png"))
        finally:
            await context.close()
    assert title.startswith("Parley")
    hosts = {urlsplit(u).netloc for u in requested if urlsplit(u).scheme in ("http", "https")}
    assert hosts == {urlsplit(base_url).netloc}, f"requests left the machine: {requested}"
    assert f"{base_url}/docs/assets/swagger-ui-bundle.js" in requested
    assert f"{base_url}/openapi.json" in requested


async def test_docs_assets_and_licence_are_served(base_url: str) -> None:  # noqa: F811
    async with httpx.AsyncClient(base_url=base_url) as http:
        page = (await http.get("/docs")).text
        licence = await http.get("/docs/assets/LICENSE")
        css = await http.get("/docs/assets/swagger-ui.css")
    assert "cdn." not in page and "fastapi.tiangolo.com" not in page
    assert '"validatorUrl": null' in page
    assert licence.status_code == 200 and "Apache License" in licence.text
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
