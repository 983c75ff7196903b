"""A local OpenAI Realtime server: the GA event protocol over a real WebSocket on 127.0.0.1.

``session.created`` on connect; ``session.update`` → ``session.updated``. Appended audio
(24 kHz) is counted per connection; every ``bytes_per_turn`` bytes end a caller turn
(``input_audio_buffer.speech_started/stopped/committed``, the input transcription), answered
by the next scripted :class:`~parley.testing.s2s_script.Reply` as a response
(``response.output_audio.delta``, ``response.output_audio_transcript.delta/done``,
``response.done``) or a function call. ``conversation.item.create`` + ``response.create``
answers typed text and tool results. ``go_away_after`` ends the session with the
60-minute-cap ``session_expired`` error; ``interrupt_after`` signals barge-in with
``input_audio_buffer.speech_started`` and the response is cancelled.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from websockets.asyncio.server import ServerConnection

from parley.testing.s2s_script import Connection, FakeServerBase, Reply


class FakeOpenAIRealtime(FakeServerBase):
    def __init__(self, script: list[Reply] | None = None, *, bytes_per_turn: int = 4000) -> None:
        super().__init__(script, bytes_per_turn=bytes_per_turn)
        self._ids = 0

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}_{self._ids}"

    async def _send(self, ws: ServerConnection, message: dict[str, Any]) -> None:
        await ws.send(json.dumps({"event_id": self._id("event"), **message}))

    async def handle(self, ws: ServerConnection, record: Connection) -> None:
        await self._send(ws, {"type": "session.created", "session": {"type": "realtime"}})
        pending_answer = False
        async for raw in ws:
            event = json.loads(raw)
            kind = event["type"]
            reply: Reply | None = None
            if kind == "session.update":
                record.setup = event["session"]
                await self._send(ws, {"type": "session.updated", "session": event["session"]})
            elif kind == "input_audio_buffer.append":
                size = len(base64.b64decode(event["audio"]))
                record.audio_times.append(time.monotonic())
                record.audio_bytes += size
                record.turn_bytes += size
                if record.turn_bytes >= self.bytes_per_turn:
                    record.turn_bytes = 0
                    reply = self.next_reply()
                    await self._caller_turn(ws, reply, record.audio_bytes // 48)
            elif kind == "conversation.item.create":
                item = event["item"]
                if item["type"] == "function_call_output":
                    record.tool_results.append(item)
                    pending_answer = True
                elif item["type"] == "message":
                    text = "".join(c.get("text", "") for c in item["content"])
                    record.seeded.append((item["role"], text))
            elif kind == "response.create":
                if pending_answer or (record.seeded and record.seeded[-1][0] == "user"):
                    if not pending_answer:
                        record.texts.append(record.seeded.pop()[1])
                    pending_answer = False
                    reply = self.next_reply()
            elif kind == "conversation.item.truncate":
                record.truncates.append(event)
            if reply is not None and await self._respond(ws, reply):
                await ws.close(1000, "session expired")
                return

    async def _caller_turn(self, ws: ServerConnection, reply: Reply, end_ms: int) -> None:
        item_id = self._id("item")
        started = {"type": "input_audio_buffer.speech_started", "audio_start_ms": 0}
        await self._send(ws, {**started, "item_id": item_id})
        stopped = {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": end_ms}
        await self._send(ws, {**stopped, "item_id": item_id})
        await self._send(ws, {"type": "input_audio_buffer.committed", "item_id": item_id})
        if reply.heard:
            await self._send(
                ws,
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item_id,
                    "content_index": 0,
                    "transcript": reply.heard,
                    "usage": {"type": "duration", "seconds": end_ms / 1000},
                },
            )

    async def _respond(self, ws: ServerConnection, reply: Reply) -> bool:
        """Play one reply as a response; True when the session expired mid-answer."""
        await self.think()
        response_id = self._id("resp")
        item_id = self._id("item")
        await self._send(ws, {"type": "response.created", "response": {"id": response_id}})
        if reply.tool_call is not None:
            name, args = reply.tool_call
            item = {
                "id": item_id,
                "type": "function_call",
                "call_id": self._id("call"),
                "name": name,
                "arguments": json.dumps(args),
            }
            done = {k: item[k] for k in ("call_id", "name", "arguments")}
            at = {"response_id": response_id, "output_index": 0}
            await self._send(ws, {"type": "response.output_item.added", **at, "item": item})
            arguments = {"type": "response.function_call_arguments.done", "item_id": item_id}
            await self._send(ws, {**arguments, **at, **done})
            await self._send(ws, {"type": "response.output_item.done", **at, "item": item})
            await self._send(ws, {"type": "response.done", "response": {"id": response_id}})
            return False
        where = {"response_id": response_id, "item_id": item_id, "output_index": 0}
        said: list[str] = []
        status = "completed"
        for index, piece in enumerate(reply.pieces()):
            audio = {"type": "response.output_audio.delta", **where, "content_index": 0}
            await self._send(ws, {**audio, "delta": reply.audio(index)})
            if piece:
                said.append(piece)
                delta = {"type": "response.output_audio_transcript.delta", **where}
                await self._send(ws, {**delta, "content_index": 0, "delta": piece})
            if reply.go_away_after == index:
                error = {
                    "type": "invalid_request_error",
                    "code": "session_expired",
                    "message": "Your session hit the maximum duration of 60 minutes.",
                }
                await self._send(ws, {"type": "error", "error": error})
                return True
            if reply.interrupt_after == index:
                barge_in = {"type": "input_audio_buffer.speech_started", "audio_start_ms": 0}
                await self._send(ws, {**barge_in, "item_id": self._id("item")})
                status = "cancelled"
                break
        transcript = {"type": "response.output_audio_transcript.done", **where}
        await self._send(ws, {**transcript, "content_index": 0, "transcript": "".join(said)})
        done = {"id": response_id, "status": status}
        await self._send(ws, {"type": "response.done", "response": done})
        return False
