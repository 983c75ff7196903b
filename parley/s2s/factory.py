"""Build a speech-to-speech upstream and its config from settings and an agent file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from parley.config import AgentSpec, Settings
from parley.s2s.base import HistoryTurn, S2SConfig, S2SConfigError, ToolDeclaration
from parley.s2s.upstream import UpstreamSession

S2S_ENGINES = ("gemini_live", "openai_realtime")


def build_upstream(name: str, settings: Settings) -> UpstreamSession:
    """``engines.s2s`` name → adapter; a missing key is an :class:`S2SConfigError` now."""
    if name == "gemini_live":
        from parley.s2s.gemini_live import GeminiLive

        return GeminiLive(settings.gemini_api_key, settings.gemini_base_url)
    if name == "openai_realtime":
        from parley.s2s.openai_realtime import OpenAIRealtime

        return OpenAIRealtime(settings.openai_api_key, settings.openai_base_url)
    raise S2SConfigError(f"unknown engines.s2s {name!r}; expected one of {', '.join(S2S_ENGINES)}")


def tool_declarations(schemas: Iterable[Mapping[str, Any]]) -> list[ToolDeclaration]:
    """OpenAI-style function schemas (``{"type": "function", "function": {...}}``) as
    the upstream's tool declarations."""
    return [
        ToolDeclaration(
            schema["function"]["name"],
            schema["function"].get("description", ""),
            schema["function"].get("parameters") or {"type": "object"},
        )
        for schema in schemas
    ]


def s2s_config(
    agent: AgentSpec,
    *,
    instructions: str,
    tools: Sequence[ToolDeclaration] = (),
    history: Sequence[HistoryTurn] = (),
) -> S2SConfig:
    """The agent's ``realtime:`` block plus rendered instructions, tools and stored history."""
    rt = agent.realtime
    return S2SConfig(
        instructions=instructions,
        model=rt.model,
        voice=rt.voice,
        tools=tuple(tools),
        history=tuple(history),
        input_transcription=rt.input_transcription,
        output_transcription=rt.output_transcription,
        server_vad=rt.server_vad,
        compression=rt.compression.enabled,
        compression_trigger_tokens=rt.compression.trigger_tokens,
        compression_target_tokens=rt.compression.target_tokens,
        transcription_model=rt.transcription_model,
    )
