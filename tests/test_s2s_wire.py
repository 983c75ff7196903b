"""The pure speech-to-speech wire codecs, with literal messages; and the agent-file config."""

from __future__ import annotations

import base64
import json

import pytest

from parley.config import AgentSpec, Settings
from parley.s2s import gemini_wire as gw
from parley.s2s import openai_wire as ow
from parley.s2s.base import (
    AudioOut,
    GoAway,
    HistoryTurn,
    InputTranscript,
    Interrupted,
    OutputTranscript,
    ResumptionHandle,
    S2SConfig,
    S2SConfigError,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    ToolCallCancelled,
    ToolDeclaration,
    TurnComplete,
    UpstreamError,
)
from parley.s2s.factory import build_upstream, s2s_config
from parley.s2s.urls import websocket_base

PCM = b"\x01\x02\x03\x04"
B64 = base64.b64encode(PCM).decode()


# --- Gemini ----------------------------------------------------------------------------


def test_gemini_setup_literal() -> None:
    config = S2SConfig(
        instructions="Be kind.",
        model="gemini-2.0-flash-live-001",
        voice="Kore",
        tools=(ToolDeclaration("lookup", "find", {"type": "object", "properties": {}}),),
        compression_trigger_tokens=25600,
        compression_target_tokens=12800,
    )
    assert json.loads(gw.encode_setup(config, "h-9")) == {
        "setup": {
            "model": "models/gemini-2.0-flash-live-001",
            "generationConfig": {
                "responseModalities": ["AUDIO"],
                "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}},
            },
            "systemInstruction": {"parts": [{"text": "Be kind."}]},
            "tools": [
                {
                    "functionDeclarations": [
                        {
                            "name": "lookup",
                            "description": "find",
                            "parameters": {"type": "object", "properties": {}},
                        }
                    ]
                }
            ],
            "inputAudioTranscription": {},
            "outputAudioTranscription": {},
            "sessionResumption": {"handle": "h-9"},
            "contextWindowCompression": {
                "triggerTokens": 25600,
                "slidingWindow": {"targetTokens": 12800},
            },
            "realtimeInputConfig": {"automaticActivityDetection": {"disabled": False}},
        }
    }


def test_gemini_setup_defaults_and_compression_off() -> None:
    on = gw.setup_message(S2SConfig())["setup"]
    assert on["contextWindowCompression"] == {"slidingWindow": {}}
    assert on["sessionResumption"] == {}
    assert "speechConfig" not in on["generationConfig"] and "tools" not in on
    off = gw.setup_message(S2SConfig(compression=False, server_vad=False))["setup"]
    assert "contextWindowCompression" not in off
    assert off["realtimeInputConfig"] == {"automaticActivityDetection": {"disabled": True}}


def test_gemini_client_messages_literal() -> None:
    assert gw.encode_audio(PCM) == (
        '{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=16000","data":"' + B64 + '"}}}'
    )
    assert json.loads(gw.encode_text("hi")) == {
        "clientContent": {
            "turns": [{"role": "user", "parts": [{"text": "hi"}]}],
            "turnComplete": True,
        }
    }
    assert json.loads(
        gw.encode_history([HistoryTurn("user", "a"), HistoryTurn("assistant", "b")])
    ) == {
        "clientContent": {
            "turns": [
                {"role": "user", "parts": [{"text": "a"}]},
                {"role": "model", "parts": [{"text": "b"}]},
            ],
            "turnComplete": False,
        }
    }
    assert json.loads(gw.encode_tool_result("c1", "lookup", {"ok": True})) == {
        "toolResponse": {
            "functionResponses": [{"id": "c1", "name": "lookup", "response": {"ok": True}}]
        }
    }
    assert gw.ws_url("https://generativelanguage.googleapis.com/", "a b") == (
        "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1beta."
        "GenerativeService.BidiGenerateContent?key=a%20b"
    )


def test_gemini_server_turn_decodes_with_final_transcripts() -> None:
    d = gw.GeminiDecoder()
    assert d.decode('{"setupComplete":{}}') == [gw.SetupComplete()]
    assert d.decode('{"serverContent":{"inputTranscription":{"text":"hel"}}}') == [
        InputTranscript("hel", final=False)
    ]
    assert d.decode('{"serverContent":{"inputTranscription":{"text":"lo"}}}') == [
        InputTranscript("lo", final=False)
    ]
    audio = {
        "modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": B64}}]}
    }
    assert d.decode(json.dumps({"serverContent": audio})) == [
        InputTranscript("hello", final=True),
        AudioOut(PCM),
    ]
    assert d.decode('{"serverContent":{"outputTranscription":{"text":"Hi "}}}') == [
        OutputTranscript("Hi ", final=False)
    ]
    assert d.decode('{"serverContent":{"outputTranscription":{"text":"you."}}}') == [
        OutputTranscript("you.", final=False)
    ]
    assert d.decode('{"serverContent":{"generationComplete":true}}') == []
    assert d.decode('{"serverContent":{"turnComplete":true}}') == [
        OutputTranscript("Hi you.", final=True),
        TurnComplete(),
    ]
    assert d.decode('{"usageMetadata":{"totalTokenCount":9}}') == []


