"""``/v1/realtime`` on the voice session and the session lifecycle, driven by the official
``openai`` SDK over a real socket: truncation cuts the stored message to what the client
played, ``create_response: false`` holds the user's turns until ``response.create``, the
socket's close ends the session, warnings and the drain reach the client; the
turn-taking follows the session config."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest

from parley.channels.browser_wire import render_wire
from parley.channels.lifecycle import WARNING, session_channel
from parley.channels.realtime_voice import VoiceShape, tuned_agent, voice_shape
from parley.config import AgentSpec
from parley.realtime.session_config import SessionConfig, parse_session
from parley.realtime.validate import Reader
from parley.testing import FakeClock
from parley.testing.fake_openai import FakeOpenAIServer, Reply, Text, Wait
from parley.testing.openai_script import ToolCallScript
from parley.testing.speech import pad_silence, speak_pcm
from tests.test_realtime_ws import (
    PHRASE,
    next_raw,
    realtime_server,
    stream_audio,
    until,
    until_ended,
)

openai = pytest.importorskip("openai")


async def spoken_answer(conn: Any, text: str) -> list[dict[str, Any]]:
    """A typed user item and a spoken response; the events up to ``response.done``."""
    await conn.conversation.item.create(
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )
    await until(conn, "conversation.item.done")
    await conn.response.create()
    return await until(conn, "response.done")


async def test_truncate_after_the_response_cuts_the_stored_message_to_audio_end_ms(
    tmp_path: Path,
) -> None:
    async with realtime_server(tmp_path) as (base_url, _, services):
        client = openai.AsyncOpenAI(api_key="anything", base_url=f"{base_url}/v1")
        async with client.realtime.connect(model="demo") as conn:
            session_id = (await next_raw(conn))["session"]["id"]
            events = await spoken_answer(conn, "When are you open?")
            assert events[-1]["response"]["status"] == "completed"
            deltas = [e for e in events if e["type"] == "response.output_audio.delta"]
            sent_ms = sum(len(base64.b64decode(e["delta"])) // 48 for e in deltas)
            said = next(e for e in events if e["type"] == "response.output_audio_transcript.done")
            words = said["transcript"].split()
            assert len(words) > 4 and sent_ms > 1000
            stored = await services.store.list_messages(session_id)
            assert stored[-1].text == said["transcript"] and not stored[-1].interrupted

            # the client played the first half of the answer, then the user cut it off
            await conn.conversation.item.truncate(
                item_id=deltas[0]["item_id"], content_index=0, audio_end_ms=sent_ms // 2
            )
            truncated = (await until(conn, "conversation.item.truncated"))[-1]
            assert truncated["audio_end_ms"] == sent_ms // 2
            await conn.conversation.item.retrieve(item_id=deltas[0]["item_id"])
            item = (await until(conn, "conversation.item.retrieved"))[-1]["item"]
            heard = item["content"][0]["transcript"]
            assert 0 < len(heard.split()) < len(words)
            assert said["transcript"].startswith(heard)
        await until_ended(services, session_id)
        stored = await services.store.list_messages(session_id)
        assistant = [m for m in stored if m.role == "assistant"][-1]
        assert (assistant.text, assistant.interrupted) == (heard, True)
        await client.close()


async def test_create_response_false_holds_the_turn_until_response_create(
    tmp_path: Path,
) -> None:
    rate = 24000
    speech = pad_silence(speak_pcm(PHRASE, "en-us", 175, rate), 0.3, 1.2, rate)
    more = pad_silence(speak_pcm("my name is Ann Lee", "en-us", 175, rate), 0.3, 1.2, rate)
    async with realtime_server(tmp_path) as (base_url, _, services):
        client = openai.AsyncOpenAI(api_key="anything", base_url=f"{base_url}/v1")
        async with client.realtime.connect(model="demo") as conn:
            session_id = (await next_raw(conn))["session"]["id"]
            await conn.session.update(
                session={
                    "type": "realtime",
                    "audio": {
                        "input": {
                            "transcription": {"model": "whisper-1"},
                            "turn_detection": {"type": "server_vad", "create_response": False},
                        }
                    },
                }
            )
            updated = (await until(conn, "session.updated"))[-1]
            assert (
                updated["session"]["audio"]["input"]["turn_detection"]["create_response"] is False
            )
            await stream_audio(conn, speech, rate // 50 * 2)
            events = await until(conn, "conversation.item.input_audio_transcription.completed")
            kinds = [e["type"] for e in events]
            assert "input_audio_buffer.committed" in kinds
            assert "response.created" not in kinds
            assert "table" in events[-1]["transcript"]
            # a second utterance: still nothing answered, both wait for the client
            await stream_audio(conn, more, rate // 50 * 2)
            events = await until(conn, "conversation.item.input_audio_transcription.completed")
            assert "response.created" not in [e["type"] for e in events]

            await conn.response.create()
            events = await until(conn, "response.done")
            # one response, the one asked for: the server started none of its own
            assert [e["type"] for e in events].count("response.created") == 1
            assert not [e for e in events if e["type"] == "error"]
            assert events[-1]["response"]["status"] == "completed"
            assert any(e["type"] == "response.output_audio.delta" for e in events)
        await until_ended(services, session_id)
        stored = await services.store.list_messages(session_id)
        user = [m for m in stored if m.role == "user"]
        assert len(user) == 1, [m.text for m in user]  # both utterances, one turn
        assert "table" in user[0].text and "name" in user[0].text
        assert user[0].channel == "realtime"
        await client.close()


async def test_the_socket_is_a_live_channel_of_the_session(tmp_path: Path) -> None:
    """Attached as ``realtime`` while it lives; warnings and the drain's ``go_away``
    arrive as ``parley.*`` events; closing the socket ends the session."""
    async with realtime_server(tmp_path) as (base_url, _, services):
        client = openai.AsyncOpenAI(api_key="anything", base_url=f"{base_url}/v1")
        async with client.realtime.connect(model="demo") as conn:
            session_id = (await next_raw(conn))["session"]["id"]
            assert await services.lifecycle.current_channel(session_id) == "realtime"
            assert services.voice_registry.sessions() == [session_id]
            warning = {"type": WARNING, "reason": "time_limit", "seconds_left": 60}
            await services.coordinator.publish(session_channel(session_id), warning)
            event = await next_raw(conn)
            assert (event["type"], event["reason"], event["seconds_left"]) == (
                "parley.warning",
                "time_limit",
                60,
            )
            assert await services.voice_registry.go_away_all(render_wire) == 1
            event = await next_raw(conn)
            assert (event["type"], event["reason"]) == ("parley.go_away", "server_shutdown")
            assert event["resume_token"]
        await until_ended(services, session_id)
        session = await services.store.get_session(session_id)
        assert session is not None and session.end_reason == "USER_ENDED"
        assert len(services.voice_registry) == 0
        await client.close()


def config_of(session: dict[str, Any]) -> SessionConfig:
    return SessionConfig(model="demo").apply(parse_session(Reader(session, "session")))


def test_the_turn_taking_follows_the_session_config() -> None:
    agent = AgentSpec.model_validate({"name": "a", "instructions": "x"})
    default = voice_shape(config_of({}))
    assert default == VoiceShape(24000, 24000, False, 0.5, True, None)
    assert tuned_agent(agent, default).voice.turn_detection == "silence"

    td = {"type": "server_vad", "threshold": 0.8, "silence_duration_ms": 900}
    shape = voice_shape(config_of({"audio": {"input": {"turn_detection": td}}}))
    voice = tuned_agent(agent, shape).voice
    assert (voice.stop_secs, voice.turn_detection) == (0.9, "silence")
    extra = voice.model_extra or {}
    assert extra["activation"] == 0.8
    assert extra["deactivation"] <= 0.8 <= extra["echo_activation"]

    semantic = {"type": "semantic_vad", "eagerness": "high"}
    shape = voice_shape(config_of({"audio": {"input": {"turn_detection": semantic}}}))
    voice = tuned_agent(agent, shape).voice
    assert (voice.stop_secs, voice.turn_detection) == (0.3, agent.voice.turn_detection)

    ulaw = {"format": {"type": "audio/pcmu"}, "turn_detection": None}
    ptt = voice_shape(config_of({"audio": {"input": ulaw}}))
    assert ptt == VoiceShape(8000, 24000, True, None, False, None)
    assert tuned_agent(agent, ptt) is agent


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.mark.parametrize("modality", ["text", "audio"])
async def test_a_client_function_tool_round_trip(
    tmp_path: Path, fake_openai: FakeOpenAIServer, modality: str
) -> None:
    """The model calls a tool the client declared: a ``function_call`` item ends the
    response; the client's ``function_call_output`` and ``response.create`` continue."""
    call = ToolCallScript("get_weather", {"city": "Paris"}, id="call_w1")
    fake_openai.script(Reply.tool_calls(call), Reply.text("It is sunny in Paris."))
    async with realtime_server(
        tmp_path, llm_base_url=fake_openai.base_url, llm_model="fake-model"
    ) as (base_url, _, services):
        client = openai.AsyncOpenAI(api_key="anything", base_url=f"{base_url}/v1")
        async with client.realtime.connect(model="demo") as conn:
            session_id = (await next_raw(conn))["session"]["id"]
            await conn.session.update(
                session={"type": "realtime", "output_modalities": [modality], "tools": [WEATHER]}
            )
            await until(conn, "session.updated")
            events = await spoken_answer(conn, "What is the weather in Paris?")
            args = next(e for e in events if e["type"] == "response.function_call_arguments.done")
            assert (args["name"], args["call_id"]) == ("get_weather", "call_w1")
            assert json.loads(args["arguments"]) == {"city": "Paris"}
            done = events[-1]["response"]
            assert done["status"] == "completed"
            assert [o["type"] for o in done["output"]] == ["function_call"]

            await conn.conversation.item.create(
                item={
                    "type": "function_call_output",
                    "call_id": "call_w1",
                    "output": json.dumps({"sky": "sunny", "celsius": 21}),
                }
            )
            await until(conn, "conversation.item.done")
            await conn.response.create()
            events = await until(conn, "response.done")
            assert events[-1]["response"]["status"] == "completed"
            said = "output_text" if modality == "text" else "output_audio_transcript"
            answer = next(e for e in events if e["type"] == f"response.{said}.done")
            assert answer.get("text", answer.get("transcript")) == "It is sunny in Paris."
        first, second = (r.body for r in fake_openai.requests[-2:])
        offered = [t["function"]["name"] for t in first["tools"]]
        assert "get_weather" in offered and "check_availability" in offered
        tool_message = second["messages"][-1]
        assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_w1"
        result = json.loads(tool_message["content"])  # Parley's tool result shape
        assert result["status"] == "ok"
        assert json.loads(result["result"]) == {"sky": "sunny", "celsius": 21}
        await until_ended(services, session_id)
        stored = await services.store.list_messages(session_id)
        assert [m.role for m in stored][-4:] == ["user", "assistant", "tool", "assistant"]
        await client.close()


