"""``StrictRoute``: the route class of the HTTP API's routers.

It changes two things about how a request reaches a route, both at the edge:

- a JSON body is parsed by ``parley.channels.json_body`` (UTF-8 only, at most 64
  levels deep, no NaN or infinity); anything else is 400 ``malformed_json``;
- a path parameter holding a character no store can keep (``%00``, see
  ``parley.text_guard``) names nothing that can exist: 404 with the code of what it
  names (``session_not_found``, ``approval_not_found``, ...), before any lookup.

Use it as ``APIRouter(route_class=StrictRoute)``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from parley.channels.http_errors import ApiError
from parley.channels.json_body import parse_json_body
from parley.text_guard import unstorable_reason

# path parameter -> (code, message) of the 404 for a value that cannot name anything
NOT_FOUND: dict[str, tuple[str, str]] = {
    "session_id": ("session_not_found", "no such session"),
    "tool_call_id": ("approval_not_found", "no such pending tool call"),
    "audio_id": ("audio_not_found", "no such reply audio"),
    "transfer_id": ("transfer_not_found", "no such live transfer"),
}


class StrictJsonRequest(Request):
    """A request whose ``json()`` is ``parse_json_body``."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json_body(await self.body())
        return self._json


def check_path_params(params: dict[str, Any]) -> None:
    """404 for a path parameter that holds an unstorable character."""
    for name, value in params.items():
        if isinstance(value, str) and unstorable_reason(value) is not None:
            code, message = NOT_FOUND.get(name, ("not_found", "no such resource"))
            raise ApiError(404, code, message)


class StrictRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            check_path_params(request.path_params)
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler
