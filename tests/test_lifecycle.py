"""``SessionLifecycle`` with literal calls: a real SQLite store, the in-process
coordinator on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from parley.channels.http_errors import ApiError
from parley.channels.lifecycle import SessionLifecycle
from parley.channels.rate_limit import RateLimiter
from parley.config import LimitsSpec, load_agents
from parley.events import AssistantMessage
from parley.sessions import LocalCoordinator, SqlStore, Subscription
from parley.testing import FakeClock
from tests.manual_sleep import ManualSleep
from tests.plugins.stores import sqlite_url

TTL = 5.0


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[SessionLifecycle, FakeClock]]:
    clock = FakeClock()
    store = SqlStore(sqlite_url(tmp_path), clock)
    coordinator = LocalCoordinator(clock)
    await store.start()
    agents = load_agents(None)
    agents["timed"] = agents["demo"].model_copy(
        update={"name": "timed", "limits": LimitsSpec(max_duration_s=60)}
    )
    lifecycle = SessionLifecycle(
        store,
        coordinator,
        agents,
        clock,
        RateLimiter(3, 60.0, clock),
        operator_key="op-key",
        attach_ttl_s=TTL,
    )
    try:
        yield lifecycle, clock
    finally:
        await coordinator.close()
        await store.close()


async def next_message(subscription: Subscription) -> dict[str, Any]:
    async with asyncio.timeout(5):
        async for message in subscription:
            return message
    raise AssertionError("the subscription ended")


def refusal(exc: pytest.ExceptionInfo[ApiError]) -> tuple[int, str, str]:
    return exc.value.status, exc.value.code, exc.value.message


async def test_create_stores_the_greeting_and_returns_working_tokens(parts: Any) -> None:
    lifecycle, _ = parts
    new = await lifecycle.create("demo", client="10.0.0.1", template_vars={"name": "Ada"})
    assert new.session.status == "active" and new.session.agent == "demo"
    assert new.greeting and new.token != new.resume_token
    history = await lifecycle.store.list_messages(new.session.id)
    assert [(m.role, m.text) for m in history] == [("assistant", new.greeting)]
    assert (await lifecycle.authorize(new.session.id, new.token)).id == new.session.id
    assert (await lifecycle.authorize(new.session.id, "op-key")).id == new.session.id
    assert (await lifecycle.resume(new.resume_token)).id == new.session.id


async def test_a_wrong_token_and_an_unknown_session_answer_the_same(parts: Any) -> None:
    lifecycle, _ = parts
    new = await lifecycle.create("demo", client="10.0.0.1")
    with pytest.raises(ApiError) as wrong:
        await lifecycle.authorize(new.session.id, "not-the-token")
    with pytest.raises(ApiError) as unknown:
        await lifecycle.authorize("no-such-session", "not-the-token")
    assert refusal(wrong) == refusal(unknown) == (404, "session_not_found", "no such session")
    with pytest.raises(ApiError) as missing:
        await lifecycle.authorize(new.session.id, None)
    assert refusal(missing)[:2] == (401, "unauthorized")


async def test_unknown_agent_and_rate_limit(parts: Any) -> None:
    lifecycle, clock = parts
    with pytest.raises(ApiError) as unknown:
        await lifecycle.create("nobody", client="10.0.0.1")
    assert refusal(unknown)[:2] == (404, "agent_not_found")
    for _ in range(3):
        await lifecycle.create("demo", client="10.0.0.2")
    with pytest.raises(ApiError) as limited:
        await lifecycle.create("demo", client="10.0.0.2")
    assert refusal(limited)[:2] == (429, "rate_limited")
    clock.advance(60)
    await lifecycle.create("demo", client="10.0.0.2")


async def test_end_is_one_idempotent_published_path(parts: Any) -> None:
    lifecycle, clock = parts
    new = await lifecycle.create("demo", client="10.0.0.1")
    events = await lifecycle.subscribe(new.session.id)
    ended_at = clock.now()
    assert await lifecycle.end(new.session.id, "USER_ENDED") is True
    assert await next_message(events) == {
        "type": "session_ended",
        "reason": "USER_ENDED",
        "detail": "",
    }
    clock.advance(3)
    assert await lifecycle.end(new.session.id, "ERROR") is False  # a second end is a no-op
    ended = await lifecycle.store.get_session(new.session.id)
    assert ended is not None
    assert (ended.status, ended.end_reason, ended.ended_at) == ("ended", "USER_ENDED", ended_at)
    # nothing more was published: the next message is one we publish now
    await lifecycle.relay(new.session.id, AssistantMessage("m1", "hi", False))
    assert (await next_message(events))["type"] == "relay"
    await events.close()


async def test_an_expired_session_is_ended_and_published_when_touched(parts: Any) -> None:
    lifecycle, clock = parts
    new = await lifecycle.create("timed", client="10.0.0.1")
    events = await lifecycle.subscribe(new.session.id)
    clock.advance(59)
    assert (await lifecycle.authorize(new.session.id, new.token)).status == "active"
    clock.advance(1)
    session = await lifecycle.authorize(new.session.id, new.token)
    assert (session.status, session.end_reason) == ("ended", "TIME_LIMIT")
    assert await next_message(events) == {
        "type": "session_ended",
        "reason": "TIME_LIMIT",
        "detail": "",
    }
    await events.close()


async def test_the_newest_voice_attachment_wins(parts: Any) -> None:
    lifecycle, _ = parts
    sid = (await lifecycle.create("demo", client="10.0.0.1")).session.id
    events = await lifecycle.subscribe(sid)
    assert await lifecycle.current_channel(sid) == "chat"
    first = await lifecycle.attach(sid, "voice")
    assert await lifecycle.current_channel(sid) == "voice"
    second = await lifecycle.attach(sid, "voice")
    assert await next_message(events) == {"type": "attachment_replaced", "owner": first.owner}
    await lifecycle.detach(first)  # the replaced connection closes: voice still holds it
    assert await lifecycle.current_channel(sid) == "voice"
    stored = await lifecycle.store.get_session(sid)
    assert stored is not None and stored.current_channel == "voice"
    await lifecycle.detach(second)
    assert await lifecycle.current_channel(sid) == "chat"
    stored = await lifecycle.store.get_session(sid)
    assert stored is not None and stored.current_channel == "chat"
    await events.close()


async def test_a_dead_workers_attachment_expires_within_one_ttl(parts: Any) -> None:
    lifecycle, clock = parts
    sid = (await lifecycle.create("demo", client="10.0.0.1")).session.id
    attachment = await lifecycle.attach(sid, "voice")
    await attachment.stop_renewing()  # as if its worker died: nothing renews it any more
    clock.advance(TTL - 0.1)
    assert await lifecycle.current_channel(sid) == "voice"
    clock.advance(0.1)
    assert await lifecycle.current_channel(sid) == "chat"  # even though the row still says voice
    stored = await lifecycle.store.get_session(sid)
    assert stored is not None and stored.current_channel == "voice"


async def test_resume_tokens_rotate(parts: Any) -> None:
    lifecycle, _ = parts
    new = await lifecycle.create("demo", client="10.0.0.1")
    fresh = await lifecycle.rotate_resume_token(new.session)
    assert (await lifecycle.resume(fresh)).id == new.session.id
    with pytest.raises(ApiError) as old:
        await lifecycle.resume(new.resume_token)
    assert refusal(old)[:2] == (404, "resume_token_invalid")


async def test_a_lapsed_attachment_nobody_took_is_taken_again(tmp_path: Path) -> None:
    clock = FakeClock()
    sleep = ManualSleep(clock)
    store = SqlStore(sqlite_url(tmp_path), clock)
    await store.start()
    coordinator = LocalCoordinator(clock)
    limiter = RateLimiter(0, 60.0, clock)
    lifecycle = SessionLifecycle(
        store, coordinator, load_agents(None), clock, limiter, attach_ttl_s=TTL, sleep=sleep
    )
    try:
        sid = (await lifecycle.create("demo", client="10.0.0.1")).session.id
        replaced = asyncio.Event()
        attachment = await lifecycle.attach(sid, "voice", replaced.set)
        # this worker stalls past the TTL; nobody else wants the session meanwhile
        assert await sleep.next() == TTL / 3
        clock.advance(TTL)
        await sleep.release()  # the renewal fails; the lapsed lease is taken again
        await sleep.next()  # ...and renewed again
        assert not attachment.lost.is_set() and not replaced.is_set()
        assert await coordinator.lock_owner(f"attach:{sid}") == attachment.owner
        # now another connection takes it over while this one stalls
        clock.advance(TTL)
        newer = await lifecycle.attach(sid, "voice")
        await sleep.release()
        async with asyncio.timeout(5):
            await replaced.wait()
        assert await coordinator.lock_owner(f"attach:{sid}") == newer.owner
        await lifecycle.detach(attachment)
        await lifecycle.detach(newer)
        assert await lifecycle.current_channel(sid) == "chat"
    finally:
        await coordinator.close()
        await store.close()
