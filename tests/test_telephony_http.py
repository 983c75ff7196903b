"""Telephony webhooks over a real socket: TwiML answers, signatures, stream tokens."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from parley.app import create_app
from parley.channels import telephony_http
from parley.channels.services import Services
from parley.channels.telephony_http import PhoneGate, StreamRefused
from parley.config import Settings
from parley.telephony.signatures import (
    StreamTokenError,
    StreamTokens,
    twilio_signature,
    twilio_signature_ok,
)
from parley.telephony.wire import StreamStarted
from parley.testing import FakeClock
from parley.testing.servers import serve_app
from tests.plugins.stores import sqlite_url

PUBLIC = "https://parley.example.com"
AUTH_TOKEN = "2bd9e9638872de601313dc77410d3b23"

# --- signature vectors ---------------------------------------------------------------------


def test_twilio_documented_signature_example() -> None:
    # Twilio's security documentation: auth token 12345, this URL and these fields.
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params.items()) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert twilio_signature_ok("12345", url, params.items(), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not twilio_signature_ok("12345", url, params.items(), "0/KCTR6DLpKmkAf8muzZqo1nDgQ")
    assert not twilio_signature_ok("12346", url, params.items(), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    tampered = {**params, "Digits": "1235"}
    assert not twilio_signature_ok("12345", url, tampered.items(), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not twilio_signature_ok("12345", url, params.items(), None)


def test_twilio_library_voice_request_vector() -> None:
    # The voice request in twilio-ruby's request validator spec (all empty fields included).
    params = {
        "ToState": "California",
        "CalledState": "California",
        "Direction": "inbound",
        "FromState": "CA",
        "AccountSid": "ACba8bc05eacf94afdae398e642c9cc32d",
        "Caller": "+14153595711",
        "CallerZip": "94108",
        "CallerCountry": "US",
        "From": "+14153595711",
        "FromCity": "SAN FRANCISCO",
        "CallerCity": "SAN FRANCISCO",
        "To": "+14157669926",
        "FromZip": "94108",
        "FromCountry": "US",
        "ToCity": "",
        "CallStatus": "ringing",
        "CalledCity": "",
        "CallerState": "CA",
        "CalledZip": "",
        "ToZip": "",
        "ToCountry": "US",
        "CallSid": "CA136d09cd59a3c0ec8dbff44da5c03f31",
        "CalledCountry": "US",
        "Called": "+14157669926",
        "ApiVersion": "2010-04-01",
        "ApplicationSid": "AP44efecad51364e80b133bb7c07eb8204",
    }
    url = "http://twiliotests.heroku.com/validate/voice"
    assert twilio_signature(AUTH_TOKEN, url, params.items()) == "oVb2kXoVy8GEfwBDjR8bk/ZZ6eA="


# --- stream tokens ---------------------------------------------------------------------------


def test_stream_token_is_bound_to_call_claims_and_time() -> None:
    tokens = StreamTokens("s" * 32, ttl_s=30)
    claims = {"agent": "demo", "caller": "+15550001111"}
    token = tokens.issue("CA1", claims, now=1000.0)
    assert tokens.verify(token, "CA1", claims, now=1029.0).claims == claims
    with pytest.raises(StreamTokenError, match="expired"):
        tokens.verify(token, "CA1", claims, now=1032.0)
    with pytest.raises(StreamTokenError, match="match"):
        tokens.verify(token, "CA2", claims, now=1001.0)
    with pytest.raises(StreamTokenError, match="match"):
        tokens.verify(token, "CA1", {**claims, "agent": "other"}, now=1001.0)
    with pytest.raises(StreamTokenError, match="match"):
        StreamTokens("t" * 32).verify(token, "CA1", claims, now=1001.0)
    for bad in ("", "abc", "1.2", "x.y.z"):
        with pytest.raises(StreamTokenError, match="malformed"):
            tokens.verify(bad, "CA1", claims, now=1001.0)
    with pytest.raises(ValueError):
        StreamTokens("short")


# --- the webhook over HTTP --------------------------------------------------------------------


AppRunner = Callable[..., AbstractAsyncContextManager[tuple[str, Services]]]


@pytest.fixture
def run_app(tmp_path: Path) -> AppRunner:
    @asynccontextmanager
    async def runner(**overrides: Any) -> AsyncIterator[tuple[str, Services]]:
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=sqlite_url(tmp_path),
            public_url=PUBLIC,
            **overrides,
        )
        app = create_app(settings, clock=FakeClock())
        async with serve_app(app) as base:
            yield base, app.state.services

    return runner


def call_form(**extra: str) -> dict[str, str]:
    return {
        "CallSid": "CA136d09cd59a3c0ec8dbff44da5c03f31",
        "AccountSid": "ACba8bc05eacf94afdae398e642c9cc32d",
        "From": "+14153595711",
        "To": "+14157669926",
        "Direction": "inbound",
        "CallStatus": "ringing",
        **extra,
    }


async def post_signed(
    base: str, path: str, form: dict[str, str], token: str | None, query: str = ""
) -> httpx.Response:
    headers = {}
    if token is not None:
        url = PUBLIC + path + (f"?{query}" if query else "")
        headers["X-Twilio-Signature"] = twilio_signature(token, url, form.items())
    target = base + path + (f"?{query}" if query else "")
    async with httpx.AsyncClient() as client:
        return await client.post(
            target, content=urlencode(form), headers={**headers, "Content-Type": _FORM}
        )


_FORM = "application/x-www-form-urlencoded"


def stream_of(answer: str) -> tuple[str, dict[str, str]]:
    root = ET.fromstring(answer)
    stream = root.find("./Connect/Stream")
    assert stream is not None, answer
    params = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
    return stream.attrib["url"], params


def started(params: dict[str, str], call_sid: str = call_form()["CallSid"]) -> StreamStarted:
    return StreamStarted(stream_id="MZ1", call_id=call_sid, account_id="AC1", parameters=params)


async def test_signed_voice_webhook_answers_connect_stream_with_a_one_time_token(
    run_app: AppRunner,
) -> None:
    async with run_app(twilio_auth_token=AUTH_TOKEN) as (base, services):
        resp = await post_signed(base, "/v1/telephony/twilio/voice", call_form(), AUTH_TOKEN)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith("application/xml")
        url, params = stream_of(resp.text)
        assert url == "wss://parley.example.com/v1/telephony/twilio/stream"
        assert params["agent"] == "demo"
        assert params["caller"] == "+14153595711"
        assert params["called"] == "+14157669926"
        gate: PhoneGate = services.phone_gate
        claims = await gate.authorize(started(params))
        assert claims.claims == {
            "agent": "demo",
            "caller": "+14153595711",
            "called": "+14157669926",
        }
        with pytest.raises(StreamRefused, match="already used"):
            await gate.authorize(started(params))
        with pytest.raises(StreamRefused, match="match"):
            await gate.authorize(started({**params, "agent": "other"}))
        with pytest.raises(StreamRefused, match="match"):
            await gate.authorize(started(params, call_sid="CAother"))
        with pytest.raises(StreamRefused, match="malformed"):
            await gate.authorize(started({k: v for k, v in params.items() if k != "token"}))


async def test_the_voice_webhook_starts_building_the_phone_recogniser(run_app: AppRunner) -> None:
    """The phone-grade recogniser takes seconds to build the first time (its channel
    transform and language model); the webhook comes a moment before the media stream,
    so the build starts there and the caller's first words do not wait for it."""
    async with run_app() as (base, services):
        hub = services.engine_hub
        assert hub.warming("demo") is None and not hub.phone_stt_ready("demo")
        resp = await post_signed(base, "/v1/telephony/twilio/voice", call_form(), None)
        assert resp.status_code == 200, resp.text
        warming = hub.warming("demo")
        assert warming is not None  # started by the webhook, before any stream
        await warming
        assert hub.phone_stt_ready("demo")


