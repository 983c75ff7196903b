"""``GET /v1/sessions/{id}/events``: session-level events as Server-Sent Events.

For chat pages and dashboards that hold no voice socket: ``warning``,
``session_ended``, ``go_away`` and whatever the session's channels publish (turns
made on another channel or tab, approval decisions). The stream opens with an SSE
comment (``: subscribed``) once the subscription is live — nothing published after
that line is missed — sends a comment every ``KEEPALIVE_S`` so proxies keep it open,
and ends after ``session_ended``. An already ended session gets its
``session_ended`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from parley.channels.chat import ServicesDep, TokenDep
from parley.channels.http_models import SESSION_ERRORS
from parley.channels.strict_route import StrictRoute
from parley.channels.transcript_policy import client_wire

KEEPALIVE_S = 15.0

router = APIRouter(
    prefix="/v1", tags=["sessions"], route_class=StrictRoute, responses=SESSION_ERRORS
)


def _frame(message: dict[str, Any]) -> str:
    kind = str(message.get("type") or "message")
    return f"event: {kind}\ndata: {json.dumps(message, ensure_ascii=False, default=str)}\n\n"


@router.get("/sessions/{session_id}/events", response_class=StreamingResponse)
async def session_events(
    session_id: str, services: ServicesDep, token: TokenDep
) -> StreamingResponse:
    """Session-level events (SSE) until the session ends."""
    session = await services.lifecycle.authorize(session_id, token)
    subscription = await services.lifecycle.subscribe(session.id)
    agent = services.agents.get(session.agent)
    transcripts = agent is None or agent.transcripts_to_client

    async def frames() -> AsyncIterator[str]:
        try:
            yield ": subscribed\n\n"
            current = await services.store.get_session(session.id) or session
            if current.status != "active":
                yield _frame({"type": "session_ended", "reason": current.end_reason, "detail": ""})
                return
            messages = aiter(subscription)
            while True:
                try:
                    message = await asyncio.wait_for(anext(messages), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                except StopAsyncIteration:
                    return
                if message.get("type") == "relay" and isinstance(message.get("event"), dict):
                    shown = client_wire(message["event"], to_client=transcripts)
                    if shown is None:
                        continue
                    message = {**message, "event": shown}
                yield _frame(message)
                if message.get("type") == "session_ended":
                    return
        finally:
            with contextlib.suppress(Exception):
                await subscription.close()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(frames(), media_type="text/event-stream", headers=headers)
