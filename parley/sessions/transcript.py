"""A session's transcript: the stored messages as timestamped lines (JSON or text).

Pure: messages in, transcript out. What was said (user and assistant text, a human
agent's words), what the agent did (tool calls and their outcome) and where speech was
cut (``interrupted``). Internal state never appears: tool arguments and results stay
in the message history, not in the transcript.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from parley.sessions.records import Message


def transcript_entries(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """One entry per spoken or typed line and per tool outcome, oldest first."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        at = msg.created_at.isoformat() if msg.created_at else None
        if msg.role == "tool":
            result = msg.tool_result()
            if result is not None:
                out.append(
                    {
                        "at": at,
                        "role": "tool",
                        "text": f"{result.get('name')}: {result.get('status')}",
                        "channel": msg.channel,
                        "interrupted": False,
                    }
                )
            continue
        if not msg.text:
            continue
        out.append(
            {
                "at": at,
                "role": msg.role,
                "text": msg.text,
                "channel": msg.channel,
                "interrupted": msg.interrupted,
            }
        )
    return out


def transcript_text(entries: Sequence[dict[str, Any]]) -> str:
    """``[2026-12-04T12:00:03+00:00] user (voice): text`` lines; cut speech ends in ``—``."""
    lines = []
    for e in entries:
        cut = " —" if e["interrupted"] else ""
        lines.append(f"[{e['at'] or '?'}] {e['role']} ({e['channel']}): {e['text']}{cut}")
    return "\n".join(lines) + ("\n" if lines else "")
