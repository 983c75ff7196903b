"""A Python tool whose result holds text no store keeps (U+0000, a lone surrogate):
the turn completes on every store, and the stored result is cleaned, not a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugins.apps import AppFactory
from tests.test_chat_api import collect

TOOLS = (
    "async def dirty() -> str:\n"
    "    '''A result with characters PostgreSQL refuses.'''\n"
    "    return 'a\\x00b\\ud800c'\n\n"
    "def register(registry):\n"
    "    registry.add(dirty)\n"
)
AGENT = """
name: dirty
brain: rules
tools: [dirty]
rules:
  - intent: go
    keywords: [go]
    tool: dirty
    say: "Done."
"""


async def test_a_tool_result_with_nul_is_stored_cleaned(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dirty_tools.py").write_text(TOOLS)
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "dirty.yaml").write_text(AGENT)
    monkeypatch.syspath_prepend(str(tmp_path))
    async with make_app(agents_dir=agents, tools_modules=["dirty_tools"]) as app:
        client = app.client()
        await client.create_session("dirty")
        events = await collect(client.send("go"))
        assert events[-1].data["status"] == "completed", [e.data for e in events]
        history = await client.messages()
        results = [b for m in history for b in m["blocks"] if b.get("type") == "tool_result"]
        assert results and results[0]["result"] == "abc"
        await client.aclose()
