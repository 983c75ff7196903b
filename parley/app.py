"""``create_app(settings)``: the only place that wires concrete classes together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from parley import __version__
from parley.brain.core import Brain
from parley.brain.demo_tools import register_demo_tools
from parley.brain.runtime import AgentRuntime
from parley.brain.tools import ToolRegistry
from parley.channels import api_docs, chat
from parley.channels.body_limit import BodyLimitMiddleware
from parley.channels.http_errors import install_error_handlers
from parley.channels.lifecycle import SessionLifecycle
from parley.channels.rate_limit import RateLimiter
from parley.channels.raw_ws import ParleyApp
from parley.channels.reply_audio import ReplyAudioStore
from parley.channels.services import Capacity, Services
from parley.channels.transfer_desk import TransferDesk
from parley.clock import Clock, SystemClock
from parley.config import AgentSpec, ConfigError, Settings, load_agents, load_settings
from parley.engines.base import LLM
from parley.engines.factory import EngineHub
from parley.handoff.board import TransferBoard
from parley.metrics import Metrics
from parley.reports import ReportSender
from parley.sessions.coordinator import Coordinator
from parley.sessions.local import LocalCoordinator
from parley.sessions.sql import SqlStore
from parley.sessions.sweeper import Sweeper

log = logging.getLogger(__name__)
WEB_DIR = Path(__file__).parent / "web"


def make_llm(
    agent: AgentSpec, settings: Settings, client: httpx.AsyncClient, clock: Clock | None = None
) -> tuple[LLM, str]:
    """Pick the agent's model: fake (benchmarks), the rules brain, or an LLM."""
    engines: dict[str, str] = getattr(agent, "engines", {}) or {}
    if engines.get("llm") == "fake":
        from parley.engines.fake import FakeLLM

        return FakeLLM(), "fake"
    if agent.brain == "realtime":
        return _realtime_llm(agent, settings), "realtime"
    wants_llm = agent.brain == "llm" or (agent.brain == "auto" and settings.llm_base_url)
    if not wants_llm:
        from parley.brain.rules import RulesBrain

        return RulesBrain(agent, clock), "rules"
    if not settings.llm_base_url:
        raise ConfigError(
            f"agent {agent.name!r} uses brain: llm but PARLEY_LLM_BASE_URL is not set"
        )
    from parley.engines.customer_safe_llm import CustomerSafeLLM
    from parley.engines.openai_llm import OpenAICompatibleLLM

    llm = OpenAICompatibleLLM(
        settings.llm_base_url,
        settings.llm_model,
        settings.llm_api_key,
        settings.llm_timeout_s,
        client=client,
    )
    return CustomerSafeLLM(llm), "llm"


def _realtime_llm(agent: AgentSpec, settings: Settings) -> LLM:
    """A speech-to-speech agent: its upstream is built once now, so a missing key, an
    unknown ``engines.s2s`` or a bad base URL stops the server at start. Voice sessions
    open their own upstream; typed chat without one is answered over a text turn."""
    from parley.s2s.base import S2SConfigError
    from parley.s2s.factory import build_upstream
    from parley.s2s.text_llm import UpstreamTextLLM

    name = (getattr(agent, "engines", {}) or {}).get("s2s")
    if not name:
        raise ConfigError(
            f"agent {agent.name!r} uses brain: realtime but names no engines.s2s "
            "(gemini_live or openai_realtime)"
        )
    try:
        build_upstream(name, settings)
    except S2SConfigError as exc:
        raise ConfigError(f"agent {agent.name!r}: {exc}") from None
    return UpstreamTextLLM(agent, lambda: build_upstream(name, settings))


def make_coordinator(settings: Settings, clock: Clock) -> Coordinator:
    if settings.redis_url:
        from parley.sessions.redis_coordinator import RedisCoordinator

        return RedisCoordinator(settings.redis_url, prefix=settings.redis_prefix)
    return LocalCoordinator(clock)


