"""Reply audio of one-shot voice turns, shared by every worker.

WAVs live base64-encoded in the coordinator's key-value store with a TTL, so any
worker can serve ``GET /v1/sessions/{id}/voice-turn/{audio_id}.wav`` when Redis is
configured. The ``audio_id`` is a random 128-bit secret, like a pre-signed URL.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections import deque

from parley.clock import Clock
from parley.sessions.coordinator import Coordinator

AUDIO_TTL_S = 300.0
_AUDIO_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


class ReplyAudioStore:
    """Reply WAVs in the coordinator's key-value store, base64, with a TTL.

    ``LocalCoordinator`` drops expired entries only when they are read, so the store
    remembers what it wrote and deletes expired keys itself on every ``put``: audio
    nobody fetched does not pile up in memory."""

    def __init__(self, coordinator: Coordinator, clock: Clock, ttl_s: float = AUDIO_TTL_S):
        self._coordinator = coordinator
        self._clock = clock
        self.ttl_s = ttl_s
        self._written: deque[tuple[float, str]] = deque()  # (expiry, key), oldest first

    @staticmethod
    def _key(session_id: str, audio_id: str) -> str:
        return f"voice-turn-audio:{session_id}:{audio_id}"

    async def put(self, session_id: str, wav: bytes) -> str:
        """Keep ``wav``; returns its new random id."""
        await self._sweep()
        audio_id = secrets.token_urlsafe(16)
        key = self._key(session_id, audio_id)
        await self._coordinator.set(key, base64.b64encode(wav).decode("ascii"), self.ttl_s)
        self._written.append((self._clock.monotonic() + self.ttl_s, key))
        return audio_id

    async def get(self, session_id: str, audio_id: str) -> bytes | None:
        if not _AUDIO_ID.fullmatch(audio_id):
            return None
        value = await self._coordinator.get(self._key(session_id, audio_id))
        return base64.b64decode(value) if value is not None else None

    async def _sweep(self) -> None:
        now = self._clock.monotonic()
        while self._written and self._written[0][0] <= now:
            _, key = self._written.popleft()
            await self._coordinator.delete(key)
