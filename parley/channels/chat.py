"""The text-chat channel: sessions over HTTP, turns streamed as Server-Sent Events."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from parley.brain.core import UserInput
from parley.brain.turn_stream import TurnStream
from parley.channels.actors import actor_of, end_reason_for, refuse_operator
from parley.channels.http_models import (
    SESSION_ERRORS,
    SSE_RESPONSE,
    CreateSession,
    Decision,
    SendMessage,
)
from parley.channels.live_decision import decide_in_live_voice, live_voice_decides
from parley.channels.services import Services
from parley.channels.strict_route import StrictRoute
from parley.channels.transcript_policy import client_wire
from parley.events import Error, Event, TurnEnd
from parley.logs import bind_session
from parley.metrics import Metrics
from parley.sessions.records import Message, Session
from parley.sessions.stats import SessionStats, merged

log = logging.getLogger(__name__)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def bearer(authorization: Annotated[str | None, Header()] = None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


TokenDep = Annotated[str | None, Depends(bearer)]


# --- rendering ------------------------------------------------------------------------


def sse_frame(event: Event, *, transcripts: bool = True) -> str:
    """The SSE frame of a turn event ("" when the agent's transcript policy hides it)."""
    return sse_wire(event.to_wire(), transcripts=transcripts)


def sse_wire(event: dict[str, Any], *, transcripts: bool = True) -> str:
    """The SSE frame of a turn event's wire dict ("" when the policy hides it)."""
    wire = client_wire(event, to_client=transcripts)
    if wire is None:
        return ""
    data = json.dumps(wire, ensure_ascii=False, default=str)
    return f"event: {wire['type']}\ndata: {data}\n\n"


def message_json(msg: Message) -> dict[str, Any]:
    return {
        "id": msg.id,
        "role": msg.role,
        "text": msg.text,
        "channel": msg.channel,
        "interrupted": msg.interrupted,
        "blocks": msg.blocks,
        "created_at": msg.created_at.isoformat() if msg.created_at else None,
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


async def stream_turn(
    turn: TurnStream,
    relay: Callable[[Event], Awaitable[None]] | None = None,
    metrics: Metrics | None = None,
    *,
    transcripts: bool = True,
    store_stats: Callable[[dict[str, int]], Awaitable[None]] | None = None,
    user_turn: bool = False,
) -> StreamingResponse:
    """Start the turn (raising 409/410 before any byte is sent), then stream it;
    ``relay`` also hands each event to the session's other live channels;
    ``transcripts`` is the agent's ``transcripts_to_client``; ``store_stats`` gets the
    turn's counts (one write when it ends; ``user_turn`` counts it as a turn)."""
    await turn.start()
    stats = SessionStats(turns=int(user_turn))

    async def frames() -> AsyncIterator[str]:
        try:
            async for event in turn:
                if relay is not None:
                    await relay(event)
                if isinstance(event, Error):
                    stats.error(event.code)
                    if metrics is not None:
                        metrics.errors.labels(event.code).inc()
                frame = sse_frame(event, transcripts=transcripts)
                if frame:
                    yield frame
        finally:
            turn.abandon()  # a disconnected client stops the turn; it stores what it has
            if store_stats is not None:
                await store_stats(stats.take())

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(frames(), media_type="text/event-stream", headers=headers)


# --- routes ---------------------------------------------------------------------------

router = APIRouter(
    prefix="/v1", tags=["sessions"], route_class=StrictRoute, responses=SESSION_ERRORS
)


@router.post("/sessions", status_code=201)
async def create_session(
    body: CreateSession, request: Request, services: ServicesDep
) -> dict[str, Any]:
    """Create a session with an agent; returns its bearer token and resume token."""
    client = request.client.host if request.client else "unknown"
    agent = services.lifecycle.agent(body.agent)
    new = await services.lifecycle.create(
        agent.name, client=client, template_vars=body.template_vars, metadata=body.metadata
    )
    session = new.session
    return {
        "session_id": session.id,
        "session_token": new.token,
        "resume_token": new.resume_token,
        "agent": agent.name,
        "status": session.status,
        "current_channel": session.current_channel,
        "greeting": new.greeting if agent.transcripts_to_client else None,
        "greeting_mode": agent.greeting_mode,
        "voice_enabled": True,
        "expires_at": _iso(session.expires_at),
    }


async def _session(services: Services, session_id: str, token: str | None) -> Session:
    session = await services.lifecycle.authorize(session_id, token)
    bind_session(session.id)  # this request's log lines (and its turn's) name the session
    return session


@router.get("/sessions/{session_id}")
async def get_session(session_id: str, services: ServicesDep, token: TokenDep) -> dict[str, Any]:
    """The session's state."""
    session = await _session(services, session_id, token)
    # An ended session can decide nothing, so it lists nothing to decide.
    active = session.status == "active"
    pending = await services.store.list_approvals(session.id, "pending") if active else []
    return {
        "session_id": session.id,
        "agent": session.agent,
        "status": session.status,
        "end_reason": session.end_reason,
        "current_channel": await services.lifecycle.current_channel(session.id),
        "created_at": _iso(session.created_at),
        "expires_at": _iso(session.expires_at),
        "message_count": await services.store.count_messages(session.id),
        "stats": merged(session.stats, {}),
        "pending_approvals": [
            {
                "tool_call_id": a.tool_call_id,
                "name": a.name,
                "arguments": a.arguments,
                "prompt": a.prompt,
            }
            for a in pending
        ],
    }


@router.get("/sessions/{session_id}/messages")
async def list_messages(
    session_id: str, services: ServicesDep, token: TokenDep
) -> list[dict[str, Any]]:
    """The history, oldest first (without its words for the client of an agent with
    ``transcripts_to_client: false``; the operator key reads them)."""
    session = await _session(services, session_id, token)
    history = [message_json(m) for m in await services.store.list_messages(session.id)]
    if _shown(services, session) or actor_of(services, token) == "operator":
        return history
    return [{**m, "text": ""} for m in history]


@router.post(
    "/sessions/{session_id}/messages", response_class=StreamingResponse, responses=SSE_RESPONSE
)
async def send_message(
    session_id: str, body: SendMessage, services: ServicesDep, token: TokenDep
) -> StreamingResponse:
    """One user turn, streamed as SSE turn events."""
    session = await _session(services, session_id, token)
    refuse_operator(services, token, "send messages")
    if body.ui_action is not None:
        action = body.ui_action.model_dump()
        user = UserInput(action["msg"], "chat", action)
    else:
        user = UserInput(body.text or "", "chat")
    transfer = await services.transfers.live_for(session.id)
    if transfer is not None:  # a person has (or is about to have) the conversation
        await services.transfers.caller_text(session.id, transfer.id, user.text, "chat")
        return _to_human(transfer.wire())
    services.metrics.turns.labels("chat").inc()
    turn = services.brain.user_turn(session.id, user)
    return await stream_turn(
        turn,
        None,
        services.metrics,
        transcripts=_shown(services, session),
        store_stats=partial(services.lifecycle.add_stats, session.id),
        user_turn=True,
    )


def _to_human(transfer: dict[str, Any]) -> StreamingResponse:
    """The answer to a message sent to the human of a live transfer: its status, and
    the turn ends at once (the human's reply comes as ``human_message``)."""

    async def frames() -> AsyncIterator[str]:
        yield f"event: transfer\ndata: {json.dumps(transfer)}\n\n"
        yield sse_frame(TurnEnd("completed"))

    return StreamingResponse(frames(), media_type="text/event-stream")


@router.post(
    "/sessions/{session_id}/initial-turn", response_class=StreamingResponse, responses=SSE_RESPONSE
)
async def initial_turn(
    session_id: str, services: ServicesDep, token: TokenDep
) -> StreamingResponse:
    """The opening turn written by the brain (LLM or rules)."""
    session = await _session(services, session_id, token)
    refuse_operator(services, token, "start the conversation")
    turn = services.brain.initial_turn(session.id)
    return await stream_turn(turn, None, services.metrics, transcripts=_shown(services, session))


@router.post(
    "/sessions/{session_id}/approvals/{tool_call_id}",
    response_class=StreamingResponse,
    responses=SSE_RESPONSE,
)
async def decide_approval(
    session_id: str, tool_call_id: str, body: Decision, services: ServicesDep, token: TokenDep
) -> StreamingResponse:
    """Approve or deny a pending tool call; the first decision wins."""
    session = await _session(services, session_id, token)
    decided_by = actor_of(services, token)
    if await live_voice_decides(services, session.id, session.agent):
        # the model waiting for the result is on the voice session's upstream
        wires = await decide_in_live_voice(
            services, session.id, tool_call_id, body.approved, decided_by, body.reason
        )
        return _stream_wires(wires, transcripts=_shown(services, session))
    turn = services.brain.decide(
        session.id, tool_call_id, body.approved, decided_by=decided_by, reason=body.reason
    )
    lifecycle = services.lifecycle
    if await lifecycle.current_channel(session.id) == "chat":
        return await stream_turn(
            turn, None, services.metrics, transcripts=_shown(services, session)
        )

    async def relay(event: Event) -> None:  # the live voice connection hears the decision too
        await lifecycle.relay(session.id, event)

    return await stream_turn(turn, relay, services.metrics, transcripts=_shown(services, session))


def _stream_wires(wires: AsyncIterator[dict[str, Any]], *, transcripts: bool) -> StreamingResponse:
    """Turn events already on the wire (a turn run by another connection), as SSE."""

    async def frames() -> AsyncIterator[str]:
        async for wire in wires:
            frame = sse_wire(wire, transcripts=transcripts)
            if frame:
                yield frame

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(frames(), media_type="text/event-stream", headers=headers)


def _shown(services: Services, session: Session) -> bool:
    """The session's agent's ``transcripts_to_client``."""
    agent = services.agents.get(session.agent)
    return agent is None or agent.transcripts_to_client


@router.post("/sessions/{session_id}/end")
async def end_session(session_id: str, services: ServicesDep, token: TokenDep) -> dict[str, Any]:
    """End the session (``USER_ENDED``, or ``OPERATOR_ENDED`` with the operator key).
    Ending an ended session changes nothing."""
    session = await _session(services, session_id, token)
    await services.lifecycle.end(session.id, end_reason_for(actor_of(services, token)))
    ended = await services.store.get_session(session.id) or session
    return {"session_id": ended.id, "status": ended.status, "end_reason": ended.end_reason}
