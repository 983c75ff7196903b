"""Fuzzing the HTTP API from its own OpenAPI document: never a server error.

A real server on 127.0.0.1 (in a thread with its own event loop, since schemathesis
calls it with a blocking client) serves ``/openapi.json``; schemathesis generates
requests for every operation, schema-conforming and schema-violating, and each answer
must be:

- below 500, and for 4xx the documented ``{"code", "message"}`` JSON;
- what the OpenAPI document says: a documented status, media type and body shape;
- for an SSE turn, free of ``internal_error`` events (a crashed turn streams 200);
- with no ERROR logged by the server (an unhandled exception, a crashed turn).

Path parameters and the bearer token are real often enough to reach the routes'
bodies: a fresh session, a session waiting for an approval, or whatever was generated.
Runs on SQLite + in-process coordination and on PostgreSQL + Redis. The number of
examples per operation and mode is ``PARLEY_FUZZ_EXAMPLES`` (default 12, for CI, with
the same cases every run; setting it also draws new cases each run).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from parley.app import create_app
from parley.config import Settings
from parley.testing.fake_twilio import FakeTwilio
from parley.testing.servers import serve_app
from tests.plugins.stores import postgres_url, redis_prefix, redis_url, sqlite_url

EXAMPLES = int(os.environ.get("PARLEY_FUZZ_EXAMPLES", "12"))
# CI replays the same cases every run; a long run (PARLEY_FUZZ_EXAMPLES set) explores anew.
DERANDOMIZE = "PARLEY_FUZZ_EXAMPLES" not in os.environ
OPERATOR_KEY = "fuzz-operator-key-0123456789abcdef"
# the answers are the ones the OpenAPI document describes: status, media type, body shape
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


# --- a real server in a thread --------------------------------------------------------------


class ErrorLog(logging.Handler):
    """Keeps every ERROR (or worse) record logged while it is installed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@asynccontextmanager
async def _database(kind: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    if kind == "sqlite":
        yield {"database_url": sqlite_url(tmp_path)}
        return
    async with postgres_url() as url, redis_prefix() as prefix:
        yield {"database_url": url, "redis_url": redis_url(), "redis_prefix": prefix}


@dataclass
class ThreadedServer:
    """``serve_app`` run by its own event loop in a daemon thread."""

    backend: AbstractAsyncContextManager[dict[str, Any]]
    data_dir: Path
    base_url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _ready: Future[str] = field(default_factory=Future)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ThreadedServer:
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self._thread.start()
        self.base_url = self._ready.result(timeout=60)
        return self

    def __exit__(self, *_: object) -> None:
        assert self._loop is not None and self._stop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            async with self.backend as values, FakeTwilio("AC" + "0" * 32, "tw-token") as twilio:
                settings = Settings(
                    data_dir=self.data_dir,
                    session_rate_limit=0,
                    operator_key=OPERATOR_KEY,
                    # outbound calls configured against a local Twilio REST server
                    twilio_account_sid=twilio.account_sid,
                    twilio_auth_token=twilio.auth_token,
                    twilio_from="+15550000000",
                    twilio_api_base=twilio.base_url,
                    public_url="https://parley.example.com",
                    **values,
                )
                async with serve_app(create_app(settings)) as base_url:
                    self._ready.set_result(base_url)
                    await self._stop.wait()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            raise


@pytest.fixture(params=["sqlite", "postgres"])
def fuzz_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ThreadedServer]:
    with ThreadedServer(_database(request.param, tmp_path), tmp_path / "data") as server:
        yield server


# --- real sessions for the generated requests to reach --------------------------------------


@dataclass
class Sessions:
    http: httpx.Client
    awaiting: dict[str, str]  # session_id, token and tool_call_id of one awaiting approval

    def fresh(self) -> dict[str, str]:
        created = self.http.post("/v1/sessions", json={"agent": "demo"}).json()
        return {"session_id": created["session_id"], "token": created["session_token"]}

    @classmethod
    def start(cls, base_url: str) -> Sessions:
        http = httpx.Client(base_url=base_url, timeout=30)
        sessions = cls(http, {})
        booking = sessions.fresh()
        auth = {"Authorization": f"Bearer {booking['token']}"}
        url = f"/v1/sessions/{booking['session_id']}/messages"
        for text in ("a table for 2 tomorrow at 7pm", "my name is Ann Lee"):
            reply = http.post(url, json={"text": text}, headers=auth).text
        assert "approval_requested" in reply, reply
        call = json.loads(reply.split("event: approval_requested\ndata: ")[1].split("\n")[0])
        sessions.awaiting = {**booking, "tool_call_id": call["tool_call_id"]}
        return sessions


def point_at(case: schemathesis.Case, sessions: Sessions, target: str) -> None:
    """Aim a generated case at a real session (or leave what was generated)."""
    if target == "generated":
        return
    chosen = sessions.awaiting if target == "awaiting" else sessions.fresh()
    params = case.path_parameters
    if params is not None and "session_id" in params:
        params["session_id"] = chosen["session_id"]
        if "tool_call_id" in params and "tool_call_id" in chosen:
            params["tool_call_id"] = chosen["tool_call_id"]
    token = OPERATOR_KEY if target == "operator" else chosen["token"]
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


def assert_answered(response: Any, log: ErrorLog) -> None:
    request = f"{response.request.method} {response.request.url}"
    body = response.content.decode("utf-8", errors="replace")
    assert response.status_code < 500, f"{request} -> {response.status_code}: {body[:500]}"
    if response.status_code >= 400:
        error = json.loads(response.content)
        assert isinstance(error.get("code"), str) and isinstance(error.get("message"), str), body
    if "text/event-stream" in str(response.headers.get("content-type")):
        assert '"internal_error"' not in body, f"{request}: a turn crashed: {body[-500:]}"
    assert not log.records, f"{request}: the server logged {log.records[0].getMessage()}"


# --- the fuzz -------------------------------------------------------------------------------


def test_no_request_gets_a_server_error(fuzz_server: ThreadedServer) -> None:
    base_url = fuzz_server.base_url
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    sessions = Sessions.start(base_url)
    log = ErrorLog()
    logging.getLogger().addHandler(log)
    targets = st.sampled_from(["generated", "fresh", "fresh", "awaiting", "operator"])
    try:
        # The session event stream lives until the session ends (tests/test_reports.py
        # covers it): a fuzzer would wait on each call.
        operations = [
            op
            for op in (result.ok() for result in schema.get_all_operations())
            if not op.path.endswith("/events")
        ]
        assert len(operations) >= 10, [op.label for op in operations]
        ran: list[str] = []
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    database=None,
                    derandomize=DERANDOMIZE,
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(mode), target=targets)
                def call(case: schemathesis.Case, target: str) -> None:
                    point_at(case, sessions, target)
                    response = case.call(base_url=base_url, timeout=30)
                    assert_answered(response, log)
                    case.validate_response(response, checks=CONFORMANCE)

                try:
                    call()
                except Unsatisfiable:
                    # Only unconstrained strings (no body): no request violates the schema.
                    assert mode == GenerationMode.NEGATIVE, operation.label
                    continue
                ran.append(f"{mode.value} {operation.label}")
        negative = [label for label in ran if label.startswith("negative")]
        assert len(negative) >= 4, ran  # every operation with a body, at least
    finally:
        logging.getLogger().removeHandler(log)
        sessions.http.close()
