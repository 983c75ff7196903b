"""``/docs``: the Swagger UI page for the OpenAPI schema, served from this machine.

FastAPI's default page loads Swagger UI from a CDN, so it is blank without internet.
Here the page's JavaScript, CSS and icon come from the ``swagger-ui-py`` package (Swagger
UI 5, Apache-2.0 licence shipped beside the files), mounted at ``/docs/assets``; the
validator badge, which would call an outside service, is switched off. ReDoc
(``/redoc``) is not offered: it has no offline bundle on PyPI.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE")


def swagger_assets_dir() -> Path | None:
    """Where the installed ``swagger-ui-py`` keeps Swagger UI's files (None if absent)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    static = Path(next(iter(spec.submodule_search_locations))) / "static"
    return static if all((static / name).is_file() for name in ASSET_FILES) else None


def install(app: FastAPI) -> None:
    """Add ``/docs`` (create the app with ``docs_url=None, redoc_url=None``)."""
    assets = swagger_assets_dir()
    title = f"{app.title} API"
    openapi_url = app.openapi_url or "/openapi.json"
    redirect = f"{DOCS_PATH}/oauth2-redirect"

    if assets is None:

        @app.get(DOCS_PATH, include_in_schema=False)
        async def docs_unavailable() -> PlainTextResponse:
            return PlainTextResponse(
                "The API docs page needs the swagger-ui-py package "
                f"(pip install swagger-ui-py). The schema is at {openapi_url}.",
                status_code=503,
            )

        return

    app.mount(ASSETS_PATH, StaticFiles(directory=assets), name="docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
            oauth2_redirect_url=redirect,
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(redirect, include_in_schema=False)
    async def docs_oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
