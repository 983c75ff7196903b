"""``parley serve`` as a real process: each start-up mistake is one clear line and exit
status 2 (no traceback); "ready" is printed only once the port accepts connections."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from parley.testing.fake_openai import FakeOpenAIServer

PARLEY_BIN = Path(sys.executable).parent / "parley"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    base["PYTHONPATH"] = str(ROOT)
    return {**base, "PARLEY_DATA_DIR": str(tmp_path / "data"), **settings}


async def serve(tmp_path: Path, port: int, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(PARLEY_BIN),
        "serve",
        "--port",
        str(port),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def refused(tmp_path: Path, **settings: str) -> str:
    """Start serve with these settings; assert it stops with status 2; its stderr."""
    proc = await serve(tmp_path, free_port(), clean_env(tmp_path, **settings))
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2, (out, err)
    assert b"ready" not in out
    text = err.decode()
    assert "Traceback" not in text
    return text


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


async def test_ready_is_printed_once_listening_and_unknown_settings_are_warned(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = clean_env(tmp_path, PARLEY_LLM_MDOEL="llama3.1")
    proc = await serve(tmp_path, port, env)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.decode() == f"Parley ready on http://127.0.0.1:{port}/  (API docs: /docs)\n"
        async with httpx.AsyncClient() as http:
            health = await http.get(f"http://127.0.0.1:{port}/healthz")
        assert health.json()["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    assert (
        "parley: warning: unknown setting PARLEY_LLM_MDOEL is ignored; "
        "did you mean PARLEY_LLM_MODEL?\n"
    ) in err.decode()


async def test_a_port_in_use(tmp_path: Path, taken_port: int) -> None:
    proc = await serve(tmp_path, taken_port, clean_env(tmp_path))
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert err.decode() == (
        f"parley: port {taken_port} on 127.0.0.1 is already in use (another parley?); "
        "choose another with --port\n"
    )


async def test_a_data_dir_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    err = await refused(tmp_path, PARLEY_DATA_DIR=str(blocker / "data"))
    assert err.startswith(f"parley: PARLEY_DATA_DIR: cannot write {blocker / 'data'}: ")
    assert err.count("\n") == 1


async def test_postgresql_down(tmp_path: Path) -> None:
    port = free_port()
    url = f"postgresql+asyncpg://app:s3cret@127.0.0.1:{port}/parley"
    err = await refused(tmp_path, PARLEY_DATABASE_URL=url)
    assert err == (
        f"parley: PARLEY_DATABASE_URL: cannot open PostgreSQL at 127.0.0.1:{port}/parley: "
        "connection refused\n"
    )


async def test_redis_down(tmp_path: Path) -> None:
    port = free_port()
    err = await refused(tmp_path, PARLEY_REDIS_URL=f"redis://127.0.0.1:{port}/0")
    assert (
        err
        == f"parley: PARLEY_REDIS_URL: cannot reach Redis at 127.0.0.1:{port}: connection refused\n"
    )


async def test_an_llm_url_without_a_scheme(tmp_path: Path) -> None:
    err = await refused(tmp_path, PARLEY_LLM_BASE_URL="localhost:11434/v1")
    assert err.startswith("parley: invalid settings: PARLEY_LLM_BASE_URL: ")
    assert "must start with http:// or https://" in err


@pytest.fixture
async def keyed_openai() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer(api_key="sk-right-0123456789") as server:
        yield server


async def test_an_llm_that_refuses_the_key(tmp_path: Path, keyed_openai: FakeOpenAIServer) -> None:
    err = await refused(
        tmp_path,
        PARLEY_LLM_BASE_URL=keyed_openai.base_url,
        PARLEY_LLM_MODEL="fake-model",
        PARLEY_LLM_API_KEY="sk-wrong-9876543210",
    )
    assert err == (
        f"parley: PARLEY_LLM_API_KEY: the LLM at {keyed_openai.base_url} refused the key "
        "(HTTP 401)\n"
    )
