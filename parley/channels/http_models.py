"""The JSON request bodies of the HTTP API, strictly typed.

Every model forbids unknown fields and is strict: ``"approved": "yes"`` or ``1`` is
refused, not coerced, and a string is never taken for a number. Text that no store
can keep (U+0000, lone surrogates — see ``parley.text_guard``) is refused with 422
``invalid_request`` naming the field; nothing is stripped or stored.
These models are also what the OpenAPI document (``/openapi.json``) describes.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from parley.text_guard import unstorable_path, unstorable_reason

MAX_TEXT = 8000
MAX_NAME = 64


def _storable(text: str) -> str:
    reason = unstorable_reason(text)
    if reason is not None:
        raise ValueError(reason)
    return text


def _storable_json(value: dict[str, Any]) -> dict[str, Any]:
    found = unstorable_path(value)
    if found is not None:
        where, reason = found
        raise ValueError(f"{where}: {reason}" if where else reason)
    return value


StorableStr = Annotated[str, AfterValidator(_storable)]
JsonScalar = str | int | float | bool


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class CreateSession(_Body):
    agent: Annotated[StorableStr, Field(max_length=MAX_NAME)] = "demo"
    template_vars: Annotated[
        dict[str, JsonScalar],
        AfterValidator(_storable_json),
        Field(description="values for the agent's {placeholders}: strings, numbers, booleans"),
    ] = Field(default_factory=dict)
    metadata: Annotated[
        dict[str, Any],
        AfterValidator(_storable_json),
        Field(description="any JSON object, stored with the session and never interpreted"),
    ] = Field(default_factory=dict)


class UiAction(_Body):
    msg: Annotated[StorableStr, Field(min_length=1, max_length=MAX_TEXT)]
    display: Annotated[StorableStr, Field(max_length=MAX_TEXT)] | None = None


class SendMessage(_Body):
    """Exactly one of ``text`` or ``ui_action``."""

    text: Annotated[StorableStr, Field(max_length=MAX_TEXT)] | None = None
    ui_action: UiAction | None = None

    @model_validator(mode="after")
    def _one_of(self) -> SendMessage:
        if (self.text is None) == (self.ui_action is None):
            raise ValueError("send exactly one of 'text' or 'ui_action'")
        if self.text is not None and not self.text.strip():
            raise ValueError("'text' must not be empty")
        return self


class Decision(_Body):
    approved: bool
    reason: Annotated[StorableStr, Field(max_length=1000)] | None = None


# --- what the OpenAPI document says the answers are ------------------------------------


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer: a stable ``code`` and a ``message`` (PROTOCOL.md); some codes
    add fields (``fields`` for 422 ``invalid_request``, ``agents`` for ``agent_not_found``)."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    fields: list[FieldError] | None = None


_STATUS_WORDS = {
    400: "malformed JSON",
    401: "no bearer token",
    403: "the token does not grant this",
    404: "no such session, agent, approval or audio",
    409: "busy, on another channel, or already started",
    410: "the session has ended",
    413: "the body is too large",
    415: "not a WAV file",
    422: "the body or a parameter is invalid",
    429: "rate limited",
    502: "a speech engine or the carrier failed",
    503: "not available: an engine, a setting, or the worker is draining",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, all with the ``ErrorBody`` shape."""
    return {s: {"model": ErrorBody, "description": _STATUS_WORDS[s]} for s in statuses}


SESSION_ERRORS = error_responses(400, 401, 403, 404, 409, 410, 413, 422, 429, 503)
TURN_EVENTS = (  # PROTOCOL.md, Turn events
    "assistant_delta",
    "assistant_message",
    "tool_call_started",
    "tool_call_completed",
    "approval_requested",
    "approval_resolved",
    "ui_op",
    "transfer",
    "turn_end",
    "error",
)
SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the turn's events as Server-Sent Events (PROTOCOL.md, Turn events)",
        "content": {
            "text/event-stream": {
                "schema": {
                    "description": "one event: its name and its JSON fields as text",
                    "type": "object",
                    "required": ["event", "data"],
                    "properties": {
                        "event": {"type": "string", "enum": list(TURN_EVENTS)},
                        "data": {"type": "string"},
                    },
                }
            }
        },
    }
}