def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    """Everything the channels need, not yet started (see ``lifespan``)."""
    clock = clock or SystemClock()
    agents = load_agents(settings.agents_dir)
    registry = ToolRegistry()
    register_demo_tools(registry, clock)
    for module_name in settings.tools_modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"PARLEY_TOOLS_MODULES: cannot import {module_name}: {exc}") from None
        register = getattr(module, "register", None)
        if not callable(register):
            raise ConfigError(f"PARLEY_TOOLS_MODULES: {module_name} has no register(registry)")
        register(registry)
    client = httpx.AsyncClient(timeout=httpx.Timeout(settings.llm_timeout_s, connect=10.0))
    runtimes: dict[str, AgentRuntime] = {}
    for agent in agents.values():
        llm, kind = make_llm(agent, settings, client, clock)
        runtimes[agent.name] = AgentRuntime(agent, registry.bind(agent, client), llm, kind)
    store = SqlStore(settings.effective_database_url, clock)
    coordinator = make_coordinator(settings, clock)
    # Leases are renewed on the clock their TTLs run on: Redis keeps real time,
    # the in-process coordinator runs on ``clock`` (a test's virtual clock too).
    lease_sleep = asyncio.sleep if settings.redis_url else clock.sleep
    brain = Brain(
        store,
        coordinator,
        runtimes,
        clock=clock,
        sleep=lease_sleep,
        turn_lock_ttl_s=settings.turn_lock_ttl_s,
        max_tool_rounds=settings.llm_max_tool_rounds,
    )
    limiter = RateLimiter(settings.session_rate_limit, 60.0, clock)
    metrics = Metrics()
    reports = (
        ReportSender(client, settings.webhook_secret, now=lambda: clock.now().timestamp())
        if settings.webhook_secret
        else None
    )
    lifecycle = SessionLifecycle(
        store,
        coordinator,
        agents,
        clock,
        limiter,
        operator_key=settings.operator_key,
        attach_ttl_s=settings.attach_lease_ttl_s,
        sleep=lease_sleep,
        metrics=metrics,
        reports=reports,
    )
    board = TransferBoard(coordinator, clock)
    transfers = TransferDesk(board, store, lifecycle, brain, clock)
    transfers.default_target = settings.transfer_to
    engine_hub = EngineHub(agents, smart_turn_model=settings.smart_turn_model)
    transfers.engine_hub = engine_hub
    brain.on_transfer = transfers.open
    return Services(
        settings=settings,
        transfers=transfers,
        store=store,
        coordinator=coordinator,
        brain=brain,
        agents=agents,
        clock=clock,
        session_limiter=limiter,
        lifecycle=lifecycle,
        http_client=client,
        tool_registry=registry,
        engine_hub=engine_hub,
        reply_audio=ReplyAudioStore(coordinator, clock),
        voice_capacity=Capacity(settings.max_voice_connections),
        metrics=metrics,
        reports=reports,
    )


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    services = build_services(settings, clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.store.start()
        await services.coordinator.start()
        # Start-up objects (modules, settings, models) leave the collector's view, so the
        # full collections that would pause audio streams have less to walk.
        gc.collect()
        gc.freeze()
        sweeper = asyncio.create_task(_sweeper(services).run())
        transfer_sweeper = asyncio.create_task(services.transfers.run())
        log.info("parley %s ready: agents %s", __version__, ", ".join(sorted(services.agents)))
        try:
            yield
        finally:
            for task in (sweeper, transfer_sweeper):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await services.engine_hub.close()
            if services.reports is not None:
                await services.reports.close()
            await services.coordinator.close()
            await services.store.close()
            await services.http_client.aclose()

    app = ParleyApp(
        title="Parley",
        version=__version__,
        description="One conversational brain over text chat, browser voice and phone.",
        lifespan=lifespan,
        docs_url=None,  # served offline by channels.api_docs
        redoc_url=None,
    )
    api_docs.install(app)
    app.state.services = services
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.include_router(chat.router)
    _mount_optional_channels(app, services)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "agents": sorted(services.agents)}

    @app.get(
        "/readyz",
        tags=["ops"],
        response_model=None,
        responses={503: {"description": "this worker is draining"}},
    )
    async def readyz() -> dict[str, Any] | JSONResponse:
        """503 while this worker drains (after SIGTERM): take it out of rotation."""
        if services.lifecycle.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        return {"status": "ready"}

    @app.get("/v1/agents", tags=["sessions"])
    async def list_agents() -> list[dict[str, Any]]:
        return [
            {
                "name": a.name,
                "display_name": a.display_name or a.name,
                "description": a.description,
                "greeting_mode": a.greeting_mode,
                "brain": services.brain.runtimes[a.name].brain_kind,
                "tool_labels": {
                    t.name: services.brain.runtimes[a.name].label(t.name) for t in a.tools
                },
            }
            for a in services.agents.values()
        ]

    if WEB_DIR.is_dir():
        app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")

    @app.get("/", include_in_schema=False, response_model=None)
    async def index() -> FileResponse | JSONResponse:
        page = WEB_DIR / "index.html"
        if page.is_file():
            return FileResponse(page)
        return JSONResponse({"name": "parley", "docs": "/docs"})

    return app


def _sweeper(services: Services) -> Sweeper:
    """The per-worker deadline sweeper, ending sessions through the termination path."""

    return Sweeper(
        services.store,
        services.coordinator,
        services.agents,
        services.clock,
        services.lifecycle.end,
    )


def _mount_optional_channels(app: ParleyApp, services: Services) -> None:
    """Channels added by later modules (voice, telephony, operator) register here."""
    from parley.channels import (
        metrics_http,
        operator_http,
        realtime_http,
        realtime_ws,
        session_events,
        telephony_http,
        transcript_http,
        voice_turn,
        voice_ws,
    )

    voice_ws.install(app, services)
    telephony_http.install(app, services)
    app.include_router(voice_turn.router)
    app.include_router(transcript_http.router)
    app.include_router(session_events.router)
    operator_http.install(app, services)
    metrics_http.install(app, services)
    realtime_http.install(app, services)
    realtime_ws.install(app, services)


def app_factory() -> FastAPI:
    """For ``uvicorn --factory parley.app:app_factory``."""
    return create_app()
