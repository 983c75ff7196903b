"""The phone leg of a warm transfer: the outbound call to the human, through Twilio.

- ``dial``: ``POST .../Calls.json`` to the transfer's number. The answer URL is the
  voice webhook with ``?transfer_id=``: its TwiML opens a media stream whose one-time
  token covers the transfer id, and ``phone_stream`` routes that stream to the
  transfer (``phone_human``), never to a new AI session. Status callbacks carry the
  same ``?transfer_id=``; Twilio is asked to stop ringing after the ringing timeout.
- ``status``: a status callback of a transfer call → the transfer: ``no-answer`` →
  ``failed{no_answer}``, ``busy`` → ``failed{busy}``, ``failed``/``canceled`` →
  ``failed{error}``; ``completed`` ends what is still live (the human hung up).
  The call must be the transfer's own call (the coordinator remembers which), so a
  callback cannot move another transfer.
- ``end_call``: the transfer is final (or an operator took it in the console while
  the phone rang): a call whose stream never started is cancelled
  (``Status=canceled``), an answered one hung up (``Status=completed``), once.
"""

from __future__ import annotations

import contextlib
import logging
from urllib.parse import urlencode

from parley.channels.services import Services
from parley.channels.telephony_http import TWILIO_STATUS_PATH, TWILIO_VOICE_PATH, CallStatus
from parley.handoff.state import IllegalTransition, Status, Transfer
from parley.telephony.twilio_rest import TwilioError, TwilioRestClient

log = logging.getLogger(__name__)

KEEP_S = 3600.0
CALL_OVER = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
FAILS = {"no-answer": "no_answer", "busy": "busy", "failed": "error", "canceled": "error"}


def call_key(transfer_id: str) -> str:
    """Coordinator key: the outbound call of a transfer."""
    return f"transfer_call:{transfer_id}"


def answered_key(transfer_id: str) -> str:
    """Coordinator key: the dialled person's stream started (``phone_human``)."""
    return f"transfer_call:{transfer_id}:answered"


def over_key(transfer_id: str) -> str:
    """Coordinator key: the outbound call of a transfer is over (or being ended)."""
    return f"transfer_call:{transfer_id}:over"


def transfer_of_call_key(call_sid: str) -> str:
    """Coordinator key: the transfer an outbound call was placed for."""
    return f"phone:transfer-of-call:{call_sid}"


class PhoneDialer:
    def __init__(self, services: Services, rest: TwilioRestClient) -> None:
        self.services = services
        self.rest = rest

    async def dial(self, transfer: Transfer) -> None:
        settings = self.services.settings
        base = settings.public_url or ""
        query = urlencode({"transfer_id": transfer.id})
        ringing_s = self.services.transfers.board.timeouts.ringing_s
        call = await self.rest.create_call(
            transfer.target,
            settings.twilio_from or "",
            f"{base}{TWILIO_VOICE_PATH}?{query}",
            status_callback=f"{base}{TWILIO_STATUS_PATH}?{query}",
            timeout_s=max(5, int(ringing_s)),
        )
        coordinator = self.services.coordinator
        await coordinator.set(call_key(transfer.id), call.sid, KEEP_S)
        await coordinator.set(transfer_of_call_key(call.sid), transfer.id, KEEP_S)
        log.info("transfer %s: calling %s (%s)", transfer.id, transfer.target, call.sid)

    async def status(self, update: CallStatus) -> bool:
        """A status callback; True if it was about a transfer call (handled here)."""
        coordinator = self.services.coordinator
        transfer_id = await coordinator.get(transfer_of_call_key(update.call_sid))
        if transfer_id is None:
            return False
        if update.status not in CALL_OVER:
            return True
        await coordinator.set(over_key(transfer_id), update.status, KEEP_S)
        desk = self.services.transfers
        transfer = await desk.board.get(transfer_id)
        if transfer is None or transfer.final:
            return True
        event = FAILS.get(update.status)
        if event is None:  # completed: the human's side is over
            event = {Status.JOINED: "hang_up", Status.BRIEFING: "declined"}.get(
                transfer.status, "no_answer"
            )
        log.info("transfer %s: call %s %s", transfer_id, update.call_sid, update.status)
        with contextlib.suppress(IllegalTransition):
            await desk.apply(transfer_id, event)
        return True

    async def end_call(self, transfer: Transfer) -> None:
        coordinator = self.services.coordinator
        sid = await coordinator.get(call_key(transfer.id))
        if sid is None:
            return
        # one claim: a call already over (a status callback) or ended by another caller
        if not await coordinator.set_if_absent(over_key(transfer.id), "ended", KEEP_S):
            return
        answered = await coordinator.get(answered_key(transfer.id)) is not None
        try:
            if answered:
                await self.rest.hang_up(sid)
            else:
                await self.rest.cancel(sid)
        except TwilioError as exc:
            log.info("transfer %s: ending call %s: %s", transfer.id, sid, exc)
