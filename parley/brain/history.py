"""Stored messages → the model's view (OpenAI chat format), and dangling tool calls.

The store keeps everything (text + content blocks); the model sees user text,
assistant text with its tool calls, tool results as JSON, and a short system note
after an assistant message the user interrupted. A user message that answered a
pending approval ("sure", "no") is left out: the tool result carries the decision.
"""

from __future__ import annotations

import json
from typing import Any

from parley.sessions.records import Message

INITIAL_TURN_MARKER = "<initial-turn>"
INITIAL_TURN_PROMPT = (
    INITIAL_TURN_MARKER
    + " Open the conversation now: greet the user in one or two short sentences and "
    "say what you can help with. Do not call tools."
)
INTERRUPTED_NOTE = (
    "(The user interrupted you here; they heard only the assistant text above, "
    "not the rest of what you meant to say.)"
)


def tool_result_content(block: dict[str, Any]) -> str:
    status = block.get("status", "ok")
    payload: dict[str, Any] = {"status": status}
    if status == "ok":
        payload["result"] = block.get("result")
    elif status == "denied":
        payload["reason"] = block.get("result") or "The user declined."
    else:
        payload["error"] = block.get("result")
    return json.dumps(payload, ensure_ascii=False, default=str)


def to_model_messages(system_prompt: str, history: list[Message]) -> list[dict[str, Any]]:
    """Build the chat-completions message list for one model call."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}]
    for msg in history:
        if msg.role == "user":
            if any(b.get("type") == "approval_answer" for b in msg.blocks):
                continue  # the words decided an approval; the tool result says how
            out.append({"role": "user", "content": msg.text})
        elif msg.role == "system":
            out.append({"role": "system", "content": msg.text})
        elif msg.role == "human_agent":  # a person of the staff, during a transfer
            out.append({"role": "system", "content": f"A staff member told the caller: {msg.text}"})
        elif msg.role == "assistant":
            entry: dict[str, Any] = {"role": "assistant", "content": msg.text or None}
            calls = msg.tool_calls()
            if calls:
                entry["tool_calls"] = [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {
                            "name": c["name"],
                            "arguments": json.dumps(c.get("arguments") or {}),
                        },
                    }
                    for c in calls
                ]
            elif not msg.text:
                continue
            out.append(entry)
            if msg.interrupted:
                out.append({"role": "system", "content": INTERRUPTED_NOTE})
        elif msg.role == "tool":
            block = msg.tool_result()
            if block is None:
                continue
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": block["tool_call_id"],
                    "content": tool_result_content(block),
                }
            )
    return out


def unanswered_tool_calls(history: list[Message]) -> list[dict[str, Any]]:
    """Tool calls of assistant messages that have no tool result yet, oldest first."""
    answered = {
        b["tool_call_id"]
        for m in history
        if m.role == "tool"
        for b in m.blocks
        if b.get("type") == "tool_result"
    }
    return [
        call
        for m in history
        if m.role == "assistant"
        for call in m.tool_calls()
        if call["id"] not in answered
    ]
