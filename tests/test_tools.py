"""Tools: schemas from type hints, argument checks, failures as outcomes, and webhook
tools against a real local HTTP server (also end to end through the LLM brain)."""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from parley.brain.tools import BoundTool, ToolContext, ToolOutcome, ToolRegistry, python_tool
from parley.config import AgentSpec, ToolSpec, parse_agent
from parley.testing.fake_openai import FakeOpenAIServer, Reply, ToolCallScript
from parley.testing.servers import serve_app
from tests.plugins.apps import AppFactory
from tests.plugins.stores import sqlite_url

AGENT = AgentSpec(name="tester")


@pytest.fixture
def backend(tmp_path: Path) -> dict[str, Any]:
    """SQLite + in-process only: these tests are about tools, not storage."""
    return {"database_url": sqlite_url(tmp_path)}


def context(session_id: str = "sess-1") -> ToolContext:
    return ToolContext(session_id, AGENT, {})


async def run(fn: Any, args: dict[str, Any], timeout_s: float = 5.0) -> ToolOutcome:
    bound = BoundTool(python_tool(fn), ToolSpec(name=fn.__name__, timeout_s=timeout_s))
    return await bound.execute(context(), args)


# --- schemas from type hints --------------------------------------------------------------


async def plan_trip(
    city: str,
    nights: int,
    budget: float,
    breakfast: bool,
    interests: list[str],
    ctx: ToolContext,
    room: Literal["single", "double"] = "double",
    note: str | None = None,
) -> dict[str, Any]:
    """Plan a trip to a city
    for some nights.

    This second paragraph is for developers, not for the model.
    """
    return {
        "city": city,
        "nights": nights,
        "budget": budget,
        "breakfast": breakfast,
        "interests": interests,
        "room": room,
        "note": note,
        "session": ctx.session_id,
    }


def test_schema_from_type_hints() -> None:
    tool = python_tool(plan_trip)
    assert tool.name == "plan_trip"
    assert tool.description == "Plan a trip to a city for some nights."
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "nights": {"type": "integer"},
            "budget": {"type": "number"},
            "breakfast": {"type": "boolean"},
            "interests": {"type": "array", "items": {"type": "string"}},
            "room": {"type": "string", "enum": ["single", "double"]},
            "note": {"type": "string"},
        },
        "required": ["city", "nights", "budget", "breakfast", "interests"],
    }
    assert tool.openai_schema() == {
        "type": "function",
        "function": {
            "name": "plan_trip",
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def test_integer_literal_and_registry_names() -> None:
    async def pick(level: Literal[1, 2, 3], tags: dict[str, Any] | None = None) -> int:
        return level

    registry = ToolRegistry()
    tool = registry.add(pick, name="pick_level")
    assert tool.parameters["properties"]["level"] == {"type": "integer", "enum": [1, 2, 3]}
    assert tool.parameters["properties"]["tags"] == {"type": "object"}
    assert tool.parameters["required"] == ["level"]
    assert tool.description == ""
    assert registry.names() == ["pick_level"]


def test_a_tool_must_be_async() -> None:
    def blocking(x: int) -> int:
        return x

    with pytest.raises(TypeError, match="blocking must be an async function"):
        python_tool(blocking)  # type: ignore[arg-type]


# --- arguments --------------------------------------------------------------------------

GOOD = {"city": "Lisbon", "nights": 3, "budget": 900.0, "breakfast": True, "interests": ["food"]}


async def test_arguments_are_passed_with_ctx_and_defaults() -> None:
    outcome = await run(plan_trip, GOOD)
    assert outcome.status == "ok"
    assert outcome.result == {**GOOD, "room": "double", "note": None, "session": "sess-1"}


async def test_arguments_are_coerced_where_the_meaning_is_clear() -> None:
    args = {
        "city": 1999,
        "nights": "4",
        "budget": 750,
        "breakfast": "no",
        "interests": ["art", 3],
        "room": "single",
        "note": None,
    }
    outcome = await run(plan_trip, args)
    assert outcome.status == "ok"
    assert outcome.result["city"] == "1999"
    assert outcome.result["nights"] == 4
    assert outcome.result["budget"] == 750.0 and isinstance(outcome.result["budget"], float)
    assert outcome.result["breakfast"] is False
    assert outcome.result["interests"] == ["art", "3"]
    assert outcome.result["room"] == "single"
    assert outcome.result["note"] is None
    assert (await run(plan_trip, {**GOOD, "nights": 2.0})).result["nights"] == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nights": None}, "missing argument(s): nights"),
        ({"city": None, "budget": None}, "missing argument(s): city, budget"),
        ({"colour": "red"}, "unknown argument(s): colour"),
        ({"nights": "three"}, "argument 'nights' must be integer, got 'three'"),
        ({"nights": 2.5}, "argument 'nights' must be integer, got 2.5"),
        ({"nights": True}, "argument 'nights' must be integer, got True"),
        ({"budget": "cheap"}, "argument 'budget' must be number, got 'cheap'"),
        ({"breakfast": "maybe"}, "argument 'breakfast' must be boolean, got 'maybe'"),
        ({"interests": "food"}, "argument 'interests' must be array, got 'food'"),
        ({"interests": [["nested"]]}, "argument 'interests' must be array"),
        ({"city": {"name": "Lisbon"}}, "argument 'city' must be string"),
        ({"room": "suite"}, "argument 'room' must be one of ['single', 'double'], got 'suite'"),
    ],
)
async def test_bad_arguments_are_an_error_outcome(change: dict[str, Any], message: str) -> None:
    outcome = await run(plan_trip, {**GOOD, **change})
    assert outcome.status == "error"
    assert outcome.result.startswith("bad arguments: " + message), outcome.result


