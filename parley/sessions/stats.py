"""Per-session counters (issue 9, "Stats and metrics"): audio frames in and out, turns,
interruptions, errors, bad messages.

A live connection counts in memory (``SessionStats``: plain integers, no I/O, no clock)
and hands the counts to the store in one write when it detaches (voice) or when its
turn ends (chat); never one write per audio frame. The store adds them to the
session row's ``stats`` (``merged``), so every connection, on every worker, adds up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

COUNTERS = (
    "audio_frames_in",
    "audio_frames_out",
    "turns",
    "interruptions",
    "errors",
    "bad_messages",
)


@dataclass(slots=True, eq=False)
class SessionStats:
    """What one connection counted since its last flush (compared by identity)."""

    audio_frames_in: int = 0
    audio_frames_out: int = 0
    turns: int = 0
    interruptions: int = 0
    errors: int = 0
    bad_messages: int = 0

    def error(self, code: str) -> None:
        """An ``error`` event sent to the client (``bad_message`` counts in both)."""
        self.errors += 1
        if code == "bad_message":
            self.bad_messages += 1

    def take(self) -> dict[str, int]:
        """The non-zero counts, and start again from zero."""
        counts = {k: v for k, v in asdict(self).items() if v}
        for name in COUNTERS:
            setattr(self, name, 0)
        return counts


def merged(stored: Mapping[str, Any] | None, delta: Mapping[str, int]) -> dict[str, int]:
    """``stored`` plus ``delta``, every counter present (zero when never counted)."""
    base = {name: int((stored or {}).get(name) or 0) for name in COUNTERS}
    for name, value in delta.items():
        if name in base:
            base[name] += int(value)
    return base
