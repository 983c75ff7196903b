"""Settings (``PARLEY_*`` env, ``parley.toml``) and agent files: values, precedence, and
errors that name the setting, or the file, line and field."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.app import create_app
from parley.brain.demo_tools import register_demo_tools
from parley.brain.tools import ToolRegistry
from parley.config import (
    AgentSpec,
    ConfigError,
    Settings,
    load_agents,
    load_settings,
    parse_agent,
)
from parley.testing.fake_openai import FakeOpenAIServer, Reply
from tests.plugins.apps import AppFactory
from tests.plugins.stores import sqlite_url

PARLEY_BIN = Path(sys.executable).parent / "parley"


@pytest.fixture
def backend(tmp_path: Path) -> dict[str, Any]:
    """SQLite + in-process only: these tests are about settings, not storage."""
    return {"database_url": sqlite_url(tmp_path)}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No PARLEY_* variables from outside, and a working directory without parley.toml."""
    import os

    for name in [n for n in os.environ if n.startswith("PARLEY_")]:
        monkeypatch.delenv(name)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    yield workdir


def write_agent(directory: Path, filename: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- settings -------------------------------------------------------------------------


def test_defaults(clean_env: Path) -> None:
    settings = load_settings()
    assert settings.data_dir == Path(".parley")
    assert settings.database_url is None and settings.redis_url is None
    assert settings.llm_base_url is None
    assert settings.cors_origins == []
    assert settings.effective_database_url == (
        f"sqlite:///{(clean_env / '.parley' / 'parley.db').resolve()}"
    )


def test_environment_is_read(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_DATA_DIR", "/srv/parley")
    monkeypatch.setenv("PARLEY_LLM_MODEL", "llama3.1")
    monkeypatch.setenv("PARLEY_SESSION_RATE_LIMIT", "7")
    monkeypatch.setenv("PARLEY_LOG_LEVEL", "debug")
    monkeypatch.setenv("PARLEY_DATABASE_URL", "postgresql+asyncpg://u@db/parley")
    monkeypatch.setenv("PARLEY_REDIS_URL", "redis://cache:6379/0")
    settings = load_settings()
    assert settings.data_dir == Path("/srv/parley")
    assert settings.llm_model == "llama3.1"
    assert settings.session_rate_limit == 7
    assert settings.log_level == "DEBUG"
    assert settings.effective_database_url == "postgresql+asyncpg://u@db/parley"
    assert settings.redis_url == "redis://cache:6379/0"


def test_toml_is_read_and_environment_wins(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / "parley.toml").write_text(
        'llm_model = "from-toml"\nsession_rate_limit = 5\n'
        'cors_origins = ["https://toml.example"]\n',
        encoding="utf-8",
    )
    settings = load_settings()
    assert settings.llm_model == "from-toml"
    assert settings.session_rate_limit == 5
    assert settings.cors_origins == ["https://toml.example"]
    monkeypatch.setenv("PARLEY_LLM_MODEL", "from-env")
    settings = load_settings()
    assert settings.llm_model == "from-env"
    assert settings.session_rate_limit == 5


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://a.example, https://b.example", ["https://a.example", "https://b.example"]),
        ("https://only.example", ["https://only.example"]),
        ('["https://json.example"]', ["https://json.example"]),
        ("", []),
    ],
)
def test_cors_origins_from_environment(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("PARLEY_CORS_ORIGINS", value)
    assert load_settings().cors_origins == expected


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("PARLEY_DATABASE_URL", "mysql://x", "sqlite://"),
        ("PARLEY_REDIS_URL", "http://cache", "redis://"),
        ("PARLEY_SESSION_RATE_LIMIT", "-1", "greater than or equal to 0"),
        ("PARLEY_SESSION_RATE_LIMIT", "lots", "integer"),
        ("PARLEY_LOG_LEVEL", "LOUD", "must be one of"),
        ("PARLEY_LLM_TIMEOUT_S", "0", "greater than 0"),
        ("PARLEY_LLM_MAX_TOOL_ROUNDS", "99", "less than or equal to 50"),
        ("PARLEY_MAX_BODY_BYTES", "10", "greater than or equal to 1024"),
        ("PARLEY_CORS_ORIGINS", "[not json", "JSON list"),
    ],
)
def test_bad_setting_names_the_variable(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert name in str(err.value)
    assert says in str(err.value)


def test_bad_toml_is_a_config_error(clean_env: Path) -> None:
    (clean_env / "parley.toml").write_text("llm_model = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"parley\.toml: .*line 1"):
        load_settings()
    (clean_env / "parley.toml").write_text("session_rate_limit = -3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="PARLEY_SESSION_RATE_LIMIT"):
        load_settings()


def run_parley(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    return subprocess.run(
        [str(PARLEY_BIN), *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"PARLEY_DATABASE_URL": "mysql://x"}, "PARLEY_DATABASE_URL"),
        ({"PARLEY_LOG_LEVEL": "LOUD"}, "PARLEY_LOG_LEVEL"),
        ({"PARLEY_AGENTS_DIR": "/nonexistent/agents"}, "PARLEY_AGENTS_DIR"),
    ],
)
def test_serve_with_a_bad_setting_exits_2(clean_env: Path, env: dict[str, str], says: str) -> None:
    result = run_parley("serve", "--port", "0", cwd=clean_env, env=env)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert "Parley on http" not in result.stdout  # it never got as far as binding


def test_serve_with_a_bad_agent_file_exits_2(clean_env: Path) -> None:
    agents = clean_env / "agents"
    path = write_agent(agents, "shop.yaml", "name: shop\ntools:\n  - name: x\n    timeout_s: 0\n")
    result = run_parley("serve", cwd=clean_env, env={"PARLEY_AGENTS_DIR": str(agents)})
    assert result.returncode == 2
    assert f"{path}:4: tools.0.timeout_s" in result.stderr


async def test_cors_preflight(make_app: AppFactory) -> None:
    origins = ["https://shop.example", "https://admin.example"]
    async with make_app(cors_origins=origins) as app, httpx.AsyncClient() as http:
        for origin in origins:
            resp = await http.options(
                f"{app.base_url}/v1/sessions",
                headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
            )
            assert resp.status_code == 200
            assert resp.headers["access-control-allow-origin"] == origin
            assert "POST" in resp.headers["access-control-allow-methods"]
        resp = await http.options(
            f"{app.base_url}/v1/sessions",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert resp.status_code == 400
        assert "access-control-allow-origin" not in resp.headers


async def test_cors_origins_comma_list_reaches_the_app(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARLEY_CORS_ORIGINS", "https://one.example,https://two.example")
    async with make_app() as app, httpx.AsyncClient() as http:
        resp = await http.post(
            f"{app.base_url}/v1/sessions",
            json={"agent": "demo"},
            headers={"Origin": "https://two.example"},
        )
        assert resp.status_code == 201
        assert resp.headers["access-control-allow-origin"] == "https://two.example"


async def test_no_cors_headers_by_default(make_app: AppFactory) -> None:
    async with make_app() as app, httpx.AsyncClient() as http:
        resp = await http.post(
            f"{app.base_url}/v1/sessions",
            json={"agent": "demo"},
            headers={"Origin": "https://shop.example"},
        )
        assert resp.status_code == 201
        assert "access-control-allow-origin" not in resp.headers


# --- agent files: errors name the file, the line and the field --------------------------


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            """\
            name: shop
            tools:
              - name: check_stock
              - name: place_order
                timeout_s: -1
            """,
            "agents/shop.yaml:5: tools.1.timeout_s: Input should be greater than 0",
        ),
        ("name: shop\ncolour: red\n", "agents/shop.yaml:2: colour: Extra inputs are not permitted"),
        (
            "name: shop\ninstructions: Sell things.\nbrain: magic\n",
            "agents/shop.yaml:3: brain: Input should be 'rules', 'llm', 'auto' or 'realtime'",
        ),
        (
            "name: shop\ntools:\n  - name: x\n    colour: red\n",
            "agents/shop.yaml:4: tools.0.colour: Extra inputs are not permitted",
        ),
        ("name: Shop Front\n", "agents/shop.yaml:1: name: String should match pattern"),
        ("instructions: hi\n", "agents/shop.yaml:1: name: Field required"),
        (
            "name: shop\nvoice:\n  tts: espeak\n  rate: 5\n",
            "agents/shop.yaml:4: voice.rate: Input should be greater than or equal to 80",
        ),
        (
            "name: shop\nrules:\n  - intent: x\n    patterns: ['(']\n",
            "agents/shop.yaml:4: rules.0.patterns: Value error, invalid regular expression '('",
        ),
        (
            "name: shop\ntools:\n  - name: x\n    method: FETCH\n    url: http://h/x\n",
            "agents/shop.yaml:4: tools.0.method: Input should be 'GET'",
        ),
        ("- just\n- a list\n", "agents/shop.yaml:1: an agent file must be a mapping"),
        ("", "agents/shop.yaml:1: an agent file must be a mapping"),
    ],
)
def test_invalid_agent_file_names_file_line_and_field(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_agent(textwrap.dedent(text), "agents/shop.yaml")
    assert str(err.value).startswith(where), str(err.value)


def test_bad_yaml_syntax_names_its_line() -> None:
    text = "name: shop\ninstructions: fine\ntools:\n  - name: x\n   bad: [\n"
    with pytest.raises(ConfigError, match=r"^agents/shop\.yaml:5: invalid YAML: "):
        parse_agent(text, "agents/shop.yaml")
    with pytest.raises(ConfigError, match=r"^agents/shop\.yaml:3: invalid YAML: "):
        parse_agent("name: shop\ninstructions: 'never closed\n", "agents/shop.yaml")


def test_several_errors_are_counted() -> None:
    with pytest.raises(ConfigError, match=r"\(and 1 more\)$"):
        parse_agent("name: shop\ncolour: red\nsize: big\n", "a.yaml")


def test_valid_agent_file_and_tool_shorthand() -> None:
    spec = parse_agent(
        """\
name: shop
greeting: llm
tools:
  - check_stock
  - name: place_order
    requires_approval: true
    filler: One moment.
    timeout_s: 2.5
""",
        "shop.yaml",
    )
    assert spec.greeting_mode == "llm"
    assert [t.name for t in spec.tools] == ["check_stock", "place_order"]
    order = spec.tool("place_order")
    assert order is not None and order.requires_approval and order.timeout_s == 2.5
    assert spec.tool("check_stock") is not None and spec.tool("nope") is None
    assert parse_agent("name: quiet\n", "q.yaml").greeting_mode == "none"


# --- template vars -------------------------------------------------------------------------


def test_template_vars_render_in_instructions_and_greeting() -> None:
    spec = AgentSpec(
        name="shop",
        instructions="You work at {shop}. The customer is {customer}. Keep {unknown} as is.",
        greeting="Welcome to {shop}, {customer}!",
        template_vars={"shop": "Corner Shop", "customer": "friend"},
    )
    assert spec.render_instructions({}) == (
        "You work at Corner Shop. The customer is friend. Keep {unknown} as is."
    )
    assert spec.render_greeting({"customer": "Ann", "shop": "Big Shop"}) == (
        "Welcome to Big Shop, Ann!"
    )
    assert spec.render_greeting({"customer": 42}) == "Welcome to Corner Shop, 42!"


@pytest.mark.parametrize(
    "instructions",
    [
        'Answer in JSON like {"ok": true}, {customer}.',
        "A lone { brace, {customer}.",
        "A lone } brace, {customer}.",
    ],
)
def test_odd_braces_never_break_rendering(instructions: str) -> None:
    spec = AgentSpec(name="shop", instructions=instructions, greeting="Hi {customer} {")
    rendered = spec.render_instructions({"customer": "Ann"})
    assert "Ann." in rendered
    assert spec.render_greeting({"customer": "Ann"}) == "Hi Ann {"


def test_greeting_llm_and_none_render_nothing() -> None:
    assert AgentSpec(name="a", greeting="LLM").render_greeting({}) is None
    assert AgentSpec(name="a").render_greeting({"x": "y"}) is None


async def test_template_vars_reach_the_session_and_the_model(
    make_app: AppFactory, tmp_path: Path
) -> None:
    agents = tmp_path / "agents"
    write_agent(
        agents,
        "concierge.yaml",
        """\
        name: concierge
        brain: llm
        instructions: "You are the concierge of {hotel}. The guest is {guest}."
        greeting: "Good evening, {guest}. Welcome to {hotel}."
        template_vars: {hotel: Hotel Default}
        """,
    )
    async with FakeOpenAIServer() as llm:
        llm.script(Reply.text("At your service."))
        async with make_app(agents_dir=agents, llm_base_url=llm.base_url) as app:
            client = app.client()
            session = await client.create_session("concierge", template_vars={"guest": "Ms Lee"})
            assert session["greeting"] == "Good evening, Ms Lee. Welcome to Hotel Default."
            events = [ev async for ev in client.send("hello")]
            await client.aclose()
        assert events[-1].data["status"] == "completed"
        system = llm.requests[-1].body["messages"][0]
        assert system == {
            "role": "system",
            "content": "You are the concierge of Hotel Default. The guest is Ms Lee.",
        }


# --- agents dir ------------------------------------------------------------------------


def test_agents_dir_extends_and_overrides_builtins(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "demo.yaml", "name: demo\ngreeting: Overridden hello.\n")
    write_agent(agents, "shop.yml", "name: shop\ndescription: A shop.\n")
    (agents / "notes.txt").write_text("not an agent", encoding="utf-8")
    loaded = load_agents(agents)
    assert set(loaded) == {"demo", "shop"}
    assert loaded["demo"].greeting == "Overridden hello."
    assert loaded["demo"].tools == []  # the whole built-in was replaced
    builtin = load_agents()
    assert set(builtin) == {"demo"} and builtin["demo"].tool("book_table") is not None


def test_agents_dir_from_environment(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    agents = tmp_path / "more-agents"
    write_agent(agents, "shop.yaml", "name: shop\n")
    monkeypatch.setenv("PARLEY_AGENTS_DIR", str(agents))
    assert set(load_agents(load_settings().agents_dir)) == {"demo", "shop"}


async def test_agents_dir_agents_are_served(make_app: AppFactory, tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "demo.yaml", "name: demo\ngreeting: Overridden hello.\nbrain: rules\n")
    write_agent(agents, "shop.yaml", "name: shop\ndescription: A shop.\nbrain: rules\n")
    async with make_app(agents_dir=agents) as app, httpx.AsyncClient() as http:
        listed = (await http.get(f"{app.base_url}/v1/agents")).json()
        assert sorted(a["name"] for a in listed) == ["demo", "shop"]
        created = await http.post(f"{app.base_url}/v1/sessions", json={"agent": "demo"})
        assert created.json()["greeting"] == "Overridden hello."


def test_missing_agents_dir_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    with pytest.raises(ConfigError, match=f"^PARLEY_AGENTS_DIR: {missing} is not a directory$"):
        load_agents(missing)
    with pytest.raises(ConfigError, match="PARLEY_AGENTS_DIR"):
        create_app(Settings(data_dir=tmp_path / "data", agents_dir=missing))


def test_bad_file_in_agents_dir_names_its_path(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "good.yaml", "name: good\n")
    bad = write_agent(agents, "bad.yaml", "name: bad\nbrain: clever\n")
    with pytest.raises(ConfigError, match=f"^{bad}:2: brain: "):
        load_agents(agents)


# --- tool names and brains in agent files ---------------------------------------------------


def test_unknown_tool_names_it_and_lists_known_tools() -> None:
    registry = ToolRegistry()
    register_demo_tools(registry)
    spec = parse_agent("name: shop\ntools: [show_menu, fly_to_the_moon]\n", "shop.yaml")
    with pytest.raises(ConfigError) as err:
        registry.bind(spec, httpx.AsyncClient())
    message = str(err.value)
    assert "agent shop: unknown tool 'fly_to_the_moon'" in message
    assert "book_table, check_availability, show_menu, transfer_to_human" in message
    assert "'url'" in message  # says how to declare a webhook instead


def test_unknown_tool_in_agents_dir_fails_at_start(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "shop.yaml", "name: shop\nbrain: rules\ntools: [teleport]\n")
    with pytest.raises(ConfigError, match="unknown tool 'teleport'"):
        create_app(Settings(data_dir=tmp_path / "data", agents_dir=agents))


def test_llm_brain_without_llm_url_fails_at_start(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "smart.yaml", "name: smart\nbrain: llm\n")
    with pytest.raises(ConfigError, match=r"agent 'smart'.*PARLEY_LLM_BASE_URL"):
        create_app(Settings(data_dir=tmp_path / "data", agents_dir=agents))


@pytest.mark.parametrize(
    ("agent", "settings", "error"),
    [
        ("brain: realtime\n", {}, "names no engines.s2s"),
        ("brain: realtime\nengines: {s2s: gemini_live}\n", {}, "PARLEY_GEMINI_API_KEY"),
        ("brain: realtime\nengines: {s2s: openai_realtime}\n", {}, "PARLEY_OPENAI_API_KEY"),
        ("brain: realtime\nengines: {s2s: nova}\n", {}, "unknown engines.s2s 'nova'"),
        (
            "brain: realtime\nengines: {s2s: gemini_live}\n",
            {"gemini_api_key": "k", "gemini_base_url": "ftp://example.org"},
            "agent 's2s'",
        ),
    ],
)
def test_a_realtime_brain_that_cannot_connect_is_refused_at_start(
    tmp_path: Path, agent: str, settings: dict[str, str], error: str
) -> None:
    """A missing key, engine or a bad base URL of ``brain: realtime`` is a start-up
    error naming the agent, never a failure at the first call."""
    from parley.app import build_services

    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "s2s.yaml").write_text("name: s2s\n" + agent)
    with pytest.raises(ConfigError, match=error):
        build_services(Settings(data_dir=tmp_path / "d", agents_dir=agents, **settings))


def test_a_realtime_brain_with_its_key_starts(tmp_path: Path) -> None:
    from parley.app import build_services

    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "s2s.yaml").write_text("name: s2s\nbrain: realtime\nengines: {s2s: gemini_live}\n")
    services = build_services(
        Settings(data_dir=tmp_path / "d", agents_dir=agents, gemini_api_key="k")
    )
    assert services.brain.runtimes["s2s"].brain_kind == "realtime"
