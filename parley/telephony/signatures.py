"""Request signatures and stream tokens: pure functions, time passed in.

- ``twilio_signature`` / ``twilio_signature_ok``: Twilio's ``X-Twilio-Signature``,
  HMAC-SHA1 keyed with the auth token over the full URL (scheme, host, path, query)
  followed by every POST parameter as ``name`` + ``value``, sorted by name; base64.
  Compared in constant time.
- ``StreamTokens``: a one-time token the voice webhook puts in the stream's
  ``<Parameter>``s, so nobody can open a media stream for a call the carrier did not
  start. ``"<expiry>.<nonce>.<mac>"`` where the HMAC-SHA256 covers the call id, the
  claims (agent, caller…), the expiry and the nonce. "One-time" is the caller's part:
  claim ``token_id`` once in the coordinator (``set_if_absent``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The ``X-Twilio-Signature`` Twilio computes for a request.

    ``params`` are the POST form fields (empty for GET); a name given several times
    contributes each value, sorted by name then value."""
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def twilio_signature_ok(
    auth_token: str, url: str, params: Iterable[tuple[str, str]], signature: str | None
) -> bool:
    """Whether ``signature`` is Twilio's for this URL and form (constant-time)."""
    if not signature:
        return False
    expected = twilio_signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


class StreamTokenError(Exception):
    """A stream token is malformed, forged, for another call, or expired."""


@dataclass(frozen=True, slots=True)
class StreamClaims:
    call_id: str
    claims: dict[str, str]
    expires_at: float
    token_id: str  # the nonce: claim it once


class StreamTokens:
    """Issue and check stream tokens with a server secret; ``now`` is wall time (s)."""

    def __init__(self, secret: str | bytes, ttl_s: float = 60.0) -> None:
        key = secret.encode() if isinstance(secret, str) else secret
        if len(key) < 16:
            raise ValueError("the stream token secret must be at least 16 bytes")
        self._key = hashlib.sha256(b"parley-stream-token\x00" + key).digest()
        self.ttl_s = ttl_s

    def _mac(self, call_id: str, claims: Mapping[str, str], expiry: int, nonce: str) -> str:
        body = json.dumps([call_id, dict(sorted(claims.items())), expiry, nonce])
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, call_id: str, claims: Mapping[str, str], now: float) -> str:
        expiry = int(now + self.ttl_s) + 1
        nonce = secrets.token_urlsafe(12)
        return f"{expiry}.{nonce}.{self._mac(call_id, claims, expiry, nonce)}"

    def verify(
        self, token: str, call_id: str, claims: Mapping[str, str], now: float
    ) -> StreamClaims:
        """The token's claims if it was issued for this call and these claims and has
        not expired; else ``StreamTokenError`` saying which."""
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) != 3 or not parts[0].isdigit():
            raise StreamTokenError("malformed stream token")
        expiry, nonce, mac = int(parts[0]), parts[1], parts[2]
        expected = self._mac(call_id, claims, expiry, nonce)
        if not hmac.compare_digest(expected.encode(), mac.encode()):
            raise StreamTokenError("stream token does not match this call")
        if now >= expiry:
            raise StreamTokenError("stream token expired")
        return StreamClaims(call_id, dict(claims), float(expiry), nonce)