@pytest.mark.parametrize("silence_s", [0.15, 1.0])
async def test_push_to_talk_with_nothing_said_fails_the_response(
    tmp_path: Path, silence_s: float
) -> None:
    """Committed silence (too short for an utterance, or long and empty) leaves
    nothing to answer: the response fails with ``no_user_input``, the session goes on."""
    rate = 24000
    silence = bytes(int(rate * silence_s) * 2)
    async with realtime_server(tmp_path) as (base_url, _, _services):
        client = openai.AsyncOpenAI(api_key="anything", base_url=f"{base_url}/v1")
        async with client.realtime.connect(model="demo") as conn:
            await next_raw(conn)
            ptt = {"type": "realtime", "output_modalities": ["text"]}
            await conn.session.update(session={**ptt, "audio": {"input": {"turn_detection": None}}})
            await until(conn, "session.updated")
            await stream_audio(conn, silence, rate // 50 * 2)
            await conn.input_audio_buffer.commit()
            await until(conn, "input_audio_buffer.committed")
            await conn.response.create()
            events = await until(conn, "response.done")
            assert events[-1]["response"]["status"] == "failed"
            errors = [e["error"]["code"] for e in events if e["type"] == "error"]
            assert errors == ["no_user_input"]
            events = await spoken_answer(conn, "When are you open?")
            assert events[-1]["response"]["status"] == "completed"
        await client.close()


async def test_truncate_while_the_response_runs_stops_it_where_the_client_is(
    tmp_path: Path, fake_openai: FakeOpenAIServer
) -> None:
    """The model stalls mid-answer (its first sentence spoken, 3.3 s). 3 s later the
    client says it played 1 s (its buffer lags): the response stops, and the stored
    message is what the client played, not what Parley's clock guesses."""
    gate = asyncio.Event()  # never set
    first = "Once upon a time there was a king who had three clever daughters. "
    fake_openai.script(Reply.of(Text(first), Text("The eldest"), Wait(gate)))
    sentence_ms = len(speak_pcm(first.strip(), "en-us", 175, 24000)) // 48
    assert 3000 < sentence_ms < 4000  # so 1 s of it is its first 3 of 12 words
    clock = FakeClock()
    async with realtime_server(
        tmp_path, clock, llm_base_url=fake_openai.base_url, llm_model="fake-model"
    ) as (base_url, _, services):
        client = openai.AsyncOpenAI(api_key="anything", base_url=f"{base_url}/v1")
        async with client.realtime.connect(model="demo") as conn:
            session_id = (await next_raw(conn))["session"]["id"]
            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "A story"}],
                }
            )
            await until(conn, "conversation.item.done")
            await conn.response.create()
            received_ms = 0
            while received_ms < sentence_ms - 100:  # all of it (TTS streams it in pieces)
                delta = (await until(conn, "response.output_audio.delta"))[-1]
                received_ms += len(base64.b64decode(delta["delta"])) // 48
            clock.advance(3.0)  # by Parley's clock, 3 s of it have been played
            await conn.conversation.item.truncate(
                item_id=delta["item_id"], content_index=0, audio_end_ms=1000
            )
            events = await until(conn, "response.done")
            assert "conversation.item.truncated" in [e["type"] for e in events]
            assert events[-1]["response"]["status"] == "cancelled"
        await until_ended(services, session_id)
        stored = await services.store.list_messages(session_id)
        assistant = [m for m in stored if m.role == "assistant"][-1]
        # 1 s of the 3.3 s sentence: 12 words * 1 / 3.3 -> the first 3
        assert (assistant.text, assistant.interrupted) == ("Once upon a", True)
        await client.close()


