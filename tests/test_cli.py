"""The command line: ``parley chat`` (against a running app and ``--local``) and
``parley doctor``, driven with scripted input; one real ``parley chat --local`` process."""

from __future__ import annotations

import datetime as dt
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from parley.brain.dates import resolve_day, say_date
from parley.cli import _chat_local, _chat_loop, main
from parley.testing import FakeClock
from tests.plugins.apps import AppFactory, RunningApp
from tests.plugins.stores import sqlite_url

PARLEY_BIN = Path(sys.executable).parent / "parley"
BOOKING = ["I'd like a table for 2 tomorrow at 7pm", "My name is Ann Lee"]


@pytest.fixture
def backend(tmp_path: Path) -> dict[str, Any]:
    """SQLite + in-process only: these tests are about the terminal client."""
    return {"database_url": sqlite_url(tmp_path)}


# Wednesday 7 January 2026, 11:00 in the demo venue's time zone: tomorrow is Thursday the 8th
NOW = datetime(2026, 1, 7, 10, 0, tzinfo=UTC)
TOMORROW = dt.date(2026, 1, 8)


@pytest.fixture
async def running(make_app: AppFactory) -> AsyncIterator[RunningApp]:
    async with make_app(clock=FakeClock(wall=NOW)) as app:
        yield app


async def test_approval_prompt_reads_words_and_asks_again(
    running: RunningApp, capsys: pytest.CaptureFixture[str]
) -> None:
    script = Script(*BOOKING, "hmm", "sure, go ahead", "/quit")
    assert await _chat_loop(running.base_url, "demo", script) == 0
    out = capsys.readouterr().out
    approval = [p for p in script.prompts if p.startswith("  ? ")]
    assert len(approval) == 2  # "hmm" is no answer: asked again
    assert "  · please answer yes or no\n" in out
    assert "  · approval approved\n" in out and "  · book_table → ok\n" in out


@pytest.fixture
def local_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Settings for an in-process server: data under tmp, no outside PARLEY_* values."""
    for name in [n for n in os.environ if n.startswith("PARLEY_")]:
        monkeypatch.delenv(name)
    data = tmp_path / "data"
    monkeypatch.setenv("PARLEY_DATA_DIR", str(data))
    monkeypatch.chdir(tmp_path)
    yield data


class Script:
    """A scripted ``input``: answers in order, and remembers every prompt it was shown."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if not self.answers:
            raise EOFError
        return self.answers.pop(0)


def assert_booked(out: str, script: Script, day: dt.date, said: str = "tomorrow") -> None:
    iso, shown = day.isoformat(), say_date(day)
    on_day = f"{said} ({shown})" if said == "tomorrow" else f"on {shown}"
    assert out.startswith("bot> Hi, welcome to Bistro!")
    assert f"  · check_availability(date='{iso}', time='19:00', party_size=2)\n" in out
    assert f"bot> Good news: we have a table for 2 {on_day} at 7 pm." in out
    approval = [p for p in script.prompts if p.startswith("  ? ")]
    assert approval == [f"  ? Book a table for 2 under Ann Lee, {shown} at 7 pm? [y/n] "]
    assert "  · approval approved\n" in out
    assert f"  · book_table(name='Ann Lee', date='{iso}', time='19:00', party_size=2)\n" in out
    assert "  · book_table → ok\n" in out
    assert f"bot> You're booked, Ann Lee: a table for 2 {on_day} at 7 pm." in out
    assert "Your confirmation is BX-" in out
    # the order a reader sees: tool activity, then the reply, then the approval
    assert out.index("check_availability → ok") < out.index("Good news") < out.index("approved")
    assert out.index("approved") < out.index("book_table → ok") < out.index("You're booked")


