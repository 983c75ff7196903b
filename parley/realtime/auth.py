"""Who may open ``/v1/realtime``: API keys, ephemeral client secrets, and the credential
forms Realtime clients send on the upgrade request (pure; no I/O, no clock).

Credential forms accepted, in this order:

1. ``Authorization: Bearer <key or client secret>`` (server-side clients, the ``openai`` SDK);
2. the subprotocol ``openai-insecure-api-key.<key or client secret>`` (browsers, which
   cannot set headers on a WebSocket).

``OpenAI-Beta: realtime=v1`` and the subprotocols ``realtime``, ``openai-beta.realtime-v1``,
``openai-organization.*`` and ``openai-project.*`` are accepted and change nothing. When
the client offers subprotocols the server must pick one (browsers close the socket
otherwise); ``select_subprotocol`` picks ``realtime`` or ``openai-beta.realtime-v1`` and
never echoes a protocol that carries a key.

``PARLEY_API_KEYS`` reaches this module already hashed (``parley.config``); a presented
key is hashed and compared in constant time. Client secrets (``ek_…``) are random, stored
by hash only, expire, and are good for one session (``parley.realtime.client_secrets``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

KEY_SUBPROTOCOL = "openai-insecure-api-key."
SELECTABLE_SUBPROTOCOLS = ("realtime", "openai-beta.realtime-v1")
CLIENT_SECRET_PREFIX = "ek_"


def key_hash(key: str) -> str:
    """The form in which a key or secret is kept: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class UpgradeCredential:
    token: str | None  # an API key or a client secret, as presented
    subprotocol: str | None  # the subprotocol to accept the socket with
    source: str  # "authorization" | "subprotocol" | "none"

    @property
    def is_client_secret(self) -> bool:
        return self.token is not None and self.token.startswith(CLIENT_SECRET_PREFIX)


def select_subprotocol(offered: Sequence[str]) -> str | None:
    return next((p for p in SELECTABLE_SUBPROTOCOLS if p in offered), None)


def credential_from_upgrade(
    headers: Iterable[tuple[bytes, bytes]], subprotocols: Sequence[str]
) -> UpgradeCredential:
    """The credential of an upgrade request (ASGI ``headers`` and ``subprotocols``)."""
    selected = select_subprotocol(subprotocols)
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return UpgradeCredential(token.strip(), selected, "authorization")
    for proto in subprotocols:
        if proto.startswith(KEY_SUBPROTOCOL) and len(proto) > len(KEY_SUBPROTOCOL):
            return UpgradeCredential(proto[len(KEY_SUBPROTOCOL) :], selected, "subprotocol")
    return UpgradeCredential(None, selected, "none")


class ApiKeys:
    """The server's API keys, held as hashes only."""

    def __init__(self, hashes: Iterable[str]) -> None:
        self._hashes = tuple(hashes)

    def __bool__(self) -> bool:
        return bool(self._hashes)

    def check(self, key: str) -> bool:
        presented = key_hash(key).encode()
        found = False
        for known in self._hashes:  # no early exit: the time does not depend on the match
            found |= hmac.compare_digest(presented, known.encode())
        return found


def new_client_secret() -> str:
    return CLIENT_SECRET_PREFIX + secrets.token_urlsafe(24)
