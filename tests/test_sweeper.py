"""The deadline sweeper on a fake clock, against the real stores and coordinators."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from parley.config import AgentSpec
from parley.sessions import Coordinator, SqlStore
from parley.sessions.sweeper import Sweeper
from parley.testing import FakeClock

AGENT = AgentSpec(name="interview", limits={"max_duration_s": 600, "warning_before_s": [120, 30]})


class Ends:
    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.calls: list[tuple[str, str, str]] = []

    async def __call__(self, session_id: str, reason: str, detail: str) -> bool:
        self.calls.append((session_id, reason, detail))
        return await self.store.end_session(session_id, reason)


async def make_session(store: SqlStore, clock: FakeClock) -> str:
    session = await store.create_session(
        agent="interview", token_hash="t", resume_token="r", template_vars={}, metadata={},
        expires_at=clock.now() + timedelta(seconds=600), channel="chat",
    )
    return session.id


async def test_warnings_once_per_mark_and_the_end_on_time(
    db_url: str, coordinator: Coordinator
) -> None:
    clock = FakeClock()
    store = SqlStore(db_url, clock)
    await store.start()
    try:
        sid = await make_session(store, clock)
        other = await make_session(store, clock)
        await store.end_session(other, "USER_ENDED")  # ended sessions are left alone
        heard = await coordinator.subscribe(f"session:{sid}")
        ends = Ends(store)
        workers = [Sweeper(store, coordinator, {"interview": AGENT}, clock, ends) for _ in range(2)]
        published: list[dict[str, Any]] = []

        async def tick_all() -> None:
            for w in workers:  # two workers sweep the same database
                await w.tick()

        clock.advance(479)
        await tick_all()
        assert ends.calls == []
        clock.advance(1)  # 120 s left
        await tick_all()
        clock.advance(90)  # 30 s left
        await tick_all()
        await tick_all()
        clock.advance(29.5)
        await tick_all()
        assert ends.calls == []
        clock.advance(0.5)  # the deadline
        await tick_all()
        session = await store.get_session(sid)
        assert session is not None and session.end_reason == "TIME_LIMIT"
        assert [c[0] for c in ends.calls] == [sid]  # the second worker found nothing to do
        await coordinator.publish(f"session:{sid}", {"type": "probe"})
        async for message in heard:
            published.append(message)
            if message["type"] == "probe":
                break
        await heard.close()
        assert published[:-1] == [
            {"type": "warning", "reason": "time_limit", "seconds_left": 120.0},
            {"type": "warning", "reason": "time_limit", "seconds_left": 30.0},
        ]
    finally:
        await store.close()


async def test_a_session_past_its_deadline_ends_at_the_first_sweep(
    db_url: str, coordinator: Coordinator
) -> None:
    clock = FakeClock()
    store = SqlStore(db_url, clock)
    await store.start()
    try:
        sid = await make_session(store, clock)
        clock.advance(3600)  # nobody was looking (a worker restart)
        ends = Ends(store)
        await Sweeper(store, coordinator, {"interview": AGENT}, clock, ends).tick()
        assert ends.calls == [(sid, "TIME_LIMIT", "")]
    finally:
        await store.close()
