"""The shared load client, speaking the OpenAI Realtime protocol (GA events) to ``/v1/realtime``.

    BENCH_PY realtime_client.py --url ws://127.0.0.1:PORT/v1/realtime?model=bench \
        [every other option of the harness's loadclient.py]

Runs the harness's ``loadclient.py`` unchanged (same script, pacing, clocks, analysis and
/proc sampling as for ``/v1/voice``) with one thing swapped: its ``connect`` returns a
``RealtimeSocket``, which carries the client's frames as Realtime events.

- the start frame (``--start-json``) goes as it is: ``bench/voice.py`` passes the
  ``session.update`` below (PCM16 24 kHz in and out, ``server_vad`` with a 200 ms
  silence: the bench agent's own ``stop_secs`` and ``silence`` turn detection);
- each 20 ms PCM16 16 kHz frame becomes an ``input_audio_buffer.append`` of the same
  20 ms at 24 kHz (linear interpolation, made once per distinct frame), sent when the
  load client's ticker sends it: real time;
- received ``response.output_audio.delta`` events count as reply audio (the load
  client sees a binary message of the delta's length in 16 kHz bytes, so its audio
  seconds stay right), ``response.done`` with status ``cancelled`` counts as the
  interruption (as ``interrupted`` on ``/v1/voice``); other events are text.

Parley sends Realtime audio deltas as fast as TTS makes them (as OpenAI does), not paced
to playback: the arrival-gap column measures delivery, not playback.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import connect as ws_connect

HARNESS = Path(
    os.environ.get("PARLEY_BENCH_HARNESS", Path(__file__).resolve().parents[2] / "shared" / "bench")
)
sys.path.insert(0, str(HARNESS))

import loadclient  # noqa: E402  (the harness's load client, imported in place)

IN_RATE = 16000  # the load client's frames
RT_RATE = 24000  # Realtime's audio/pcm
INTERRUPTED = json.dumps({"type": "interrupted"})

SESSION_UPDATE = json.dumps(
    {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "output_modalities": ["audio"],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": RT_RATE},
                    "turn_detection": {
                        "type": "server_vad",
                        "silence_duration_ms": 200,
                        "create_response": True,
                        "interrupt_response": True,
                    },
                },
                "output": {"format": {"type": "audio/pcm", "rate": RT_RATE}},
            },
        },
    }
)


def to_24k(frame: bytes) -> bytes:
    """PCM16 16 kHz → 24 kHz by linear interpolation (3 samples out per 2 in)."""
    pcm = np.frombuffer(frame, dtype="<i2").astype(np.float32)
    if pcm.size == 0:
        return b""
    out = np.arange(pcm.size * RT_RATE // IN_RATE) * (IN_RATE / RT_RATE)
    return np.interp(out, np.arange(pcm.size), pcm).astype("<i2").tobytes()


class RealtimeSocket:
    """A websockets connection that looks like a ``/v1/voice`` socket to the load client."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.appends: dict[bytes, str] = {}  # frame → its input_audio_buffer.append event
        self.errors = 0

    async def send(self, message: bytes | str) -> None:
        if isinstance(message, str):
            await self.ws.send(message)
            return
        event = self.appends.get(message)
        if event is None:
            audio = base64.b64encode(to_24k(message)).decode()
            event = json.dumps({"type": "input_audio_buffer.append", "audio": audio})
            self.appends[message] = event
        await self.ws.send(event)

    async def __aiter__(self) -> AsyncIterator[bytes | str]:
        async for raw in self.ws:
            event = json.loads(raw)
            kind = event.get("type")
            if kind == "response.output_audio.delta":
                size = len(base64.b64decode(event["delta"])) * IN_RATE // RT_RATE
                yield bytes(size)
            elif kind == "response.done" and event["response"]["status"] == "cancelled":
                yield INTERRUPTED
            else:
                if kind == "error" and not self.errors:
                    print(f"realtime error: {event['error']}", file=sys.stderr, flush=True)
                self.errors += kind == "error"
                yield raw

    async def close(self) -> None:
        await self.ws.close()


async def realtime_connect(url: str, **kwargs: Any) -> RealtimeSocket:
    return RealtimeSocket(await ws_connect(url, **kwargs))


if __name__ == "__main__":
    loadclient.connect = realtime_connect
    if "--start-json" not in sys.argv:
        sys.argv += ["--start-json", SESSION_UPDATE]
    sys.exit(loadclient.main())
