"""A local Gemini Live server: BidiGenerateContent over a real WebSocket on 127.0.0.1.

Speaks the documented camelCase JSON: ``setup`` → ``setupComplete``; ``realtimeInput`` audio
is counted per connection and every ``bytes_per_turn`` bytes end a caller turn, answered by
the next scripted :class:`~parley.testing.s2s_script.Reply` (``inputTranscription``,
``modelTurn`` audio with ``outputTranscription``, ``turnComplete``, then a
``sessionResumptionUpdate``). A reply can issue a ``toolCall`` (the ``toolResponse`` is
answered by the next reply), send ``goAway`` mid-answer (the connection finishes the answer
and then closes; with ``keep_reading_after_go_away`` it goes on receiving caller audio,
answering nothing, until the client closes it), signal ``interrupted``, or drop the socket
(close 1011).
``accept_handles=False`` refuses resumption.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from websockets.asyncio.server import ServerConnection

from parley.testing.s2s_script import Connection, FakeServerBase, Reply


class FakeGeminiLive(FakeServerBase):
    def __init__(
        self,
        script: list[Reply] | None = None,
        *,
        bytes_per_turn: int = 3200,
        accept_handles: bool = True,
        keep_reading_after_go_away: bool = False,
        complete_after_interrupt: bool = True,
    ) -> None:
        super().__init__(script, bytes_per_turn=bytes_per_turn)
        self.accept_handles = accept_handles
        # After a goAway a real server goes on reading until the client leaves (or its
        # timeLeft runs out): caller audio that crossed the goAway is still received.
        self.keep_reading_after_go_away = keep_reading_after_go_away
        # False: an interrupted answer gets no turnComplete (the next turn just begins)
        self.complete_after_interrupt = complete_after_interrupt
        self.handles_issued: list[str] = []
        self.resumed_with: list[str] = []

    async def handle(self, ws: ServerConnection, record: Connection) -> None:
        first = json.loads(await ws.recv())
        record.setup = first["setup"]
        handle = record.setup.get("sessionResumption", {}).get("handle")
        if handle:
            if not self.accept_handles or handle not in self.handles_issued:
                await ws.close(1008, "invalid session resumption handle")
                return
            self.resumed_with.append(handle)
        await _send(ws, {"setupComplete": {}})
        closing = False
        async for raw in ws:
            message = json.loads(raw)
            reply: Reply | None = None
            if "realtimeInput" in message:
                audio = message["realtimeInput"].get("audio")
                if audio:
                    size = len(base64.b64decode(audio["data"]))
                    record.audio_times.append(time.monotonic())
                    record.audio_bytes += size
                    record.turn_bytes += size
                    if record.turn_bytes >= self.bytes_per_turn and not closing:
                        record.turn_bytes = 0
                        reply = self.next_reply()
            elif "clientContent" in message:
                content = message["clientContent"]
                for turn in content.get("turns", []):
                    text = "".join(p.get("text", "") for p in turn.get("parts", []))
                    if content.get("turnComplete"):
                        record.texts.append(text)
                    else:
                        record.seeded.append((turn.get("role", ""), text))
                if content.get("turnComplete"):
                    reply = self.next_reply()
            elif "toolResponse" in message:
                record.tool_results.extend(message["toolResponse"]["functionResponses"])
                reply = self.next_reply()
            if reply is not None and not closing:
                closing = await self._answer(ws, reply)
                if closing and not self.keep_reading_after_go_away:
                    await ws.close(1000, "session moved")
                    return

    async def _answer(self, ws: ServerConnection, reply: Reply) -> bool:
        """Play one reply; True when a goAway was sent (the connection then closes)."""
        await self.think()
        if reply.heard:
            await _content(ws, {"inputTranscription": {"text": reply.heard}})
        if reply.tool_call is not None:
            name, args = reply.tool_call
            call = {"id": f"call-{len(self.handles_issued)}-{name}", "name": name, "args": args}
            await _send(ws, {"toolCall": {"functionCalls": [call]}})
            return False
        went_away = False
        for index, piece in enumerate(reply.pieces()):
            part = {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": reply.audio(index)}}
            await _content(ws, {"modelTurn": {"parts": [part]}})
            if piece:
                await _content(ws, {"outputTranscription": {"text": piece}})
            if reply.go_away_after == index:
                await self._issue_handle(ws)
                await _send(ws, {"goAway": {"timeLeft": "5s"}})
                went_away = True
            if reply.interrupt_after == index:
                await _content(ws, {"interrupted": True})
                if not self.complete_after_interrupt:
                    return went_away  # no generationComplete / turnComplete for it
                break
            if reply.drop_after == index:
                await ws.close(1011, "internal error")
                return True
        await _content(ws, {"generationComplete": True})
        await _content(ws, {"turnComplete": True})
        await _send(ws, {"usageMetadata": {"totalTokenCount": 42}})
        if not went_away:
            await self._issue_handle(ws)
        return went_away

    async def _issue_handle(self, ws: ServerConnection) -> None:
        handle = f"handle-{len(self.handles_issued) + 1}"
        self.handles_issued.append(handle)
        await _send(ws, {"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})


async def _content(ws: ServerConnection, content: dict[str, Any]) -> None:
    await _send(ws, {"serverContent": content})


async def _send(ws: ServerConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))
