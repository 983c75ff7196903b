"""Tools a client declares for its turns (``/v1/realtime`` function tools).

The client names and describes the tools; the model may call them like the agent's
own, but Parley does not run them: the turn ends with a ``ClientToolCall`` and the
client answers later with the output (``Brain.tool_outputs``), which continues the
conversation. The agent's own tools keep their names: a client tool of the same name
is not offered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ClientTools"]


@dataclass(frozen=True)
class ClientTools:
    """Client function tools in the chat-completions format the ``LLM`` takes."""

    schemas: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_realtime(
        cls, tools: Iterable[Mapping[str, Any]], tool_choice: object = "auto"
    ) -> ClientTools:
        """From Realtime ``session.tools`` (``{"type": "function", "name", "description",
        "parameters"}``); ``tool_choice: "none"`` offers none. Other tool types (``mcp``)
        are left out."""
        if tool_choice == "none":
            return cls()
        schemas = []
        for tool in tools:
            if tool.get("type", "function") != "function" or not tool.get("name"):
                continue
            function: dict[str, Any] = {"name": str(tool["name"])}
            if tool.get("description"):
                function["description"] = str(tool["description"])
            function["parameters"] = dict(tool.get("parameters") or {"type": "object"})
            schemas.append({"type": "function", "function": function})
        return cls(tuple(schemas))

    @property
    def names(self) -> frozenset[str]:
        return frozenset(str(s["function"]["name"]) for s in self.schemas)

    def offered(self, own: Iterable[str]) -> list[dict[str, Any]]:
        """The schemas to offer beside the agent's tools named ``own``."""
        taken = set(own)
        return [s for s in self.schemas if s["function"]["name"] not in taken]
