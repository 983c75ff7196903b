"""What every channel needs, in one typed object built by ``app.build_services``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from parley.brain.core import Brain
from parley.brain.tools import ToolRegistry
from parley.channels.lifecycle import SessionLifecycle, token_hash
from parley.channels.rate_limit import RateLimiter
from parley.channels.reply_audio import ReplyAudioStore
from parley.channels.voice_registry import VoiceRegistry, drain_worker
from parley.clock import Clock
from parley.config import AgentSpec, Settings
from parley.engines.factory import EngineHub
from parley.metrics import Metrics
from parley.reports import ReportSender
from parley.sessions.coordinator import Coordinator
from parley.sessions.store import Store

if TYPE_CHECKING:
    from parley.channels.telephony_http import PhoneGate
    from parley.channels.transfer_desk import TransferDesk
    from parley.realtime.access import RealtimeAccess

__all__ = ["Capacity", "Services", "token_hash"]


@dataclass
class Capacity:
    """Open voice connections of this worker against ``limit`` (0 = no limit)."""

    limit: int
    open: int = 0

    @property
    def full(self) -> bool:
        return bool(self.limit) and self.open >= self.limit


@dataclass
class Services:
    settings: Settings
    store: Store
    coordinator: Coordinator
    brain: Brain
    agents: dict[str, AgentSpec]
    clock: Clock
    session_limiter: RateLimiter
    lifecycle: SessionLifecycle
    http_client: httpx.AsyncClient
    tool_registry: ToolRegistry
    engine_hub: EngineHub
    reply_audio: ReplyAudioStore
    voice_capacity: Capacity
    transfers: TransferDesk
    voice_registry: VoiceRegistry = field(default_factory=VoiceRegistry)
    phone_gate: PhoneGate | None = None  # set when the telephony routes are mounted
    realtime_access: RealtimeAccess | None = None  # set when /v1/realtime is mounted
    metrics: Metrics = field(default_factory=Metrics)
    reports: ReportSender | None = None


async def drain(services: Services, drain_s: float) -> None:
    """Drain this worker (``parley/server.py`` calls it on SIGTERM): no new sessions,
    ``go_away`` to every voice connection, running turns finish, and what is still
    attached here at the deadline ends ``SERVER_SHUTDOWN``."""
    from parley.channels.browser_wire import render_wire

    def stop_new() -> None:
        services.lifecycle.draining = True

    async def end(session_id: str) -> None:
        await services.lifecycle.end(session_id, "SERVER_SHUTDOWN", "drain deadline passed")

    await drain_worker(
        services.voice_registry,
        stop_new=stop_new,
        go_away=lambda: services.voice_registry.go_away_all(render_wire),
        finish_turns=services.brain.drain,
        end=end,
        drain_s=drain_s,
    )
