"""The Realtime session state machine: literal event sequences, driven directly.

Every server event it emits is also validated against the official ``openai`` SDK's
``RealtimeServerEvent`` models (Parley's ``parley.*`` extension events excepted)."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter

from parley import events as pe
from parley.audio.g711 import encode_alaw, encode_ulaw
from parley.realtime.actions import (
    CancelResponse,
    ClearAudio,
    CommitAudio,
    ConfigureSession,
    DecideApproval,
    DeleteItem,
    FeedAudio,
    Output,
    Send,
    StartResponse,
    TruncateItem,
)
from parley.realtime.ids import SequentialIds
from parley.realtime.session_state import (
    TRANSITIONS,
    IllegalTransition,
    Phase,
    RealtimeSession,
)
from parley.realtime.wire import MessageItem, ProtocolError, parse_client_event

openai_realtime = pytest.importorskip("openai.types.realtime")
SDK_EVENT: TypeAdapter[Any] = TypeAdapter(openai_realtime.RealtimeServerEvent)


class Harness:
    def __init__(self, **config: Any) -> None:
        self.rt = RealtimeSession("sess_1", ids=SequentialIds())
        self.sent: list[dict[str, Any]] = []
        self.actions: list[Any] = []
        self.take(self.rt.start())

    def take(self, outputs: list[Output]) -> list[dict[str, Any]]:
        new = []
        for out in outputs:
            if isinstance(out, Send):
                event = out.event
                if not event["type"].startswith("parley."):
                    model = SDK_EVENT.validate_python(event)
                    assert model.type == event["type"]
                json.dumps(event)  # JSON-ready
                new.append(event)
            else:
                self.actions.append(out)
        self.sent += new
        return new

    def client(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            parsed = parse_client_event(json.dumps(event))
        except ProtocolError as err:
            return self.take(self.rt.reject(err))
        return self.take(self.rt.receive(parsed))

    def parley(self, *events: pe.Event) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in events:
            out += self.take(self.rt.on_event(event))
        return out

    def types(self, events: list[dict[str, Any]]) -> list[str]:
        return [e["type"] for e in events]


def user_text(text: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


TEXT_ONLY = {"type": "session.update", "session": {"output_modalities": ["text"]}}


def test_session_created_carries_the_parley_session_id_and_ga_defaults() -> None:
    h = Harness()
    (created,) = h.sent
    assert created["type"] == "session.created" and created["event_id"] == "event_1"
    session = created["session"]
    assert session["id"] == "sess_1" and session["type"] == "realtime"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"


def test_session_update_echoes_the_config_and_lists_what_is_ignored() -> None:
    h = Harness()
    update = {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "instructions": "Be brief.",
            "audio": {
                "input": {"format": {"type": "audio/pcmu"}, "turn_detection": None},
                "output": {"format": {"type": "audio/pcma"}},
            },
            "tracing": "auto",
        },
    }
    (updated,) = h.client(update)
    assert updated["type"] == "session.updated"
    assert updated["session"]["instructions"] == "Be brief."
    assert updated["session"]["audio"]["input"]["turn_detection"] is None
    assert updated["session"]["audio"]["output"]["format"] == {"type": "audio/pcma"}
    assert updated["parley"] == {"ignored": ["session.tracing"]}
    (configure,) = h.actions
    assert isinstance(configure, ConfigureSession)
    assert (configure.config.input_rate, configure.config.output_rate) == (8000, 8000)
    assert configure.config.turn_detection is None


def test_a_text_turn_in_literal_events() -> None:
    h = Harness()
    h.client(TEXT_ONLY)
    added = h.client({**user_text("What time is it?"), "event_id": "c1"})
    assert h.types(added) == ["conversation.item.added", "conversation.item.done"]
    assert added[0]["item"] == {
        "id": "item_1",
        "object": "realtime.item",
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_text", "text": "What time is it?"}],
    }
    created = h.client({"type": "response.create"})
    assert h.types(created) == ["response.created", "rate_limits.updated"]
    assert created[0]["response"]["status"] == "in_progress"
    start = h.actions[-1]
    assert isinstance(start, StartResponse) and start.response_id == "resp_1"
    assert start.output_modalities == ("text",)
    assert [i.text for i in start.input if isinstance(i, MessageItem)] == ["What time is it?"]

    out = h.parley(
        pe.AssistantDelta("It is "),
        pe.AssistantDelta("noon."),
        pe.AssistantMessage("msg_9", "It is noon."),
        pe.TurnEnd("completed"),
    )
    assert h.types(out) == [
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    deltas = [e["delta"] for e in out if e["type"] == "response.output_text.delta"]
    assert deltas == ["It is ", "noon."]
    assert all(e.get("response_id", "resp_1") == "resp_1" for e in out[:-1])
    assert out[5]["text"] == "It is noon."
    done = out[-1]["response"]
    assert (done["status"], done["status_details"]) == ("completed", None)
    assert done["output"][0]["content"] == [{"type": "output_text", "text": "It is noon."}]
    assert done["usage"]["total_tokens"] == 0
    assert h.rt.phase is Phase.IDLE
    assert h.rt.conversation.get("item_2") is not None  # the assistant item keeps its id
    assert h.rt.conversation.get("item_2").message_id == "msg_9"  # type: ignore[union-attr]


def test_a_second_response_while_one_runs_is_an_error_and_the_session_goes_on() -> None:
    h = Harness()
    h.client({"type": "response.create"})
    (err,) = h.client({"type": "response.create", "event_id": "c2"})
    assert err["type"] == "error"
    assert err["error"]["code"] == "conversation_already_has_active_response"
    assert err["error"]["event_id"] == "c2"
    assert "resp_1" in err["error"]["message"]
    assert h.rt.phase is Phase.ACTIVE
    out = h.parley(pe.AssistantMessage("m", "ok"), pe.TurnEnd("completed"))
    assert out[-1]["type"] == "response.done"


def test_cancel_ends_the_response_cancelled_and_drops_the_late_turn_events() -> None:
    h = Harness()
    h.client(TEXT_ONLY)
    h.client({"type": "response.create"})
    h.parley(pe.AssistantDelta("Once upon"))
    out = h.client({"type": "response.cancel"})
    assert h.types(out) == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    done = out[-1]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert done["output"][0]["status"] == "incomplete"
    assert isinstance(h.actions[-1], CancelResponse) and h.actions[-1].response_id == "resp_1"
    # a response.create before the turn has stopped waits for it
    assert h.client({"type": "response.create"}) == []
    assert h.parley(pe.AssistantDelta(" a time"), pe.AssistantMessage("m1", "Once upon")) == []
    assert h.rt.conversation.get("item_1").message_id == "m1"  # type: ignore[union-attr]
    out = h.parley(pe.TurnEnd("interrupted"))
    assert (
        h.types(out) == ["response.created", "rate_limits.updated"]
        and out[0]["response"]["id"] == "resp_2"
    )
    assert isinstance(h.actions[-1], StartResponse)
    assert h.rt.phase is Phase.ACTIVE


def test_cancel_without_a_response_is_an_error() -> None:
    h = Harness()
    (err,) = h.client({"type": "response.cancel", "event_id": "x"})
    assert err["error"]["code"] == "response_cancel_not_active"
    h.client({"type": "response.create"})
    (err,) = h.client({"type": "response.cancel", "response_id": "resp_9"})
    assert (err["error"]["code"], err["error"]["param"]) == (
        "response_cancel_not_active",
        "response_id",
    )


def tone_pcm(ms: int, rate: int) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


def test_spoken_response_then_barge_in_and_truncate_to_what_was_heard() -> None:
    h = Harness()
    out = h.parley(pe.AssistantDelta("Hello there. "))  # a server-made turn (VAD)
    assert h.types(out)[:2] == ["response.created", "rate_limits.updated"]
    assert "response.output_audio_transcript.delta" in h.types(out)
    h.take(h.rt.on_audio(tone_pcm(1000, 24000), "Hello there."))
    h.parley(pe.AssistantDelta("How are you today?"))
    out = h.take(h.rt.on_audio(tone_pcm(1000, 24000), "How are you today?"))
    (delta,) = out
    assert delta["type"] == "response.output_audio.delta"
    assert len(base64.b64decode(delta["delta"])) == 48000  # 1 s of PCM16 at 24 kHz
    # the user barges in: Parley's voice session interrupts, the response is cancelled
    out = h.parley(pe.Vad("speech_started"), pe.Interrupted())
    assert h.types(out)[0] == "input_audio_buffer.speech_started"
    assert h.types(out)[1:4] == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
    ]
    assert out[-1]["response"]["status_details"]["reason"] == "turn_detected"
    assert not any(isinstance(a, CancelResponse) for a in h.actions)  # already interrupted
    h.parley(pe.AssistantMessage("msg_7", "Hello there. How are you today?", interrupted=True))
    h.parley(pe.TurnEnd("interrupted"))
    assert h.rt.phase is Phase.IDLE
    # the client played 1.5 s: all of the first sentence, half of the second
    out = h.client(
        {
            "type": "conversation.item.truncate",
            "item_id": "item_1",
            "content_index": 0,
            "audio_end_ms": 1500,
        }
    )
    assert out == [
        {
            "type": "conversation.item.truncated",
            "event_id": out[0]["event_id"],
            "item_id": "item_1",
            "content_index": 0,
            "audio_end_ms": 1500,
        }
    ]
    truncate = h.actions[-1]
    assert truncate == TruncateItem("item_1", "msg_7", 1500, "Hello there. How are")


def test_truncate_errors_name_the_param() -> None:
    h = Harness()
    h.parley(pe.AssistantDelta("Hi."))
    h.take(h.rt.on_audio(tone_pcm(200, 24000)))
    (err,) = h.client(
        {
            "type": "conversation.item.truncate",
            "item_id": "nope",
            "content_index": 0,
            "audio_end_ms": 0,
        }
    )
    assert (err["error"]["code"], err["error"]["param"]) == ("item_not_found", "item_id")
    (err,) = h.client(
        {
            "type": "conversation.item.truncate",
            "item_id": "item_1",
            "content_index": 0,
            "audio_end_ms": 900,
        }
    )
    assert (err["error"]["code"], err["error"]["param"]) == ("invalid_value", "audio_end_ms")


def test_mu_law_and_a_law_in_and_out() -> None:
    h = Harness()
    h.client(
        {
            "type": "session.update",
            "session": {
                "audio": {
                    "input": {"format": {"type": "audio/pcmu"}},
                    "output": {"format": {"type": "audio/pcma"}},
                }
            },
        }
    )
    pcm8k = tone_pcm(100, 8000)
    ulaw = encode_ulaw(pcm8k)
    h.client({"type": "input_audio_buffer.append", "audio": base64.b64encode(ulaw).decode()})
    feed = h.actions[-1]
    assert isinstance(feed, FeedAudio) and feed.sample_rate == 8000
    assert len(feed.pcm) == 2 * len(ulaw)
    assert h.rt.input_ms == pytest.approx(100)
    h.parley(pe.AssistantDelta("Hi"))
    (delta,) = h.take(h.rt.on_audio(pcm8k))
    assert base64.b64decode(delta["delta"]) == encode_alaw(pcm8k)
    assert h.rt.conversation.get("item_1").audio_ms == pytest.approx(100)  # type: ignore[union-attr]


def test_wrong_audio_format_is_an_error_and_loses_nothing() -> None:
    h = Harness()
    (err,) = h.client(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\x00\x01\x02").decode()}
    )
    assert (err["error"]["code"], err["error"]["param"]) == ("invalid_audio_format", "audio")
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt "
    (err,) = h.client(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(wav).decode()}
    )
    assert err["error"]["code"] == "invalid_audio_format"
    assert h.rt.input_ms == 0 and h.actions == []
    (err,) = h.client({"type": "input_audio_buffer.append", "audio": "%%%"})
    assert (err["error"]["code"], err["error"]["param"]) == ("invalid_value", "audio")


def test_push_to_talk_commit_clear_and_the_transcript() -> None:
    h = Harness()
    h.client(
        {
            "type": "session.update",
            "session": {
                "audio": {
                    "input": {"turn_detection": None, "transcription": {"model": "whisper-1"}}
                }
            },
        }
    )
    (err,) = h.client({"type": "input_audio_buffer.commit"})
    assert err["error"]["code"] == "input_audio_buffer_commit_empty"
    h.client(
        {
            "type": "input_audio_buffer.append",
            "audio": base64.b64encode(tone_pcm(300, 24000)).decode(),
        }
    )
    assert h.types(h.client({"type": "input_audio_buffer.clear"})) == ["input_audio_buffer.cleared"]
    assert isinstance(h.actions[-1], ClearAudio)
    h.client(
        {
            "type": "input_audio_buffer.append",
            "audio": base64.b64encode(tone_pcm(300, 24000)).decode(),
        }
    )
    out = h.client({"type": "input_audio_buffer.commit"})
    assert h.types(out) == ["input_audio_buffer.committed", "conversation.item.added"]
    assert out[0]["item_id"] == "item_1" and h.actions[-1] == CommitAudio("item_1")
    out = h.parley(pe.Transcript("turn on"), pe.Transcript("turn on the light", final=True))
    assert h.types(out) == [
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.done",
    ]
    assert [e.get("delta") for e in out[:2]] == ["turn on", " the light"]
    assert out[2]["transcript"] == "turn on the light"
    assert out[3]["item"]["content"] == [{"type": "input_audio", "transcript": "turn on the light"}]
    h.client({"type": "response.create"})
    start = h.actions[-1]
    assert isinstance(start, StartResponse)
    assert [i.text for i in start.input if isinstance(i, MessageItem)] == ["turn on the light"]


def test_server_vad_turn_events() -> None:
    h = Harness()
    h.client(
        {
            "type": "input_audio_buffer.append",
            "audio": base64.b64encode(tone_pcm(500, 24000)).decode(),
        }
    )
    out = h.parley(pe.Vad("speech_started"))
    assert out[0]["audio_start_ms"] == 500 and out[0]["item_id"] == "item_1"
    h.client(
        {
            "type": "input_audio_buffer.append",
            "audio": base64.b64encode(tone_pcm(700, 24000)).decode(),
        }
    )
    out = h.parley(pe.Vad("speech_stopped"))
    assert h.types(out) == [
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
    ]
    assert out[0]["audio_end_ms"] == 1200
    assert {e.get("item_id", e.get("item", {}).get("id")) for e in out} == {"item_1"}
    # no transcription configured: the item is still completed with its transcript
    out = h.parley(pe.Transcript("hi", final=True))
    assert h.types(out) == ["conversation.item.done"]


def test_client_function_tool_round_trip() -> None:
    h = Harness()
    h.client(TEXT_ONLY)
    h.client(
        {
            "type": "session.update",
            "session": {
                "tools": [
                    {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
                ]
            },
        }
    )
    h.client(user_text("Weather in Oslo?"))
    h.client({"type": "response.create"})
    assert [t["name"] for t in h.actions[-1].tools] == ["get_weather"]
    out = h.take(h.rt.on_function_call("call_1", "get_weather", '{"city": "Oslo"}'))
    assert h.types(out) == [
        "response.output_item.added",
        "conversation.item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "conversation.item.done",
    ]
    assert out[0]["item"]["status"] == "in_progress" and out[0]["item"]["arguments"] == ""
    assert out[3]["arguments"] == '{"city": "Oslo"}' and out[3]["call_id"] == "call_1"
    out = h.parley(pe.TurnEnd("completed"))
    assert out[0]["response"]["output"][0]["type"] == "function_call"
    (err,) = h.client(
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "call_9", "output": "x"},
        }
    )
    assert (err["error"]["code"], err["error"]["param"]) == ("item_not_found", "item.call_id")
    h.client(
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        }
    )
    h.client({"type": "response.create"})
    (fco,) = h.actions[-1].input
    assert (fco.type, fco.call_id, fco.output) == ("function_call_output", "call_1", "sunny")


def test_agent_tools_and_approvals_are_parley_extension_events() -> None:
    h = Harness()
    h.client(TEXT_ONLY)
    h.client(user_text("Book it"))
    h.client({"type": "response.create"})
    out = h.parley(
        pe.ToolCallStarted("tc1", "book", {"day": "mon"}),
        pe.ApprovalRequested("tc1", "book", {"day": "mon"}, "Book Monday?"),
        pe.TurnEnd("awaiting_approval"),
    )
    assert h.types(out) == [
        "parley.tool_call_started",
        "parley.approval_requested",
        "response.done",
    ]
    assert out[1]["response_id"] == "resp_1" and out[1]["prompt"] == "Book Monday?"
    assert out[2]["response"]["status"] == "incomplete"
    assert out[2]["response"]["status_details"] == {
        "type": "incomplete",
        "reason": None,
        "parley_reason": "awaiting_approval",
    }
    h.client({"type": "parley.approval", "tool_call_id": "tc1", "approved": True})
    assert h.actions[-1] == DecideApproval("tc1", True, None)
    out = h.parley(
        pe.ApprovalResolved("tc1", "approved"),
        pe.ToolCallCompleted("tc1", "book", "ok", {"booked": True}),
        pe.AssistantMessage("m2", "Booked."),
        pe.TurnEnd("completed"),
    )
    assert h.types(out)[:4] == [
        "parley.approval_resolved",
        "response.created",
        "rate_limits.updated",
        "parley.tool_call_completed",
    ]
    assert out[-1]["response"]["id"] == "resp_2" and out[-1]["response"]["status"] == "completed"


def test_item_delete_retrieve_and_unknown_ids() -> None:
    h = Harness()
    h.client(user_text("one"))
    (err,) = h.client({**user_text("two"), "previous_item_id": "item_404"})
    assert (err["error"]["code"], err["error"]["param"]) == ("item_not_found", "previous_item_id")
    (retrieved,) = h.client({"type": "conversation.item.retrieve", "item_id": "item_1"})
    assert retrieved["item"]["content"][0]["text"] == "one"
    assert h.types(h.client({"type": "conversation.item.delete", "item_id": "item_1"})) == [
        "conversation.item.deleted"
    ]
    assert h.actions[-1] == DeleteItem("item_1", None)
    (err,) = h.client({"type": "conversation.item.delete", "item_id": "item_1", "event_id": "d"})
    assert (err["error"]["code"], err["error"]["event_id"]) == ("item_not_found", "d")


def test_parley_errors_become_error_events() -> None:
    h = Harness()
    (err,) = h.parley(pe.Error("session_busy", "a turn is running"))
    assert err["error"] == {
        "type": "invalid_request_error",
        "code": "session_busy",
        "message": "a turn is running",
        "param": None,
        "event_id": None,
    }


def test_transition_table_rejects_illegal_moves() -> None:
    assert TRANSITIONS[(Phase.IDLE, "begin")] is Phase.ACTIVE
    rt = RealtimeSession("s", ids=SequentialIds())
    with pytest.raises(IllegalTransition, match="'finish' in phase idle"):
        rt.responses._move("finish")


def test_out_of_band_response_insertion_and_a_failed_turn() -> None:
    h = Harness()
    h.client(TEXT_ONLY)
    h.client({**user_text("first"), "event_id": "a"})
    h.client(user_text("third"))
    out = h.client({**user_text("second"), "previous_item_id": "item_1"})
    assert out[0]["previous_item_id"] == "item_1"
    retrieved = [
        h.client({"type": "conversation.item.retrieve", "item_id": i})[0]
        for i in ("item_1", "item_3", "item_2")
    ]
    assert [r["item"]["content"][0]["text"] for r in retrieved] == ["first", "second", "third"]
    assert list(h.rt.conversation._entries) == ["item_1", "item_3", "item_2"]
    h.client(
        {
            "type": "response.create",
            "response": {
                "conversation": "none",
                "metadata": {"purpose": "summary"},
                "input": [
                    {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "Sum up."}],
                    }
                ],
            },
        }
    )
    start = h.actions[-1]
    assert isinstance(start, StartResponse) and start.out_of_band
    assert [i.text for i in start.input] == ["Sum up."]  # type: ignore[union-attr]
    assert len(h.rt.pending_input) == 3  # the conversation's items wait for the next response
    out = h.parley(
        pe.AssistantDelta("Summary."), pe.Error("internal_error", "boom"), pe.TurnEnd("error")
    )
    done = out[-1]["response"]
    assert (done["status"], done["conversation_id"], done["metadata"]) == (
        "failed",
        None,
        {"purpose": "summary"},
    )
    assert done["status_details"]["error"]["code"] == "turn_failed"
    error = next(e for e in out if e["type"] == "error")
    assert error["error"]["type"] == "server_error"
    assert "item_4" not in h.rt.conversation  # out of band: not in the conversation


def test_output_audio_buffer_clear_cancels_and_late_tool_events_are_dropped() -> None:
    h = Harness()
    h.parley(pe.AssistantDelta("Long story"))
    out = h.client({"type": "output_audio_buffer.clear"})
    assert h.types(out)[0] == "output_audio_buffer.cleared"
    assert out[-1]["response"]["status"] == "cancelled"
    assert isinstance(h.actions[-1], CancelResponse)
    assert h.parley(pe.ToolCallStarted("t", "x", {}), pe.UiOp({"kind": "card"})) == []
    assert h.take(h.rt.on_audio(tone_pcm(100, 24000))) == []
    assert h.take(h.rt.turn_stopped()) == [] and h.rt.phase is Phase.IDLE
    assert (
        h.client({"type": "output_audio_buffer.clear"})[0]["type"] == "output_audio_buffer.cleared"
    )


def test_user_audio_items_are_checked_in_the_input_format() -> None:
    h = Harness()
    item = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_audio", "audio": base64.b64encode(b"\x01\x02\x03").decode()}],
    }
    (err,) = h.client({"type": "conversation.item.create", "item": item})
    assert (err["error"]["code"], err["error"]["param"]) == (
        "invalid_audio_format",
        "item.content[0].audio",
    )
    item["content"][0]["audio"] = base64.b64encode(b"\x01\x02").decode()  # type: ignore[index]
    assert (
        h.types(h.client({"type": "conversation.item.create", "item": item}))[0]
        == "conversation.item.added"
    )
    (err,) = h.client({"type": "conversation.item.create", "item": {**item, "id": "item_1"}})
    assert err["error"]["code"] == "duplicate_item_id"


def test_voiced_responses_end_when_their_audio_is_out_and_barge_in_frees_at_once() -> None:
    h = Harness()
    h.rt = RealtimeSession("sess_1", ids=SequentialIds(), voiced=True)
    h.take(h.rt.start())
    h.parley(pe.Vad("speech_started"), pe.Vad("speech_stopped"), pe.Transcript("hi", final=True))
    out = h.parley(
        pe.AssistantDelta("Hello! "), pe.AssistantMessage("m1", "Hello!"), pe.TurnEnd("completed")
    )
    assert "response.done" not in h.types(out)  # the brain is done, the speech is not
    out = h.take(h.rt.on_audio(tone_pcm(400, 24000), "Hello!"))
    assert h.types(out) == ["response.output_audio.delta"]
    assert out[0]["response_id"] == "resp_1"
    out = h.parley(pe.Done())
    assert h.types(out) == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    assert out[1]["transcript"] == "Hello! "
    done = out[-1]
    assert done["response"]["status"] == "completed"
    assert done["response"]["output"][0]["content"] == [
        {"type": "output_audio", "transcript": "Hello! "}
    ]
    assert h.rt.conversation.get("item_2").message_id == "m1"  # type: ignore[union-attr]
    assert h.rt.phase is Phase.IDLE

    # barge-in: the voice session has stopped the turn, the phase is free at once
    h.parley(pe.AssistantDelta("A long answer"))
    h.take(h.rt.on_audio(tone_pcm(300, 24000)))
    out = h.parley(pe.Vad("speech_started"), pe.Interrupted())
    assert out[-1]["response"]["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert h.rt.phase is Phase.IDLE
    assert h.parley(pe.AssistantMessage("m2", "A long", interrupted=True)) == []
    assert h.rt.conversation.get("item_3").message_id == "m2"  # type: ignore[union-attr]
    assert h.parley(pe.Done()) == []  # a stray end of response changes nothing
    out = h.parley(
        pe.Vad("speech_stopped"), pe.Transcript("stop", final=True), pe.AssistantDelta("OK.")
    )
    assert "response.created" in h.types(out)
    assert next(e for e in out if e["type"] == "response.created")["response"]["id"] == "resp_3"


def test_transcripts_during_speech_wait_for_the_commit() -> None:
    h = Harness()
    h.client({"type": "session.update", "session": {"audio": {"input": {"transcription": {}}}}})
    assert h.types(h.parley(pe.Vad("speech_started"))) == ["input_audio_buffer.speech_started"]
    assert h.parley(pe.Transcript("book a")) == []  # OpenAI sends nothing before the commit
    out = h.parley(pe.Vad("speech_stopped"), pe.Transcript("book a table", final=True))
    assert h.types(out) == [
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.done",
    ]
    assert [e["delta"] for e in out[3:5]] == ["book a", " table"]
    assert {e.get("item_id") for e in out[:2]} == {"item_1"}
    # a final transcript before the end of speech stops it; the late stop is ignored
    h.parley(pe.Vad("speech_started"))
    out = h.parley(pe.Transcript("yes", final=True))
    assert h.types(out)[:3] == [
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
    ]
    assert h.parley(pe.Vad("speech_stopped")) == []


def test_what_a_stopped_turn_kept_links_to_its_item_even_after_a_newer_response() -> None:
    """The kept (interrupted) message of a barge-in can come after the next response
    began (the voice session sends text in step with audio): it names the stopped
    item, not the new one."""
    h = Harness()
    h.rt = RealtimeSession("sess_1", ids=SequentialIds(), voiced=True)
    h.take(h.rt.start())
    h.parley(pe.Vad("speech_started"), pe.Vad("speech_stopped"), pe.Transcript("hi", final=True))
    h.parley(pe.AssistantDelta("A long answer"))
    h.take(h.rt.on_audio(tone_pcm(300, 24000)))
    stopped = h.rt.response.output[-1].item_id  # type: ignore[union-attr]
    h.parley(pe.Vad("speech_started"), pe.Interrupted())
    h.parley(pe.Vad("speech_stopped"), pe.Transcript("stop", final=True), pe.AssistantDelta("OK"))
    newer = h.rt.response.output[-1].item_id  # type: ignore[union-attr]
    assert newer != stopped and h.rt.phase is Phase.ACTIVE
    assert h.parley(pe.AssistantMessage("m_kept", "A long", interrupted=True)) == []
    assert h.rt.conversation.get(stopped).message_id == "m_kept"  # type: ignore[union-attr]
    assert h.rt.conversation.get(newer).message_id is None  # type: ignore[union-attr]


@pytest.mark.parametrize("create_response", [True, False])
def test_spoken_items_wait_for_response_create_only_when_the_server_does_not_answer(
    create_response: bool,
) -> None:
    h = Harness()
    vad = {"type": "server_vad", "create_response": create_response}
    h.client({"type": "session.update", "session": {"audio": {"input": {"turn_detection": vad}}}})
    h.parley(pe.Vad("speech_started"), pe.Vad("speech_stopped"), pe.Transcript("hi", final=True))
    h.actions.clear()
    h.client({"type": "response.create"})
    (start,) = [a for a in h.actions if isinstance(a, StartResponse)]
    assert len(start.input) == (0 if create_response else 1)
