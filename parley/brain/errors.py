"""Why a turn was refused before it started. Channels map ``code`` to their wire form
(HTTP status for chat, an ``error`` event for voice)."""

from __future__ import annotations


class TurnRejected(Exception):
    """A turn could not start. ``code`` is a stable PROTOCOL.md error code."""

    def __init__(self, code: str, message: str, http_status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


def session_busy() -> TurnRejected:
    return TurnRejected("session_busy", "another turn is running in this session", 409)


def session_ended() -> TurnRejected:
    return TurnRejected("session_ended", "the session has ended", 410)


def session_not_found() -> TurnRejected:
    return TurnRejected("session_not_found", "no such session", 404)


def wrong_channel(channel: str) -> TurnRejected:
    return TurnRejected("wrong_channel", f"the session is attached to the {channel} channel", 409)


def already_started() -> TurnRejected:
    return TurnRejected("already_started", "the conversation has already started", 409)


def approval_not_found() -> TurnRejected:
    return TurnRejected("approval_not_found", "no such pending tool call", 404)
