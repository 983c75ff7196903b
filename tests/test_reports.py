"""Transcripts over HTTP, end-of-session reports to a real local webhook, /metrics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from parley.reports import SIGNATURE_HEADER, TIMESTAMP_HEADER, ReportSender, build_report, verify
from parley.testing.servers import serve_app
from tests.plugins.apps import RunningApp
from tests.test_chat_api import collect


class Webhook:
    """A local receiver that fails the first ``failures`` deliveries with 503."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.received: list[tuple[dict[str, str], bytes]] = []

    async def endpoint(self, request: Request) -> JSONResponse:
        body = await request.body()
        self.received.append((dict(request.headers), body))
        if len(self.received) <= self.failures:
            return JSONResponse({"error": "busy"}, status_code=503)
        return JSONResponse({"ok": True})


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[Webhook, str]]:
    hook = Webhook(failures=2)
    app = Starlette(routes=[Route("/hook", hook.endpoint, methods=["POST"])])
    async with serve_app(app) as base:
        yield hook, f"{base}/hook"


async def test_transcript_as_json_and_text(running: RunningApp) -> None:
    client = running.client()
    await client.create_session("demo")
    await collect(client.send("what are your opening hours?"))
    http = httpx.AsyncClient(base_url=running.base_url)
    auth = {"Authorization": f"Bearer {client.session['session_token']}"}
    url = f"/v1/sessions/{client.session_id}/transcript"
    body = (await http.get(url, headers=auth)).json()
    roles = [e["role"] for e in body["entries"]]
    assert roles[:3] == ["assistant", "user", "assistant"]
    assert body["entries"][1]["text"] == "what are your opening hours?"
    assert all(e["at"] for e in body["entries"])
    text = (await http.get(url, headers=auth, params={"format": "text"})).text
    assert "user (chat): what are your opening hours?" in text
    assert (await http.get(url)).status_code == 401
    assert (await http.get(url, headers={"Authorization": "Bearer nope"})).status_code in (403, 404)
    await http.aclose()
    await client.aclose()


async def test_a_report_is_signed_and_retried_until_delivered(
    webhook: tuple[Webhook, str], running: RunningApp
) -> None:
    hook, url = webhook
    client = running.client()
    await client.create_session("demo")
    await collect(client.send("hello"))
    await client.end()
    store = running.services.store
    session = await store.get_session(client.session_id)
    assert session is not None
    report = build_report(session, await store.list_messages(session.id), stats={"errors": 0})
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    async with httpx.AsyncClient() as http:
        sender = ReportSender(http, "s3cret", attempts=4, backoff_s=0.5, sleep=no_wait,
                              now=lambda: 1_764_000_000.0)
        assert await sender.send(url, report) is True
    assert waits == [0.5, 1.0]  # two 503s, then delivered
    headers, body = hook.received[-1]
    assert verify("s3cret", headers[TIMESTAMP_HEADER.lower()], body,
                  headers[SIGNATURE_HEADER.lower()])
    assert not verify("other", headers[TIMESTAMP_HEADER.lower()], body,
                      headers[SIGNATURE_HEADER.lower()])
    data: dict[str, Any] = json.loads(body)
    assert data["end_reason"] == "USER_ENDED" and data["session_id"] == client.session_id
    assert data["stats"]["user_turns"] == 1 and data["duration_s"] is not None
    assert [e["role"] for e in data["transcript"]][:2] == ["assistant", "user"]
    await client.aclose()


async def test_an_unreachable_webhook_gives_up_without_raising() -> None:
    async def no_wait(seconds: float) -> None:
        return None

    async with httpx.AsyncClient() as http:
        sender = ReportSender(http, "k", attempts=3, sleep=no_wait, now=lambda: 0.0)
        assert await sender.send("http://127.0.0.1:9/nowhere", {"x": 1}) is False


async def test_metrics_are_served_in_prometheus_format(running: RunningApp) -> None:
    running.services.metrics.terminations.labels("TIME_LIMIT").inc()
    async with httpx.AsyncClient(base_url=running.base_url) as http:
        answer = await http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert 'parley_sessions_ended_total{reason="TIME_LIMIT"} 1.0' in answer.text
    assert "# TYPE parley_turn_latency_seconds histogram" in answer.text


async def test_the_session_event_stream_hears_the_end(running: RunningApp) -> None:
    client = running.client()
    await client.create_session("demo")
    auth = {"Authorization": f"Bearer {client.session['session_token']}"}
    url = f"/v1/sessions/{client.session_id}/events"
    async with httpx.AsyncClient(base_url=running.base_url, timeout=10) as http:
        async with http.stream("GET", url, headers=auth) as stream:
            lines = stream.aiter_lines()
            assert await anext(lines) == ": subscribed"
            await client.end()
            seen = [line async for line in lines if line]
        assert seen[0] == "event: session_ended"
        assert json.loads(seen[1].removeprefix("data: "))["reason"] == "USER_ENDED"
        # an ended session answers at once
        async with http.stream("GET", url, headers=auth) as stream:
            again = [line async for line in stream.aiter_lines() if line]
        assert again[:2] == [": subscribed", "event: session_ended"]
    await client.aclose()


async def test_a_chat_only_session_is_warned_and_ended_on_time_with_a_report(
    make_app: Any, webhook: tuple[Webhook, str], tmp_path: Any
) -> None:
    """No request arrives: the sweeper warns, ends TIME_LIMIT, the event stream hears
    both, and the agent's webhook gets the signed report."""
    from pathlib import Path

    from parley.testing import FakeClock

    hook, url = webhook
    hook.failures = 0
    agents = Path(tmp_path) / "agents"
    agents.mkdir()
    (agents / "short.yaml").write_text(
        "name: short\nbrain: rules\ngreeting: Hi.\n"
        "limits: {max_duration_s: 60, warning_before_s: 30}\n"
        f"on_end: {{url: '{url}'}}\n"
    )
    clock = FakeClock()
    async with make_app(clock=clock, agents_dir=agents, webhook_secret="k") as app:
        client = app.client()
        await client.create_session("short")
        auth = {"Authorization": f"Bearer {client.session['session_token']}"}
        async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as http:
            events_url = f"/v1/sessions/{client.session_id}/events"
            async with http.stream("GET", events_url, headers=auth) as stream:
                lines = (line async for line in stream.aiter_lines() if line)
                assert await anext(lines) == ": subscribed"
                clock.advance(30)
                assert await anext(lines) == "event: warning"
                warning = json.loads((await anext(lines)).removeprefix("data: "))
                assert warning == {"type": "warning", "reason": "time_limit", "seconds_left": 30.0}
                clock.advance(30)
                assert await anext(lines) == "event: session_ended"
                ended = json.loads((await anext(lines)).removeprefix("data: "))
                assert ended["reason"] == "TIME_LIMIT"
        await app.services.reports.close()
        await client.aclose()
    headers, body = hook.received[-1]
    assert verify("k", headers["x-parley-timestamp"], body, headers["x-parley-signature"])
    assert json.loads(body)["end_reason"] == "TIME_LIMIT"