# --- failures are outcomes, never crashes ---------------------------------------------------


async def test_a_tool_that_raises_is_an_error_outcome() -> None:
    async def explode(ctx: ToolContext) -> None:
        ctx.ui_op({"kind": "toast", "text": "trying"})
        raise LookupError("the warehouse is on fire")

    outcome = await run(explode, {})
    assert outcome == ToolOutcome(
        "error",
        "LookupError: the warehouse is on fire",
        ({"kind": "toast", "text": "trying"},),
    )


async def test_a_tool_timeout_is_an_error_outcome() -> None:
    never = asyncio.Event()

    async def hang() -> str:
        await never.wait()
        return "unreachable"

    outcome = await run(hang, {}, timeout_s=0.05)
    assert outcome == ToolOutcome("error", "hang timed out after 0.05 s")


async def test_a_tool_can_change_state_and_emit_ui_ops() -> None:
    async def remember(item: str, ctx: ToolContext) -> int:
        ctx.state.setdefault("items", []).append(item)
        ctx.ui_op({"kind": "carousel", "items": [{"title": item, "msg": item}]})
        return len(ctx.state["items"])

    ctx = context()
    bound = BoundTool(python_tool(remember), ToolSpec(name="remember"))
    first = await bound.execute(ctx, {"item": "soup"})
    assert first.status == "ok" and first.result == 1
    assert first.ui_ops == ({"kind": "carousel", "items": [{"title": "soup", "msg": "soup"}]},)
    assert ctx.state == {"items": ["soup"]}


async def test_cancellation_is_not_swallowed() -> None:
    started, never = asyncio.Event(), asyncio.Event()

    async def wait_forever() -> None:
        started.set()
        await never.wait()

    bound = BoundTool(python_tool(wait_forever), ToolSpec(name="wait_forever", timeout_s=600))
    task = asyncio.create_task(bound.execute(context(), {}))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- webhook tools against a real local HTTP server ------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class WebhookServer:
    base_url: str = ""
    received: list[Received] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)  # never set during a test


@pytest.fixture
async def webhooks() -> AsyncIterator[WebhookServer]:
    server = WebhookServer()

    async def record(request: Request) -> Received:
        raw = await request.body()
        got = Received(
            request.method,
            request.url.path,
            dict(request.query_params),
            {k.lower(): v for k, v in request.headers.items()},
            json.loads(raw) if raw else None,
        )
        server.received.append(got)
        return got

    async def order_status(request: Request) -> Response:
        got = await record(request)
        order = (got.body or got.query).get("order_id")
        return JSONResponse({"order_id": order, "status": "shipped", "eta": "tomorrow"})

    async def fail(request: Request) -> Response:
        await record(request)
        return PlainTextResponse("database exploded", status_code=500)

    async def slow(request: Request) -> Response:
        await record(request)
        await server.gate.wait()
        return JSONResponse({"late": True})

    async def empty(request: Request) -> Response:
        await record(request)
        return Response(status_code=204)

    async def text(request: Request) -> Response:
        await record(request)
        return PlainTextResponse("plain words")

    app = Starlette(
        routes=[
            Route("/orders", order_status, methods=["GET", "POST", "PUT"]),
            Route("/fail", fail, methods=["POST"]),
            Route("/slow", slow, methods=["POST"]),
            Route("/empty", empty, methods=["POST"]),
            Route("/text", text, methods=["POST"]),
        ]
    )
    async with serve_app(app) as base_url:
        server.base_url = base_url
        try:
            yield server
        finally:
            server.gate.set()  # let a hanging handler finish so the server can stop


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def bind_webhook(http: httpx.AsyncClient, **fields: Any) -> BoundTool:
    agent = AgentSpec.model_validate(
        {"name": "shop", "tools": [{"name": "order_status", **fields}]}
    )
    return ToolRegistry().bind(agent, http)["order_status"]


ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}},
    "required": ["order_id"],
}


