"""The Realtime wire codec: literal client events in, typed events or documented errors out."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from parley.realtime.wire import (
    ApprovalDecision,
    AudioAppend,
    AudioClear,
    AudioCommit,
    ContentPart,
    FunctionCallOutputItem,
    ItemCreate,
    ItemDelete,
    ItemRetrieve,
    ItemTruncate,
    MessageItem,
    OutputAudioClear,
    ProtocolError,
    ResponseCancel,
    ResponseCreate,
    SessionUpdate,
    parse_client_event,
)


def parse(event: dict[str, Any]) -> Any:
    return parse_client_event(json.dumps(event))


def error_of(frame: str | dict[str, Any]) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_client_event(frame if isinstance(frame, str) else json.dumps(frame))
    return info.value


GA_SESSION = {
    "type": "realtime",
    "model": "gpt-realtime",
    "instructions": "Be brief.",
    "output_modalities": ["audio"],
    "audio": {
        "input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "noise_reduction": {"type": "near_field"},
            "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.6,
                "prefix_padding_ms": 200,
                "silence_duration_ms": 700,
                "create_response": True,
                "interrupt_response": False,
                "idle_timeout_ms": 6000,
            },
        },
        "output": {"format": {"type": "audio/pcmu"}, "voice": "marin", "speed": 1.1},
    },
    "tools": [
        {
            "type": "function",
            "name": "lookup",
            "description": "Look a thing up",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
        {"type": "mcp", "server_label": "x", "server_url": "https://example.invalid"},
    ],
    "tool_choice": "auto",
    "max_output_tokens": "inf",
    "tracing": "auto",
    "truncation": "auto",
    "include": ["item.input_audio_transcription.logprobs"],
    "parallel_tool_calls": True,
}


def test_every_ga_session_field_is_accepted_and_the_unhonoured_ones_listed() -> None:
    event = parse({"type": "session.update", "event_id": "ev1", "session": GA_SESSION})
    assert isinstance(event, SessionUpdate) and event.event_id == "ev1"
    values = event.session.values
    assert values["instructions"] == "Be brief."
    assert (values["input_format"], values["output_format"]) == ("audio/pcm", "audio/pcmu")
    td = values["turn_detection"]
    assert (td.threshold, td.prefix_padding_ms, td.silence_duration_ms) == (0.6, 200, 700)
    assert (td.create_response, td.interrupt_response, td.stop_secs) == (True, False, 0.7)
    assert (values["voice"], values["speed"]) == ("marin", 1.1)
    assert [t["name"] for t in values["tools"]] == ["lookup"]  # the MCP tool is dropped
    assert set(event.session.ignored) == {
        "session.model",
        "session.audio.input.noise_reduction",
        "session.audio.input.transcription.model",
        "session.audio.input.transcription.language",
        "session.tools[1]",
        "session.max_output_tokens",
        "session.tracing",
        "session.truncation",
        "session.include",
        "session.parallel_tool_calls",
    }


def test_turn_detection_null_semantic_vad_and_a_law() -> None:
    off = parse(
        {"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}}
    )
    assert off.session.values == {"turn_detection": None}
    semantic = parse(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcma"},
                        "turn_detection": {"type": "semantic_vad", "eagerness": "high"},
                    }
                },
            },
        }
    )
    assert semantic.session.values["input_format"] == "audio/pcma"
    assert semantic.session.values["turn_detection"].stop_secs == 0.3


def test_audio_buffer_events() -> None:
    pcm = b"\x01\x00\x02\x00"
    event = parse({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})
    assert event == AudioAppend(None, pcm)
    assert parse({"type": "input_audio_buffer.commit", "event_id": "c"}) == AudioCommit("c")
    assert parse({"type": "input_audio_buffer.clear"}) == AudioClear(None)
    assert parse({"type": "output_audio_buffer.clear"}) == OutputAudioClear(None)


def test_conversation_item_events() -> None:
    created = parse(
        {
            "type": "conversation.item.create",
            "previous_item_id": "item_1",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hello"}],
            },
        }
    )
    assert created == ItemCreate(
        None, MessageItem(None, "user", (ContentPart("input_text", text="hello"),)), "item_1"
    )
    output = parse(
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "call_1", "output": "{}"},
        }
    )
    assert output.item == FunctionCallOutputItem(None, "call_1", "{}")
    truncate = {"type": "conversation.item.truncate", "item_id": "i", "content_index": 0}
    assert parse({**truncate, "audio_end_ms": 1500}) == ItemTruncate(None, "i", 0, 1500)
    assert parse({"type": "conversation.item.delete", "item_id": "i"}) == ItemDelete(None, "i")
    assert parse({"type": "conversation.item.retrieve", "item_id": "i"}) == ItemRetrieve(None, "i")


def test_response_events_with_overrides() -> None:
    assert parse({"type": "response.create"}) == ResponseCreate(None)
    event = parse(
        {
            "type": "response.create",
            "response": {
                "instructions": "Shout.",
                "output_modalities": ["text"],
                "tool_choice": {"type": "function", "name": "lookup"},
                "tools": [{"type": "function", "name": "lookup"}],
                "conversation": "none",
                "metadata": {"topic": "x"},
                "audio": {"output": {"voice": {"id": "v1"}, "format": {"type": "audio/pcmu"}}},
                "input": [
                    {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "q"}],
                    }
                ],
            },
        }
    )
    p = event.params
    assert (p.instructions, p.output_modalities, p.conversation) == ("Shout.", ("text",), "none")
    assert (p.voice, p.output_format, p.metadata) == ("v1", "audio/pcmu", {"topic": "x"})
    assert p.tool_choice == {"type": "function", "name": "lookup"}
    assert p.input is not None and p.input[0].text == "q"
    assert parse({"type": "response.cancel", "response_id": "r"}) == ResponseCancel(None, "r")
    approval = parse({"type": "parley.approval", "tool_call_id": "t", "approved": False})
    assert approval == ApprovalDecision(None, "t", False)


@pytest.mark.parametrize(
    ("frame", "code", "param"),
    [
        ("{not json", "invalid_json", None),
        ("[1, 2]", "invalid_type", None),
        ({"type": "response.explode", "event_id": "e9"}, "invalid_value", "type"),
        ({"event_id": "e9"}, "missing_required_parameter", "type"),
        ({"type": "input_audio_buffer.append"}, "missing_required_parameter", "audio"),
        ({"type": "input_audio_buffer.append", "audio": "***"}, "invalid_value", "audio"),
        ({"type": "input_audio_buffer.append", "audio": 5}, "invalid_type", "audio"),
        ({"type": "response.cancel", "bogus": 1}, "unknown_parameter", "bogus"),
        (
            {"type": "session.update", "session": {"audio": {"input": {"volume": 3}}}},
            "unknown_parameter",
            "session.audio.input.volume",
        ),
        (
            {"type": "session.update", "session": {"input_audio_format": "pcm16"}},
            "unknown_parameter",
            "session.input_audio_format",
        ),
        (
            {
                "type": "session.update",
                "session": {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}},
            },
            "invalid_value",
            "session.audio.input.format.rate",
        ),
        (
            {
                "type": "session.update",
                "session": {"audio": {"output": {"format": {"type": "mp3"}}}},
            },
            "invalid_value",
            "session.audio.output.format.type",
        ),
        (
            {
                "type": "session.update",
                "session": {
                    "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}}
                },
            },
            "invalid_value",
            "session.audio.input.turn_detection.threshold",
        ),
        (
            {
                "type": "session.update",
                "session": {
                    "audio": {
                        "input": {"turn_detection": {"type": "server_vad", "create_response": None}}
                    }
                },
            },
            "invalid_type",
            "session.audio.input.turn_detection.create_response",
        ),
        (
            {"type": "session.update", "session": {"type": "transcription"}},
            "invalid_value",
            "session.type",
        ),
        (
            {"type": "session.update", "session": {"output_modalities": []}},
            "invalid_type",
            "session.output_modalities",
        ),
        (
            {"type": "conversation.item.create", "item": {"type": "item_reference", "id": "x"}},
            "invalid_value",
            "item.type",
        ),
        (
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "output_text", "text": "x"}],
                },
            },
            "invalid_value",
            "item.content[0].type",
        ),
        (
            {
                "type": "conversation.item.truncate",
                "item_id": "i",
                "content_index": 0,
                "audio_end_ms": -1,
            },
            "invalid_value",
            "audio_end_ms",
        ),
        (
            {"type": "response.create", "response": {"conversation": "conv_9"}},
            "invalid_value",
            "response.conversation",
        ),
    ],
)
def test_bad_input_is_a_documented_error(frame: Any, code: str, param: str | None) -> None:
    err = error_of(frame)
    assert (err.type, err.code, err.param) == ("invalid_request_error", code, param)
    assert err.message
    if isinstance(frame, dict) and "event_id" in frame:
        assert err.event_id == frame["event_id"]
