"""Who may use ``/v1/realtime`` (``RealtimeAccess``), and the ephemeral client secrets
(``ClientSecretStore``): short-lived, good for one session.

Without ``PARLEY_API_KEYS`` the endpoint is open, like ``POST /v1/sessions`` (rate-limited
per client address); with keys, a socket needs a key or an unused, unexpired client
secret, and minting a secret needs a key.

A server holding a Parley API key asks ``POST /v1/realtime/client_secrets`` for a secret
and hands it to a browser, which never sees the long-lived key. The secret is stored in
the coordinator by hash only (so any worker can redeem it), with the agent and the
session configuration it was issued for. ``redeem`` is atomic across workers: the first
connection that presents a secret claims it (``set_if_absent``), every later one is
refused, and an expired secret is refused by the injected clock, whatever the
coordinator's own TTL does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from parley.clock import Clock
from parley.realtime.auth import ApiKeys, UpgradeCredential, key_hash, new_client_secret
from parley.sessions.coordinator import Coordinator

DEFAULT_TTL_S = 600  # as OpenAI: ten minutes
MIN_TTL_S = 10
MAX_TTL_S = 7200
_MARGIN_S = 60  # the coordinator keeps records a little past expiry; the clock decides


@dataclass(frozen=True, slots=True)
class ClientSecretGrant:
    agent: str
    session: dict[str, Any]  # the validated GA session object to apply at connect
    expires_at: datetime


class ClientSecretStore:
    def __init__(self, coordinator: Coordinator, clock: Clock, prefix: str = "rtsecret:") -> None:
        self.coordinator = coordinator
        self.clock = clock
        self.prefix = prefix

    async def issue(
        self, agent: str, session: dict[str, Any], ttl_s: int = DEFAULT_TTL_S
    ) -> tuple[str, datetime]:
        value = new_client_secret()
        expires_at = self.clock.now() + timedelta(seconds=ttl_s)
        record = {"agent": agent, "session": session, "expires_at": expires_at.isoformat()}
        await self.coordinator.set(
            self.prefix + key_hash(value), json.dumps(record), ttl_s=ttl_s + _MARGIN_S
        )
        return value, expires_at

    async def redeem(self, value: str) -> ClientSecretGrant | None:
        """The grant of an unexpired, unused secret, now used; else ``None``."""
        digest = key_hash(value)
        if not await self.coordinator.set_if_absent(
            f"{self.prefix}used:{digest}", "1", ttl_s=MAX_TTL_S + _MARGIN_S
        ):
            return None
        raw = await self.coordinator.get(self.prefix + digest)
        if raw is None:
            return None
        await self.coordinator.delete(self.prefix + digest)
        record = json.loads(raw)
        grant = ClientSecretGrant(
            record["agent"], record["session"], datetime.fromisoformat(record["expires_at"])
        )
        return grant if self.clock.now() < grant.expires_at else None


class AccessDenied(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class RealtimeGrant:
    via: str  # "api_key" | "client_secret" | "open"
    secret: ClientSecretGrant | None = None


class RealtimeAccess:
    def __init__(self, api_keys: ApiKeys, secrets: ClientSecretStore) -> None:
        self.api_keys = api_keys
        self.secrets = secrets

    @property
    def open(self) -> bool:
        return not self.api_keys

    def check_key(self, token: str | None) -> None:
        """For minting secrets: an API key, unless the server is open."""
        if self.open:
            return
        if not token:
            raise AccessDenied(
                "unauthorized", "a Parley API key is required (Authorization: Bearer)"
            )
        if not self.api_keys.check(token):
            raise AccessDenied("invalid_api_key", "the API key is not valid")

    async def authorize(self, credential: UpgradeCredential) -> RealtimeGrant:
        """For a socket: a client secret (redeemed now), a key, or an open server."""
        token = credential.token
        if token is not None and credential.is_client_secret:
            grant = await self.secrets.redeem(token)
            if grant is None:
                raise AccessDenied(
                    "invalid_client_secret", "the client secret is unknown, used or expired"
                )
            return RealtimeGrant("client_secret", grant)
        if token is not None and self.api_keys.check(token):
            return RealtimeGrant("api_key")
        if self.open:
            return RealtimeGrant("open")
        self.check_key(token)
        raise AssertionError("unreachable")  # pragma: no cover
