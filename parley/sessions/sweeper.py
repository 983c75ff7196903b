"""The per-worker deadline sweeper: time limits hold with no request arriving.

Every ``interval_s`` (0.5 s: a session ends within a second of its deadline) the
sweeper asks the store for active sessions whose end is within the largest warning
mark, runs each through the pure deadline table (``deadlines.due``) and acts:

- a warning is published once per session and mark, across workers: the first
  worker to set ``warned:{session}:{mark}`` in the coordinator publishes it;
- an end goes through the one termination path (``end``), whose conditional update
  in the store decides which worker ends the session; the others' calls are no-ops.

Live connections keep their own precise timers; the sweeper is what ends a session
whose only client is a chat page, or that has no client at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta

from parley.clock import Clock
from parley.config import AgentSpec
from parley.sessions.coordinator import Coordinator
from parley.sessions.deadlines import Deadlines, End, Warn, due
from parley.sessions.records import Session
from parley.sessions.store import Store

log = logging.getLogger(__name__)

EndSession = Callable[[str, str, str], Awaitable[object]]  # (session id, reason, detail)
Sleep = Callable[[float], Awaitable[None]]
WARNED_TTL_S = 24 * 3600.0


def deadlines_of(agent: AgentSpec | None, session: Session) -> Deadlines:
    marks = agent.limits.warning_marks if agent is not None else ()
    return Deadlines(session.expires_at, marks)


def warning_message(seconds_left: float) -> dict[str, object]:
    return {"type": "warning", "reason": "time_limit", "seconds_left": round(seconds_left, 1)}


class Sweeper:
    def __init__(
        self,
        store: Store,
        coordinator: Coordinator,
        agents: Mapping[str, AgentSpec],
        clock: Clock,
        end: EndSession,
        *,
        interval_s: float = 0.5,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.store = store
        self.coordinator = coordinator
        self.agents = agents
        self.clock = clock
        self.end = end
        self.interval_s = interval_s
        self.sleep = sleep
        self.horizon = max(
            (m for a in agents.values() for m in a.limits.warning_marks), default=0.0
        )

    async def tick(self) -> None:
        """One pass over the sessions that are due for a warning or the end."""
        now = self.clock.now()
        for session in await self.store.list_expiring(now + timedelta(seconds=self.horizon)):
            actions, _ = due(deadlines_of(self.agents.get(session.agent), session), now)
            for action in actions:
                if isinstance(action, End):
                    await self.end(session.id, action.reason, action.detail)
                elif isinstance(action, Warn):
                    await self._warn_once(session.id, action)

    async def _warn_once(self, session_id: str, warn: Warn) -> None:
        fresh = False
        for mark in warn.marks:
            key = f"warned:{session_id}:{mark:g}"
            fresh |= await self.coordinator.set_if_absent(key, "1", WARNED_TTL_S)
        if fresh:
            await self.coordinator.publish(
                f"session:{session_id}", warning_message(warn.seconds_left)
            )

    async def run(self) -> None:
        """Sweep until cancelled; a failed pass is logged and the next one runs."""
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("deadline sweep failed")
            await self.sleep(self.interval_s)
