"""Session deadlines as a pure table: the facts and ``now`` in, what is due out.

Theory of operation. A session has at most three clocks: the absolute end
(``expires_at``, wall clock from its start, the same on every worker and after any
reconnect), warning marks (seconds before that end) and an idle timeout (no user
speech or message for that long). ``due`` is asked with the current time and the
marks already warned about; it answers the actions that are due now and the time
at which to ask again (``None``: never). The caller — a per-connection timer or the
per-worker sweeper — owns the clock and the I/O; nothing here sleeps or reads time.

Rules the table encodes:
- Several marks due at once (a late reconnect, a limit shorter than a mark) give
  ONE warning with the real time left, and all of them count as warned.
- The end wins over a warning due at the same instant.
- Idle timeout ends the session with reason ``TIME_LIMIT``, detail ``idle_timeout``
  (the five termination reasons stay five).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

TIME_LIMIT = "TIME_LIMIT"


@dataclass(frozen=True, slots=True)
class Warn:
    """Tell every live channel: ``seconds_left`` until the end (``marks`` now warned)."""

    seconds_left: float
    marks: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class End:
    reason: str
    detail: str = ""


Action = Warn | End


@dataclass(frozen=True, slots=True)
class Deadlines:
    expires_at: datetime | None
    warning_marks: tuple[float, ...] = ()
    idle_timeout_s: float | None = None


def due(
    deadlines: Deadlines,
    now: datetime,
    warned: Iterable[float] = (),
    last_activity: datetime | None = None,
) -> tuple[list[Action], datetime | None]:
    """The actions due at ``now`` and when to look again."""
    wakes: list[datetime] = []
    end = deadlines.expires_at
    if end is not None and now >= end:
        return [End(TIME_LIMIT)], None
    idle = deadlines.idle_timeout_s
    if idle is not None and last_activity is not None:
        idle_end = last_activity + timedelta(seconds=idle)
        if now >= idle_end:
            return [End(TIME_LIMIT, "idle_timeout")], None
        wakes.append(idle_end)
    actions: list[Action] = []
    if end is not None:
        done = set(warned)
        pending = [m for m in deadlines.warning_marks if m not in done]
        now_due = tuple(m for m in pending if now >= end - timedelta(seconds=m))
        if now_due:
            actions.append(Warn((end - now).total_seconds(), now_due))
        later = [end - timedelta(seconds=m) for m in pending if m not in now_due]
        wakes.extend(later)
        wakes.append(end)
    return actions, min(wakes) if wakes else None
