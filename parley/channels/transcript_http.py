"""``GET /v1/sessions/{id}/transcript``: the timestamped transcript, JSON or plain text.

Session token or operator key. ``?format=text`` (or ``Accept: text/plain``) gives one
line per entry; the default is ``{"session_id", "status", "end_reason", "entries"}``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import PlainTextResponse

from parley.channels.actors import actor_of
from parley.channels.chat import ServicesDep, TokenDep
from parley.channels.http_errors import ApiError
from parley.channels.http_models import SESSION_ERRORS
from parley.channels.strict_route import StrictRoute
from parley.sessions.transcript import transcript_entries, transcript_text

router = APIRouter(
    prefix="/v1", tags=["sessions"], route_class=StrictRoute, responses=SESSION_ERRORS
)


TRANSCRIPT_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the transcript: JSON, or one line per entry with ?format=text",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}


@router.get("/sessions/{session_id}/transcript", response_model=None, responses=TRANSCRIPT_ANSWER)
async def get_transcript(
    session_id: str,
    services: ServicesDep,
    token: TokenDep,
    format: Annotated[Literal["json", "text"] | None, Query()] = None,
    accept: Annotated[str | None, Header()] = None,
) -> dict[str, Any] | PlainTextResponse:
    session = await services.lifecycle.authorize(session_id, token)
    agent = services.agents.get(session.agent)
    if agent is not None and not agent.transcripts_to_client:
        if actor_of(services, token) != "operator":
            raise ApiError(
                403,
                "transcript_hidden",
                f"agent {agent.name} keeps transcripts from the client "
                "(transcripts_to_client: false); the operator key reads them",
            )
    entries = transcript_entries(await services.store.list_messages(session.id))
    wants_text = format == "text" or (
        format is None and accept is not None and accept.startswith("text/plain")
    )
    if wants_text:
        return PlainTextResponse(transcript_text(entries))
    return {
        "session_id": session.id,
        "status": session.status,
        "end_reason": session.end_reason,
        "entries": entries,
    }
