"""Telephony over HTTP: the carriers' voice webhooks, call status callbacks and
outbound calls (PROTOCOL.md "Telephony").

- ``POST /v1/telephony/twilio/voice``: the number's voice webhook. Checks
  ``X-Twilio-Signature`` when ``PARLEY_TWILIO_AUTH_TOKEN`` is set (bad or missing → 403,
  nothing created) and answers TwiML ``<Connect><Stream url="wss://{public host}/v1/
  telephony/twilio/stream">`` whose ``<Parameter>``s name the agent, the caller, the
  called number, an outbound call's session and a one-time stream token. With
  ``?transfer_id=`` (the answer URL of a warm transfer's call to a person,
  ``phone_dialer``) the stream's parameters name the transfer instead of an agent:
  ``phone_stream`` routes it to the transfer, not to a new AI session; a transfer
  that is no longer ringing gets a polite ``<Say>`` and ``<Hangup/>``.
- ``POST /v1/telephony/twilio/status``: call status callbacks (signed the same way),
  handed to the injected ``StatusSink``.
- ``POST /v1/calls`` (operator key): places an outbound call through Twilio's REST API;
  its answer URL is the voice webhook.
- ``POST /v1/telephony/telnyx/voice``: the same answer in TeXML for Telnyx, signed with
  Ed25519 (``telnyx-signature-ed25519`` + ``telnyx-timestamp``).

The public host comes only from ``PARLEY_PUBLIC_URL``, never from request headers. The
stream sockets (``phone_stream``, mounted by ``install``) call ``PhoneGate.authorize``
with the stream's ``start`` message before they create or attach a session.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response
from pydantic import Field

from parley.channels.http_errors import ApiError
from parley.channels.http_models import CreateSession, error_responses
from parley.channels.services import Services
from parley.channels.strict_route import StrictRoute
from parley.config import Settings
from parley.handoff.state import Status
from parley.telephony import twiml
from parley.telephony.signatures import (
    StreamClaims,
    StreamTokenError,
    StreamTokens,
    twilio_signature_ok,
)
from parley.telephony.telnyx_wire import TelnyxSignatureError, verify_telnyx_signature
from parley.telephony.twilio_rest import TwilioError, TwilioRestClient
from parley.telephony.wire import StreamStarted

log = logging.getLogger(__name__)

TWILIO_VOICE_PATH = "/v1/telephony/twilio/voice"
TWILIO_STATUS_PATH = "/v1/telephony/twilio/status"
TWILIO_STREAM_PATH = "/v1/telephony/twilio/stream"
TELNYX_VOICE_PATH = "/v1/telephony/telnyx/voice"
TELNYX_STREAM_PATH = "/v1/telephony/telnyx/stream"
XML = "application/xml"
TRANSFER_GONE = "Sorry, the caller is no longer waiting. Goodbye."
TOKEN_PARAM = "token"
# the stream parameters the token covers (everything but the token itself)
CLAIM_PARAMS = ("agent", "caller", "called", "session_id", "transfer_id")


@dataclass(frozen=True, slots=True)
class CallStatus:
    """One status callback: ``status`` is Twilio's (queued, initiated, ringing,
    in-progress, completed, busy, failed, no-answer, canceled)."""

    call_sid: str
    status: str
    session_id: str | None
    fields: Mapping[str, str]


StatusSink = Callable[[CallStatus], Awaitable[None]]
"""Where call status callbacks go. The default (``phone_status.status_sink``) keeps the
last status in the coordinator under ``phone:call-status:{call_sid}`` and ends the
call's session: ``completed`` → ``USER_ENDED``, ``busy``/``failed``/``no-answer``/
``canceled`` → ``ERROR``."""


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

    async def authorize(
        self,
        started: StreamStarted,
        *,
        query: Mapping[str, str] | None = None,
        bind_call: bool = True,
    ) -> StreamClaims:
        """The claims of a stream's token if valid (for its call with ``bind_call``) and
        not used before. ``query``: the stream URL's query parameters, where carriers
        that do not echo custom parameters (Telnyx) carry them."""
        params = {**(query or {}), **started.parameters}
        token = params.get(TOKEN_PARAM, "")
        now = self.services.clock.now().timestamp()
        call_id = started.call_id if bind_call else ""
        try:
            claims = self.tokens.verify(token, call_id, _claims(params), now)
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
    """``?agent=``, else the called number's mapping, else the default. Its phone
    recogniser starts building now: the media stream follows in a moment."""
    name = requested or services.settings.phone_agents.get(called) or default
    if name not in services.agents:
        raise ApiError(404, "agent_not_found", f"no agent named {name!r}")
    services.engine_hub.warm_phone_stt(name)
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


def operator_token(authorization: Annotated[str | None, Header()] = None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


XML_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "TwiML / TeXML that connects the call's media stream",
        "content": {"application/xml": {"schema": {"type": "string"}}},
    }
}


class PlaceCall(CreateSession):
    """``POST /v1/calls``: the session's fields (strict, storable) plus the number."""

    to: str = Field(pattern=r"^\+[1-9][0-9]{1,14}$", description="E.164 number")


