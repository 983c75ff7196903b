"""One Realtime response: its output items and the events that open, fill and close them.

Pure bookkeeping for ``RealtimeSession``: every method returns the server events (without
ids) in the order OpenAI's server sends them — ``output_item.added``,
``conversation.item.added``, ``content_part.added``, the deltas, then ``…done`` in
reverse. One content part per message item, so ``content_index`` is always 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from parley.realtime import server_events as se
from parley.realtime.conversation import Conversation, Entry
from parley.realtime.ids import IdSource
from parley.realtime.session_config import Modality, format_wire
from parley.realtime.wire import ContentPart, FunctionCallItem, MessageItem

Events = list[dict[str, Any]]


@dataclass(slots=True)
class Response:
    id: str
    modalities: tuple[Modality, ...]
    voice: str | None
    output_format: str
    metadata: Mapping[str, str] | None
    out_of_band: bool
    conversation_id: str
    output: list[Entry] = field(default_factory=list)
    open_entry: Entry | None = None

    @property
    def speaks(self) -> bool:
        return "audio" in self.modalities

    @property
    def last_entry(self) -> Entry | None:
        return self.output[-1] if self.output else None

    def to_wire(self, status: str, reason: str | None = None, error: Any = None) -> dict[str, Any]:
        details: dict[str, Any] | None = None
        if status in ("cancelled", "incomplete"):
            details = {"type": status, "reason": reason}
        elif status == "failed":
            details = {"type": "failed", "error": error}
        return {
            "object": "realtime.response",
            "id": self.id,
            "status": status,
            "status_details": details,
            "output": [se.item_to_wire(e.with_text(), e.item_id) for e in self.output],
            "conversation_id": None if self.out_of_band else self.conversation_id,
            "output_modalities": list(self.modalities),
            "audio": {"output": {"format": format_wire(self.output_format), "voice": self.voice}},
            "max_output_tokens": "inf",
            "metadata": dict(self.metadata) if self.metadata else None,
            "usage": se.usage() if status != "in_progress" else None,
        }

    def _add(self, conversation: Conversation, entry: Entry) -> Events:
        index = len(self.output)
        self.output.append(entry)
        events = [
            se.output_item("added", self.id, index, se.item_to_wire(entry.item, entry.item_id))
        ]
        if not self.out_of_band:
            before = conversation.add(entry)
            events.append(se.item_added(se.item_to_wire(entry.item, entry.item_id), before))
        return events

    def _open(self, conversation: Conversation, ids: IdSource) -> tuple[Entry, Events]:
        if self.open_entry is not None:
            return self.open_entry, []
        item_id = ids.new("item")
        if self.speaks:
            part = ContentPart("output_audio", transcript="")
        else:
            part = ContentPart("output_text", text="")
        entry = Entry(item_id, MessageItem(item_id, "assistant", (part,), "in_progress"))
        self.open_entry = entry
        events = self._add(conversation, entry)
        wire_part = (
            {"type": "audio", "transcript": ""} if self.speaks else {"type": "text", "text": ""}
        )
        events.append(
            se.content_part("added", self.id, item_id, self.output.index(entry), wire_part)
        )
        return entry, events

    def text_delta(self, conversation: Conversation, ids: IdSource, text: str) -> Events:
        entry, events = self._open(conversation, ids)
        entry.text += text
        name = "output_audio_transcript.delta" if self.speaks else "output_text.delta"
        events.append(
            se.part_event(name, self.id, entry.item_id, self.output.index(entry), delta=text)
        )
        return events

    def audio_delta(
        self, conversation: Conversation, ids: IdSource, b64: str, ms: float, text: str
    ) -> Events:
        entry, events = self._open(conversation, ids)
        entry.add_audio(ms, text)
        index = self.output.index(entry)
        events.append(se.part_event("output_audio.delta", self.id, entry.item_id, index, delta=b64))
        return events

    def function_call(
        self, conversation: Conversation, ids: IdSource, call: FunctionCallItem
    ) -> Events:
        item_id = ids.new("item")
        pending = FunctionCallItem(item_id, call.call_id, call.name, "", "in_progress")
        entry = Entry(item_id, pending)
        events = self._add(conversation, entry)
        index = self.output.index(entry)
        done = FunctionCallItem(item_id, call.call_id, call.name, call.arguments)
        entry.item = done
        events += [
            se.function_arguments(
                "delta", self.id, item_id, index, call.call_id, delta=call.arguments
            ),
            se.function_arguments(
                "done",
                self.id,
                item_id,
                index,
                call.call_id,
                name=call.name,
                arguments=call.arguments,
            ),
            se.output_item("done", self.id, index, se.item_to_wire(done, item_id)),
        ]
        if not self.out_of_band:
            events.append(se.item_done(se.item_to_wire(done, item_id), None))
        return events

    def close(self, entry: Entry, status: str) -> Events:
        """The ``…done`` events of the open message item."""
        self.open_entry = None
        index = self.output.index(entry)
        item = entry.with_text(status)
        entry.item = item
        wire = se.item_to_wire(item, entry.item_id)
        if self.speaks:
            events = [
                se.part_event("output_audio.done", self.id, entry.item_id, index),
                se.part_event(
                    "output_audio_transcript.done",
                    self.id,
                    entry.item_id,
                    index,
                    transcript=entry.text,
                ),
            ]
            part = {"type": "audio", "transcript": entry.text}
        else:
            events = [
                se.part_event("output_text.done", self.id, entry.item_id, index, text=entry.text)
            ]
            part = {"type": "text", "text": entry.text}
        events.append(se.content_part("done", self.id, entry.item_id, index, part))
        events.append(se.output_item("done", self.id, index, wire))
        if not self.out_of_band:
            events.append(se.item_done(wire, None))
        return events
