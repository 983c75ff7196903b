"""A small async HTTP client for Parley's chat API, with a real SSE parser.

Used by ``parley chat`` and by the tests; also a reference for SDK authors.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


class ApiFailure(Exception):
    """The server answered with an error body ``{"code", "message"}``."""

    def __init__(self, status: int, code: str, message: str, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body


@dataclass
class SseEvent:
    event: str
    data: dict[str, Any]


async def parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[SseEvent]:
    """Parse ``text/event-stream`` lines (``event:``/``data:``/blank line)."""
    event, data = "message", list[str]()
    async for line in lines:
        if line == "":
            if data:
                yield SseEvent(event, json.loads("\n".join(data)))
            event, data = "message", list[str]()
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
    if data:
        yield SseEvent(event, json.loads("\n".join(data)))


def _raise_for(resp: httpx.Response, body: bytes) -> None:
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = {"code": "http_error", "message": body.decode(errors="replace")}
    if not isinstance(parsed, dict):
        parsed = {"code": "http_error", "message": str(parsed)}
    raise ApiFailure(resp.status_code, str(parsed.get("code")), str(parsed.get("message")), parsed)


class ParleyClient:
    def __init__(self, base_url: str, *, http: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http or httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=10.0))
        self.session: dict[str, Any] | None = None

    async def aclose(self) -> None:
        await self.http.aclose()

    @property
    def session_id(self) -> str:
        assert self.session is not None, "create a session first"
        return str(self.session["session_id"])

    def _auth(self, token: str | None = None) -> dict[str, str]:
        tok = token or (self.session or {}).get("session_token")
        return {"Authorization": f"Bearer {tok}"} if tok else {}

    async def create_session(self, agent: str = "demo", **body: Any) -> dict[str, Any]:
        resp = await self.http.post(f"{self.base_url}/v1/sessions", json={"agent": agent, **body})
        if resp.status_code != 201:
            _raise_for(resp, resp.content)
        self.session = resp.json()
        return self.session

    async def get(self, path: str) -> Any:
        resp = await self.http.get(
            f"{self.base_url}/v1/sessions/{self.session_id}{path}", headers=self._auth()
        )
        if resp.status_code != 200:
            _raise_for(resp, resp.content)
        return resp.json()

    async def messages(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.get("/messages")
        return result

    async def end(self) -> dict[str, Any]:
        resp = await self.http.post(
            f"{self.base_url}/v1/sessions/{self.session_id}/end", headers=self._auth()
        )
        if resp.status_code != 200:
            _raise_for(resp, resp.content)
        result: dict[str, Any] = resp.json()
        return result

    async def stream(
        self, path: str, body: dict[str, Any] | None = None
    ) -> AsyncIterator[SseEvent]:
        """POST and yield the SSE events of the turn; raises ``ApiFailure`` on refusal."""
        url = f"{self.base_url}/v1/sessions/{self.session_id}{path}"
        async with self.http.stream("POST", url, json=body or {}, headers=self._auth()) as resp:
            if resp.status_code != 200:
                _raise_for(resp, await resp.aread())
            async for ev in parse_sse(resp.aiter_lines()):
                yield ev

    def send(self, text: str) -> AsyncIterator[SseEvent]:
        return self.stream("/messages", {"text": text})

    def click(self, msg: str, display: str | None = None) -> AsyncIterator[SseEvent]:
        return self.stream("/messages", {"ui_action": {"msg": msg, "display": display}})

    def decide(self, tool_call_id: str, approved: bool) -> AsyncIterator[SseEvent]:
        return self.stream(f"/approvals/{tool_call_id}", {"approved": approved})

    def initial_turn(self) -> AsyncIterator[SseEvent]:
        return self.stream("/initial-turn")
