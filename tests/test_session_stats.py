"""Per-session counters: counted in memory per connection, one store write at detach
(voice), per turn (chat) and at the end; in ``GET /v1/sessions/{id}`` and the report."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from parley.client import ParleyClient
from parley.sessions.sql import SqlStore
from parley.sessions.stats import COUNTERS, SessionStats, merged
from tests.plugins.apps import AppFactory, RunningApp
from tests.test_reports import Webhook, webhook  # noqa: F401 (a fixture)
from tests.test_resume_workers import until_quiet
from tests.test_voice_ws import open_voice, quiet, tone

AGENT = """
name: statsy
brain: rules
greeting: "Hi."
fallback: "Pardon?"
engines: {{stt: fake, tts: fake, vad: fake_energy}}
on_end: {{url: '{url}'}}
rules:
  - intent: reserve
    keywords: [table]
    say: "Sure thing."
"""
CHUNK = 640
FRAMES_PER_TURN = len(quiet(0.3) + tone(0.6) + quiet(0.8)) // CHUNK  # as Voice.speak sends


def test_counts_are_taken_once_and_merged_into_what_is_stored() -> None:
    stats = SessionStats(audio_frames_in=3, turns=1)
    stats.error("bad_message")
    stats.error("stt_failed")
    assert stats.take() == {"audio_frames_in": 3, "turns": 1, "errors": 2, "bad_messages": 1}
    assert stats.take() == {}
    stored = {"audio_frames_in": 5, "turns": 2}
    assert merged(stored, {"turns": 1, "unknown": 7}) == {
        name: {"audio_frames_in": 5, "turns": 3}.get(name, 0) for name in COUNTERS
    }
    assert merged(None, {}) == dict.fromkeys(COUNTERS, 0)


async def test_the_store_adds_counts_also_when_writers_race(store: SqlStore) -> None:
    session = await store.create_session(
        agent="a", token_hash="h", resume_token="r", template_vars={}, metadata={}, expires_at=None
    )
    assert session.stats == {}
    await asyncio.gather(
        *(store.add_stats(session.id, {"turns": 1, "errors": 2}) for _ in range(8))
    )
    await store.add_stats(session.id, {})
    await store.add_stats("no-such-session", {"turns": 1})
    again = await store.get_session(session.id)
    assert again is not None
    assert again.stats == merged({}, {"turns": 8, "errors": 16})


@pytest.fixture
async def app(
    make_app: AppFactory,
    tmp_path: Path,
    webhook: tuple[Webhook, str],  # noqa: F811
) -> AsyncIterator[RunningApp]:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "statsy.yaml").write_text(AGENT.format(url=webhook[1]))
    async with make_app(agents_dir=agents, webhook_secret="k") as running:
        yield running


async def test_voice_and_chat_counts_reach_the_session_and_the_report(
    app: RunningApp,
    webhook: tuple[Webhook, str],  # noqa: F811
) -> None:
    hook, _ = webhook
    hook.failures = 0
    voice, ready = await open_voice(app, agent="statsy")
    await voice.until("done")  # the greeting
    await until_quiet(voice)  # its playout is over: the speech is a turn, not a backchannel
    await voice.speak()
    await voice.until("done")
    await voice.send("not json")
    assert (await voice.until("error"))["code"] == "bad_message"
    await voice.ws.close()  # dropped: the counts are stored at detach
    client = ParleyClient(app.base_url)
    client.session = {"session_id": ready["session_id"], "session_token": ready["session_token"]}
    stats = await _stats_when(client, lambda s: s["turns"] == 1)
    out = stats["audio_frames_out"]
    assert out > 0
    assert stats == {
        "audio_frames_in": FRAMES_PER_TURN,
        "audio_frames_out": out,
        "turns": 1,
        "interruptions": 0,
        "errors": 1,
        "bad_messages": 1,
    }
    async for _ in client.send("a table please"):
        pass
    assert (await client.get(""))["stats"]["turns"] == 2
    again, _ = await open_voice(app, **client.session)
    await again.speak()
    await again.until("done")
    await again.send({"type": "end"})  # ends while attached: the report has these counts
    await again.until("session_ended")  # published before the report is handed over
    for _ in range(250):
        if hook.received:
            break
        await asyncio.sleep(0.02)
    report = json.loads(hook.received[-1][1])
    assert report["stats"]["turns"] == 3
    assert report["stats"]["audio_frames_in"] == 2 * FRAMES_PER_TURN
    assert report["stats"]["audio_frames_out"] > out
    assert report["stats"]["bad_messages"] == 1
    final = (await client.get(""))["stats"]
    assert {k: final[k] for k in COUNTERS} == {k: report["stats"][k] for k in COUNTERS}
    await again.ws.close()
    await client.aclose()


async def _stats_when(client: ParleyClient, ready: Any) -> dict[str, Any]:
    """The session's stats once ``ready(stats)`` holds (the detach runs after the close)."""
    for _ in range(250):
        stats: dict[str, Any] = (await client.get(""))["stats"]
        if ready(stats):
            return stats
        await asyncio.sleep(0.02)
    raise AssertionError(f"stats never settled: {stats}")
