"""Public test kit: a fake clock, scripted fake engines, local protocol servers.

Submodules: ``fake_openai`` (a local server speaking the OpenAI streaming protocol),
``fake_engines`` (the benchmark's fake STT/LLM/TTS/VAD), ``speech`` (espeak-made test audio).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1000.0, wall: datetime | None = None) -> None:
        self._mono = start
        self._wall = wall or datetime(2026, 1, 1, tzinfo=UTC)

    def monotonic(self) -> float:
        return self._mono

    def now(self) -> datetime:
        return self._wall

    def advance(self, seconds: float) -> None:
        self._mono += seconds
        self._wall += timedelta(seconds=seconds)


__all__ = ["FakeClock"]
