"""Call status callbacks → the session (``POST /v1/telephony/twilio/status``).

The last status of every call is kept in the coordinator
(``phone:call-status:{call_sid}``, a day). A call's session is the one its stream
started (``phone:call-session:{call_sid}``) or, for an outbound call, the
``?session_id=`` of the callback when that session's stored ``call_sid`` is this call
(so a callback cannot end another call's session). Then, through the lifecycle's one
termination path (a second end is a no-op):

- ``completed``: the call is over → ``USER_ENDED``;
- ``busy``, ``no-answer``, ``failed``, ``canceled``: the call never connected →
  ``ERROR`` with the status as the detail.

Other statuses (``queued``, ``initiated``, ``ringing``, ``in-progress``) change nothing.
The calls a warm transfer placed to a person have no session: their callbacks move the
transfer instead (``phone_dialer.PhoneDialer.status``).
"""

from __future__ import annotations

import logging

from parley.channels.phone_dialer import PhoneDialer
from parley.channels.services import Services
from parley.channels.telephony_http import CallStatus, StatusSink

log = logging.getLogger(__name__)

STATUS_TTL_S = 24 * 3600.0
ENDS = {
    "completed": "USER_ENDED",
    "busy": "ERROR",
    "no-answer": "ERROR",
    "failed": "ERROR",
    "canceled": "ERROR",
}


def call_session_key(call_id: str) -> str:
    """Coordinator key: the session of a call, set when its stream starts."""
    return f"phone:call-session:{call_id}"


async def session_of(services: Services, update: CallStatus) -> str | None:
    """The session this callback is about, if it can be trusted to be."""
    known = await services.coordinator.get(call_session_key(update.call_sid))
    if known:
        return str(known)
    if not update.session_id:
        return None
    session = await services.store.get_session(update.session_id)
    phone = session.metadata.get("phone") if session is not None else None
    if isinstance(phone, dict) and phone.get("call_sid") == update.call_sid:
        return update.session_id
    log.warning(
        "status callback of %s names session %s of another call", update.call_sid, update.session_id
    )
    return None


def status_sink(services: Services) -> StatusSink:
    async def sink(update: CallStatus) -> None:
        key = f"phone:call-status:{update.call_sid}"
        await services.coordinator.set(key, update.status, STATUS_TTL_S)
        dialer = services.transfers.dialer
        if isinstance(dialer, PhoneDialer) and await dialer.status(update):
            return
        reason = ENDS.get(update.status)
        if reason is None:
            return
        session_id = await session_of(services, update)
        if session_id is None:
            return
        detail = f"call {update.status}"
        if await services.lifecycle.end(session_id, reason, detail):
            log.info(
                "call %s %s: session %s ended %s",
                update.call_sid,
                update.status,
                session_id,
                reason,
            )

    return sink
