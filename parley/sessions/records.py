"""Plain records the store reads and writes: sessions, messages, approvals, transfers.

Content blocks (``Message.blocks``) are JSON objects, one of:
``{"type": "text", "text"}``,
``{"type": "tool_call", "id", "name", "arguments"}`` (assistant messages),
``{"type": "tool_result", "tool_call_id", "name", "status", "result"}`` (tool messages),
``{"type": "ui_op", "op"}``, ``{"type": "ui_action", "msg", "display"}``,
``{"type": "approval", "tool_call_id", "status", "decided_by"}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Role = Literal["user", "assistant", "tool", "system", "human_agent"]
SessionStatus = Literal["active", "ended"]
ApprovalState = Literal["pending", "approved", "denied"]


@dataclass(slots=True)
class Session:
    id: str
    agent: str
    status: SessionStatus
    token_hash: str
    resume_token: str
    current_channel: str = "chat"
    end_reason: str | None = None
    template_vars: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    agent_state: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    stats: dict[str, int] = field(default_factory=dict)  # sessions/stats.py


@dataclass(slots=True)
class Message:
    id: str
    session_id: str
    seq: int
    role: Role
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    channel: str = "chat"
    interrupted: bool = False
    created_at: datetime | None = None

    def tool_calls(self) -> list[dict[str, Any]]:
        return [b for b in self.blocks if b.get("type") == "tool_call"]

    def tool_result(self) -> dict[str, Any] | None:
        return next((b for b in self.blocks if b.get("type") == "tool_result"), None)


@dataclass(slots=True)
class Approval:
    session_id: str
    tool_call_id: str
    name: str
    arguments: dict[str, Any]
    status: ApprovalState
    prompt: str = ""
    decided_by: str | None = None
    reason: str | None = None
    created_at: datetime | None = None
    decided_at: datetime | None = None


@dataclass(slots=True)
class TransferRecord:
    id: str
    session_id: str
    status: str
    target: str = ""
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
