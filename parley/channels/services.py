"""What every channel needs, in one object built by ``app.create_app``."""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from parley.brain.core import Brain
from parley.channels.http_errors import ApiError
from parley.channels.rate_limit import RateLimiter
from parley.clock import Clock
from parley.config import AgentSpec, Settings
from parley.metrics import Metrics
from parley.reports import ReportSender, build_report
from parley.sessions.coordinator import Coordinator
from parley.sessions.records import Session
from parley.sessions.store import Store

log = logging.getLogger(__name__)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Services:
    settings: Settings
    store: Store
    coordinator: Coordinator
    brain: Brain
    agents: dict[str, AgentSpec]
    clock: Clock
    session_limiter: RateLimiter
    metrics: Metrics = field(default_factory=Metrics)
    reports: ReportSender | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def agent(self, name: str) -> AgentSpec:
        spec = self.agents.get(name)
        if spec is None:
            raise ApiError(
                404, "agent_not_found", f"no agent named {name!r}", agents=sorted(self.agents)
            )
        return spec

    def expires_at(self, agent: AgentSpec) -> Any:
        if agent.limits.max_duration_s is None:
            return None
        return self.clock.now() + timedelta(seconds=agent.limits.max_duration_s)

    def is_operator(self, token: str) -> bool:
        key = self.settings.operator_key
        return bool(key) and hmac.compare_digest(token.encode(), (key or "").encode())

    async def authorize(self, session_id: str, token: str | None) -> Session:
        """The session, if ``token`` is its bearer token (or the operator key).

        401 without a token, 404 for an unknown session, 403 for a wrong token.
        An active session past its expiry is ended here (``TIME_LIMIT``)."""
        if not token:
            raise ApiError(401, "unauthorized", "a bearer token is required")
        session = await self.store.get_session(session_id)
        if session is None:
            raise ApiError(404, "session_not_found", "no such session")
        if not (
            hmac.compare_digest(session.token_hash, token_hash(token)) or self.is_operator(token)
        ):
            raise ApiError(403, "forbidden", "this token does not grant access to that session")
        if (
            session.status == "active"
            and session.expires_at is not None
            and self.clock.now() >= session.expires_at
        ):
            await end_session(self, session.id, "TIME_LIMIT")
            session = await self.store.get_session(session_id) or session
        return session


async def end_session(services: Services, session_id: str, reason: str, detail: str = "") -> bool:
    """End a session once (the store's conditional update decides), tell every live
    channel, and send the agent's end-of-session report. True if this call ended it."""
    if not await services.store.end_session(session_id, reason):
        return False
    message = {"type": "session_ended", "reason": reason, "detail": detail}
    await services.coordinator.publish(f"session:{session_id}", message)
    services.metrics.terminations.labels(reason).inc()
    session = await services.store.get_session(session_id)
    agent = services.agents.get(session.agent) if session is not None else None
    if session is not None and agent is not None and agent.on_end.url:
        reports = services.reports
        if reports is None:
            log.warning("agent %s has on_end.url but PARLEY_WEBHOOK_SECRET is unset", agent.name)
        else:
            messages = await services.store.list_messages(session_id)
            report = build_report(session, messages, with_transcript=agent.on_end.transcript)
            reports.send(agent.on_end.url, report)
    return True