def test_gemini_interrupted_tool_calls_and_lifetime_messages() -> None:
    d = gw.GeminiDecoder()
    d.decode('{"serverContent":{"outputTranscription":{"text":"I was say"}}}')
    assert d.decode('{"serverContent":{"interrupted":true}}') == [
        Interrupted(),
        OutputTranscript("I was say", final=True),
    ]
    call = {"toolCall": {"functionCalls": [{"id": "f1", "name": "lookup", "args": {"q": "x"}}]}}
    assert d.decode(json.dumps(call)) == [ToolCall("f1", "lookup", {"q": "x"})]
    assert d.decode('{"toolCallCancellation":{"ids":["f1","f2"]}}') == [
        ToolCallCancelled(("f1", "f2"))
    ]
    assert d.decode('{"goAway":{"timeLeft":"9.5s"}}') == [GoAway(9.5)]
    assert d.decode('{"goAway":{"timeLeft":{"seconds":3,"nanos":500000000}}}') == [GoAway(3.5)]
    update = '{"sessionResumptionUpdate":{"newHandle":"h2","resumable":true}}'
    assert d.decode(update) == [ResumptionHandle("h2")]
    assert d.decode('{"sessionResumptionUpdate":{"newHandle":"h3","resumable":false}}') == []
    assert d.decode('{"sessionResumptionUpdate":{"resumable":true}}') == []


def test_gemini_bad_messages_are_wire_errors() -> None:
    d = gw.GeminiDecoder()
    with pytest.raises(gw.GeminiWireError, match="not JSON"):
        d.decode("{nope")
    with pytest.raises(gw.GeminiWireError, match="object"):
        d.decode("[1]")
    with pytest.raises(gw.GeminiWireError, match="duration"):
        d.decode('{"goAway":{"timeLeft":"soon"}}')


# --- OpenAI ----------------------------------------------------------------------------


def test_openai_session_update_literal() -> None:
    config = S2SConfig(
        instructions="Be kind.",
        voice="marin",
        tools=(ToolDeclaration("lookup", "find", {"type": "object"}),),
        server_vad=False,
        input_transcription=False,
    )
    assert json.loads(ow.encode_session_update(config)) == {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "model": "gpt-realtime",
            "output_modalities": ["audio"],
            "instructions": "Be kind.",
            "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None},
                "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"},
            },
            "tools": [
                {
                    "type": "function",
                    "name": "lookup",
                    "description": "find",
                    "parameters": {"type": "object"},
                }
            ],
            "tool_choice": "auto",
        },
    }


def test_openai_client_events_literal() -> None:
    assert ow.encode_audio(PCM) == '{"type":"input_audio_buffer.append","audio":"' + B64 + '"}'
    assert json.loads(ow.encode_tool_result("call_1", {"ok": 1})) == {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "call_1", "output": '{"ok":1}'},
    }
    assert ow.encode_history([HistoryTurn("user", "q"), HistoryTurn("assistant", "a")]) == [
        '{"type":"conversation.item.create","item":{"type":"message","role":"user",'
        '"content":[{"type":"input_text","text":"q"}]}}',
        '{"type":"conversation.item.create","item":{"type":"message","role":"assistant",'
        '"content":[{"type":"output_text","text":"a"}]}}',
    ]
    assert ow.encode_response_create() == '{"type":"response.create"}'
    assert json.loads(ow.encode_truncate("item_7", 1234)) == {
        "type": "conversation.item.truncate",
        "item_id": "item_7",
        "content_index": 0,
        "audio_end_ms": 1234,
    }
    assert ow.ws_url("http://127.0.0.1:9/v1", "gpt-realtime") == (
        "ws://127.0.0.1:9/v1/realtime?model=gpt-realtime"
    )


