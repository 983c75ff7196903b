"""``parley.server``: on shutdown, running turns finish before connections close."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import websockets
from websockets.exceptions import ConnectionClosed

from parley.app import create_app
from parley.config import Settings
from parley.server import serve_app
from parley.testing.fake_openai import FakeOpenAIServer, Reply, Text, Wait
from tests.plugins.stores import sqlite_url

BOUND_S = 15.0
AGENT = """
name: llmvoice
brain: llm
instructions: Be brief.
engines: {stt: fake, tts: fake, vad: fake_energy}
"""


async def frames_until_closed(ws: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    try:
        while True:
            message = await asyncio.wait_for(ws.recv(), BOUND_S)
            if isinstance(message, str):
                events.append(json.loads(message))
    except ConnectionClosed:
        return events


async def test_shutdown_lets_a_running_voice_turn_finish_first(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "llmvoice.yaml").write_text(AGENT)
    held = asyncio.Event()
    async with FakeOpenAIServer(echo=False) as llm:
        llm.script(Reply.of(Text("Hello. "), Wait(held), Text("Goodbye."), *Reply.text().steps))
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=sqlite_url(tmp_path),
            agents_dir=agents,
            llm_base_url=llm.base_url,
        )
        app = create_app(settings)
        server = serve_app(app, drain_s=3.0)
        base_url = await server.__aenter__()
        stopping: asyncio.Task[Any] | None = None
        try:
            ws = await websockets.connect(base_url.replace("http", "ws", 1) + "/v1/voice")
            await ws.send(json.dumps({"type": "start", "agent": "llmvoice"}))
            ready: dict[str, Any] = {}
            while ready.get("type") != "ready":
                ready = json.loads(await asyncio.wait_for(ws.recv(), BOUND_S))
            await ws.send(json.dumps({"type": "text", "text": "hi"}))
            delta: dict[str, Any] = {}
            while delta.get("type") != "assistant_delta":
                message = await asyncio.wait_for(ws.recv(), BOUND_S)
                delta = json.loads(message) if isinstance(message, str) else {}
            stopping = asyncio.create_task(server.__aexit__(None, None, None))

            async def refused() -> bool:  # the server has stopped accepting
                try:
                    async with httpx.AsyncClient() as http:
                        await http.get(f"{base_url}/healthz", timeout=1)
                except httpx.TransportError:
                    return True
                return False

            for _ in range(int(BOUND_S / 0.01)):
                if await refused():
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the server kept accepting connections")
            held.set()  # the model finishes its reply during the drain
            events = await frames_until_closed(ws)
            # the client was told to go away (it stayed), the turn finished and the
            # client heard all of it; at the drain deadline the session ended
            # SERVER_SHUTDOWN. Without the drain the socket closes before "Goodbye."
            go_away = next(e for e in events if e["type"] == "go_away")
            assert go_away["resume_token"] == ready["resume_token"]
            ended = next(e for e in events if e["type"] == "session_ended")
            assert ended["reason"] == "SERVER_SHUTDOWN"
            assert ws.close_code == 1000
            message = next(e for e in events if e["type"] == "assistant_message")
            assert (message["text"], message["interrupted"]) == ("Hello. Goodbye.", False)
            turn_end = next(e for e in events if e["type"] == "turn_end")
            assert turn_end["status"] == "completed"
            await stopping
        finally:
            held.set()
            if stopping is None:
                await server.__aexit__(None, None, None)