async def test_bad_or_missing_signature_is_403_and_nothing_is_created(run_app: AppRunner) -> None:
    async with run_app(twilio_auth_token=AUTH_TOKEN) as (base, services):
        path = "/v1/telephony/twilio/voice"
        missing = await post_signed(base, path, call_form(), None)
        assert missing.status_code == 403 and missing.json()["code"] == "bad_signature"
        wrong = await post_signed(base, path, call_form(), "f" * 32)
        assert wrong.status_code == 403
        # signed for one body, sent with another
        form = call_form()
        url = PUBLIC + path
        sig = twilio_signature(AUTH_TOKEN, url, form.items())
        async with httpx.AsyncClient() as client:
            tampered = await client.post(
                base + path,
                content=urlencode({**form, "From": "+19999999999"}),
                headers={"X-Twilio-Signature": sig, "Content-Type": _FORM},
            )
        assert tampered.status_code == 403
        # a forged Host header does not change the URL that is checked
        async with httpx.AsyncClient() as client:
            forged = await client.post(
                base + path,
                content=urlencode(form),
                headers={
                    "X-Twilio-Signature": twilio_signature(
                        AUTH_TOKEN, "https://evil.example" + path, form.items()
                    ),
                    "Content-Type": _FORM,
                    "Host": "evil.example",
                },
            )
        assert forged.status_code == 403
        assert await services.coordinator.get("phone:call-status:" + form["CallSid"]) is None