async def test_chat_books_a_table_through_the_approval(
    running: RunningApp, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    script = Script(*BOOKING, "y", "/quit")
    assert await _chat_loop(running.base_url, "demo", script) == 0
    out = capsys.readouterr().out
    assert_booked(out, script, TOMORROW)
    assert script.answers == []
    assert script.prompts.count("you> ") == 3
    # /quit ended the session (read straight from the SQLite file the app writes)
    with sqlite3.connect(tmp_path / "parley.db") as db:
        rows = db.execute("SELECT status, end_reason FROM sessions").fetchall()
    assert rows == [("ended", "USER_ENDED")]


async def test_chat_denied_approval_books_nothing(
    running: RunningApp, capsys: pytest.CaptureFixture[str]
) -> None:
    script = Script(*BOOKING, "n", "", "/exit")
    assert await _chat_loop(running.base_url, "demo", script) == 0
    out = capsys.readouterr().out
    assert "  · approval denied\n" in out
    assert "book_table → ok" not in out
    assert "bot> No problem, I haven't booked anything." in out
    assert script.prompts.count("you> ") == 4  # the empty line was skipped, not sent


async def test_chat_shows_menu_cards_and_ends_on_eof(
    running: RunningApp, capsys: pytest.CaptureFixture[str]
) -> None:
    script = Script("what's on the menu?")  # then EOF (Ctrl-D)
    assert await _chat_loop(running.base_url, "demo", script) == 0
    out = capsys.readouterr().out
    assert "  · show_menu()\n" in out
    assert (
        "  [Mushroom risotto] Arborio rice, porcini, parmesan"
        "  → say: Tell me about the mushroom risotto\n"
    ) in out
    assert "  · show_menu → ok\n" in out
    assert "bot> Here's our menu." in out


async def test_chat_local_runs_its_own_server(
    local_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a real clock here: "next Wednesday" is always a future day the demo venue is open
    script = Script(
        BOOKING[0].replace("tomorrow", "next Wednesday"), BOOKING[1], "yes please", "/quit"
    )
    today = datetime.now(ZoneInfo("Europe/Amsterdam")).date()
    assert await _chat_local("demo", script) == 0
    day = resolve_day("next wednesday", today)
    assert day is not None
    assert_booked(capsys.readouterr().out, script, day, said="next Wednesday")
    assert (local_env / "parley.db").is_file()  # PARLEY_DATA_DIR was used


def test_chat_unknown_agent_is_a_clear_error(
    local_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["chat", "--local", "--agent", "nope"]) == 1
    err = capsys.readouterr().err
    assert err == "parley: agent_not_found: no agent named 'nope' (agents: demo)\n"


def test_chat_without_a_server_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    assert main(["chat", "--url", url]) == 1
    assert capsys.readouterr().err.startswith(f"parley: cannot reach {url}: ")


def test_doctor_prints_a_table_of_what_serve_needs(
    local_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    agents = local_env.parent / "agents"
    agents.mkdir()
    (agents / "shop.yaml").write_text("name: shop\n", encoding="utf-8")
    monkeypatch.setenv("PARLEY_AGENTS_DIR", str(agents))
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "✓ settings  PARLEY_* and parley.toml",
        f"✓ data dir  {local_env.resolve()}",
        "✓ agents    demo (rules brain), shop (rules brain)",
        f"✓ database  SQLite {(local_env / 'parley.db').resolve()}",
        "✓ redis     PARLEY_REDIS_URL not set: in-process coordination (one worker)",
        "✓ llm       PARLEY_LLM_BASE_URL not set: agents use the rules brain",
        "✓ speech    agent demo: said 'book a table for two', heard 'book a table for two'",
    ]


def test_doctor_hides_database_credentials(
    local_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+asyncpg://app:s3cret@127.0.0.1:{port}/parley"
    monkeypatch.setenv("PARLEY_DATABASE_URL", url)
    assert main(["doctor"]) == 2
    out = capsys.readouterr().out
    assert "s3cret" not in out
    assert (
        f"✗ database  PARLEY_DATABASE_URL: cannot open PostgreSQL at 127.0.0.1:{port}/parley: "
        "connection refused\n"
    ) in out


def test_doctor_warns_about_unknown_settings_with_the_closest_name(
    local_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PARLEY_LLM_MDOEL", "llama3.1")
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert (
        "! settings  unknown setting PARLEY_LLM_MDOEL is ignored; did you mean PARLEY_LLM_MODEL?\n"
    ) in out


def test_doctor_names_the_llm_setting_to_change(
    local_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("PARLEY_LLM_BASE_URL", f"http://127.0.0.1:{port}/v1")
    assert main(["doctor"]) == 2
    out = capsys.readouterr().out
    assert "✓ agents    demo (LLM)\n" in out
    assert (
        f"✗ llm       PARLEY_LLM_BASE_URL: cannot reach the LLM at http://127.0.0.1:{port}/v1: "
        "connection refused\n"
    ) in out


def test_doctor_with_a_bad_setting_exits_2(
    local_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PARLEY_AGENTS_DIR", str(local_env / "missing"))
    assert main(["doctor"]) == 2
    assert "✗ agents    PARLEY_AGENTS_DIR" in capsys.readouterr().out


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2
    assert "serve" in capsys.readouterr().err


def run_chat_process(
    stdin: str, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    return subprocess.run(
        [str(PARLEY_BIN), "chat", "--local"],
        input=stdin,
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_chat_local_as_a_real_process(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run_chat_process(
        "what's on the menu?\n/quit\n", tmp_path, {"PARLEY_DATA_DIR": str(data)}
    )
    out, err = result.stdout, result.stderr
    assert result.returncode == 0, err
    assert "Traceback" not in err, err
    assert out.startswith("bot> Hi, welcome to Bistro!"), out
    assert "you> " in out  # input() writes its prompt when stdin is a pipe
    assert "  · show_menu()\n" in out and "  · show_menu → ok\n" in out, out
    assert "  [Chocolate fondant] Warm, with vanilla ice cream" in out, out
    assert "bot> Here's our menu." in out, out
    assert (data / "parley.db").is_file()
    assert not (tmp_path / ".parley").exists()


def test_chat_local_with_an_unwritable_data_dir_names_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not "cannot reach http://127.0.0.1:8080" (no server was asked for): the same
    one line as ``parley serve``, naming PARLEY_DATA_DIR."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("PARLEY_DATA_DIR", str(blocker / "data"))
    assert main(["chat", "--local"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"parley: PARLEY_DATA_DIR: cannot write {blocker / 'data'}: "), err
    assert "cannot reach" not in err
