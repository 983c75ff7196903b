"""The parts of Twilio's REST API (2010-04-01) that Parley uses, over httpx.

- ``create_call``: ``POST /Accounts/{sid}/Calls.json`` (To, From, Url, StatusCallback…)
- ``update_call``: ``POST /Accounts/{sid}/Calls/{call}.json`` with a new ``Url`` or
  ``Twiml`` (e.g. redirect a live call)
- ``hang_up``: the same with ``Status=completed`` (a call in progress)
- ``cancel``: the same with ``Status=canceled`` (a call still queued or ringing)

Requests are form-encoded with HTTP Basic auth (account SID : auth token).

Exceptions (one boundary: every httpx or HTTP problem leaves as one of these)::

    TwilioError                 base class
    ├── TwilioUnavailable       local/transport: connect error, timeout, bad JSON (retryable)
    └── TwilioApiError          Twilio answered 4xx/5xx; ``status``, ``code`` (Twilio's
                                error number), ``retryable`` for 429 and 5xx
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
DEFAULT_EVENTS = ("initiated", "ringing", "answered", "completed")


class TwilioError(Exception):
    """Placing or changing a call through Twilio failed."""

    retryable = False


class TwilioUnavailable(TwilioError):
    """Twilio could not be reached or answered something that is not its JSON."""

    retryable = True


class TwilioApiError(TwilioError):
    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(f"Twilio {status} (error {code}): {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retryable = status == 429 or status >= 500


@dataclass(frozen=True, slots=True)
class TwilioCall:
    sid: str
    status: str
    to: str
    from_: str
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TwilioCall:
        return cls(
            sid=str(data.get("sid", "")),
            status=str(data.get("status", "")),
            to=str(data.get("to", "")),
            from_=str(data.get("from", "")),
            raw=data,
        )


class TwilioRestClient:
    """Calls resource of one account. Pass a shared ``httpx.AsyncClient`` to reuse it."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str = "https://api.twilio.com",
        client: httpx.AsyncClient | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.account_sid = account_sid
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self._base = f"{base_url.rstrip('/')}/{API_VERSION}/Accounts/{account_sid}"
        self._client = client or httpx.AsyncClient()
        self._owns_client = client is None
        self._timeout = timeout_s

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def create_call(
        self,
        to: str,
        from_: str,
        url: str,
        *,
        status_callback: str | None = None,
        status_events: Sequence[str] = DEFAULT_EVENTS,
        timeout_s: int | None = None,
    ) -> TwilioCall:
        """Place a call; Twilio fetches ``url`` (the voice webhook) when it is answered."""
        form: list[tuple[str, str]] = [("To", to), ("From", from_), ("Url", url)]
        form.append(("Method", "POST"))
        if status_callback:
            form += [("StatusCallback", status_callback), ("StatusCallbackMethod", "POST")]
            form += [("StatusCallbackEvent", event) for event in status_events]
        if timeout_s is not None:
            form.append(("Timeout", str(timeout_s)))
        return await self._post("/Calls.json", form)

    async def update_call(
        self, call_sid: str, *, url: str | None = None, twiml: str | None = None
    ) -> TwilioCall:
        """Give a live call new instructions: a TwiML URL or a TwiML document."""
        if (url is None) == (twiml is None):
            raise ValueError("give exactly one of url or twiml")
        form = [("Url", url), ("Method", "POST")] if url is not None else [("Twiml", twiml or "")]
        return await self._post(f"/Calls/{call_sid}.json", form)

    async def hang_up(self, call_sid: str) -> TwilioCall:
        """End a call in progress (``Status=completed``)."""
        return await self._post(f"/Calls/{call_sid}.json", [("Status", "completed")])

    async def cancel(self, call_sid: str) -> TwilioCall:
        """Stop a call that is still queued or ringing (``Status=canceled``)."""
        return await self._post(f"/Calls/{call_sid}.json", [("Status", "canceled")])

    async def _post(self, path: str, form: list[tuple[str, str]]) -> TwilioCall:
        try:
            resp = await self._client.post(
                self._base + path, data=_group(form), auth=self._auth, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            raise TwilioUnavailable(f"cannot reach Twilio: {exc!r}") from None
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code >= 400:
            body = data if isinstance(data, dict) else {}
            code = body.get("code")
            message = str(body.get("message") or resp.text[:200] or resp.reason_phrase)
            raise TwilioApiError(resp.status_code, code if isinstance(code, int) else None, message)
        if not isinstance(data, dict) or not data.get("sid"):
            raise TwilioUnavailable(f"Twilio answered {resp.status_code} without a call resource")
        return TwilioCall.from_json(data)


def _group(form: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    """httpx takes repeated fields as a list value."""
    out: dict[str, str | list[str]] = {}
    for name, value in form:
        if name in out:
            prev = out[name]
            out[name] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            out[name] = value
    return out
