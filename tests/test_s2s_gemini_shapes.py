"""Our Gemini Live client messages and the fake server's messages, checked against the
``google-genai`` SDK's Live types (camelCase aliases, unknown fields forbidden)."""

from __future__ import annotations

import base64
import json

import pytest
from websockets.asyncio.client import connect

from parley.s2s import gemini_wire as gw
from parley.s2s.base import HistoryTurn, S2SConfig, ToolDeclaration
from parley.testing.fake_gemini_live import FakeGeminiLive
from parley.testing.s2s_script import Reply

types = pytest.importorskip("google.genai.types")


def test_client_messages_match_the_sdk_types() -> None:
    config = S2SConfig(
        instructions="Be kind.",
        voice="Kore",
        tools=(ToolDeclaration("lookup", "find", {"type": "object", "properties": {}}),),
        compression_trigger_tokens=25600,
        compression_target_tokens=12800,
        server_vad=False,
    )
    messages = [
        gw.encode_setup(config, "handle-1"),
        gw.encode_setup(S2SConfig()),
        gw.encode_audio(b"\x00\x01" * 8),
        gw.encode_text("hi"),
        gw.encode_history([HistoryTurn("user", "q"), HistoryTurn("assistant", "a")]),
        gw.encode_tool_result("c1", "lookup", {"ok": True}),
    ]
    vad = []
    for message in messages:
        data = json.loads(message)
        if "setup" in data:
            # The SDK writes setup.realtimeInputConfig on the wire (_live_converters) but its
            # LiveClientSetup type lacks the field: check that part against its own type.
            vad.append(
                types.RealtimeInputConfig.model_validate(data["setup"].pop("realtimeInputConfig"))
            )
        parsed = types.LiveClientMessage.model_validate(data)
        assert parsed.model_dump(exclude_none=True), message
    assert [v.automatic_activity_detection.disabled for v in vad] == [True, False]
    setup = json.loads(messages[0])["setup"]
    setup.pop("realtimeInputConfig")
    checked = types.LiveClientSetup.model_validate(setup)
    assert checked.context_window_compression.sliding_window.target_tokens == 12800
    assert checked.context_window_compression.trigger_tokens == 25600
    assert checked.session_resumption.handle == "handle-1"
    voice = checked.generation_config.speech_config.voice_config.prebuilt_voice_config
    assert voice.voice_name == "Kore"


async def test_fake_server_messages_match_the_sdk_types() -> None:
    fake = FakeGeminiLive(
        [
            Reply(heard="weather?", tool_call=("get_weather", {"city": "Paris"})),
            Reply(says="Sunny today.", chunks=2, go_away_after=1),
        ]
    )
    received: list[dict[str, object]] = []
    async with fake.running():
        async with connect(gw.ws_url(fake.base_url, "k")) as ws:
            await ws.send(gw.encode_setup(S2SConfig()))
            await ws.send(gw.encode_audio(b"\x00" * fake.bytes_per_turn))
            async for raw in ws:
                received.append(json.loads(raw))
                if "toolCall" in received[-1]:
                    call = received[-1]["toolCall"]["functionCalls"][0]  # type: ignore[index]
                    await ws.send(gw.encode_tool_result(call["id"], call["name"], {"f": "sun"}))
    keys = {k for m in received for k in m}
    assert {"setupComplete", "serverContent", "toolCall", "goAway"} <= keys
    assert "sessionResumptionUpdate" in keys and "usageMetadata" in keys
    for message in received:
        parsed = types.LiveServerMessage.model_validate(message)
        assert parsed.model_dump(exclude_none=True), message
    audio = [
        part.inline_data.data
        for m in received
        if (turn := types.LiveServerMessage.model_validate(m).server_content) and turn.model_turn
        for part in turn.model_turn.parts or []
    ]
    assert [len(a) for a in audio] == [960, 960]
    assert base64.b64encode(audio[0]).decode()  # bytes came through the SDK's base64 decoding
