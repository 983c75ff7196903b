"""``parley doctor``: everything ``parley serve`` would reject, as a ✓/✗ table.

Rows: settings, data dir, agents (loaded and wired exactly as ``serve`` does, tools
modules included), database, Redis, the LLM (one cheap call), and speech (one short
TTS→STT round trip with the demo agent's engines). A ✗ row names the setting to change.
Exit status 0 when every row is ✓, 2 otherwise (the status ``serve`` would exit with).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass

from parley.config import AgentSpec, ConfigError, Settings, load_settings, settings_warnings
from parley.startup_checks import (
    check_data_dir,
    check_database,
    check_llm,
    check_redis,
    describe_database,
    uses_llm,
)

SPOKEN = "book a table for two"


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    ok: bool
    detail: str
    warning: bool = False

    @property
    def mark(self) -> str:
        return "✗" if not self.ok else "!" if self.warning else "✓"


def doctor(out: Callable[[str], None] = print) -> int:
    """Print the table; the exit status."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        out(f"✗ settings   {exc}")
        return 2
    warnings = settings_warnings()
    logging.basicConfig(level=logging.ERROR, format="parley: %(message)s")
    rows = asyncio.run(_rows(settings, warnings))
    width = max(len(r.name) for r in rows)
    for row in rows:
        out(f"{row.mark} {row.name.ljust(width)}  {row.detail}")
    return 0 if all(r.ok for r in rows) else 2


async def _rows(settings: Settings, warnings: list[str]) -> list[Row]:
    detail = "; ".join(warnings) or "PARLEY_* and parley.toml"
    rows = [Row("settings", True, detail, warning=bool(warnings))]
    problem = check_data_dir(settings)
    rows.append(Row("data dir", problem is None, problem or str(settings.data_dir.resolve())))
    agents: dict[str, AgentSpec] = {}
    try:
        agents = await _load_as_serve_does(settings)
        names = ", ".join(f"{n} ({_brain(a, settings)})" for n, a in sorted(agents.items()))
        rows.append(Row("agents", True, names))
    except ConfigError as exc:
        rows.append(Row("agents", False, str(exc)))
    problem = await check_database(settings) if rows[1].ok else "needs the data dir"
    where = describe_database(settings.effective_database_url)
    rows.append(Row("database", problem is None, problem or where))
    problem = await check_redis(settings)
    redis = "PARLEY_REDIS_URL not set: in-process coordination (one worker)"
    redis = redis if not settings.redis_url else "reachable"
    rows.append(Row("redis", problem is None, problem or redis))
    rows.append(await _llm_row(settings, agents))
    if agents:
        rows.append(await _speech_row(agents.get("demo") or next(iter(agents.values()))))
    return rows


async def _load_as_serve_does(settings: Settings) -> dict[str, AgentSpec]:
    """The agents after the same wiring as ``create_app`` (tools, brains)."""
    from parley.app import build_services

    try:
        services = build_services(settings)
    except ValueError as exc:  # an engine refused its options
        raise ConfigError(str(exc)) from None
    agents: dict[str, AgentSpec] = dict(services.agents)
    await services.http_client.aclose()
    return agents


def _brain(agent: AgentSpec, settings: Settings) -> str:
    if agent.engines.get("llm") == "fake":
        return "fake LLM"
    return "LLM" if uses_llm(agent, settings) else "rules brain"


async def _llm_row(settings: Settings, agents: dict[str, AgentSpec]) -> Row:
    if not settings.llm_base_url:
        return Row("llm", True, "PARLEY_LLM_BASE_URL not set: agents use the rules brain")
    problem = await check_llm(settings, agents)
    target = f"{settings.llm_model} at {settings.llm_base_url}"
    return Row("llm", problem is None, problem or f"{target} answers")


async def _speech_row(agent: AgentSpec) -> Row:
    """Speak a short phrase with the agent's TTS and recognise it with its STT."""
    from parley.audio.resample import resample
    from parley.engines.base import EngineError
    from parley.engines.factory import build_stt, build_tts

    label = f"{agent.voice.tts} → {agent.voice.stt}"
    stt = None
    try:
        tts = await asyncio.to_thread(build_tts, agent)
        stt = await asyncio.to_thread(build_stt, agent)
        label = f"{type(tts).__name__} → {type(stt).__name__}"
        pcm = b"".join([chunk async for chunk in tts.synthesize(SPOKEN)])
        pcm = resample(pcm, tts.capabilities.sample_rate, stt.capabilities.sample_rate)
        heard = (await stt.transcribe(pcm)).strip()
    except (EngineError, ValueError, OSError, RuntimeError) as exc:
        return Row("speech", False, f"agent {agent.name}: {label} failed: {exc}")
    finally:
        close = getattr(stt, "close", None)
        if callable(close):
            result = close()
            if inspect.isawaitable(result):
                await result
    if not heard:
        return Row("speech", False, f"agent {agent.name}: {label} heard nothing in {SPOKEN!r}")
    return Row("speech", True, f"agent {agent.name}: said {SPOKEN!r}, heard {heard!r}")
