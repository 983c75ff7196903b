"""Who acts with a bearer token: the session's user, or the operator.

The operator key (``PARLEY_OPERATOR_KEY``) may, in any session:

- read it (state, pending approvals, history);
- decide its pending approvals, recorded as ``decided_by: "operator"``;
- end it, recorded as ``end_reason: "OPERATOR_ENDED"``.

It never speaks as the user: sending a message or a ``ui_action``, the initial turn,
one-shot voice and attaching a voice WebSocket are refused with 403
``operator_not_allowed`` (nothing is stored). The README and PROTOCOL.md say the same.
"""

from __future__ import annotations

from typing import Literal

from parley.channels.http_errors import ApiError
from parley.channels.services import Services

Actor = Literal["user", "operator"]
OPERATOR_NOT_ALLOWED = "operator_not_allowed"


def actor_of(services: Services, token: str | None) -> Actor:
    """``operator`` for the operator key, else ``user`` (call after authorising)."""
    is_key = isinstance(token, str) and bool(token) and services.lifecycle.is_operator(token)
    return "operator" if is_key else "user"


def refuse_operator(services: Services, token: str | None, action: str) -> None:
    """403 ``operator_not_allowed`` if ``token`` is the operator key."""
    if actor_of(services, token) == "operator":
        raise ApiError(
            403,
            OPERATOR_NOT_ALLOWED,
            f"the operator key cannot {action}: it reads, decides approvals and ends "
            "sessions, but never speaks as the user",
        )


def end_reason_for(actor: Actor) -> str:
    return "OPERATOR_ENDED" if actor == "operator" else "USER_ENDED"
