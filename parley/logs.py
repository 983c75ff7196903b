"""Per-session logging context: every log line of a turn or a voice call names its session.

A channel calls ``bind_session(session_id)`` where it starts serving a session (an
HTTP request, a voice connection); the id lives in a ``ContextVar``, so every task
spawned from there on (the turn, the voice pump, the end watcher) inherits it.
``SessionFilter`` copies it onto each record as ``session_id`` (``-`` outside a
session), and ``configure`` installs it with a format that shows it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(session_id)s]: %(message)s"

current_session: ContextVar[str | None] = ContextVar("parley_session", default=None)


def bind_session(session_id: str) -> None:
    """From here on, in this task and the tasks it starts, logs name ``session_id``."""
    current_session.set(session_id)


@contextlib.contextmanager
def session_context(session_id: str) -> Iterator[None]:
    """``bind_session`` for the duration of a ``with`` block."""
    token = current_session.set(session_id)
    try:
        yield
    finally:
        current_session.reset(token)


class SessionFilter(logging.Filter):
    """Adds ``record.session_id`` (the bound session, or ``-``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.session_id = current_session.get() or "-"
        return True


def configure(level: str | int) -> None:
    """Root logging with the session id in every line (``parley serve``)."""
    logging.basicConfig(level=level, format=FORMAT)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, SessionFilter) for f in handler.filters):
            handler.addFilter(SessionFilter())
