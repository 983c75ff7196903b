"""``AgentRuntime``: one agent made ready to run — its spec, bound tools and model."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from parley.brain.dates import say_date, say_time
from parley.brain.tools import BoundTool
from parley.config import AgentSpec
from parley.engines.base import LLM


@dataclass(frozen=True)
class AgentRuntime:
    agent: AgentSpec
    tools: dict[str, BoundTool]
    llm: LLM
    brain_kind: str  # "rules" | "llm" | "fake" | "realtime"

    def tool_schemas(self) -> list[dict[str, Any]]:
        return [b.tool.openai_schema() for b in self.tools.values()]

    def label(self, name: str) -> str:
        """What customers see for a tool: its ``label``, else its name in words."""
        bound = self.tools.get(name)
        label = bound.spec.label if bound is not None else None
        return label or name.replace("_", " ")

    def approval_prompt(self, name: str, arguments: dict[str, Any]) -> str:
        bound = self.tools.get(name)
        template = bound.spec.approval_prompt if bound is not None else None
        shown = {k: _readable(v) for k, v in arguments.items()}
        if template:
            try:
                return template.format(**shown)
            except (KeyError, IndexError, ValueError):
                pass
        args = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in shown.items())
        return f"Allow: {self.label(name)}" + (f" ({args})?" if args else "?")


def _readable(value: Any) -> Any:
    """ISO dates and HH:MM times as the replies show them: "Friday 2 January", "7 pm"."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return say_date(value)
    if isinstance(value, str) and re.fullmatch(r"\d{2}:\d{2}", value):
        return say_time(value)
    return value