async def test_response_cancel_stops_a_spoken_response_where_the_client_is(
    tmp_path: Path, fake_openai: FakeOpenAIServer
) -> None:
    """``response.cancel`` while the voice session speaks (the model stalls after its first
    sentence): the response ends ``cancelled`` (``client_cancelled``), and the stored
    message is cut to what the client has played by Parley's estimate (1 s of 3.3 s)."""
    gate = asyncio.Event()  # never set
    first = "Once upon a time there was a king who had three clever daughters. "
    fake_openai.script(Reply.of(Text(first), Text("The eldest"), Wait(gate)))
    sentence_ms = len(speak_pcm(first.strip(), "en-us", 175, 24000)) // 48
    clock = FakeClock()
    async with realtime_server(
        tmp_path, clock, llm_base_url=fake_openai.base_url, llm_model="fake-model"
    ) as (base_url, _, services):
        client = openai.AsyncOpenAI(api_key="anything", base_url=f"{base_url}/v1")
        async with client.realtime.connect(model="demo") as conn:
            session_id = (await next_raw(conn))["session"]["id"]
            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "A story"}],
                }
            )
            await until(conn, "conversation.item.done")
            await conn.response.create()
            received_ms = 0
            while received_ms < sentence_ms - 100:
                delta = (await until(conn, "response.output_audio.delta"))[-1]
                received_ms += len(base64.b64decode(delta["delta"])) // 48
            clock.advance(1.0)  # by Parley's clock the client has played 1 s of it
            await conn.response.cancel()
            done = (await until(conn, "response.done"))[-1]["response"]
            assert done["status"] == "cancelled"
            assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
            assert done["output"][0]["status"] == "incomplete"
            # the session goes on
            await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
            await until(conn, "session.updated")
        await until_ended(services, session_id)
        stored = await services.store.list_messages(session_id)
        assistant = [m for m in stored if m.role == "assistant"][-1]
        heard = assistant.text.split()
        assert assistant.interrupted and 0 < len(heard) < 6, assistant.text
        assert first.startswith(assistant.text)
        await client.close()