def test_openai_server_events_decode() -> None:
    d = ow.OpenAIDecoder()
    ev = lambda **kw: json.dumps(kw)  # noqa: E731
    assert d.decode(ev(type="session.created", session={})) == []
    assert d.decode(ev(type="session.updated", session={})) == [ow.SessionReady()]
    assert d.decode(ev(type="response.output_audio.delta", item_id="i1", delta=B64)) == [
        AudioOut(PCM, "i1")
    ]
    assert d.decode(
        ev(type="response.output_audio_transcript.delta", item_id="i1", delta="He")
    ) == [OutputTranscript("He", False, "i1")]
    assert d.decode(
        ev(type="response.output_audio_transcript.done", item_id="i1", transcript="Hey")
    ) == [OutputTranscript("Hey", True, "i1")]
    done = ev(type="conversation.item.input_audio_transcription.completed", transcript=" yes ")
    assert d.decode(done) == [InputTranscript("yes", final=True)]
    started = ev(type="input_audio_buffer.speech_started", item_id="i2", audio_start_ms=0)
    assert d.decode(started) == [SpeechStarted(), Interrupted()]
    stopped = ev(type="input_audio_buffer.speech_stopped", item_id="i2", audio_end_ms=900)
    assert d.decode(stopped) == [SpeechStopped()]
    args = ev(
        type="response.function_call_arguments.done", call_id="c1", name="f", arguments='{"a":1}'
    )
    assert d.decode(args) == [ToolCall("c1", "f", {"a": 1})]
    item = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a":1}'}
    assert d.decode(ev(type="response.output_item.done", item=item)) == []  # reported once
    item2 = {**item, "call_id": "c2"}
    assert d.decode(ev(type="response.output_item.done", item=item2)) == [
        ToolCall("c2", "f", {"a": 1})
    ]
    message = {"type": "message", "role": "assistant"}
    assert d.decode(ev(type="response.output_item.done", item=message)) == []
    assert d.decode(ev(type="response.done", response={})) == [TurnComplete()]


def test_openai_errors_and_session_cap() -> None:
    d = ow.OpenAIDecoder()
    cap = {"type": "invalid_request_error", "code": "session_expired", "message": "60 minutes"}
    assert d.decode(json.dumps({"type": "error", "error": cap})) == [GoAway(0.0)]
    limited = {"type": "rate_limit_error", "code": "rate_limit_exceeded", "message": "slow down"}
    assert d.decode(json.dumps({"type": "error", "error": limited})) == [
        UpstreamError("slow down", retryable=True, code="rate_limit_exceeded")
    ]
    bad = {"type": "invalid_request_error", "code": "invalid_value", "message": "bad voice"}
    assert d.decode(json.dumps({"type": "error", "error": bad})) == [
        UpstreamError("bad voice", retryable=False, code="invalid_value")
    ]
    with pytest.raises(ow.OpenAIWireError, match="no type"):
        d.decode("{}")
    with pytest.raises(ow.OpenAIWireError, match="not JSON"):
        d.decode("nope")


# --- URLs and config -------------------------------------------------------------------


def test_base_urls_map_to_websocket_schemes() -> None:
    assert websocket_base("https://example.com/v1/") == "wss://example.com/v1"
    assert websocket_base("http://127.0.0.1:8080") == "ws://127.0.0.1:8080"
    assert websocket_base("wss://x") == "wss://x"
    with pytest.raises(S2SConfigError, match="https://"):
        websocket_base("example.com")


def test_agent_file_realtime_block_becomes_the_upstream_config() -> None:
    agent = AgentSpec.model_validate(
        {
            "name": "interviewer",
            "brain": "realtime",
            "engines": {"s2s": "gemini_live"},
            "realtime": {
                "model": "gemini-live-2.5-flash-preview",
                "voice": "Puck",
                "compression": {"trigger_tokens": 30000, "target_tokens": 15000},
            },
        }
    )
    config = s2s_config(agent, instructions="Ask questions.", history=[HistoryTurn("user", "hi")])
    assert (config.model, config.voice, config.instructions) == (
        "gemini-live-2.5-flash-preview",
        "Puck",
        "Ask questions.",
    )
    assert (config.compression, config.compression_trigger_tokens) == (True, 30000)
    assert config.history == (HistoryTurn("user", "hi"),)
    with pytest.raises(ValueError, match="extra"):
        AgentSpec.model_validate({"name": "a", "realtime": {"modle": "typo"}})


def test_missing_keys_and_unknown_engine_fail_at_construction() -> None:
    settings = Settings(gemini_api_key=None, openai_api_key=None)
    with pytest.raises(S2SConfigError, match="PARLEY_GEMINI_API_KEY"):
        build_upstream("gemini_live", settings)
    with pytest.raises(S2SConfigError, match="PARLEY_OPENAI_API_KEY"):
        build_upstream("openai_realtime", settings)
    with pytest.raises(S2SConfigError, match="gemini_live, openai_realtime"):
        build_upstream("nope", settings)
    ready = Settings(openai_api_key="sk", openai_base_url="http://127.0.0.1:1/v1")
    assert build_upstream("openai_realtime", ready).capabilities.truncate
