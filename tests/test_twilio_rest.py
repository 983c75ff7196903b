"""Outbound calls: the Twilio REST client against a local server speaking Twilio's API,
and ``POST /v1/calls`` through to the answer webhook and status callbacks."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from parley.app import create_app
from parley.channels import telephony_http
from parley.channels.telephony_http import CallStatus, PhoneGate
from parley.config import Settings
from parley.telephony.twilio_rest import (
    TwilioApiError,
    TwilioRestClient,
    TwilioUnavailable,
)
from parley.telephony.wire import StreamStarted
from parley.testing import FakeClock
from parley.testing.fake_twilio import FakeTwilio
from parley.testing.servers import serve_app
from tests.plugins.stores import sqlite_url

ACCOUNT = "AC" + "a1" * 16
TOKEN = "b2" * 16
PUBLIC = "https://parley.example.com"
OPERATOR = "operator-key-123"


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio(ACCOUNT, TOKEN) as server:
        yield server


def rest_client(twilio: FakeTwilio, token: str = TOKEN) -> TwilioRestClient:
    return TwilioRestClient(ACCOUNT, token, base_url=twilio.base_url)


async def test_create_update_and_hang_up_a_call(twilio: FakeTwilio) -> None:
    client = rest_client(twilio)
    try:
        call = await client.create_call(
            "+15550001111",
            "+15559990000",
            "https://x.example/voice",
            status_callback="https://x.example/status",
        )
        assert call.sid.startswith("CA") and call.status == "queued"
        assert (call.to, call.from_) == ("+15550001111", "+15559990000")
        recorded = twilio.calls[call.sid]
        assert recorded.url == "https://x.example/voice"
        assert recorded.status_callback == "https://x.example/status"
        assert recorded.status_events == ["initiated", "ringing", "answered", "completed"]
        _, path, form = twilio.requests[-1]
        assert path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
        assert form["Method"] == ["POST"] and form["StatusCallbackMethod"] == ["POST"]

        moved = await client.update_call(call.sid, url="https://x.example/other")
        assert moved.sid == call.sid and recorded.url == "https://x.example/other"
        await client.update_call(call.sid, twiml="<Response><Hangup/></Response>")
        assert recorded.twiml == "<Response><Hangup/></Response>"
        with pytest.raises(ValueError):
            await client.update_call(call.sid)

        ended = await client.hang_up(call.sid)
        assert ended.status == "completed" and recorded.status == "completed"
        assert recorded.updates[-1] == {"Status": ["completed"]}
    finally:
        await client.aclose()


async def test_errors_carry_twilio_status_and_code(twilio: FakeTwilio) -> None:
    bad_auth = rest_client(twilio, token="wrong")
    try:
        with pytest.raises(TwilioApiError) as caught:
            await bad_auth.create_call("+15550001111", "+15559990000", "https://x/v")
        assert (caught.value.status, caught.value.code, caught.value.retryable) == (
            401,
            20003,
            False,
        )
    finally:
        await bad_auth.aclose()
    client = rest_client(twilio)
    try:
        with pytest.raises(TwilioApiError) as caught:
            await client.hang_up("CA" + "0" * 32)
        assert caught.value.status == 404 and caught.value.code == 20404
        twilio.fail_next = (503, 20500, "Internal Server Error")
        with pytest.raises(TwilioApiError) as caught:
            await client.create_call("+15550001111", "+15559990000", "https://x/v")
        assert caught.value.retryable
        with pytest.raises(TwilioApiError) as caught:
            await client.create_call("+15550001111", "", "https://x/v")
        assert caught.value.code == 21213
    finally:
        await client.aclose()


async def test_unreachable_twilio_is_a_retryable_local_error() -> None:
    client = TwilioRestClient(ACCOUNT, TOKEN, base_url="http://127.0.0.1:9", timeout_s=2)
    try:
        with pytest.raises(TwilioUnavailable) as caught:
            await client.hang_up("CA1")
        assert caught.value.retryable
    finally:
        await client.aclose()


# --- POST /v1/calls end to end ----------------------------------------------------------------


async def test_outbound_call_answer_webhook_and_status_callbacks(
    twilio: FakeTwilio, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=sqlite_url(tmp_path),
        public_url=PUBLIC,
        operator_key=OPERATOR,
        twilio_account_sid=ACCOUNT,
        twilio_auth_token=TOKEN,
        twilio_from="+15559990000",
        twilio_api_base=twilio.base_url,
    )
    app = create_app(settings, clock=FakeClock())
    statuses: list[CallStatus] = []

    async def sink(update: CallStatus) -> None:
        statuses.append(update)

    services = app.state.services
    telephony_http.install(app, services, on_status=sink)
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as http:
        twilio.tunnel = (PUBLIC, base)
        body = {"to": "+15550001111", "agent": "demo", "template_vars": {"name": "Ada"}}
        assert (await http.post("/v1/calls", json=body)).status_code == 401
        wrong = await http.post("/v1/calls", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403
        auth = {"Authorization": f"Bearer {OPERATOR}"}
        bad = await http.post("/v1/calls", json={**body, "to": "555"}, headers=auth)
        assert bad.status_code == 422
        placed = await http.post("/v1/calls", json=body, headers=auth)
        assert placed.status_code == 201, placed.text
        out = placed.json()
        session = await services.store.get_session(out["session_id"])
        assert session is not None and session.current_channel == "phone"
        assert session.template_vars == {"name": "Ada", "caller": "+15550001111"}
        call = twilio.calls[out["call_sid"]]
        assert call.url is not None and call.url.startswith(PUBLIC + "/v1/telephony/twilio/voice?")

        answered = await twilio.answer(call.sid)  # the callee picks up
        assert answered.status_code == 200, answered.text
        stream = ET.fromstring(answered.text).find("./Connect/Stream")
        assert stream is not None
        params = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
        assert params["session_id"] == out["session_id"] and params["caller"] == "+15550001111"
        gate: PhoneGate = services.phone_gate
        claims = await gate.authorize(StreamStarted("MZ1", call.sid, ACCOUNT, params))
        assert claims.claims["session_id"] == out["session_id"]

        assert (await twilio.send_status(call.sid, "completed")).status_code == 204
        assert [(s.call_sid, s.status, s.session_id) for s in statuses] == [
            (call.sid, "completed", out["session_id"])
        ]


async def test_failed_dial_ends_the_session_and_says_why(
    twilio: FakeTwilio, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=sqlite_url(tmp_path),
        public_url=PUBLIC,
        operator_key=OPERATOR,
        twilio_account_sid=ACCOUNT,
        twilio_auth_token=TOKEN,
        twilio_from="+15559990000",
        twilio_api_base=twilio.base_url,
    )
    app = create_app(settings, clock=FakeClock())
    telephony_http.install(app, app.state.services)
    auth = {"Authorization": f"Bearer {OPERATOR}"}
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as http:
        twilio.fail_next = (400, 21211, "The 'To' number is not a valid phone number.")
        resp = await http.post("/v1/calls", json={"to": "+15550001111"}, headers=auth)
        assert resp.status_code == 502
        assert resp.json()["code"] == "carrier_error" and "21211" in resp.json()["message"]
        assert not twilio.calls and resp.json()["retryable"] is False
        ended = await app.state.services.store.get_session(resp.json()["session_id"])
        assert ended is not None and (ended.status, ended.end_reason) == ("ended", "ERROR")
        unknown = await http.post(
            "/v1/calls", json={"to": "+15550001111", "agent": "nobody"}, headers=auth
        )
        assert unknown.status_code == 404


async def test_outbound_calls_need_configuration(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "d", database_url=sqlite_url(tmp_path), operator_key=OPERATOR
    )
    app = create_app(settings)
    telephony_http.install(app, app.state.services)
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as http:
        resp = await http.post(
            "/v1/calls",
            json={"to": "+15550001111"},
            headers={"Authorization": f"Bearer {OPERATOR}"},
        )
    assert resp.status_code == 503 and resp.json()["code"] == "not_configured"
