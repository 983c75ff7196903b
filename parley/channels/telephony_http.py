"""Telephony over HTTP: the carriers' voice webhooks, call status callbacks and
outbound calls (PROTOCOL.md "Telephony").

- ``POST /v1/telephony/twilio/voice``: the number's voice webhook. Checks
  ``X-Twilio-Signature`` when ``PARLEY_TWILIO_AUTH_TOKEN`` is set (bad or missing → 403,
  nothing created) and answers TwiML ``<Connect><Stream url="wss://{public host}/v1/
  telephony/twilio/stream">`` whose ``<Parameter>``s name the agent, the caller, the
  called number, an outbound call's session and a one-time stream token.
- ``POST /v1/telephony/twilio/status``: call status callbacks (signed the same way),
  handed to the injected ``StatusSink``.
- ``POST /v1/calls`` (operator key): places an outbound call through Twilio's REST API;
  its answer URL is the voice webhook.
- ``POST /v1/telephony/telnyx/voice``: the same answer in TeXML for Telnyx, signed with
  Ed25519 (``telnyx-signature-ed25519`` + ``telnyx-timestamp``).

The public host comes only from ``PARLEY_PUBLIC_URL``, never from request headers. The
stream socket loop (not here yet) calls ``PhoneGate.authorize`` with the stream's
``start`` message before it creates or attaches a session.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from parley.channels.http_errors import ApiError
from parley.channels.services import Services
from parley.config import Settings
from parley.telephony import twiml
from parley.telephony.signatures import (
    StreamClaims,
    StreamTokenError,
    StreamTokens,
    twilio_signature_ok,
)
from parley.telephony.wire import StreamStarted

log = logging.getLogger(__name__)

TWILIO_VOICE_PATH = "/v1/telephony/twilio/voice"
TWILIO_STATUS_PATH = "/v1/telephony/twilio/status"
TWILIO_STREAM_PATH = "/v1/telephony/twilio/stream"
TELNYX_VOICE_PATH = "/v1/telephony/telnyx/voice"
TELNYX_STREAM_PATH = "/v1/telephony/telnyx/stream"
XML = "application/xml"
TOKEN_PARAM = "token"
# the stream parameters the token covers (everything but the token itself)
CLAIM_PARAMS = ("agent", "caller", "called", "session_id")

StatusSink = Callable[[str, str, Mapping[str, str]], Awaitable[None]]
"""``(call_sid, status, all callback fields)``: where call status callbacks go. The lead
wires it to the session update; the default stores the last status in the coordinator."""


class StreamRefused(Exception):
    """A stream's ``start`` does not carry a valid, unused token for its call."""


@dataclass
class PhoneGate:
    """Stream tokens: issued by the webhooks, checked once by the stream loop."""

    tokens: StreamTokens
    services: Services

    def issue(self, call_id: str, params: Mapping[str, str]) -> str:
        now = self.services.clock.now().timestamp()
        return self.tokens.issue(call_id, _claims(params), now)

    async def authorize(self, started: StreamStarted) -> StreamClaims:
        """The claims of a stream's token if valid for its call and not used before."""
        token = started.parameters.get(TOKEN_PARAM, "")
        now = self.services.clock.now().timestamp()
        try:
            claims = self.tokens.verify(token, started.call_id, _claims(started.parameters), now)
        except StreamTokenError as exc:
            raise StreamRefused(str(exc)) from None
        ttl = max(claims.expires_at - now, 1.0) + 60.0
        key = f"phone:stream-token:{claims.token_id}"
        if not await self.services.coordinator.set_if_absent(key, started.call_id, ttl):
            raise StreamRefused("stream token already used")
        return claims


def _claims(params: Mapping[str, str]) -> dict[str, str]:
    return {k: params[k] for k in CLAIM_PARAMS if k in params}


