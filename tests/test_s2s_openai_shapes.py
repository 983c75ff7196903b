"""Our OpenAI Realtime client events and the fake server's events, checked against the
``openai`` SDK's GA types (a literal reference): every event parses, and no field we send
lands in a model's extras (a misspelt or unknown field would)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect

from parley.s2s import openai_wire as ow
from parley.s2s.base import HistoryTurn, S2SConfig, ToolDeclaration
from parley.testing.fake_openai_realtime import FakeOpenAIRealtime
from parley.testing.s2s_script import Reply

realtime = pytest.importorskip("openai.types.realtime")
pydantic = pytest.importorskip("pydantic")

CLIENT = pydantic.TypeAdapter(realtime.RealtimeClientEvent)
SERVER = pydantic.TypeAdapter(realtime.RealtimeServerEvent)


def extras(model: Any, path: str = "") -> list[str]:
    """Paths of fields the SDK model did not know, recursively."""
    found: list[str] = []
    if isinstance(model, pydantic.BaseModel):
        found += [f"{path}.{k}" for k in (model.model_extra or {})]
        for name in type(model).model_fields:
            found += extras(getattr(model, name), f"{path}.{name}")
    elif isinstance(model, list):
        for i, item in enumerate(model):
            found += extras(item, f"{path}[{i}]")
    return found


def test_client_events_match_the_sdk_types() -> None:
    config = S2SConfig(
        instructions="Be kind.",
        voice="marin",
        tools=(ToolDeclaration("lookup", "find", {"type": "object"}),),
    )
    messages = [
        ow.encode_session_update(config),
        ow.encode_session_update(S2SConfig(server_vad=False, input_transcription=False)),
        ow.encode_audio(b"\x00\x01" * 8),
        *ow.encode_history([HistoryTurn("user", "q"), HistoryTurn("assistant", "a")]),
        ow.encode_tool_result("call_1", {"ok": True}),
        ow.encode_response_create(),
        ow.encode_truncate("item_1", 250),
    ]
    for message in messages:
        event = CLIENT.validate_json(message)
        assert event.type == json.loads(message)["type"]
        assert extras(event) == [], message


async def test_fake_server_events_match_the_sdk_types() -> None:
    fake = FakeOpenAIRealtime(
        [
            Reply(heard="weather?", tool_call=("get_weather", {"city": "Paris"})),
            Reply(says="Sunny today.", chunks=2),
            Reply(heard="again", says="one two three", chunks=3, interrupt_after=0),
        ]
    )
    received: list[str] = []
    async with fake.running(), connect(f"ws://127.0.0.1:{fake.port}/v1/realtime") as ws:
        await ws.send(ow.encode_session_update(S2SConfig()))
        await ws.send(ow.encode_audio(b"\x00" * fake.bytes_per_turn))
        call_id = ""
        while not call_id or received[-1].find('"response.done"') < 0:
            received.append(str(await ws.recv()))
            event = json.loads(received[-1])
            if event["type"] == "response.function_call_arguments.done":
                call_id = event["call_id"]
        await ws.send(ow.encode_tool_result(call_id, {"forecast": "sunny"}))
        await ws.send(ow.encode_response_create())
        await ws.send(ow.encode_audio(b"\x00" * fake.bytes_per_turn))
        done = 0
        while done < 2:
            received.append(str(await ws.recv()))
            done += '"response.done"' in received[-1]
    kinds = {json.loads(m)["type"] for m in received}
    assert {"session.created", "session.updated", "response.output_audio.delta"} <= kinds
    for message in received:
        event = SERVER.validate_json(message)
        assert extras(event) == [], message
    audio = [json.loads(m) for m in received if '"response.output_audio.delta"' in m]
    assert all(len(base64.b64decode(a["delta"])) == 960 for a in audio)
