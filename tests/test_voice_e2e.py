"""Voice over a real WebSocket with the real embedded engines (espeak, pocketsphinx, Silero)."""

from __future__ import annotations

import json
from typing import Any

import websockets

from parley.testing.speech import speak_pcm16k
from tests.plugins.apps import RunningApp

FRAME = 640  # 20 ms at 16 kHz


def silence(seconds: float) -> bytes:
    return b"\x00\x00" * int(16000 * seconds)


async def send_audio(ws: Any, pcm: bytes) -> None:
    for i in range(0, len(pcm), FRAME):
        await ws.send(pcm[i : i + FRAME])


async def read_until(ws: Any, kind: str, audio: list[bytes], seen: list[dict[str, Any]]) -> dict[str, Any]:
    while True:
        msg = await ws.recv()
        if isinstance(msg, bytes):
            audio.append(msg)
            continue
        data = json.loads(msg)
        seen.append(data)
        if data["type"] == kind:
            return data


async def test_spoken_booking_request_gets_a_spoken_answer(running: RunningApp) -> None:
    url = running.base_url.replace("http", "ws") + "/v1/voice"
    speech = speak_pcm16k("I would like to book a table for two tonight")
    audio: list[bytes] = []
    seen: list[dict[str, Any]] = []
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "start", "agent": "demo", "sample_rate": 16000}))
        ready = json.loads(await ws.recv())
        assert ready["type"] == "ready" and ready["output_sample_rate"] == 16000
        await read_until(ws, "done", audio, seen)  # the spoken greeting
        assert sum(len(a) for a in audio) > 16000  # > 0.5 s of greeting audio
        audio.clear()
        await send_audio(ws, silence(0.5) + speech + silence(1.0))
        final = await read_until(ws, "transcript_final", audio, seen)
        assert "table" in final["text"] and "two" in final["text"]
        await read_until(ws, "done", audio, seen)
        await ws.send(json.dumps({"type": "end"}))
    kinds = [m["type"] for m in seen]
    assert "vad" in kinds and "assistant_text" in kinds and "turn_end" in kinds
    assert sum(len(a) for a in audio) > 16000
    client = running.client()
    client.session = {"session_id": ready["session_id"], "session_token": ready["session_token"]}
    history = await client.messages()
    user = [m for m in history if m["role"] == "user"]
    assert user and user[0]["channel"] == "voice" and "table" in user[0]["text"]
    assert history[-1]["role"] == "assistant"
    await client.aclose()