def twilio_client(services: Services) -> TwilioRestClient | None:
    """The REST client when account SID and auth token are configured."""
    settings = services.settings
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        return None
    return TwilioRestClient(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        base_url=settings.twilio_api_base,
        client=services.http_client,
    )


async def place_call(
    services: Services, rest: TwilioRestClient | None, body: PlaceCall
) -> dict[str, Any]:
    """Create the session, then ask Twilio to dial; the answer webhook names the session."""
    settings = services.settings
    if rest is None or not settings.twilio_from or not settings.public_url:
        raise ApiError(
            503,
            "not_configured",
            "outbound calls need PARLEY_TWILIO_ACCOUNT_SID, PARLEY_TWILIO_AUTH_TOKEN, "
            "PARLEY_TWILIO_FROM and PARLEY_PUBLIC_URL",
        )
    template_vars = {**{k: str(v) for k, v in body.template_vars.items()}, "caller": body.to}
    new = await services.lifecycle.create(
        body.agent,
        client="operator",
        template_vars=template_vars,
        metadata={**body.metadata, "phone": {"direction": "outbound", "to": body.to}},
        channel="phone",
    )
    session, token, resume = new.session, new.token, new.resume_token
    agent = services.agents[session.agent]
    services.engine_hub.warm_phone_stt(agent.name)  # ready when the callee answers
    query = urlencode({"agent": agent.name, "session_id": session.id})
    try:
        call = await rest.create_call(
            body.to,
            settings.twilio_from,
            f"{settings.public_url}{TWILIO_VOICE_PATH}?{query}",
            status_callback=f"{settings.public_url}{TWILIO_STATUS_PATH}?"
            + urlencode({"session_id": session.id}),
        )
    except TwilioError as exc:
        await services.lifecycle.end(session.id, "ERROR", "the carrier refused the call")
        log.warning("outbound call to %s failed: %s", body.to, exc)
        raise ApiError(
            502, "carrier_error", str(exc), retryable=exc.retryable, session_id=session.id
        ) from None
    await services.store.update_session(
        session.id,
        metadata={"phone": {"direction": "outbound", "to": body.to, "call_sid": call.sid}},
    )
    log.info("outbound call %s to %s for session %s", call.sid, body.to, session.id)
    return {
        "call_sid": call.sid,
        "status": call.status,
        "session_id": session.id,
        "session_token": token,
        "resume_token": resume,
        "agent": agent.name,
    }