def stream_secret(settings: Settings) -> str:
    """The key of stream tokens: the configured secret, else the carrier's auth token,
    else a random one (then tokens are only good on this worker)."""
    secret = settings.telephony_stream_secret or settings.twilio_auth_token
    if secret and len(secret) >= 16:
        return secret
    if secret:
        log.warning("stream token secret shorter than 16 characters; using a random one")
    else:
        log.info("no PARLEY_TELEPHONY_STREAM_SECRET: stream tokens are valid on this worker only")
    return secrets.token_urlsafe(32)


def pick_agent(services: Services, requested: str | None, called: str, default: str) -> str:
    """``?agent=``, else the called number's mapping, else the default."""
    name = requested or services.settings.phone_agents.get(called) or default
    if name not in services.agents:
        raise ApiError(404, "agent_not_found", f"no agent named {name!r}")
    return name


def public_url(settings: Settings) -> str:
    if not settings.public_url:
        raise ApiError(503, "not_configured", "PARLEY_PUBLIC_URL is not set")
    return settings.public_url


def signed_url(settings: Settings, request: Request) -> str:
    """The URL the carrier called, rebuilt from the public URL (never the Host header)."""
    query = request.url.query
    return public_url(settings) + request.url.path + (f"?{query}" if query else "")


async def form_items(request: Request) -> list[tuple[str, str]]:
    form = await request.form()
    return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]


def xml_response(body: str) -> Response:
    return Response(body, media_type=XML)


async def _coordinator_sink(services: Services, call_sid: str, status: str) -> None:
    await services.coordinator.set(f"phone:call-status:{call_sid}", status, 24 * 3600)


def install(app: Any, services: Services, *, on_status: StatusSink | None = None) -> None:
    """Mount the telephony HTTP routes (``_mount_optional_channels`` in app.py)."""
    settings = services.settings
    gate = PhoneGate(StreamTokens(stream_secret(settings)), services)
    services.extras["phone_gate"] = gate
    if not settings.twilio_auth_token:
        log.warning("PARLEY_TWILIO_AUTH_TOKEN is not set: Twilio webhooks are not verified")

    async def default_sink(call_sid: str, status: str, _: Mapping[str, str]) -> None:
        await _coordinator_sink(services, call_sid, status)

    sink = on_status or default_sink
    router = APIRouter(tags=["telephony"])

    async def twilio_form(request: Request) -> dict[str, str]:
        """The webhook's form fields, after the signature check."""
        items = await form_items(request)
        token = settings.twilio_auth_token
        if token:
            url = signed_url(settings, request)
            if not twilio_signature_ok(
                token, url, items, request.headers.get("X-Twilio-Signature")
            ):
                log.warning("twilio webhook %s: bad or missing signature", request.url.path)
                raise ApiError(403, "bad_signature", "X-Twilio-Signature does not match")
        return dict(items)

    @router.post(TWILIO_VOICE_PATH)
    async def twilio_voice(request: Request) -> Response:
        form = await twilio_form(request)
        base = public_url(settings)
        call_sid = form.get("CallSid", "")
        if not call_sid:
            raise ApiError(422, "invalid_request", "CallSid: field required")
        outbound = form.get("Direction", "").startswith("outbound")
        caller = form.get("To" if outbound else "From", "")
        called = form.get("From" if outbound else "To", "")
        agent = pick_agent(
            services, request.query_params.get("agent"), called, settings.twilio_default_agent
        )
        params = {"agent": agent, "caller": caller, "called": called}
        if request.query_params.get("session_id"):
            params["session_id"] = request.query_params["session_id"]
        params[TOKEN_PARAM] = gate.issue(call_sid, params)
        log.info("twilio call %s for agent %s", call_sid, agent)
        url = twiml.stream_url(base, TWILIO_STREAM_PATH)
        return xml_response(twiml.connect_stream(url, params))

    @router.post(TWILIO_STATUS_PATH)
    async def twilio_status(request: Request) -> Response:
        form = await twilio_form(request)
        call_sid, status = form.get("CallSid", ""), form.get("CallStatus", "")
        if not call_sid or not status:
            raise ApiError(422, "invalid_request", "CallSid and CallStatus are required")
        await sink(call_sid, status, form)
        return Response(status_code=204)

    app.include_router(router)
