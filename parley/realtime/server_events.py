"""Builders of the Realtime server events (GA names and shapes), pure.

Each function returns the JSON object of one event without its ``event_id``; the session
state machine stamps ids as it emits them (``stamp``). Item and response objects follow
the ``openai`` SDK's ``types/realtime`` models. Parley's own events are prefixed
``parley.`` (``extension``) and documented in docs/REALTIME.md.
"""

from __future__ import annotations

from typing import Any

from parley.realtime.validate import ProtocolError
from parley.realtime.wire import FunctionCallItem, FunctionCallOutputItem, Item, MessageItem

Event = dict[str, Any]


def stamp(event: Event, event_id: str) -> Event:
    return {
        "type": event["type"],
        "event_id": event_id,
        **{k: v for k, v in event.items() if k != "type"},
    }


def _ev(kind: str, **fields: Any) -> Event:
    return {"type": kind, **fields}


# --- items ---------------------------------------------------------------------------------


def item_to_wire(item: Item, item_id: str, status: str | None = None) -> dict[str, Any]:
    """The ``realtime.item`` object; audio bytes are never echoed (``audio`` is absent)."""
    base: dict[str, Any] = {"id": item_id, "object": "realtime.item", "type": item.type}
    base["status"] = status or item.status
    if isinstance(item, MessageItem):
        parts = []
        for p in item.content:
            if p.type in ("input_text", "output_text"):
                parts.append({"type": p.type, "text": p.text})
            else:
                parts.append({"type": p.type, "transcript": p.transcript})
        return {**base, "role": item.role, "content": parts}
    if isinstance(item, FunctionCallItem):
        return {**base, "call_id": item.call_id, "name": item.name, "arguments": item.arguments}
    assert isinstance(item, FunctionCallOutputItem)
    return {**base, "call_id": item.call_id, "output": item.output}


# --- session and errors -----------------------------------------------------------------


def session_created(session: dict[str, Any]) -> Event:
    return _ev("session.created", session=session)


def session_updated(session: dict[str, Any], ignored: tuple[str, ...] = ()) -> Event:
    """``parley.ignored`` lists the accepted fields Parley does not act on."""
    return _ev("session.updated", session=session, parley={"ignored": list(ignored)})


def error(err: ProtocolError) -> Event:
    return _ev(
        "error",
        error={
            "type": err.type,
            "code": err.code,
            "message": err.message,
            "param": err.param,
            "event_id": err.event_id,
        },
    )


def output_audio_cleared(response_id: str) -> Event:
    return _ev("output_audio_buffer.cleared", response_id=response_id)


def rate_limits_updated(limits: list[dict[str, Any]]) -> Event:
    return _ev("rate_limits.updated", rate_limits=limits)


def extension(kind: str, fields: dict[str, Any]) -> Event:
    """A Parley extension event, ``parley.<kind>``."""
    return _ev(f"parley.{kind}", **fields)


# --- input audio buffer and conversation ---------------------------------------------------


def speech_started(audio_start_ms: int, item_id: str) -> Event:
    return _ev("input_audio_buffer.speech_started", audio_start_ms=audio_start_ms, item_id=item_id)


def speech_stopped(audio_end_ms: int, item_id: str) -> Event:
    return _ev("input_audio_buffer.speech_stopped", audio_end_ms=audio_end_ms, item_id=item_id)


def buffer_committed(item_id: str, previous_item_id: str | None) -> Event:
    return _ev("input_audio_buffer.committed", previous_item_id=previous_item_id, item_id=item_id)


def buffer_cleared() -> Event:
    return _ev("input_audio_buffer.cleared")


def item_added(item: dict[str, Any], previous_item_id: str | None) -> Event:
    return _ev("conversation.item.added", previous_item_id=previous_item_id, item=item)


def item_done(item: dict[str, Any], previous_item_id: str | None) -> Event:
    return _ev("conversation.item.done", previous_item_id=previous_item_id, item=item)


def item_retrieved(item: dict[str, Any]) -> Event:
    return _ev("conversation.item.retrieved", item=item)


def item_deleted(item_id: str) -> Event:
    return _ev("conversation.item.deleted", item_id=item_id)


def item_truncated(item_id: str, content_index: int, audio_end_ms: int) -> Event:
    return _ev(
        "conversation.item.truncated",
        item_id=item_id,
        content_index=content_index,
        audio_end_ms=audio_end_ms,
    )


def transcription_delta(item_id: str, delta: str) -> Event:
    return _ev(
        "conversation.item.input_audio_transcription.delta",
        item_id=item_id,
        content_index=0,
        delta=delta,
    )


def transcription_completed(item_id: str, transcript: str, seconds: float) -> Event:
    return _ev(
        "conversation.item.input_audio_transcription.completed",
        item_id=item_id,
        content_index=0,
        transcript=transcript,
        usage={"type": "duration", "seconds": round(seconds, 3)},
    )


# --- responses -----------------------------------------------------------------------------


def usage() -> dict[str, Any]:
    """Parley does not count tokens: every count is 0 (documented)."""
    return {
        "total_tokens": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "input_token_details": {"text_tokens": 0, "audio_tokens": 0, "cached_tokens": 0},
        "output_token_details": {"text_tokens": 0, "audio_tokens": 0},
    }


def response_created(response: dict[str, Any]) -> Event:
    return _ev("response.created", response=response)


def response_done(response: dict[str, Any]) -> Event:
    return _ev("response.done", response=response)


def output_item(kind: str, response_id: str, output_index: int, item: dict[str, Any]) -> Event:
    """``response.output_item.added`` / ``.done`` (``kind`` = ``added`` | ``done``)."""
    return _ev(
        f"response.output_item.{kind}",
        response_id=response_id,
        output_index=output_index,
        item=item,
    )


def content_part(
    kind: str, response_id: str, item_id: str, output_index: int, part: dict[str, Any]
) -> Event:
    """``response.content_part.added`` / ``.done``."""
    return _ev(
        f"response.content_part.{kind}",
        response_id=response_id,
        item_id=item_id,
        output_index=output_index,
        content_index=0,
        part=part,
    )


def part_event(
    name: str, response_id: str, item_id: str, output_index: int, **fields: Any
) -> Event:
    """One of ``response.output_audio.delta|done``, ``response.output_audio_transcript.delta|done``,
    ``response.output_text.delta|done`` (content_index is always 0: one part per item)."""
    return _ev(
        f"response.{name}",
        response_id=response_id,
        item_id=item_id,
        output_index=output_index,
        content_index=0,
        **fields,
    )


def function_arguments(
    kind: str, response_id: str, item_id: str, output_index: int, call_id: str, **fields: Any
) -> Event:
    """``response.function_call_arguments.delta`` / ``.done``."""
    return _ev(
        f"response.function_call_arguments.{kind}",
        response_id=response_id,
        item_id=item_id,
        output_index=output_index,
        call_id=call_id,
        **fields,
    )
