"""One error shape for every HTTP answer: ``{"code", "message", ...}``.

``ApiError`` is raised by routes; ``install_error_handlers`` converts it, the
brain's ``TurnRejected``, request validation errors (422 with the field, 400
``malformed_json`` saying why) and unknown routes into that shape. Field names and
messages never echo a character that cannot be encoded (see ``parley.text_guard``).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from parley.brain.errors import TurnRejected
from parley.text_guard import escape_unstorable

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.extra = extra


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, **extra}, status_code=status, headers=headers
    )


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return escape_unstorable(".".join(parts)) or "body"


def _malformed(errs: list[Any]) -> str:
    reason = next((e.get("ctx", {}).get("error") for e in errs if e.get("ctx")), None)
    why = f": {reason}" if isinstance(reason, str) and reason else ""
    return f"the request body is not valid JSON{escape_unstorable(why)}"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers, **exc.extra)

    @app.exception_handler(TurnRejected)
    async def _rejected(_: Request, exc: TurnRejected) -> JSONResponse:
        return error_response(exc.http_status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errs):
            return error_response(400, "malformed_json", _malformed(list(errs)))
        fields = [
            {
                "field": _field_name(tuple(e["loc"])),
                "message": escape_unstorable(str(e["msg"]).removeprefix("Value error, ")),
            }
            for e in errs
        ]
        first = fields[0] if fields else {"field": "body", "message": "invalid"}
        return error_response(
            422, "invalid_request", f"{first['field']}: {first['message']}", fields=fields
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
        code = codes.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))
