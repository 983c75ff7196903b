"""An approval decided over HTTP while a speech-to-speech voice session is live.

A cascaded voice session hears such a decision as relayed turn events: the HTTP
worker runs the turn (``Brain.decide``) and the socket forwards them. A ``brain:
realtime`` session cannot work that way: the model waiting for the function response
is on the voice session's own upstream. So the HTTP side claims the approval (first
decision wins; a loser hears the winner, as from ``Brain.decide``) and publishes a
``decision`` on the session's pub/sub channel; whichever worker holds the voice
connection settles it in that session (``S2SVoiceSession.settle_decision``: the tool
runs or the denial is recorded, the result goes up) and publishes the turn's events
back as ``decision_event``s, which the HTTP answer streams.

If no voice session answers within ``ACK_TIMEOUT_S`` (it left meanwhile), the answer
says the decision was recorded (``error{session_busy}``): the session's next turn
settles it, exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

from parley.brain.approval_claim import claim_approval
from parley.channels.lifecycle import session_channel
from parley.channels.services import Services
from parley.clock import Clock
from parley.events import ApprovalResolved, Error, Event, TurnEnd
from parley.sessions.coordinator import Subscription
from parley.voice.s2s_session import S2SVoiceSession
from parley.voice.session import VoiceSession

__all__ = [
    "DECISION",
    "DECISION_EVENT",
    "decide_in_live_voice",
    "live_voice_decides",
    "settle_here",
]

DECISION = "decision"
DECISION_EVENT = "decision_event"
VOICE_CHANNELS = ("voice", "phone")  # the transports that build an S2SVoiceSession
ACK_TIMEOUT_S = 5.0  # for the voice session's first event
EVENT_TIMEOUT_S = 120.0  # between its events (a tool may take a while)

Wire = dict[str, Any]


async def live_voice_decides(services: Services, session_id: str, agent: str) -> bool:
    """True when a realtime voice session holds ``session_id``: it settles decisions."""
    runtime = services.brain.runtimes.get(agent)
    if runtime is None or runtime.brain_kind != "realtime":
        return False
    return await services.lifecycle.current_channel(session_id) in VOICE_CHANNELS


async def decide_in_live_voice(
    services: Services,
    session_id: str,
    tool_call_id: str,
    approved: bool,
    decided_by: str,
    reason: str | None,
) -> AsyncIterator[Wire]:
    """Claim the approval (``approval_not_found`` raised before any byte), then the
    wire events of its settling in the voice session, ending with ``turn_end``."""
    status: Literal["approved", "denied"] = "approved" if approved else "denied"
    lost = await claim_approval(
        services.store, session_id, tool_call_id, status, decided_by, reason
    )
    if lost is not None:
        return _of(lost)
    channel = session_channel(session_id)
    subscription = await services.coordinator.subscribe(channel)
    decision_id = secrets.token_hex(8)
    message = {
        "type": DECISION,
        "id": decision_id,
        "tool_call_id": tool_call_id,
        "approved": approved,
        "decided_by": decided_by,
    }
    try:
        await services.coordinator.publish(channel, message)
    except BaseException:
        await subscription.close()
        raise
    recorded = [
        ApprovalResolved(tool_call_id, status, decided_by),
        Error("session_busy", "decision recorded; it takes effect in the session's next turn"),
        TurnEnd("completed"),
    ]
    return _answers(subscription, decision_id, services.clock, recorded)


def settle_here(
    services: Services, session_id: str, conn: VoiceSession, message: Mapping[str, Any]
) -> None:
    """The voice connection's side: settle a published ``decision`` in ``conn`` and
    publish its events back for the HTTP answer."""
    if not isinstance(conn, S2SVoiceSession):
        return  # a cascaded session's decisions run over HTTP (``Brain.decide``)
    channel = session_channel(session_id)
    decision_id = str(message.get("id"))

    async def echo(event: Event) -> None:
        reply = {"type": DECISION_EVENT, "id": decision_id, "event": event.to_wire()}
        await services.coordinator.publish(channel, reply)

    conn.settle_decision(
        str(message.get("tool_call_id")),
        bool(message.get("approved")),
        str(message.get("decided_by") or "user"),
        echo,
    )


async def _of(events: list[Event]) -> AsyncIterator[Wire]:
    for event in events:
        yield event.to_wire()


async def _answers(
    subscription: Subscription, decision_id: str, clock: Clock, recorded: list[Event]
) -> AsyncIterator[Wire]:
    messages = aiter(subscription)
    answered = False
    try:
        deadline = clock.monotonic() + ACK_TIMEOUT_S
        while True:
            message = await _next_before(messages, clock, deadline)
            if message is None:
                events = [TurnEnd("error")] if answered else recorded
                for event in events:
                    yield event.to_wire()
                return
            if message.get("type") != DECISION_EVENT or message.get("id") != decision_id:
                continue
            wire = message.get("event")
            if not isinstance(wire, dict):
                continue
            answered = True
            deadline = clock.monotonic() + EVENT_TIMEOUT_S
            yield wire
            if wire.get("type") == TurnEnd.type:
                return
    finally:
        await subscription.close()


async def _next_before(messages: AsyncIterator[Wire], clock: Clock, deadline: float) -> Wire | None:
    """The next message, or None at ``deadline`` (on the injected clock) or the end."""
    receive = asyncio.ensure_future(anext(messages, None))
    timer = asyncio.ensure_future(clock.sleep(max(0.0, deadline - clock.monotonic())))
    try:
        await asyncio.wait({receive, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        if not receive.done():
            receive.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer
    if not receive.done() or receive.cancelled():
        return None
    return receive.result()
