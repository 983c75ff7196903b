"""The script vocabulary of ``FakeOpenAIServer``: replies and the steps they play.

A ``Reply`` is a list of steps (text deltas, tool-call fragments, raw lines, waits on
an ``asyncio.Event``, a connection cut) or an HTTP error; see ``fake_openai``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# --- script vocabulary ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    """A chunk whose ``delta.content`` is ``text``."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallPart:
    """One entry of ``delta.tool_calls``; ``index=None`` leaves the field out (Ollama)."""

    index: int | None
    id: str | None = None
    name: str | None = None
    arguments: str | None = None

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {}
        if self.index is not None:
            entry["index"] = self.index
        if self.id is not None:
            entry["id"] = self.id
            entry["type"] = "function"
        function: dict[str, str] = {}
        if self.name is not None:
            function["name"] = self.name
        if self.arguments is not None:
            function["arguments"] = self.arguments
        if function:
            entry["function"] = function
        return entry


@dataclass(frozen=True, slots=True)
class ToolCallChunk:
    """A chunk whose ``delta.tool_calls`` holds ``parts``."""

    parts: tuple[ToolCallPart, ...]


@dataclass(frozen=True, slots=True)
class RawChunk:
    """A ``data:`` line with this JSON object as is (usage chunks, odd fields)."""

    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RawLine:
    """An SSE event written verbatim (malformed data, comments)."""

    line: str


@dataclass(frozen=True, slots=True)
class Finish:
    """A chunk with an empty delta and this ``finish_reason``."""

    reason: str = "stop"


@dataclass(frozen=True, slots=True)
class Done:
    """``data: [DONE]``."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Pause until ``event`` is set; without an event, yield to the loop once."""

    event: asyncio.Event | None = None


@dataclass(frozen=True, slots=True)
class Cut:
    """Drop the connection here (no end of the chunked body)."""


Step = Text | ToolCallChunk | RawChunk | RawLine | Finish | Done | Wait | Cut


@dataclass(frozen=True, slots=True)
class ToolCallScript:
    """A tool call for ``Reply.tool_calls``; ``arguments`` (a string is sent as is) is
    split into ``fragments`` pieces after a first entry that carries id and name."""

    name: str
    arguments: str | Mapping[str, Any] = ""
    id: str | None = None
    fragments: int = 3

    def arguments_text(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer: ``steps`` for status 200, else an error ``body``."""

    steps: tuple[Step, ...] = ()
    status: int = 200
    body: Any = None

    @classmethod
    def of(cls, *steps: Step) -> Reply:
        return cls(steps=steps)

    @classmethod
    def text(cls, *deltas: str, finish_reason: str | None = "stop", done: bool = True) -> Reply:
        """Text deltas, then ``finish_reason`` and ``[DONE]`` (each can be left out)."""
        steps: list[Step] = [Text(delta) for delta in deltas]
        if finish_reason is not None:
            steps.append(Finish(finish_reason))
        if done:
            steps.append(Done())
        return cls(steps=tuple(steps))

    @classmethod
    def tool_calls(
        cls,
        *calls: ToolCallScript,
        text: Sequence[str] = (),
        interleave: bool = False,
        whole: bool = False,
        with_index: bool = True,
    ) -> Reply:
        """Optional text deltas, then the calls: fragmented one after another,
        fragments ``interleave``d across calls, or ``whole`` (all in one chunk)."""
        steps: list[Step] = [Text(delta) for delta in text]
        plans = [_call_parts(call, i, with_index) for i, call in enumerate(calls)]
        if whole:
            steps.append(ToolCallChunk(tuple(_merge_parts(parts) for parts in plans)))
        elif interleave:
            longest = max((len(parts) for parts in plans), default=0)
            steps += [ToolCallChunk((p[n],)) for n in range(longest) for p in plans if n < len(p)]
        else:
            steps += [ToolCallChunk((part,)) for parts in plans for part in parts]
        steps += [Finish("tool_calls"), Done()]
        return cls(steps=tuple(steps))

    @classmethod
    def cut_after(cls, *deltas: str) -> Reply:
        """Text deltas, then the connection drops."""
        return cls(steps=(*(Text(delta) for delta in deltas), Cut()))

    @classmethod
    def malformed(cls, *deltas: str, line: str = "data: {not json") -> Reply:
        """Text deltas, then a data line that is not JSON."""
        return cls(steps=(*(Text(delta) for delta in deltas), RawLine(line), Finish(), Done()))

    @classmethod
    def http_error(cls, status: int, message: str = "scripted error", *, body: Any = None) -> Reply:
        """An error answer; ``body`` (dict or str) replaces the OpenAI-style error body."""
        if body is None:
            body = {"error": {"message": message, "type": "fake_error", "code": status}}
        return cls(status=status, body=body)


def _split(text: str, pieces: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // max(1, pieces)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _call_parts(call: ToolCallScript, position: int, with_index: bool) -> list[ToolCallPart]:
    index = position if with_index else None
    call_id = call.id or f"call_{position}"
    head = ToolCallPart(index, id=call_id, name=call.name, arguments="")
    pieces = _split(call.arguments_text(), call.fragments)
    return [head, *(ToolCallPart(index, arguments=piece) for piece in pieces)]


def _merge_parts(parts: list[ToolCallPart]) -> ToolCallPart:
    head = parts[0]
    arguments = "".join(part.arguments or "" for part in parts)
    return ToolCallPart(head.index, id=head.id, name=head.name, arguments=arguments)
