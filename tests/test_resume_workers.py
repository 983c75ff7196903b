"""Two real ``parley serve`` processes on different ports, one PostgreSQL, one Redis:
a voice session started on worker A goes on on worker B after A dies.

- ``SIGKILL`` A: the client resumes with its resume token on B (measured: how long
  after the kill B says ``ready``) and goes on talking.
- ``SIGTERM`` A: the client gets ``go_away`` with a token within 1 s, resumes on B,
  goes on talking; A exits once nothing is attached to it.

Every completed turn is in the history exactly once.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from parley.testing.fake_openai import FakeOpenAIServer
from tests.test_fault_workers import LEASE_TTL_S, SLACK_S, Worker, bounded, workers
from tests.test_voice_ws import Voice

pytestmark = pytest.mark.slow

HEARD = "I would like to book a table for two tonight"  # the fake STT's transcript
REPLY = f"You said: {HEARD}"
GO_AWAY_BOUND_S = 1.0


async def open_voice(worker: Worker, **start: Any) -> tuple[Voice, dict[str, Any]]:
    ws = await websockets.connect(worker.base_url.replace("http", "ws", 1) + "/v1/voice")
    voice = Voice(ws)
    await voice.send({"type": "start", "sample_rate": 16000, **start})
    return voice, await voice.until("ready")


async def until_quiet(voice: Voice, gap_s: float = 0.5, bound_s: float = 15.0) -> None:
    """Read until the agent's audio stops for ``gap_s`` (its playout is over; at most
    ``bound_s``): speech over the agent's voice may be a backchannel and start no turn."""
    async with asyncio.timeout(bound_s):
        while True:
            try:
                msg = await asyncio.wait_for(voice.ws.recv(), gap_s)
            except TimeoutError:
                return
            if isinstance(msg, str):
                voice.events.append(json.loads(msg))


async def talk(voice: Voice) -> None:
    """One spoken turn (once the agent is quiet), answered."""
    await until_quiet(voice)
    await voice.speak()
    await voice.until("done")


def turns_once(history: list[dict[str, Any]], spoken_turns: int) -> None:
    said = [(m["role"], m["text"]) for m in history if m["role"] in ("user", "assistant")]
    assert said.count(("user", HEARD)) == spoken_turns, said
    assert said.count(("assistant", REPLY)) == spoken_turns, said


async def readiness(worker: Worker) -> int | None:
    """``GET /readyz``'s status, None when the worker no longer accepts connections."""
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            return (await http.get(f"{worker.base_url}/readyz")).status_code
    except httpx.TransportError:
        return None


async def messages(worker: Worker, session: dict[str, Any]) -> list[dict[str, Any]]:
    from parley.client import ParleyClient

    client = ParleyClient(worker.base_url)
    client.session = session
    try:
        return await client.messages()
    finally:
        await client.aclose()


async def test_sigkill_then_resume_on_the_other_worker(tmp_path: Path) -> None:
    async with FakeOpenAIServer(echo=True) as llm, workers(tmp_path, llm.base_url) as (a, b):
        voice, ready = await open_voice(a, agent="crashy")
        await voice.until("done")  # the greeting
        await talk(voice)
        await a.kill()
        killed = time.monotonic()
        moved, again = await open_voice(b, resume_token=ready["resume_token"])
        took = time.monotonic() - killed
        print(f"\nresume on worker b: ready {took:.2f} s after SIGKILL (lease TTL {LEASE_TTL_S} s)")
        assert took <= LEASE_TTL_S + SLACK_S
        assert again["session_id"] == ready["session_id"]
        assert again["resume_token"] != ready["resume_token"]
        await talk(moved)
        session = {"session_id": ready["session_id"], "session_token": ready["session_token"]}
        turns_once(await messages(b, session), 2)
        await moved.ws.close()


async def test_sigterm_sends_go_away_and_the_session_resumes_on_the_other_worker(
    tmp_path: Path,
) -> None:
    async with FakeOpenAIServer(echo=True) as llm, workers(tmp_path, llm.base_url) as (a, b):
        voice, ready = await open_voice(a, agent="crashy")
        await voice.until("done")
        await talk(voice)
        a.process.send_signal(signal.SIGTERM)
        termed = time.monotonic()
        go_away = await voice.until("go_away")
        took = time.monotonic() - termed
        print(f"\ngo_away {took:.3f} s after SIGTERM")
        assert took <= GO_AWAY_BOUND_S
        assert go_away["reason"] == "server_shutdown"
        assert await readiness(a) in (503, None)  # draining: 503, or no longer listening
        moved, again = await open_voice(b, resume_token=go_away["resume_token"])
        assert again["session_id"] == ready["session_id"]
        assert (await voice.until("error"))["code"] == "attachment_replaced"
        assert await asyncio.wait_for(a.process.wait(), 15) == 0  # drained: nothing left
        await talk(moved)
        session = {"session_id": ready["session_id"], "session_token": ready["session_token"]}
        history = await messages(b, session)
        turns_once(history, 2)
        greetings = [m for m in history if m["role"] == "assistant" and m["text"] != REPLY]
        assert len(greetings) == 1
        await moved.ws.close()
        assert "SERVER_SHUTDOWN" not in a.log.read_text()


async def test_sigterm_lets_the_running_turn_finish_and_store_its_reply(tmp_path: Path) -> None:
    from parley.client import ParleyClient
    from parley.testing.fake_openai import Done, Finish, Reply, Text, Wait

    held = asyncio.Event()
    async with FakeOpenAIServer(echo=False) as llm, workers(tmp_path, llm.base_url) as (a, b):
        llm.script(
            Reply.of(
                Text("Let me "), Text("think. "), Wait(held), Text("Done."), Finish("stop"), Done()
            )
        )
        client = ParleyClient(a.base_url)
        session = await client.create_session("crashy")
        stream = aiter(client.send("hi"))
        while (await asyncio.wait_for(anext(stream), 15)).event != "assistant_delta":
            pass
        a.process.send_signal(signal.SIGTERM)

        async def draining() -> bool:
            return await readiness(a) in (503, None)

        await bounded(draining, "worker a draining", 5)
        assert a.process.returncode is None  # still there: the turn is running
        held.set()
        rest = [event async for event in stream]
        assert rest[-1].event == "turn_end" and rest[-1].data["status"] == "completed"
        assert await asyncio.wait_for(a.process.wait(), 15) == 0
        history = [(m["role"], m["text"], m["interrupted"]) for m in await messages(b, session)]
        assert history[1:] == [("user", "hi", False), ("assistant", "Let me think. Done.", False)]
        await client.aclose()
