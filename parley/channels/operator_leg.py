"""The human's leg of a transfer: a ``/v1/voice`` socket whose start frame names a
``transfer_id`` and carries the operator key.

The start frame accepts the transfer (first accept wins: a second operator gets
``error{transfer_taken}``), the human reads the briefing, then the socket is bridged
to the caller: PCM16 audio both ways with a voice caller (browser or phone) on this
worker or, relayed through pub/sub (``bridge_relay``), on another one; ``text``
frames both ways with any caller (the caller's words arrive as ``caller_message``,
the human's reach the caller as ``human_message``). Closing the socket (or
``{"type": "end"}``) hangs up the human side: ``ended`` once joined,
``failed{declined}`` before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

from fastapi import WebSocketDisconnect

from parley.channels import browser_wire as wire
from parley.channels.bridge_relay import caller_side
from parley.channels.raw_ws import RawWebSocket
from parley.channels.services import Services
from parley.channels.transfer_desk import (
    CALLER_MESSAGE,
    CONSOLE,
    HumanSide,
    TransferDesk,
    status_of,
)
from parley.events import Error
from parley.handoff.bridge import LegFormat
from parley.handoff.state import FINAL, IllegalTransition, Status, Transfer
from parley.sessions.coordinator import Subscription

MAX_FRAME_BYTES = 256 * 1024
SendText = Callable[[str], Awaitable[None]]
SendBytes = Callable[[bytes], Awaitable[None]]


class LegRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def _refuse(ws: RawWebSocket, send: SendText, code: str, message: str) -> None:
    await send(wire.render(Error(code, message)))
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await ws.close(1008)


def _check_key(services: Services, key: str | None) -> None:
    if not key:
        raise LegRefused("unauthorized", "the operator key is required to join a transfer")
    if not services.lifecycle.is_operator(key):
        raise LegRefused("forbidden", "this key cannot join transfers")


async def serve_human_leg(
    ws: RawWebSocket,
    send_text: SendText,
    send_audio: SendBytes,
    services: Services,
    start: wire.StartRequest,
) -> None:
    """Run the human's leg until either side hangs up."""
    desk = services.transfers
    transfer_id = str(start.transfer_id)
    try:
        _check_key(services, start.operator_key)
        transfer = await desk.board.get(transfer_id)
        if transfer is None or transfer.final:
            raise LegRefused("transfer_not_found", "no such waiting transfer")
        try:
            transfer = await desk.apply(transfer_id, "answer", human="operator")
        except IllegalTransition:
            raise LegRefused("transfer_taken", "another operator took this transfer") from None
        if transfer.target != CONSOLE and desk.dialer is not None:
            await desk.dialer.end_call(transfer)  # the console took it: stop the phone ringing
    except LegRefused as exc:
        await _refuse(ws, send_text, exc.code, str(exc))
        return
    session_id = transfer.session_id
    events = await services.lifecycle.subscribe(session_id)
    channel = await services.lifecycle.current_channel(session_id)
    human = LegFormat("pcm16", start.sample_rate)
    out = LegFormat("pcm16", start.output_sample_rate)
    # a caller on another worker is bridged there before the human is told to talk
    leg = await caller_side(desk, services.clock, session_id, transfer_id, human, out, "operator")
    ready = {
        "type": "ready",
        "transfer_id": transfer_id,
        "session_id": session_id,
        "caller_channel": channel,
        "input_sample_rate": start.sample_rate,
        "output_sample_rate": start.output_sample_rate,
    }
    await send_text(json.dumps(ready))
    briefing = {
        "type": "briefing",
        "transfer_id": transfer_id,
        "text": await desk.briefing(transfer_id),
    }
    await send_text(json.dumps(briefing))
    watcher = asyncio.create_task(_watch(events, send_text, ws))
    try:
        if leg is not None:
            await leg.connect(human, out, send_audio, "operator")
        elif channel == "chat":
            await desk.apply(transfer_id, "bridge")  # a text bridge: joined at once
        else:
            await send_text(wire.render(Error("transfer_elsewhere", "the caller is not connected")))
            await desk.apply(transfer_id, "error")
            return
        await _receive(ws, send_text, desk, session_id, leg)
    finally:
        watcher.cancel()
        await events.close()
        if leg is not None:
            await leg.disconnect()
        ended = await hang_up_human(desk, transfer_id)
        if ended is not None:  # the human hung up: they hear it too
            await send_text(json.dumps({**ended.wire(), "session_id": session_id}))
        if ws.open:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await ws.close()


async def _receive(
    ws: RawWebSocket,
    send_text: SendText,
    desk: TransferDesk,
    session_id: str,
    leg: HumanSide | None,
) -> None:
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        data, text = message.get("bytes"), message.get("text")
        if len(data if data is not None else text or "") > MAX_FRAME_BYTES:
            await ws.close(1009, "frame too large")
            return
        if data is not None:
            if leg is not None:
                await leg.from_human(data)
            continue
        try:
            obj = json.loads(text or "")
        except json.JSONDecodeError:
            obj = None
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind == "end":
            return
        if kind == "ping":
            await send_text(wire.PONG)
        elif (
            kind == "text"
            and isinstance(obj, dict)
            and isinstance(obj.get("text"), str)
            and obj["text"].strip()
        ):
            await desk.human_text(session_id, obj["text"].strip())
        else:
            await send_text(wire.render(Error("bad_message", "expected a text, ping or end frame")))


async def _watch(events: Subscription, send_text: SendText, ws: RawWebSocket) -> None:
    """The caller's words and the transfer's steps, to the human; a final status or
    the session's end closes the human's socket."""
    async for message in events:
        kind = message.get("type")
        if kind == CALLER_MESSAGE:
            await send_text(json.dumps({"type": CALLER_MESSAGE, "text": message.get("text")}))
        elif kind == "transfer":
            await send_text(json.dumps(message))
            status = status_of(message)
            if status in FINAL:
                break
        elif kind == "session_ended":
            break
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await ws.close(1000, "transfer over")


async def hang_up_human(desk: TransferDesk, transfer_id: str) -> Transfer | None:
    """End the human's side; the transfer it left, or None if it was over already."""
    transfer = await desk.board.get(transfer_id)
    if transfer is None or transfer.final:
        return None
    event = "hang_up" if transfer.status is Status.JOINED else "declined"
    try:
        return await desk.apply(transfer_id, event)
    except IllegalTransition:
        return None
