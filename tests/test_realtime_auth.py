"""Realtime access: API keys kept as hashes, the upgrade credential forms, and ephemeral
client secrets minted over real HTTP and redeemed once (SQLite+local and Postgres+Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.app import create_app
from parley.channels import realtime_http
from parley.config import Settings, load_settings
from parley.realtime.access import RealtimeAccess
from parley.realtime.auth import ApiKeys, UpgradeCredential, credential_from_upgrade, key_hash
from parley.testing import FakeClock
from parley.testing.servers import serve_app

KEY = "pk-test-123"


def test_api_keys_are_kept_only_as_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_API_KEYS", f" {KEY} , other-key,,")
    settings = load_settings()
    assert settings.api_keys == [key_hash(KEY), key_hash("other-key")]
    assert KEY not in repr(settings)
    keys = ApiKeys(settings.api_keys)
    assert keys.check(KEY) and keys.check("other-key")
    assert not keys.check("pk-test-12") and not keys.check("")
    assert Settings(api_keys=[key_hash(KEY)]).api_keys == [key_hash(KEY)]  # pre-hashed stays
    assert not ApiKeys(Settings(api_keys="").api_keys)


def test_credential_forms_of_the_upgrade_request() -> None:
    bearer = credential_from_upgrade(
        [(b"authorization", b"Bearer " + KEY.encode()), (b"openai-beta", b"realtime=v1")], []
    )
    assert bearer == UpgradeCredential(KEY, None, "authorization")
    browser = credential_from_upgrade(
        [],
        ["realtime", f"openai-insecure-api-key.{KEY}", "openai-beta.realtime-v1"],
    )
    assert browser == UpgradeCredential(KEY, "realtime", "subprotocol")
    beta_only = credential_from_upgrade(
        [], ["openai-beta.realtime-v1", "openai-insecure-api-key.ek_x"]
    )
    assert beta_only.subprotocol == "openai-beta.realtime-v1" and beta_only.is_client_secret
    assert credential_from_upgrade([(b"Authorization", b"Basic abc")], []).token is None
    assert credential_from_upgrade([], ["openai-insecure-api-key."]) == UpgradeCredential(
        None, None, "none"
    )


@asynccontextmanager
async def realtime_app(
    tmp_path: Path, backend: dict[str, Any], clock: FakeClock, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, RealtimeAccess]]:
    settings = Settings(data_dir=tmp_path / "data", **backend, **overrides)
    app = create_app(settings, clock=clock)
    services = app.state.services
    realtime_http.install(app, services)
    async with serve_app(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        yield http, realtime_http.realtime_access(services)


async def test_client_secret_is_minted_with_a_key_and_opens_one_session(
    tmp_path: Path, backend: dict[str, Any]
) -> None:
    clock = FakeClock()
    async with realtime_app(tmp_path, backend, clock, api_keys=KEY) as (http, access):
        url = "/v1/realtime/client_secrets"
        assert (await http.post(url, json={})).status_code == 401
        denied = await http.post(url, json={}, headers={"Authorization": "Bearer nope"})
        assert (denied.status_code, denied.json()["code"]) == (401, "invalid_api_key")
        auth = {"Authorization": f"Bearer {KEY}"}
        body = {
            "expires_after": {"anchor": "created_at", "seconds": 60},
            "session": {"type": "realtime", "model": "demo", "instructions": "Be brief."},
        }
        answer = await http.post(url, json=body, headers=auth)
        assert answer.status_code == 200, answer.text
        minted = answer.json()
        assert minted["value"].startswith("ek_")
        assert minted["expires_at"] == int(clock.now().timestamp()) + 60
        assert minted["session"]["instructions"] == "Be brief."
        assert minted["session"]["model"] == "demo"

        secret = UpgradeCredential(minted["value"], None, "subprotocol")
        grant = await access.authorize(secret)
        assert grant.via == "client_secret" and grant.secret is not None
        assert grant.secret.agent == "demo" and grant.secret.session["instructions"] == "Be brief."
        with pytest.raises(Exception, match="unknown, used or expired"):
            await access.authorize(secret)  # one session only

        late = (await http.post(url, json=body, headers=auth)).json()["value"]
        clock.advance(61)
        with pytest.raises(Exception, match="unknown, used or expired"):
            await access.authorize(UpgradeCredential(late, None, "authorization"))

        assert (
            await access.authorize(UpgradeCredential(KEY, None, "authorization"))
        ).via == "api_key"
        with pytest.raises(Exception, match="not valid"):
            await access.authorize(UpgradeCredential("wrong", None, "authorization"))
        with pytest.raises(Exception, match="API key is required"):
            await access.authorize(UpgradeCredential(None, None, "none"))


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"session": {"model": "nobody"}}, 404, "agent_not_found", None),
        ({"expires_after": {"seconds": 5}}, 400, "invalid_value", "expires_after.seconds"),
        ({"session": {"voice": "alloy"}}, 400, "unknown_parameter", "session.voice"),
        ({"sesion": {}}, 400, "unknown_parameter", "sesion"),
    ],
)
async def test_bad_client_secret_requests(
    tmp_path: Path, backend: dict[str, Any], body: Any, status: int, code: str, param: str | None
) -> None:
    async with realtime_app(tmp_path, backend, FakeClock()) as (http, access):
        assert access.open  # no PARLEY_API_KEYS: no key needed
        answer = await http.post("/v1/realtime/client_secrets", json=body)
        assert answer.status_code == status, answer.text
        assert answer.json()["code"] == code
        if param is not None:
            assert answer.json()["param"] == param
