"""End-of-session reports: an optional webhook per agent (``on_end.url``).

When a session ends, the termination path hands the report to ``ReportSender.send``,
which returns at once: delivery runs in its own task, retried with exponential
backoff on network errors and 5xx/429 answers, and never blocks or fails the end of
the session. The body is JSON (session, end reason, durations, stats, transcript);
``X-Parley-Timestamp`` and ``X-Parley-Signature: sha256=<hex>`` sign it with
``PARLEY_WEBHOOK_SECRET``: HMAC-SHA256 over ``<timestamp>.<body>``, so a receiver can
refuse replays older than a few minutes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from parley.sessions.records import Message, Session
from parley.sessions.transcript import transcript_entries

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
SIGNATURE_HEADER = "X-Parley-Signature"
TIMESTAMP_HEADER = "X-Parley-Timestamp"


def build_report(
    session: Session,
    messages: list[Message],
    *,
    stats: dict[str, Any] | None = None,
    with_transcript: bool = True,
) -> dict[str, Any]:
    """The report's JSON body for an ended session."""
    started, ended = session.created_at, session.ended_at
    duration = (ended - started).total_seconds() if started and ended else None
    turns = sum(1 for m in messages if m.role == "user")
    report: dict[str, Any] = {
        "type": "session.ended",
        "session_id": session.id,
        "agent": session.agent,
        "end_reason": session.end_reason,
        "started_at": started.isoformat() if started else None,
        "ended_at": ended.isoformat() if ended else None,
        "duration_s": duration,
        "template_vars": session.template_vars,
        "metadata": session.metadata,
        "stats": {"user_turns": turns, "messages": len(messages), **(stats or {})},
    }
    if with_transcript:
        report["transcript"] = transcript_entries(messages)
    return report


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (constant-time compare)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class ReportSender:
    def __init__(
        self,
        client: httpx.AsyncClient,
        secret: str,
        *,
        attempts: int = 5,
        backoff_s: float = 1.0,
        sleep: Sleep = asyncio.sleep,
        now: Callable[[], float],
    ) -> None:
        self.client = client
        self.secret = secret
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.now = now
        self._tasks: set[asyncio.Task[bool]] = set()

    def send(self, url: str, report: dict[str, Any]) -> asyncio.Task[bool]:
        """Start delivering ``report``; the task's result says whether it arrived."""
        task = asyncio.create_task(self._deliver(url, report))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _deliver(self, url: str, report: dict[str, Any]) -> bool:
        body = json.dumps(report, ensure_ascii=False, default=str).encode()
        for attempt in range(1, self.attempts + 1):
            timestamp = str(int(self.now()))
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(self.secret, timestamp, body),
            }
            try:
                answer = await self.client.post(url, content=body, headers=headers)
                if answer.status_code < 500 and answer.status_code != 429:
                    if answer.status_code >= 400:
                        log.warning("report to %s refused: HTTP %s", url, answer.status_code)
                        return False
                    return True
                problem = f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            if attempt < self.attempts:
                log.info("report to %s failed (%s); retry %d", url, problem, attempt)
                await self.sleep(self.backoff_s * 2 ** (attempt - 1))
        log.warning("report to %s not delivered after %d attempts", url, self.attempts)
        return False

    async def close(self) -> None:
        """Wait for deliveries in flight (on shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
