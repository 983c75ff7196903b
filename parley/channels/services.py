"""What every channel needs, in one object built by ``app.create_app``."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from parley.brain.core import Brain
from parley.channels.http_errors import ApiError
from parley.channels.rate_limit import RateLimiter
from parley.clock import Clock
from parley.config import AgentSpec, Settings
from parley.metrics import Metrics
from parley.sessions.coordinator import Coordinator
from parley.sessions.records import Session
from parley.sessions.store import Store


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
            await self.store.end_session(session.id, "TIME_LIMIT")
            session = await self.store.get_session(session_id) or session
        return session
