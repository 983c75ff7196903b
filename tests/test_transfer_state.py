"""The transfer state machine (every transition and timeout) and the shared board."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from parley.handoff.board import TransferBoard
from parley.handoff.state import TABLE, IllegalTransition, Status, Timeouts, Transfer
from parley.sessions import Coordinator, LocalCoordinator
from parley.testing import FakeClock

T = Transfer("tr_1", "s1", "wants a person", "console", since=0.0)


def walk(*events: str) -> Transfer:
    t = T
    for i, event in enumerate(events, 1):
        t = t.apply(event, float(i))
    return t


def test_the_happy_path_ends_joined_then_ended() -> None:
    t = walk("dial", "answer", "bridge")
    assert t.status is Status.JOINED and t.since == 3.0
    assert t.apply("hang_up", 9.0).status is Status.ENDED
    assert t.apply("caller_left", 9.0).status is Status.ENDED


@pytest.mark.parametrize("failure", ["no_answer", "busy", "declined", "error", "timeout"])
def test_every_failure_while_dialing_or_briefing_is_failed_with_its_reason(failure: str) -> None:
    for before in (walk("dial"), walk("dial", "answer")):
        after = before.apply(failure, 5.0)
        assert after.status is Status.FAILED and after.failure == failure and after.final
        assert after.wire()["reason"] == failure


def test_the_caller_leaving_before_the_bridge_cancels() -> None:
    for before in (T, walk("dial"), walk("dial", "answer")):
        assert before.apply("caller_left", 5.0).status is Status.CANCELLED


def test_illegal_events_are_refused_with_a_message() -> None:
    with pytest.raises(IllegalTransition, match="'bridge' while dialing"):
        walk("dial").apply("bridge", 2.0)
    for final in (walk("dial", "busy"), walk("caller_left"), walk("dial", "answer", "bridge",
                                                                  "hang_up")):
        for (status, event) in TABLE:
            if status is final.status:
                pytest.fail("a final status has transitions")
        with pytest.raises(IllegalTransition):
            final.apply("dial", 9.0)


def test_timeouts_per_status() -> None:
    limits = Timeouts(ringing_s=30, briefing_s=60, requested_s=10)
    assert T.expired(9.9, limits) is None and T.expired(10, limits) == "error"
    dialing = T.apply("dial", 0.0)
    assert dialing.expired(29.9, limits) is None and dialing.expired(30, limits) == "timeout"
    briefing = dialing.apply("answer", 30.0)
    assert briefing.expired(89.9, limits) is None and briefing.expired(90, limits) == "timeout"
    assert briefing.apply("bridge", 40.0).expired(10_000, limits) is None


async def test_the_first_accept_wins_across_workers(coordinator: Coordinator) -> None:
    clock = FakeClock()
    one, two = TransferBoard(coordinator, clock), TransferBoard(coordinator, clock)
    t = await one.open("s1", "wants a person", "console")
    await one.apply(t.id, "dial")
    results = await asyncio.gather(
        one.apply(t.id, "answer", human="op-a"),
        two.apply(t.id, "answer", human="op-b"),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, Transfer)]
    lost = [r for r in results if isinstance(r, IllegalTransition)]
    assert len(won) == 1 and len(lost) == 1
    current = await two.get(t.id)
    assert current is not None and current.human == won[0].human
    await one.apply(t.id, "caller_left")
    assert await one.live() == []


async def test_every_change_is_published_to_the_session_and_the_console() -> None:
    clock = FakeClock()
    coordinator = LocalCoordinator(clock)
    board = TransferBoard(coordinator, clock, lease_s=120)  # the holder is alive throughout
    session = await coordinator.subscribe("session:s9")
    console = await coordinator.subscribe("operators")
    t = await board.open("s9", "needs help", "console")
    await board.apply(t.id, "dial")
    clock.advance(31)
    assert [x.status for x in await board.sweep()] == [Status.FAILED]
    seen: list[Any] = []
    async for message in session:
        seen.append((message["status"], message["reason"]))
        if len(seen) == 3:
            break
    assert seen == [("requested", "needs help"), ("dialing", "needs help"), ("failed", "timeout")]
    first = await anext(aiter(console))
    assert first["session_id"] == "s9" and first["status"] == "requested"


async def test_a_lost_workers_transfer_expires_to_failed(coordinator: Coordinator) -> None:
    clock = FakeClock()
    if isinstance(coordinator, LocalCoordinator):
        coordinator = LocalCoordinator(clock)  # its TTLs on this test's clock
    board = TransferBoard(coordinator, clock, lease_s=0.2)
    t = await board.open(f"s-{id(clock)}", "x", "console")
    heard = await coordinator.subscribe(f"session:{t.session_id}")
    assert [x.id for x in await board.live()] == [t.id]
    assert await board.renew(t.id) is True
    clock.advance(1)  # nobody renewed: the holder died
    if not isinstance(coordinator, LocalCoordinator):
        # Redis keeps its own time: wait for the key's expiry itself (bounded)
        for _ in range(100):
            if await coordinator.get(f"transfer:{t.id}") is None:
                break
            await asyncio.sleep(0.01)
    assert await board.live() == []
    message = await anext(aiter(heard))
    assert (message["status"], message["reason"]) == ("failed", "error")
    await heard.close()


def test_a_briefing_from_history_says_why_what_and_the_last_words() -> None:
    from parley.handoff.briefing import briefing_from_history
    from parley.sessions.records import Message

    def m(i: int, role: str, text: str, blocks: list[dict[str, Any]] | None = None) -> Message:
        return Message(f"m{i}", "s", i, role, text, blocks or [])  # type: ignore[arg-type]

    history = [
        m(0, "assistant", "Hi, welcome to Bistro!"),
        m(1, "user", "I need a table for 12 on Saturday"),
        m(2, "tool", "check_availability: ok", [{"type": "tool_result", "name":
                                                "check_availability", "status": "ok"}]),
        m(3, "user", "can I talk to a manager please"),
    ]
    text = briefing_from_history("party too large", history)
    assert text.startswith("Reason for the transfer: party too large.")
    assert "“I need a table for 12 on Saturday”" in text
    assert "check availability (ok)" in text
    assert "“can I talk to a manager please”" in text
