"""The Realtime conversation: items in order, with what Parley knows about each (pure).

Item ids are assigned here, before anything reaches the store; the store's message id is
linked later (``Entry.message_id``) when the brain reports it. For assistant audio the
entry records which text each stretch of audio carried (``spoken``), so that
``conversation.item.truncate`` can name the words the listener actually heard.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from parley.realtime.wire import ContentPart, Item, MessageItem


@dataclass(slots=True)
class Entry:
    item_id: str
    item: Item
    message_id: str | None = None
    audio_ms: float = 0.0  # assistant audio sent so far
    spoken: list[tuple[float, float, str]] = field(default_factory=list)  # (start, end, text)
    text: str = ""  # assistant text / transcript, or the user's transcript

    @property
    def is_assistant_audio(self) -> bool:
        item = self.item
        return (
            isinstance(item, MessageItem)
            and item.role == "assistant"
            and any(p.type == "output_audio" for p in item.content)
        )

    def add_audio(self, ms: float, text: str) -> None:
        start = self.audio_ms
        self.audio_ms += ms
        if self.spoken and not text:  # more audio of the same stretch
            s, _, t = self.spoken[-1]
            self.spoken[-1] = (s, self.audio_ms, t)
        else:
            self.spoken.append((start, self.audio_ms, text))

    def heard(self, audio_end_ms: float) -> str:
        """The words played before ``audio_end_ms``: whole stretches, then the share of
        the words of the stretch being played in proportion to its time played."""
        stretches = (
            self.spoken if any(t for *_, t in self.spoken) else [(0.0, self.audio_ms, self.text)]
        )
        words: list[str] = []
        for start, end, text in stretches:
            if audio_end_ms >= end:
                words.extend(text.split())
            elif audio_end_ms > start and end > start:
                part = text.split()
                words.extend(part[: int(len(part) * (audio_end_ms - start) / (end - start))])
        return " ".join(words)

    def with_text(self, status: str | None = None) -> Item:
        """The item with its current text (assistant text/transcript, user transcript)."""
        item = self.item
        if not isinstance(item, MessageItem) or not item.content:
            return item
        first = item.content[0]
        if first.type == "output_text":
            part = ContentPart("output_text", text=self.text)
        elif first.type in ("output_audio", "input_audio"):
            part = ContentPart(first.type, transcript=self.text or first.transcript)
        else:
            return item
        return MessageItem(
            item.id,
            item.role,
            (part, *item.content[1:]),
            status or item.status,  # type: ignore[arg-type]
        )


class Conversation:
    """Items by id, in conversation order."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._entries

    def get(self, item_id: str) -> Entry | None:
        return self._entries.get(item_id)

    @property
    def last_id(self) -> str | None:
        return next(reversed(self._entries), None)

    def add(self, entry: Entry, previous_item_id: str | None = None) -> str | None:
        """Append, or insert after ``previous_item_id``; returns the id before it."""
        if previous_item_id is None or previous_item_id == self.last_id:
            before = self.last_id
            self._entries[entry.item_id] = entry
            return before
        entries = list(self._entries.items())
        at = next(i for i, (k, _) in enumerate(entries) if k == previous_item_id) + 1
        entries.insert(at, (entry.item_id, entry))
        self._entries = dict(entries)
        return previous_item_id

    def delete(self, item_id: str) -> Entry:
        return self._entries.pop(item_id)

    def function_call(self, call_id: str) -> Entry | None:
        for entry in self._entries.values():
            if (
                getattr(entry.item, "call_id", None) == call_id
                and entry.item.type == "function_call"
            ):
                return entry
        return None
