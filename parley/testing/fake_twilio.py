"""A real HTTP server on 127.0.0.1 that speaks the parts of Twilio's REST API Parley uses.

``POST /2010-04-01/Accounts/{sid}/Calls.json`` creates a call (201, a call resource
with status ``queued``); ``POST .../Calls/{call}.json`` updates it (``Url``/``Twiml``
recorded, ``Status=completed`` ends it); ``GET .../Calls/{call}.json`` reads it. Every
request needs HTTP Basic auth with the account SID and auth token (else 401 with
Twilio's error JSON, code 20003); a wrong account in the path is 404 (20404); a missing
``To``/``From``/``Url``-or-``Twiml`` is 400 (21201...).

The test drives the far side of the call with ``answer`` (POSTs the call's voice
webhook, signed like Twilio, and returns the TwiML), ``incoming`` (an inbound call:
the number's voice webhook, signed) and ``send_status`` (POSTs a signed status
callback). ``tunnel`` maps the public URL Parley believes it has to the
local address it really listens on, as ngrok would::

    async with FakeTwilio("AC" + "1" * 32, "secret-token") as twilio:
        twilio.tunnel = ("https://parley.example.com", app_base_url)
        client = TwilioRestClient(twilio.account_sid, twilio.auth_token, base_url=twilio.base_url)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from parley.telephony.signatures import twilio_signature
from parley.testing.servers import serve_app


@dataclass
class FakeCall:
    sid: str
    to: str
    from_: str
    url: str | None
    twiml: str | None
    status: str = "queued"
    status_callback: str | None = None
    status_events: list[str] = field(default_factory=list)
    updates: list[dict[str, list[str]]] = field(default_factory=list)

    def resource(self, account_sid: str) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "account_sid": account_sid,
            "to": self.to,
            "from": self.from_,
            "status": self.status,
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{account_sid}/Calls/{self.sid}.json",
        }


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, "more_info": "", "status": status}, status_code=status
    )


class FakeTwilio:
    """See the module docstring. ``calls`` by SID; ``requests`` as (method, path, form)."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.calls: dict[str, FakeCall] = {}
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.tunnel: tuple[str, str] | None = None
        self.fail_next: tuple[int, int, str] | None = None  # (status, code, message)
        self.base_url = ""
        self._stack: contextlib.AsyncExitStack | None = None
        self._changed = asyncio.Condition()  # notified on every call update
        self._app = self._build()

    async def __aenter__(self) -> FakeTwilio:
        self._stack = contextlib.AsyncExitStack()
        self.base_url = await self._stack.enter_async_context(serve_app(self._app))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._stack is not None:
            await self._stack.aclose()

    # --- the REST API ----------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, self.account_sid) and hmac.compare_digest(
            password, self.auth_token
        )

    async def _form(self, request: Request) -> dict[str, list[str]]:
        form = await request.form()
        out: dict[str, list[str]] = {}
        for key, value in form.multi_items():
            out.setdefault(key, []).append(str(value))
        self.requests.append((request.method, request.url.path, out))
        return out

    def _build(self) -> FastAPI:
        app = FastAPI()
        prefix = "/2010-04-01/Accounts/{account}"

        def refuse(request: Request, account: str) -> JSONResponse | None:
            if not self._authorized(request):
                return _error(401, 20003, "Authenticate")
            if account != self.account_sid:
                return _error(404, 20404, "The requested resource was not found")
            if self.fail_next is not None:
                status, code, message = self.fail_next
                self.fail_next = None
                return _error(status, code, message)
            return None

        @app.post(prefix + "/Calls.json")
        async def create(request: Request, account: str) -> JSONResponse:
            form = await self._form(request)
            if (refused := refuse(request, account)) is not None:
                return refused
            first = {k: v[0] for k, v in form.items()}
            if not first.get("To"):
                return _error(400, 21201, "No 'To' number is specified")
            if not first.get("From"):
                return _error(400, 21213, "No 'From' number is specified")
            if not (first.get("Url") or first.get("Twiml")):
                return _error(400, 21205, "Url or Twiml is required")
            sid = "CA" + secrets.token_hex(16)
            call = FakeCall(
                sid,
                first["To"],
                first["From"],
                first.get("Url"),
                first.get("Twiml"),
                status_callback=first.get("StatusCallback"),
                status_events=form.get("StatusCallbackEvent", []),
            )
            self.calls[sid] = call
            return JSONResponse(call.resource(self.account_sid), status_code=201)

        @app.post(prefix + "/Calls/{sid}.json")
        async def update(request: Request, account: str, sid: str) -> JSONResponse:
            form = await self._form(request)
            if (refused := refuse(request, account)) is not None:
                return refused
            call = self.calls.get(sid)
            if call is None:
                return _error(404, 20404, "The requested resource was not found")
            call.updates.append(form)
            if "Url" in form:
                call.url = form["Url"][0]
            if "Twiml" in form:
                call.twiml = form["Twiml"][0]
            status = form.get("Status", [""])[0]
            if status in ("completed", "canceled"):
                call.status = status
            async with self._changed:
                self._changed.notify_all()
            return JSONResponse(call.resource(self.account_sid))

        @app.get(prefix + "/Calls/{sid}.json")
        async def fetch(request: Request, account: str, sid: str) -> JSONResponse:
            if (refused := refuse(request, account)) is not None:
                return refused
            call = self.calls.get(sid)
            if call is None:
                return _error(404, 20404, "The requested resource was not found")
            return JSONResponse(call.resource(self.account_sid))

        return app

    async def updated(self, sid: str, form: dict[str, list[str]], within_s: float = 10.0) -> None:
        """Wait until the call has received an update with this form (Parley ends a
        call over REST while, not before, other things happen)."""
        async with asyncio.timeout(within_s), self._changed:
            await self._changed.wait_for(lambda: form in self.calls[sid].updates)

    # --- the far side of a call ------------------------------------------------------------

    def _local(self, url: str) -> str:
        if self.tunnel is not None and url.startswith(self.tunnel[0]):
            return self.tunnel[1] + url[len(self.tunnel[0]) :]
        return url

    async def _signed_post(self, url: str, form: dict[str, str]) -> httpx.Response:
        signature = twilio_signature(self.auth_token, url, form.items())
        async with httpx.AsyncClient() as client:
            return await client.post(
                self._local(url),
                content=urlencode(form),
                headers={
                    "X-Twilio-Signature": signature,
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )

    def _call_form(self, call: FakeCall, status: str) -> dict[str, str]:
        return {
            "CallSid": call.sid,
            "AccountSid": self.account_sid,
            "From": call.from_,
            "To": call.to,
            "Direction": "outbound-api",
            "CallStatus": status,
            "ApiVersion": "2010-04-01",
        }

    async def answer(self, sid: str) -> httpx.Response:
        """The callee picks up: Twilio fetches the call's voice webhook (its TwiML)."""
        call = self.calls[sid]
        if call.url is None:
            raise ValueError(f"call {sid} has inline TwiML, no webhook")
        call.status = "in-progress"
        return await self._signed_post(call.url, self._call_form(call, "in-progress"))

    async def incoming(self, voice_url: str, from_: str, to: str) -> tuple[str, httpx.Response]:
        """Someone calls the number: Twilio posts its voice webhook (signed); the new
        call's SID and the webhook's answer."""
        sid = "CA" + secrets.token_hex(16)
        call = FakeCall(sid, to, from_, voice_url, None, status="ringing")
        self.calls[sid] = call
        form = {**self._call_form(call, "ringing"), "Direction": "inbound"}
        return sid, await self._signed_post(voice_url, form)

    async def send_status(self, sid: str, status: str) -> httpx.Response:
        """A status callback for the call, as Twilio sends it."""
        call = self.calls[sid]
        if not call.status_callback:
            raise ValueError(f"call {sid} has no status callback")
        call.status = status
        return await self._signed_post(call.status_callback, self._call_form(call, status))
