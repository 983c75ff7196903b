"""Configuration, one import away: server settings and agent files.

A facade: ``parley.settings`` holds ``Settings`` and its loading, ``parley.agent_spec``
the agent-file models, ``parley.agent_files`` the reading of ``agents/*.yaml``. Every
public name stays importable from here. Imports nothing of parley but those three.
"""

from __future__ import annotations

from parley.agent_files import BUILTIN_AGENTS_DIR, load_agents, parse_agent
from parley.agent_spec import (
    AgentSpec,
    CompressionSpec,
    ContextSpec,
    DishSpec,
    FaqSpec,
    LimitsSpec,
    OnEndSpec,
    RealtimeSpec,
    RuleSpec,
    ToolSpec,
    VenueSpec,
    VoiceSpec,
)
from parley.settings import (
    DATABASE_URL_PREFIXES,
    POSTGRES_URL_PREFIX,
    SQLITE_URL_PREFIXES,
    ConfigError,
    Settings,
    load_settings,
    settings_warnings,
)

__all__ = [
    "BUILTIN_AGENTS_DIR",
    "DATABASE_URL_PREFIXES",
    "POSTGRES_URL_PREFIX",
    "SQLITE_URL_PREFIXES",
    "AgentSpec",
    "CompressionSpec",
    "ConfigError",
    "ContextSpec",
    "DishSpec",
    "FaqSpec",
    "LimitsSpec",
    "OnEndSpec",
    "RealtimeSpec",
    "RuleSpec",
    "Settings",
    "ToolSpec",
    "VenueSpec",
    "VoiceSpec",
    "load_agents",
    "load_settings",
    "parse_agent",
    "settings_warnings",
]
