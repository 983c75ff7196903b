"""The input side of a Realtime session: the audio buffer and the user's spoken items (pure).

Counts the audio appended (its milliseconds are the clock of ``audio_start_ms`` /
``audio_end_ms``), answers ``commit`` and ``clear``, and turns the voice session's
``Vad`` and ``Transcript`` events into ``speech_started`` / ``speech_stopped``,
``committed``, ``conversation.item.added`` and the transcription events of one user item.
The item id is announced at ``speech_started`` and kept through its transcript.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from parley.realtime import server_events as se
from parley.realtime.conversation import Conversation, Entry
from parley.realtime.ids import IdSource
from parley.realtime.validate import ProtocolError
from parley.realtime.wire import ContentPart, MessageItem

MIN_COMMIT_MS = 100  # as OpenAI: a commit needs at least 100 ms of audio

Emit = Callable[[dict[str, Any]], None]


class InputAudio:
    def __init__(
        self,
        conversation: Conversation,
        ids: IdSource,
        emit: Emit,
        on_commit: Callable[[Entry], None],
    ) -> None:
        """``on_commit`` gets each committed user item: the input of the next response
        (its transcript fills in later)."""
        self.conversation = conversation
        self.ids = ids
        self.emit = emit
        self.on_commit = on_commit
        self.input_ms = 0.0  # all input audio so far
        self.buffer_ms = 0.0  # uncommitted input audio
        self.speech_item: str | None = None  # announced by speech_started, not yet committed
        self.user_item: str | None = None  # the committed user item awaiting its transcript
        self.partial = ""  # its transcript so far
        self.sent = ""  # the part of it sent as transcription deltas

    def append(self, ms: float) -> None:
        self.input_ms += ms
        self.buffer_ms += ms

    def commit(self) -> str:
        """The committed item's id, or ``input_audio_buffer_commit_empty``."""
        if self.buffer_ms < MIN_COMMIT_MS:
            raise ProtocolError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {self.buffer_ms:.2f}ms of audio.",
            )
        return self._user_item()

    def clear(self) -> None:
        self.buffer_ms = 0.0
        self.emit(se.buffer_cleared())

    def speech_started(self) -> None:
        self.user_item = None
        self.partial = self.sent = ""
        self.speech_item = self.ids.new("item")
        self.emit(se.speech_started(round(self.input_ms), self.speech_item))

    def speech_stopped(self, transcribe: bool) -> None:
        """End of speech: the item is committed, then the transcript so far follows
        (OpenAI sends no transcription before the commit). A stop without a start is
        ignored (the final transcript already stopped it)."""
        item_id = self.speech_item
        if item_id is None:
            return
        self.speech_item = None
        self.emit(se.speech_stopped(round(self.input_ms), item_id))
        self._user_item(item_id)
        self._send_delta(item_id, transcribe)

    def transcript(self, text: str, final: bool, transcribe: bool) -> None:
        """A partial or final transcript of the user's item."""
        self.partial = text
        if self.speech_item is not None:
            if not final:
                return  # still speaking: the transcript waits for the commit
            self.speech_stopped(transcribe)
        item_id = self._user_item()
        self._send_delta(item_id, transcribe)
        if not final:
            return
        entry = self.conversation.get(item_id)
        assert entry is not None
        entry.text = text
        if transcribe:
            self.emit(se.transcription_completed(item_id, text, self.input_ms / 1000))
        self.emit(se.item_done(se.item_to_wire(entry.with_text("completed"), item_id), None))
        self.user_item = None
        self.partial = self.sent = ""

    def _send_delta(self, item_id: str, transcribe: bool) -> None:
        """The new part of the transcript (all of it when STT revised what was sent)."""
        text = self.partial
        delta = text[len(self.sent) :] if text.startswith(self.sent) else text
        self.sent = text
        if transcribe and delta:
            self.emit(se.transcription_delta(item_id, delta))

    def _user_item(self, item_id: str | None = None) -> str:
        """The user's spoken item: committed and added once, at the first need
        (``item_id``: the id already announced by ``speech_started``)."""
        if self.user_item is None:
            item_id = item_id or self.ids.new("item")
            self.user_item = item_id
            item = MessageItem(item_id, "user", (ContentPart("input_audio"),), "in_progress")
            entry = Entry(item_id, item)
            before = self.conversation.add(entry)
            self.buffer_ms = 0.0
            self.emit(se.buffer_committed(item_id, before))
            self.emit(se.item_added(se.item_to_wire(item, item_id), before))
            self.on_commit(entry)
        return self.user_item