async def test_webhook_post_sends_json_and_the_session_header(
    webhooks: WebhookServer, http: httpx.AsyncClient
) -> None:
    bound = bind_webhook(
        http,
        url=f"{webhooks.base_url}/orders",
        description="Look up an order.",
        parameters=ORDER_SCHEMA,
        headers={"Authorization": "Bearer shop-secret"},
    )
    assert bound.tool.openai_schema()["function"] == {
        "name": "order_status",
        "description": "Look up an order.",
        "parameters": ORDER_SCHEMA,
    }
    outcome = await bound.execute(context("sess-42"), {"order_id": "A17", "gift": True})
    assert outcome == ToolOutcome("ok", {"order_id": "A17", "status": "shipped", "eta": "tomorrow"})
    [got] = webhooks.received
    assert (got.method, got.path) == ("POST", "/orders")
    assert got.body == {"order_id": "A17", "gift": True}
    assert got.headers["x-parley-session"] == "sess-42"
    assert got.headers["authorization"] == "Bearer shop-secret"
    assert got.headers["content-type"] == "application/json"


async def test_webhook_get_sends_a_query_string(
    webhooks: WebhookServer, http: httpx.AsyncClient
) -> None:
    bound = bind_webhook(http, url=f"{webhooks.base_url}/orders", method="GET")
    outcome = await bound.execute(context("sess-7"), {"order_id": "B 2&3", "page": 2})
    assert outcome.status == "ok" and outcome.result["order_id"] == "B 2&3"
    [got] = webhooks.received
    assert (got.method, got.body) == ("GET", None)
    assert got.query == {"order_id": "B 2&3", "page": "2"}
    assert got.headers["x-parley-session"] == "sess-7"


async def test_webhook_put_method(webhooks: WebhookServer, http: httpx.AsyncClient) -> None:
    bound = bind_webhook(http, url=f"{webhooks.base_url}/orders", method="PUT")
    assert (await bound.execute(context(), {"order_id": "C3"})).status == "ok"
    assert [(r.method, r.body) for r in webhooks.received] == [("PUT", {"order_id": "C3"})]


async def test_webhook_without_parameters_has_an_empty_schema(
    webhooks: WebhookServer, http: httpx.AsyncClient
) -> None:
    bound = bind_webhook(http, url=f"{webhooks.base_url}/orders")
    assert bound.tool.description == "order_status"
    assert bound.tool.parameters == {"type": "object", "properties": {}}


async def test_webhook_http_500_is_an_error_outcome_without_the_body(
    webhooks: WebhookServer, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The outcome reaches the client and the model: the status, never the service's
    own words (a stack trace, an internal host); those go to the log."""
    bound = bind_webhook(http, url=f"{webhooks.base_url}/fail")
    with caplog.at_level(logging.WARNING, logger="parley.brain.tools"):
        outcome = await bound.execute(context(), {"order_id": "A17"})
    assert outcome == ToolOutcome("error", "order_status: its service answered HTTP 500")
    assert "database exploded" in caplog.text


async def test_slow_webhook_is_a_timeout_error_outcome(
    webhooks: WebhookServer, http: httpx.AsyncClient
) -> None:
    bound = bind_webhook(http, url=f"{webhooks.base_url}/slow", timeout_s=0.2)
    outcome = await bound.execute(context(), {"order_id": "A17"})
    assert outcome == ToolOutcome("error", "order_status timed out after 0.2 s")
    assert len(webhooks.received) == 1  # the request did reach the server
    assert not webhooks.gate.is_set()


async def test_webhook_empty_and_text_answers(
    webhooks: WebhookServer, http: httpx.AsyncClient
) -> None:
    empty = bind_webhook(http, url=f"{webhooks.base_url}/empty")
    assert await empty.execute(context(), {}) == ToolOutcome("ok", None)
    text = bind_webhook(http, url=f"{webhooks.base_url}/text")
    assert await text.execute(context(), {}) == ToolOutcome("ok", "plain words")


async def test_unreachable_webhook_is_an_error_outcome(http: httpx.AsyncClient) -> None:
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bound = bind_webhook(http, url=f"http://127.0.0.1:{port}/orders")
    outcome = await bound.execute(context(), {"order_id": "A17"})
    assert outcome == ToolOutcome("error", "order_status: its service could not be reached")
    assert f"127.0.0.1:{port}" not in str(outcome.result)


# --- end to end: a YAML webhook tool on the LLM brain -----------------------------------------


def write_shop_agent(directory: Path, webhook_url: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "shop.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: shop
            brain: llm
            instructions: You help customers of a small shop with their orders.
            tools:
              - name: order_status
                url: {webhook_url}
                method: POST
                timeout_s: 5
                filler: Let me look that up.
                description: Look up the status of an order by its id.
                parameters:
                  type: object
                  properties:
                    order_id: {{type: string, description: "The order id, e.g. A17"}}
                  required: [order_id]
            """
        ),
        encoding="utf-8",
    )


