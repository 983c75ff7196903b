"""The content blocks of the messages a turn stores: pure builders, no I/O.

An assistant reply is its text block and one ``tool_call`` block per call (marked
``requires_approval`` with its prompt where the tool needs a human yes); a tool
result is an optional ``approval`` block, the ``tool_result`` and its ``ui_op``s.
"""

from __future__ import annotations

from typing import Any

from parley.brain.runtime import AgentRuntime
from parley.engines.base import ToolCallRequest
from parley.sessions.records import Approval


def reply_blocks(
    runtime: AgentRuntime, text: str, calls: list[ToolCallRequest]
) -> list[dict[str, Any]]:
    """The blocks of an assistant reply: its text, then its tool calls."""
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for call in calls:
        block: dict[str, Any] = {
            "type": "tool_call",
            "id": call.id,
            "name": call.name,
            "arguments": call.arguments,
        }
        bound = runtime.tools.get(call.name)
        if bound is not None and bound.spec.requires_approval and call.error is None:
            block["requires_approval"] = True
            block["prompt"] = runtime.approval_prompt(call.name, call.arguments)
        blocks.append(block)
    return blocks


def result_blocks(
    call_id: str,
    name: str,
    status: str,
    result: Any,
    approval: Approval | None = None,
    ui_ops: tuple[dict[str, Any], ...] = (),
) -> list[dict[str, Any]]:
    """The blocks of a tool message: the decision (if any), the result, its UI ops."""
    blocks: list[dict[str, Any]] = []
    if approval is not None:
        blocks.append(
            {
                "type": "approval",
                "tool_call_id": call_id,
                "status": approval.status,
                "decided_by": approval.decided_by,
            }
        )
    blocks.append(
        {
            "type": "tool_result",
            "tool_call_id": call_id,
            "name": name,
            "status": status,
            "result": result,
        }
    )
    blocks.extend({"type": "ui_op", "op": op} for op in ui_ops)
    return blocks
