"""The warm-transfer state machine (sans-I/O): one transfer's status, events in.

Theory of operation. A transfer starts ``requested`` when the agent calls
``transfer_to_human``. The I/O layer reports what happens, as events, and the
machine answers the new status or refuses an event that makes no sense now:

    requested ──dial──▶ dialing ──answer──▶ briefing ──bridge──▶ joined ──hang_up──▶ ended
        │                  │                   │                    │
        └──────────── caller_left ─────────────┴──▶ cancelled       └─ caller_left ─▶ ended
                           │                   │
      no_answer/busy/error/decline/timeout ────┴──▶ failed (reason)

- ``answer``: the human picked up (phone) or accepted in the console; they are
  briefed now (a summary read out or shown). ``bridge``: audio (or text) flows both
  ways — only then is the transfer ``joined`` and the AI out of the conversation.
- ``timeout`` is not an event the I/O layer sends: ``expired(now)`` says when the
  current status has lasted too long (ringing, briefing) and which event is due.
- ``failed`` and ``cancelled`` give the conversation back to the AI; ``ended`` is a
  bridge that finished (either side hung up).

Nothing here reads the clock or awaits: ``now`` is monotonic seconds from the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Status(StrEnum):
    REQUESTED = "requested"
    DIALING = "dialing"
    BRIEFING = "briefing"
    JOINED = "joined"
    ENDED = "ended"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL = frozenset({Status.ENDED, Status.FAILED, Status.CANCELLED})
FAILURES = frozenset({"no_answer", "busy", "declined", "error", "timeout"})


class IllegalTransition(ValueError):
    """An event that does not apply to the transfer's current status."""


# (status, event) -> new status. The table is the documentation.
TABLE: dict[tuple[Status, str], Status] = {
    (Status.REQUESTED, "dial"): Status.DIALING,
    (Status.REQUESTED, "caller_left"): Status.CANCELLED,
    (Status.REQUESTED, "error"): Status.FAILED,
    (Status.DIALING, "answer"): Status.BRIEFING,
    (Status.DIALING, "caller_left"): Status.CANCELLED,
    (Status.BRIEFING, "bridge"): Status.JOINED,
    (Status.BRIEFING, "caller_left"): Status.CANCELLED,
    (Status.JOINED, "hang_up"): Status.ENDED,
    (Status.JOINED, "caller_left"): Status.ENDED,
}
for _failure in FAILURES:
    TABLE[(Status.DIALING, _failure)] = Status.FAILED
    TABLE[(Status.BRIEFING, _failure)] = Status.FAILED


@dataclass(frozen=True, slots=True)
class Timeouts:
    ringing_s: float = 30.0  # dialing without an answer
    briefing_s: float = 60.0  # answered, neither accepted nor declined
    requested_s: float = 10.0  # never dialled (a worker lost before it acted)


@dataclass(frozen=True, slots=True)
class Transfer:
    """One transfer's state; ``since`` is when the current status began."""

    id: str
    session_id: str
    reason: str
    target: str  # "console" or a phone number
    status: Status = Status.REQUESTED
    since: float = 0.0
    failure: str | None = None  # why it failed
    human: str | None = None  # who answered: an operator id or the dialled number

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def apply(self, event: str, now: float, *, human: str | None = None) -> Transfer:
        """The transfer after ``event`` at ``now``; raises ``IllegalTransition``."""
        new = TABLE.get((self.status, event))
        if new is None:
            raise IllegalTransition(f"transfer {self.id}: {event!r} while {self.status.value}")
        return replace(
            self,
            status=new,
            since=now,
            failure=event if new is Status.FAILED else self.failure,
            human=human or self.human,
        )

    def expired(self, now: float, timeouts: Timeouts) -> str | None:
        """The event due because the current status lasted too long (or None)."""
        limit = {
            Status.REQUESTED: timeouts.requested_s,
            Status.DIALING: timeouts.ringing_s,
            Status.BRIEFING: timeouts.briefing_s,
        }.get(self.status)
        if limit is not None and now - self.since >= limit:
            return "timeout" if self.status is not Status.REQUESTED else "error"
        return None

    def wire(self) -> dict[str, object]:
        """The ``transfer`` event of PROTOCOL.md for this state."""
        reason = self.failure if self.status is Status.FAILED else self.reason
        return {
            "type": "transfer",
            "transfer_id": self.id,
            "status": self.status.value,
            "reason": reason,
        }