def install(app: Any, services: Services, *, on_status: StatusSink | None = None) -> None:
    """Mount the telephony HTTP routes (``_mount_optional_channels`` in app.py)."""
    settings = services.settings
    sinks: list[StatusSink] | None = getattr(app.state, "phone_status_sinks", None)
    if sinks is not None:  # mounted already (by create_app): only the sink changes
        if on_status is not None:
            sinks[0] = on_status
        return
    gate = PhoneGate(StreamTokens(stream_secret(settings)), services)
    services.phone_gate = gate
    unverified_told: list[bool] = []

    from parley.channels import phone_status, phone_stream

    sinks = [on_status or phone_status.status_sink(services)]
    app.state.phone_status_sinks = sinks
    rest = twilio_client(services)
    if rest is not None and settings.twilio_from and settings.public_url:
        from parley.channels.phone_dialer import PhoneDialer

        services.transfers.dialer = PhoneDialer(services, rest)
    router = APIRouter(
        tags=["telephony"],
        route_class=StrictRoute,
        responses=error_responses(400, 401, 403, 404, 413, 422, 429, 502, 503),
    )

    @router.post("/v1/calls", status_code=201)
    async def calls(
        body: PlaceCall, token: Annotated[str | None, Depends(operator_token)]
    ) -> dict[str, Any]:
        if not token:
            raise ApiError(401, "unauthorized", "the operator key is required")
        if not services.lifecycle.is_operator(token):
            raise ApiError(403, "forbidden", "only the operator key may place calls")
        return await place_call(services, rest, body)

    async def twilio_form(request: Request) -> dict[str, str]:
        """The webhook's form fields, after the signature check."""
        items = await form_items(request)
        token = settings.twilio_auth_token
        if not token and not unverified_told:  # said once, when telephony is first used
            unverified_told.append(True)
            log.warning("PARLEY_TWILIO_AUTH_TOKEN is not set: Twilio webhooks are not verified")
        if token:
            url = signed_url(settings, request)
            if not twilio_signature_ok(
                token, url, items, request.headers.get("X-Twilio-Signature")
            ):
                log.warning("twilio webhook %s: bad or missing signature", request.url.path)
                raise ApiError(403, "bad_signature", "X-Twilio-Signature does not match")
        return dict(items)

    @router.post(TWILIO_VOICE_PATH, response_class=Response, responses=XML_ANSWER)
    async def twilio_voice(request: Request) -> Response:
        form = await twilio_form(request)
        base = public_url(settings)
        call_sid = form.get("CallSid", "")
        if not call_sid:
            raise ApiError(422, "invalid_request", "CallSid: field required")
        outbound = form.get("Direction", "").startswith("outbound")
        caller = form.get("To" if outbound else "From", "")
        called = form.get("From" if outbound else "To", "")
        transfer_id = request.query_params.get("transfer_id")
        if transfer_id:
            return await transfer_answer(call_sid, transfer_id, caller, called)
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

    async def transfer_answer(
        call_sid: str, transfer_id: str, caller: str, called: str
    ) -> Response:
        """The person a transfer dialled picked up: stream to the transfer, if it rings."""
        transfer = await services.transfers.board.get(transfer_id)
        if transfer is None or transfer.status is not Status.DIALING:  # final too
            log.info("twilio call %s: transfer %s is not ringing any more", call_sid, transfer_id)
            return xml_response(twiml.say_and_hang_up(TRANSFER_GONE))
        params = {"transfer_id": transfer_id, "caller": caller, "called": called}
        params[TOKEN_PARAM] = gate.issue(call_sid, params)
        url = twiml.stream_url(public_url(settings), TWILIO_STREAM_PATH)
        return xml_response(twiml.connect_stream(url, params))

    @router.post(TWILIO_STATUS_PATH, status_code=204, response_class=Response)
    async def twilio_status(request: Request) -> Response:
        form = await twilio_form(request)
        call_sid, status = form.get("CallSid", ""), form.get("CallStatus", "")
        if not call_sid or not status:
            raise ApiError(422, "invalid_request", "CallSid and CallStatus are required")
        await sinks[0](CallStatus(call_sid, status, request.query_params.get("session_id"), form))
        return Response(status_code=204)

    @router.post(TELNYX_VOICE_PATH, response_class=Response, responses=XML_ANSWER)
    async def telnyx_voice(request: Request) -> Response:
        body = await request.body()
        key = settings.telnyx_public_key
        if key:
            try:
                verify_telnyx_signature(
                    key,
                    body,
                    request.headers.get("telnyx-signature-ed25519"),
                    request.headers.get("telnyx-timestamp"),
                    services.clock.now().timestamp(),
                )
            except TelnyxSignatureError as exc:
                log.warning("telnyx webhook: %s", exc)
                raise ApiError(403, "bad_signature", str(exc)) from None
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        base = public_url(settings)
        outbound = form.get("Direction", "").startswith("outbound")
        caller = form.get("To" if outbound else "From", "")
        called = form.get("From" if outbound else "To", "")
        default = settings.telnyx_default_agent or settings.twilio_default_agent
        agent = pick_agent(services, request.query_params.get("agent"), called, default)
        params = {"agent": agent, "caller": caller, "called": called}
        if request.query_params.get("session_id"):
            params["session_id"] = request.query_params["session_id"]
        # The stream's call id need not be the webhook's CallSid: bind to the claims only.
        params[TOKEN_PARAM] = gate.issue("", params)
        url = twiml.stream_url(base, TELNYX_STREAM_PATH) + "?" + urlencode(params)
        attributes = {"bidirectionalMode": "rtp", "bidirectionalCodec": "PCMU"}
        return xml_response(twiml.connect_stream(url, params, attributes))

    app.include_router(router)
    phone_stream.install(app, services)
