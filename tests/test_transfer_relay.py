"""Warm transfer across workers (issue 11): the caller's voice socket on worker A,
the operator's voice leg on worker B, two app instances on one PostgreSQL and one
Redis. Each direction's audio is relayed through Redis pub/sub; tones from each side
must arrive on the other at their frequency and level, nothing of the AI after
``joined``, and either side hanging up ends the bridge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets

from tests.plugins.apps import AppFactory, RunningApp
from tests.test_transfer_console import AGENT, KEY, analyse, caller_on_hold, tone, ws_url
from tests.test_voice_ws import Voice


@asynccontextmanager
async def two_workers(
    make_app: AppFactory, tmp_path: Path, backend: dict[str, Any]
) -> AsyncIterator[tuple[RunningApp, RunningApp]]:
    if not backend.get("redis_url"):
        pytest.skip("two workers share state through Redis")
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "desk.yaml").write_text(AGENT)
    async with (
        make_app(agents_dir=agents, operator_key=KEY) as a,
        make_app(agents_dir=agents, operator_key=KEY) as b,
    ):
        yield a, b


async def bridged(caller: Voice, human: Voice) -> None:
    """Tones both ways until both sides hear ``joined``; then check what each heard."""
    caller.audio.clear()
    up, down = tone(440, 1.0), tone(1000, 1.0)
    for i in range(0, len(up), 640):
        await caller.send(up[i : i + 640])
        await human.send(down[i : i + 640])
    await caller.until("transfer", status="joined")
    await human.until("transfer", status="joined")
    f_human, level_human = analyse(b"".join(human.audio))
    f_caller, level_caller = analyse(b"".join(caller.audio))
    assert abs(f_human - 440) < 10 and abs(f_caller - 1000) < 10
    expected = 0.3 / np.sqrt(2)
    assert abs(level_human - expected) < 0.05 and abs(level_caller - expected) < 0.05


async def test_voice_caller_on_a_and_console_on_b_hear_each_other_and_the_human_hangs_up(
    make_app: AppFactory, tmp_path: Path, backend: dict[str, Any]
) -> None:
    async with (
        two_workers(make_app, tmp_path, backend) as (a, b),
        websockets.connect(ws_url(a)) as cws,
        websockets.connect(ws_url(b)) as ows,
    ):
        caller, transfer_id, session_id = await caller_on_hold(a, cws)
        human = Voice(ows)
        start = {"type": "start", "transfer_id": transfer_id, "operator_key": KEY}
        await human.send({**start, "sample_rate": 16000})
        assert (await human.until("ready"))["caller_channel"] == "voice"
        await human.until("briefing")
        await caller.until("transfer", status="briefing")
        await bridged(caller, human)

        await human.send({"type": "text", "text": "Hi, this is Sam."})
        assert (await caller.until("human_message"))["text"] == "Hi, this is Sam."
        await caller.send({"type": "text", "text": "thanks Sam"})
        assert (await human.until("caller_message"))["text"] == "thanks Sam"
        after = caller.events[caller.types().index("transfer") :]
        joined_at = next(i for i, e in enumerate(after) if e.get("status") == "joined")
        assert not [e for e in after[joined_at:] if e["type"].startswith("assistant")]
        assert not [e for e in after[joined_at:] if e["type"].startswith("transcript")]

        await ows.close()  # the human on B hangs up
        await caller.until("transfer", status="ended")
        assert await caller.until("assistant_text", status="start") is not None

        messages = await a.services.store.list_messages(session_id)
        roles = [(m.role, m.text) for m in messages]
        assert roles.count(("human_agent", "Hi, this is Sam.")) == 1
        assert roles.count(("user", "thanks Sam")) == 1
        assert roles[-1][0] == "assistant" and "left the conversation" in roles[-1][1]
        assert not a.services.transfers.relays and not b.services.transfers.relays


async def test_the_caller_on_a_hanging_up_ends_the_bridge_on_b(
    make_app: AppFactory, tmp_path: Path, backend: dict[str, Any]
) -> None:
    async with (
        two_workers(make_app, tmp_path, backend) as (a, b),
        websockets.connect(ws_url(a)) as cws,
        websockets.connect(ws_url(b)) as ows,
    ):
        caller, transfer_id, _session_id = await caller_on_hold(a, cws)
        human = Voice(ows)
        await human.send({"type": "start", "transfer_id": transfer_id, "operator_key": KEY})
        await human.until("briefing")
        await bridged(caller, human)
        await cws.close()
        assert (await human.until("transfer"))["status"] == "ended"
        await human.closed()
        transfer = await b.services.transfers.board.get(transfer_id)
        assert transfer is not None and transfer.status.value == "ended"
        assert not a.services.transfers.relays  # A let go of the relay