async def test_agent_from_query_then_number_mapping_then_default(run_app: AppRunner) -> None:
    mapping = {"+14157669926": "demo"}
    async with run_app(
        twilio_auth_token=AUTH_TOKEN, phone_agents=mapping, twilio_default_agent="nobody"
    ) as (base, services):
        path = "/v1/telephony/twilio/voice"
        resp = await post_signed(base, path, call_form(), AUTH_TOKEN)
        assert stream_of(resp.text)[1]["agent"] == "demo"  # the called number's mapping
        other = await post_signed(base, path, call_form(To="+10000000000"), AUTH_TOKEN)
        assert other.status_code == 404 and other.json()["code"] == "agent_not_found"
        query = "agent=demo&session_id=s-123"
        q = await post_signed(base, path, call_form(To="+10000000000"), AUTH_TOKEN, query)
        assert q.status_code == 200, q.text
        params = stream_of(q.text)[1]
        assert params["agent"] == "demo" and params["session_id"] == "s-123"
        gate: PhoneGate = services.phone_gate
        assert (await gate.authorize(started(params))).claims["session_id"] == "s-123"


async def test_unsigned_webhook_is_answered_when_no_auth_token_is_configured(
    run_app: AppRunner,
) -> None:
    async with run_app() as (base, _):
        resp = await post_signed(base, "/v1/telephony/twilio/voice", call_form(), None)
        assert resp.status_code == 200
        assert stream_of(resp.text)[0].startswith("wss://parley.example.com/")
        no_sid = await post_signed(base, "/v1/telephony/twilio/voice", {"From": "+1"}, None)
        assert no_sid.status_code == 422


async def test_without_public_url_the_webhook_says_not_configured(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", database_url=sqlite_url(tmp_path))
    app = create_app(settings)
    async with serve_app(app) as base:
        resp = await post_signed(base, "/v1/telephony/twilio/voice", call_form(), None)
    assert resp.status_code == 503 and resp.json()["code"] == "not_configured"


async def test_status_callback_is_signed_and_reaches_the_sink(run_app: AppRunner) -> None:
    async with run_app(twilio_auth_token=AUTH_TOKEN) as (base, services):
        path = "/v1/telephony/twilio/status"
        form = call_form(CallStatus="completed")
        assert (await post_signed(base, path, form, None)).status_code == 403
        assert (await post_signed(base, path, form, AUTH_TOKEN)).status_code == 204
        stored = await services.coordinator.get("phone:call-status:" + form["CallSid"])
        assert stored == "completed"


def test_twiml_escapes_parameter_values() -> None:
    from parley.telephony import twiml

    answer = twiml.connect_stream("wss://h/p?a=1&b=2", {"caller": '"<Bob & Co>"'})
    url, params = stream_of(answer)
    assert url == "wss://h/p?a=1&b=2" and params == {"caller": '"<Bob & Co>"'}
    assert twiml.stream_url("http://localhost:8000/", "/x") == "ws://localhost:8000/x"
    root = ET.fromstring(twiml.say_and_hang_up("No <agent> here & now"))
    assert root.findtext("Say") == "No <agent> here & now" and root.find("Hangup") is not None