async def test_webhook_tool_end_to_end_on_the_llm_brain(
    make_app: AppFactory,
    fake_openai: FakeOpenAIServer,
    webhooks: WebhookServer,
    tmp_path: Path,
) -> None:
    agents = tmp_path / "agents"
    write_shop_agent(agents, f"{webhooks.base_url}/orders")
    assert parse_agent((agents / "shop.yaml").read_text(), "shop.yaml").tool("order_status")
    fake_openai.script(
        Reply.tool_calls(ToolCallScript("order_status", {"order_id": "A17"}, id="w1")),
        Reply.text("Order A17 ", "has shipped and arrives tomorrow."),
    )
    async with make_app(agents_dir=agents, llm_base_url=fake_openai.base_url) as app:
        client = app.client()
        session = await client.create_session("shop")
        events = [ev async for ev in client.send("Where is my order A17?")]
        history = await client.messages()
        await client.aclose()

    started = next(e.data for e in events if e.event == "tool_call_started")
    assert started["name"] == "order_status" and started["arguments"] == {"order_id": "A17"}
    assert started["filler"] == "Let me look that up."
    done = next(e.data for e in events if e.event == "tool_call_completed")
    assert done["status"] == "ok"
    assert done["result"] == {"order_id": "A17", "status": "shipped", "eta": "tomorrow"}
    assert events[-1].event == "turn_end" and events[-1].data["status"] == "completed"

    [hook] = webhooks.received
    assert hook.body == {"order_id": "A17"}
    assert hook.headers["x-parley-session"] == session["session_id"]

    first, second = (r.body for r in fake_openai.requests)
    offered = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert offered["order_status"]["description"] == "Look up the status of an order by its id."
    assert offered["order_status"]["parameters"]["required"] == ["order_id"]
    [fed] = [m for m in second["messages"] if m["role"] == "tool"]
    assert fed["tool_call_id"] == "w1"
    assert json.loads(fed["content"]) == {
        "status": "ok",
        "result": {"order_id": "A17", "status": "shipped", "eta": "tomorrow"},
    }
    assert history[-1]["text"] == "Order A17 has shipped and arrives tomorrow."


async def test_failing_webhook_end_to_end_is_fed_back_as_an_error(
    make_app: AppFactory,
    fake_openai: FakeOpenAIServer,
    webhooks: WebhookServer,
    tmp_path: Path,
) -> None:
    agents = tmp_path / "agents"
    write_shop_agent(agents, f"{webhooks.base_url}/fail")
    fake_openai.script(
        Reply.tool_calls(ToolCallScript("order_status", {"order_id": "A17"}, id="w1")),
        Reply.text("Sorry, I can't look that up right now."),
    )
    async with make_app(agents_dir=agents, llm_base_url=fake_openai.base_url) as app:
        client = app.client()
        await client.create_session("shop")
        events = [ev async for ev in client.send("Where is my order A17?")]
        await client.aclose()
    done = next(e.data for e in events if e.event == "tool_call_completed")
    assert done["status"] == "error" and "HTTP 500" in done["result"]
    assert events[-1].data["status"] == "completed"
    fed = [m for m in fake_openai.requests[-1].body["messages"] if m["role"] == "tool"]
    assert json.loads(fed[0]["content"])["status"] == "error"
    assert [r.path for r in webhooks.received] == ["/fail"]


def test_tools_modules_setting_registers_python_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``PARLEY_TOOLS_MODULES`` imports modules whose ``register(registry)`` adds tools."""
    from parley.app import build_services
    from parley.config import ConfigError, Settings

    (tmp_path / "my_tools.py").write_text(
        "async def shout(text: str) -> str:\n"
        "    '''Repeat loudly.'''\n"
        "    return text.upper()\n\n"
        "def register(registry):\n"
        "    registry.add(shout)\n"
    )
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "loud.yaml").write_text("name: loud\nbrain: rules\ntools: [shout]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PARLEY_TOOLS_MODULES", "my_tools")
    settings = Settings(data_dir=tmp_path / "d", agents_dir=agents)
    assert settings.tools_modules == ["my_tools"]
    services = build_services(settings)
    assert "shout" in services.brain.runtimes["loud"].tools
    with pytest.raises(ConfigError, match="PARLEY_TOOLS_MODULES"):
        build_services(Settings(data_dir=tmp_path / "d", tools_modules=["no_such_module_x"]))
