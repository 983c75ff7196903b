"""HTTP side of the Realtime endpoint: ``POST /v1/realtime/client_secrets``.

The body is OpenAI's: ``{"expires_after": {"anchor": "created_at", "seconds": 10..7200},
"session": {"type": "realtime", "model": "<agent>", ...}}``; the answer is
``{"value": "ek_…", "expires_at": <unix seconds>, "session": {...}}``. ``session.model``
names the Parley agent (default ``demo``); the session object is validated now (a bad
one is a 400 with the Realtime error's ``code`` and ``param``) and applied when the
secret opens a socket. Mounted by ``app.create_app`` with ``realtime_http.install(app,
services)``, which also sets ``services.realtime_access``, the ``RealtimeAccess`` that
the socket uses.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, FastAPI, Request

from parley.channels.chat import ServicesDep, TokenDep
from parley.channels.http_errors import ApiError
from parley.channels.http_models import error_responses
from parley.channels.services import Services
from parley.realtime.access import (
    DEFAULT_TTL_S,
    MAX_TTL_S,
    MIN_TTL_S,
    AccessDenied,
    ClientSecretStore,
    RealtimeAccess,
)
from parley.realtime.auth import ApiKeys
from parley.realtime.session_config import SessionConfig, parse_session
from parley.realtime.validate import ProtocolError, Reader

router = APIRouter(prefix="/v1/realtime", tags=["realtime"])
DEFAULT_AGENT = "demo"


def realtime_access(services: Services) -> RealtimeAccess:
    access = services.realtime_access
    if access is None:
        raise RuntimeError("realtime_http.install(app, services) has not run")
    return access


def _parse_body(raw: bytes) -> tuple[int, str, dict[str, Any]]:
    """(ttl_s, agent, session object), or ``ProtocolError``."""
    try:
        data = json.loads(raw or b"{}")
    except json.JSONDecodeError as exc:
        raise ProtocolError("invalid_json", f"The body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise ProtocolError("invalid_type", "The body must be a JSON object.")
    r = Reader(data, "")
    ttl = DEFAULT_TTL_S
    expires = r.object("expires_after")
    if expires is not None:
        expires.enum("anchor", ("created_at",))
        ttl = expires.integer("seconds", minimum=MIN_TTL_S, maximum=MAX_TTL_S) or ttl
    session = r.object("session")
    agent = DEFAULT_AGENT
    raw_session: dict[str, Any] = {}
    if session is not None:
        parse_session(session)
        agent = session.string("model") or DEFAULT_AGENT
        raw_session = dict(session.data)
    r.check_unknown()
    return ttl, agent, raw_session


@router.post("/client_secrets", responses=error_responses(400, 401, 404, 429))
async def create_client_secret(
    request: Request, services: ServicesDep, token: TokenDep
) -> dict[str, Any]:
    """Mint an ephemeral client secret for one Realtime session."""
    access = realtime_access(services)
    try:
        access.check_key(token)
    except AccessDenied as exc:
        raise ApiError(401, exc.code, exc.message) from None
    client = request.client.host if request.client else "unknown"
    wait = services.session_limiter.check(client)
    if wait is not None:
        raise ApiError(
            429,
            "rate_limited",
            "too many client secrets; try again later",
            headers=services.session_limiter.retry_after_header(wait),
        )
    try:
        ttl, agent, raw_session = _parse_body(await request.body())
    except ProtocolError as err:
        raise ApiError(400, err.code, err.message, param=err.param) from None
    spec = services.lifecycle.agent(agent)
    value, expires_at = await access.secrets.issue(spec.name, raw_session, ttl)
    config = SessionConfig(model=spec.name).apply(parse_session(Reader(raw_session, "session")))
    return {
        "value": value,
        "expires_at": int(expires_at.timestamp()),
        "session": config.to_wire("", int(expires_at.timestamp())),
    }


def install(app: FastAPI, services: Services) -> None:
    access = RealtimeAccess(
        ApiKeys(services.settings.api_keys),
        ClientSecretStore(services.coordinator, services.clock),
    )
    services.realtime_access = access
    app.include_router(router)
