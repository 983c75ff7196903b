"""``SessionLifecycle``: the one place where a session is created, authorised,
attached to a live channel, ended and resumed — for every channel.

- ``create`` (HTTP ``POST /v1/sessions``, a voice ``start`` frame, later a phone
  webhook): rate limit, tokens, the stored static greeting.
- ``authorize``: the session token or the operator key. A wrong token and an
  unknown id answer the same ``404 session_not_found``, so a status code reveals
  nothing. An active session past its expiry is ended here (``TIME_LIMIT``).
- ``attach``/``detach``: a live channel (voice) holds the session through a lease
  in the coordinator (``sessions/lease.py``), renewed while the socket lives, so a
  killed worker's attachment expires within one TTL. At most one voice attachment:
  the newest takes the lease over and the older connection hears
  ``attachment_replaced`` on the session's pub/sub channel.
- ``end(reason)``: the one termination path. The store's conditional update
  decides who ends it (a second end is a no-op, returns False); the winner
  publishes ``session_ended`` on the session channel, which every live channel of
  every worker hears.
- ``relay``: a turn event made on one channel (e.g. an approval decided over HTTP)
  published for the other live channels of the session.

Deadlines, grace periods and drain (issue 9) belong here too.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from parley.channels.http_errors import ApiError
from parley.channels.rate_limit import RateLimiter
from parley.clock import Clock
from parley.config import AgentSpec
from parley.events import Event
from parley.metrics import Metrics
from parley.reports import ReportSender, build_report
from parley.sessions.coordinator import Coordinator, Subscription
from parley.sessions.lease import Attachment, Sleep, attached_channel, turn_lock_key
from parley.sessions.records import Session
from parley.sessions.stats import SessionStats, merged
from parley.sessions.store import Store

log = logging.getLogger(__name__)

ATTACHMENT_REPLACED = "attachment_replaced"
SESSION_ENDED = "session_ended"
RELAY = "relay"
WARNING = "warning"
GREETING_CLAIM_TTL_S = 7 * 24 * 3600.0


def warning_text(agent: AgentSpec, seconds_left: object) -> str | None:
    """The spoken time-limit notice of ``agent`` (``limits.warning_message``)."""
    template = agent.limits.warning_message
    if not template or not isinstance(seconds_left, int | float):
        return None
    minutes = max(1, round(seconds_left / 60))
    left = f"{minutes} minute{'s' if minutes != 1 else ''}"
    if seconds_left < 90:
        left = f"{max(1, round(seconds_left))} seconds"
    return template.replace("{minutes}", left)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_channel(session_id: str) -> str:
    """The pub/sub channel every live connection of a session listens to."""
    return f"session:{session_id}"


@dataclass(frozen=True)
class NewSession:
    session: Session
    token: str
    resume_token: str
    greeting: str | None


class SessionLifecycle:
    def __init__(
        self,
        store: Store,
        coordinator: Coordinator,
        agents: dict[str, AgentSpec],
        clock: Clock,
        limiter: RateLimiter,
        *,
        operator_key: str | None = None,
        attach_ttl_s: float = 5.0,
        sleep: Sleep = asyncio.sleep,
        metrics: Metrics | None = None,
        reports: ReportSender | None = None,
    ) -> None:
        self.store = store
        self.coordinator = coordinator
        self.agents = agents
        self.clock = clock
        self.limiter = limiter
        self.operator_key = operator_key
        self.attach_ttl_s = attach_ttl_s
        self.sleep = sleep
        self.metrics = metrics or Metrics()
        self.reports = reports
        self._recovering: set[asyncio.Future[None]] = set()
        self.draining = False  # set by the drain: no new sessions on this worker
        self._live_stats: dict[str, list[SessionStats]] = {}  # session id -> live counters

    # --- create ------------------------------------------------------------------------

    def agent(self, name: str) -> AgentSpec:
        spec = self.agents.get(name)
        if spec is None:
            raise ApiError(
                404, "agent_not_found", f"no agent named {name!r}", agents=sorted(self.agents)
            )
        return spec

    def expires_at(self, agent: AgentSpec) -> datetime | None:
        if agent.limits.max_duration_s is None:
            return None
        return self.clock.now() + timedelta(seconds=agent.limits.max_duration_s)

    async def create(
        self,
        agent_name: str,
        *,
        client: str,
        template_vars: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        channel: str = "chat",
    ) -> NewSession:
        """A new session of ``agent_name``; 404 ``agent_not_found``, 429 ``rate_limited``."""
        agent = self.agent(agent_name)
        if self.draining:
            raise ApiError(503, "server_draining", "this worker is shutting down; try again")
        wait = self.limiter.check(client)
        if wait is not None:
            raise ApiError(
                429,
                "rate_limited",
                "too many sessions created; try again later",
                headers=self.limiter.retry_after_header(wait),
            )
        token, resume = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        session = await self.store.create_session(
            agent=agent.name,
            token_hash=token_hash(token),
            resume_token=token_hash(resume),
            template_vars=dict(template_vars or {}),
            metadata=dict(metadata or {}),
            expires_at=self.expires_at(agent),
            channel=channel,
        )
        greeting = agent.render_greeting(session.template_vars)
        if greeting:
            blocks = [{"type": "text", "text": greeting}]
            await self.store.add_message(
                session.id, "assistant", greeting, blocks=blocks, channel=channel
            )
        return NewSession(session, token, resume, greeting)

    # --- authorize ---------------------------------------------------------------------

    def is_operator(self, token: str) -> bool:
        key = self.operator_key
        return bool(key) and hmac.compare_digest(token.encode(), (key or "").encode())

    async def authorize(self, session_id: str, token: str | None) -> Session:
        """The session, if ``token`` is its bearer token (or the operator key).

        401 ``unauthorized`` without a token; 404 ``session_not_found`` for an unknown
        session *and* for a wrong token (the answer does not tell them apart)."""
        if not token:
            raise ApiError(401, "unauthorized", "a bearer token is required")
        session = await self.store.get_session(session_id)
        if session is None or not (
            hmac.compare_digest(session.token_hash, token_hash(token)) or self.is_operator(token)
        ):
            raise ApiError(404, "session_not_found", "no such session")
        return await self._expire_if_due(session)

    async def resume(self, resume_token: str) -> Session:
        """The session a resume token names; 404 ``resume_token_invalid`` for a token
        that never existed, expired with its session, or was used already (every
        successful resume rotates it)."""
        session = await self.store.get_session_by_resume_token(token_hash(resume_token))
        if session is None:
            raise ApiError(404, "resume_token_invalid", "this resume token is not valid (any more)")
        return await self._expire_if_due(session)

    async def rotate_resume_token(self, session: Session) -> str:
        """A fresh resume token for ``session`` (the old one stops working)."""
        resume = secrets.token_urlsafe(32)
        await self.store.update_session(session.id, resume_token=token_hash(resume))
        return resume

    async def _expire_if_due(self, session: Session) -> Session:
        if (
            session.status == "active"
            and session.expires_at is not None
            and self.clock.now() >= session.expires_at
        ):
            await self.end(session.id, "TIME_LIMIT")
            session = await self.store.get_session(session.id) or session
        return session

    # --- live channels -----------------------------------------------------------------

    async def current_channel(self, session_id: str) -> str:
        """The channel holding the session: a live attachment's, else ``chat``."""
        return await attached_channel(self.coordinator, session_id) or "chat"

    async def attach(
        self, session_id: str, channel: str, on_replaced: Callable[[], None] | None = None
    ) -> Attachment:
        """Hold the session for a live ``channel`` connection (the newest wins).

        The lease is renewed in the background until ``detach``. If a renewal finds it
        gone, it is taken again when nobody else holds it (this worker only stalled);
        when another connection holds it, ``on_replaced`` runs."""
        attachment = Attachment(
            self.coordinator, session_id, channel, self.attach_ttl_s, sleep=self.sleep
        )

        def on_lost() -> None:
            task = asyncio.ensure_future(self._recover(attachment, on_replaced))
            self._recovering.add(task)
            task.add_done_callback(self._recovering.discard)

        previous = await attachment.take_over()
        if previous is not None:
            log.info("session %s: a new %s connection replaces %s", session_id, channel, previous)
            await self.coordinator.publish(
                session_channel(session_id), {"type": ATTACHMENT_REPLACED, "owner": previous}
            )
        await self.store.update_session(session_id, current_channel=channel)
        attachment.keep_alive(on_lost)
        self.metrics.live_sessions.labels(channel).inc()
        return attachment

    async def _recover(
        self, attachment: Attachment, on_replaced: Callable[[], None] | None
    ) -> None:
        try:
            if await attachment.reacquire():
                log.warning(
                    "session %s: the %s lease had lapsed; taken again",
                    attachment.session_id,
                    attachment.channel,
                )
                return
        except Exception:
            log.exception("session %s: retaking the lease failed", attachment.session_id)
        if on_replaced is not None:
            on_replaced()

    async def detach(self, attachment: Attachment) -> None:
        """Give the session back to chat (unless a newer connection holds it)."""
        self.metrics.live_sessions.labels(attachment.channel).dec()
        await attachment.release()
        if await attached_channel(self.coordinator, attachment.session_id) is None:
            await self.store.update_session(attachment.session_id, current_channel="chat")

    async def subscribe(self, session_id: str) -> Subscription:
        return await self.coordinator.subscribe(session_channel(session_id))

    async def relay(self, session_id: str, event: Event) -> None:
        """Tell the session's other live channels about a turn event made elsewhere
        (a failed publish is logged, never raised: the turn goes on)."""
        message = {"type": RELAY, "event": event.to_wire()}
        try:
            await self.coordinator.publish(session_channel(session_id), message)
        except Exception as exc:
            log.warning("session %s: relaying %s failed: %s", session_id, event.type, exc)

    # --- greeting, a dropped connection's grace, drain ---------------------------------

    async def claim_greeting(self, session: Session) -> bool:
        """True for exactly one caller per session (the first voice attachment greets;
        two first connections never both do), across workers."""
        if session.agent_state.get("voice_greeted"):
            return False
        key = f"greeted:{session.id}"
        if not await self.coordinator.set_if_absent(key, "1", GREETING_CLAIM_TTL_S):
            return False
        state = {**session.agent_state, "voice_greeted": True}
        await self.store.update_session(session.id, agent_state=state)
        session.agent_state = state
        return True

    def dropped(self, session_id: str, grace_s: float) -> None:
        """A live connection went away without ending the session: it may come back
        (``resume_token``, any worker) within ``grace_s``; after that the session ends
        ``DISCONNECTED`` unless a channel is attached or was active meanwhile.

        The timer lives on this worker; if the worker dies first, the session's own
        limits (``max_duration_s``, ``idle_timeout_s``) still end it."""
        since = self.clock.now()
        task = asyncio.ensure_future(self._grace(session_id, grace_s, since))
        self._recovering.add(task)
        task.add_done_callback(self._recovering.discard)

    async def _grace(self, session_id: str, grace_s: float, since: datetime) -> None:
        await self.clock.sleep(grace_s)
        session = await self.store.get_session(session_id)
        if session is None or session.status != "active":
            return
        if await attached_channel(self.coordinator, session_id) is not None:
            return  # resumed
        if await self.coordinator.lock_owner(turn_lock_key(session_id)) is not None:
            return  # a chat turn is running
        messages = await self.store.list_messages(session_id)
        if messages and messages[-1].created_at and messages[-1].created_at > since:
            return  # the conversation went on in chat
        await self.end(session_id, "DISCONNECTED", f"no channel came back within {grace_s:g} s")

    # --- end ---------------------------------------------------------------------------

    async def end(self, session_id: str, reason: str, detail: str = "") -> bool:
        """End the session once: True if this call ended it. The winner publishes
        ``session_ended`` (every live channel of every worker hears it), counts it,
        and hands the agent's end-of-session report to the sender, which delivers it
        in the background: nothing here waits on the network."""
        if not await self.store.end_session(session_id, reason):
            return False
        await self._flush_stats(session_id)  # the report has this worker's live counts
        log.info("session %s ended: %s %s", session_id, reason, detail)
        message = {"type": SESSION_ENDED, "reason": reason, "detail": detail}
        await self.coordinator.publish(session_channel(session_id), message)
        self.metrics.terminations.labels(reason).inc()
        await self._report(session_id)
        return True

    # --- per-session counters (sessions/stats.py) ----------------------------------------

    def count(self, session_id: str, stats: SessionStats) -> None:
        """A live connection's counters, flushed at ``uncount`` or at the session's end."""
        self._live_stats.setdefault(session_id, []).append(stats)

    async def uncount(self, session_id: str, stats: SessionStats) -> None:
        """The connection leaves: its counts go to the store (one write)."""
        live = self._live_stats.get(session_id, [])
        if stats in live:
            live.remove(stats)
        if not live:
            self._live_stats.pop(session_id, None)
        await self.add_stats(session_id, stats.take())

    async def add_stats(self, session_id: str, counts: dict[str, int]) -> None:
        """Add counts to the stored ``stats`` (a failed write is logged, never raised)."""
        for direction in ("in", "out"):
            frames = counts.get(f"audio_frames_{direction}", 0)
            if frames:
                self.metrics.audio_frames.labels(direction).inc(frames)
        try:
            await self.store.add_stats(session_id, counts)
        except Exception as exc:
            log.warning("session %s: storing stats failed: %s", session_id, exc)

    async def _flush_stats(self, session_id: str) -> None:
        for stats in self._live_stats.get(session_id, []):
            await self.add_stats(session_id, stats.take())

    async def _report(self, session_id: str) -> None:
        session = await self.store.get_session(session_id)
        agent = self.agents.get(session.agent) if session is not None else None
        if session is None or agent is None or not agent.on_end.url:
            return
        if self.reports is None:
            log.warning("agent %s has on_end.url but PARLEY_WEBHOOK_SECRET is unset", agent.name)
            return
        messages = await self.store.list_messages(session_id)
        stats = merged(session.stats, {})
        report = build_report(
            session, messages, with_transcript=agent.on_end.transcript, stats=stats
        )
        self.reports.send(agent.on_end.url, report)
