"""The agent file's ``transcripts_to_client: false``: what of a turn a client may see.

Interviews and assessments keep the words off the client: no transcript of what the
user said and no text of what the agent said (``transcript_partial``/``_final``,
``assistant_delta``, ``assistant_text`` chunks are dropped; ``assistant_message``
keeps its id and ``interrupted`` flag with an empty ``text``; ``assistant_text``
``start``/``end`` still mark when the agent speaks). Everything is still stored.

A pure function over wire dicts (the shape every channel renders), so the voice
socket, the chat SSE stream and the session event stream apply the same rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DROPPED = frozenset({"transcript_partial", "transcript_final", "assistant_delta"})


def client_wire(event: Mapping[str, Any], *, to_client: bool) -> dict[str, Any] | None:
    """The wire dict a client gets for ``event`` (None: nothing is sent)."""
    kind = event.get("type")
    if to_client:
        return dict(event)
    if kind in DROPPED:
        return None
    if kind == "assistant_text":
        return None if event.get("status") == "chunk" else {**event, "text": ""}
    if kind == "assistant_message":
        return {**event, "text": ""}
    return dict(event)


def hide_words(answer: Mapping[str, Any]) -> dict[str, Any]:
    """A ``POST /voice-turn`` answer without the words: empty ``transcript`` and
    ``text``, its ``events`` filtered as above (the reply audio stays)."""
    events = [client_wire(e, to_client=False) for e in answer.get("events", [])]
    return {
        **answer,
        "transcript": "",
        "text": "",
        "events": [e for e in events if e is not None],
    }
