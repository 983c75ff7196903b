"""Warm transfer across two workers on PostgreSQL + Redis (two app instances, one
database, one Redis): the console on worker B sees the transfer worker A opened, and
when A stops renewing its lease (it died), the transfer expires in Redis, one worker
announces it ``failed{error}`` and the caller has the AI back, on worker B too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.client import ParleyClient
from tests.plugins.apps import AppFactory
from tests.test_phone_calls import eventually
from tests.test_transfer_console import AGENT, KEY, next_published


async def test_a_dead_worker_s_transfer_expires_and_the_other_worker_gives_the_ai_back(
    make_app: AppFactory, tmp_path: Path, backend: dict[str, Any]
) -> None:
    if not backend.get("redis_url"):
        pytest.skip("two workers share state through Redis")
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "desk.yaml").write_text(AGENT)
    async with (
        make_app(agents_dir=agents, operator_key=KEY) as a,
        make_app(agents_dir=agents, operator_key=KEY) as b,
    ):
        for worker in (a, b):
            worker.services.transfers.board.lease_s = 1.0  # Redis TTL, real seconds
        caller = a.client()
        await caller.create_session("desk")
        events = [e async for e in caller.send("I want a human")]
        transfer_id = next(e.data["transfer_id"] for e in events if e.event == "transfer")
        channel = await b.services.lifecycle.subscribe(caller.session_id)
        try:
            async with httpx.AsyncClient(base_url=b.base_url) as http:
                auth = {"Authorization": f"Bearer {KEY}"}
                listed = (await http.get("/v1/operator/transfers", headers=auth)).json()
            assert [t["transfer_id"] for t in listed["transfers"]] == [transfer_id]
            desk_a = a.services.transfers
            assert transfer_id in desk_a.held  # A holds it and renews its lease
            desk_a.held.clear()  # A is gone: nobody renews it

            failed = await next_published(aiter(channel), "transfer", status="failed")
            assert failed == {**failed, "transfer_id": transfer_id, "reason": "error"}
            back = await next_published(aiter(channel), "assistant_message")
            assert "nobody from the team" in back["text"]
        finally:
            await channel.close()
        assert await b.services.transfers.board.get(transfer_id) is None

        # The caller talks to the AI again, through worker B.
        on_b = ParleyClient(b.base_url)
        on_b.session = caller.session
        replies = [e async for e in on_b.send("hello")]
        assert any(e.event == "assistant_message" for e in replies)

        async def said_once() -> list[str]:
            messages = await on_b.messages()
            return [m["text"] for m in messages if "nobody from the team" in m["text"]]

        assert len(await eventually(said_once)) == 1  # announced by one worker only
        await on_b.aclose()
        await caller.aclose()
