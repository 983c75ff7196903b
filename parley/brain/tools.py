"""Tools an agent can call: a registry of Python tools and YAML-declared webhook tools.

A Python tool is an async function with type hints; its JSON schema is derived from
the signature (``str``/``int``/``float``/``bool``/``list``/``dict``, ``Literal``,
``X | None`` for optional) and its docstring's first paragraph is the description.
A parameter named ``ctx`` receives the ``ToolContext`` and is not in the schema.

A webhook tool is declared in the agent file with ``url``, ``method``, ``parameters``
(a JSON schema) and ``timeout_s``; it sends the arguments as JSON (query string for
GET) and returns the response's JSON.

Running a tool never raises: every outcome is a ``ToolOutcome`` with status
``ok`` or ``error``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin

import httpx

from parley.config import AgentSpec, ConfigError, ToolSpec

log = logging.getLogger(__name__)

_JSON_TYPES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
}


@dataclass
class ToolContext:
    """What a running tool may see and do besides its arguments."""

    session_id: str
    agent: AgentSpec
    state: dict[str, Any]
    ui_ops: list[dict[str, Any]] = field(default_factory=list)
    transfer_reason: str | None = None  # set by ``transfer``: hand the caller to a person

    def ui_op(self, op: dict[str, Any]) -> None:
        """Ask the client to render something (e.g. a carousel)."""
        self.ui_ops.append(op)

    def transfer(self, reason: str) -> None:
        """Hand the conversation to a human (a warm transfer); the channel layer opens it
        once the tool has run."""
        self.transfer_reason = reason or "the caller asked for a person"


@dataclass(frozen=True)
class ToolOutcome:
    status: Literal["ok", "error"]
    result: Any
    ui_ops: tuple[dict[str, Any], ...] = ()
    transfer_reason: str | None = None


ToolFn = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[ToolContext, dict[str, Any], float], Awaitable[Any]]

    def openai_schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


# --- Python tools -------------------------------------------------------------------------


def _schema_for(annotation: Any) -> dict[str, Any]:
    origin = get_origin(annotation)
    if origin is Literal:
        values = list(get_args(annotation))
        return {"type": _JSON_TYPES.get(type(values[0]), "string"), "enum": values}
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return _schema_for(inner[0]) if len(inner) == 1 else {}
    if origin in (list, tuple):
        args = get_args(annotation)
        return {"type": "array", "items": _schema_for(args[0])} if args else {"type": "array"}
    if origin is dict:
        return {"type": "object"}
    if annotation in _JSON_TYPES:
        return {"type": _JSON_TYPES[annotation]}
    return {}


def python_tool(fn: ToolFn, *, name: str | None = None) -> Tool:
    """Make a ``Tool`` from an async function's signature and docstring."""
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"tool {fn.__name__} must be an async function")
    hints = typing.get_type_hints(fn)
    sig = inspect.signature(fn)
    props: dict[str, Any] = {}
    required: list[str] = []
    wants_ctx = False
    for pname, param in sig.parameters.items():
        if pname == "ctx":
            wants_ctx = True
            continue
        props[pname] = _schema_for(hints.get(pname, str))
        if param.default is inspect.Parameter.empty:
            required.append(pname)
    doc = inspect.getdoc(fn) or ""
    description = doc.split("\n\n", 1)[0].replace("\n", " ")
    parameters = {"type": "object", "properties": props, "required": required}

    async def run(ctx: ToolContext, args: dict[str, Any], timeout_s: float) -> Any:
        kwargs = _coerce_arguments(parameters, args)
        if wants_ctx:
            kwargs["ctx"] = ctx
        return await asyncio.wait_for(fn(**kwargs), timeout_s)

    return Tool(name or fn.__name__, description, parameters, run)


class ToolArgumentError(ValueError):
    """The model's arguments do not fit the tool's schema."""


def _coerce_arguments(schema: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = schema.get("properties", {})
    required: list[str] = schema.get("required", [])
    missing = [r for r in required if r not in args or args[r] is None]
    if missing:
        raise ToolArgumentError(f"missing argument(s): {', '.join(missing)}")
    unknown = [k for k in args if k not in props]
    if unknown:
        raise ToolArgumentError(f"unknown argument(s): {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for key, value in args.items():
        if value is None:
            continue  # an optional argument left out: the default applies
        try:
            value = _coerce_value(props[key], value)
        except (TypeError, ValueError):
            kind = props[key].get("type", "a valid value")
            raise ToolArgumentError(f"argument {key!r} must be {kind}, got {value!r}") from None
        enum = props[key].get("enum")
        if enum is not None and value not in enum:
            raise ToolArgumentError(f"argument {key!r} must be one of {enum}, got {value!r}")
        out[key] = value
    return out


_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


def _coerce_value(schema: dict[str, Any], value: Any) -> Any:
    """One argument to its JSON-schema type (lenient where the meaning is clear:
    ``"3"`` → 3, ``2.0`` → 2, ``"yes"`` → True); ``ValueError`` if it does not fit."""
    kind = schema.get("type")
    is_bool = isinstance(value, bool)
    if kind == "integer":
        if not is_bool and isinstance(value, int | str):
            return int(value)  # a string like "2.5" or "two" raises ValueError
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind == "number":
        if not is_bool and isinstance(value, int | float | str):
            return float(value)
    elif kind == "string":
        if isinstance(value, str):
            return value
        if not is_bool and isinstance(value, int | float):
            return str(value)
    elif kind == "boolean":
        if is_bool:
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
    elif kind == "array":
        if isinstance(value, list | tuple):
            items = schema.get("items") or {}
            return [_coerce_value(items, item) for item in value]
    elif kind == "object":
        if isinstance(value, dict):
            return value
    else:
        return value  # no type declared: anything goes
    raise ValueError(f"not {kind}")


# --- webhook tools -------------------------------------------------------------------------


class WebhookError(Exception):
    """A webhook tool failed; the message is fit for the client and the model (the
    service's own answer, its host and the exception go to the log only)."""


def webhook_tool(spec: ToolSpec, client: httpx.AsyncClient) -> Tool:
    """A tool that calls an HTTP endpoint declared in the agent file."""
    if spec.url is None:
        raise ConfigError(f"tool {spec.name}: a webhook tool needs 'url'")
    url = spec.url
    parameters = spec.parameters or {"type": "object", "properties": {}}

    async def run(ctx: ToolContext, args: dict[str, Any], timeout_s: float) -> Any:
        headers = {"X-Parley-Session": ctx.session_id, **spec.headers}
        query, body = (args, None) if spec.method == "GET" else (None, args)
        try:
            resp = await client.request(
                spec.method, url, params=query, json=body, headers=headers, timeout=timeout_s
            )
        except httpx.TimeoutException:
            raise TimeoutError from None  # reported as "<tool> timed out after N s"
        except httpx.HTTPError as exc:
            log.warning("tool %s: webhook %s %s failed: %r", spec.name, spec.method, url, exc)
            raise WebhookError(f"{spec.name}: its service could not be reached") from None
        if resp.status_code >= 400:
            log.warning(
                "tool %s: webhook %s %s answered HTTP %d: %s",
                spec.name,
                spec.method,
                url,
                resp.status_code,
                resp.text[:500],
            )
            raise WebhookError(f"{spec.name}: its service answered HTTP {resp.status_code}")
        if not resp.content:
            return None
        try:
            return resp.json()
        except json.JSONDecodeError:
            return resp.text

    return Tool(spec.name, spec.description or spec.name, parameters, run)


# --- registry -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoundTool:
    """A tool as one agent uses it: the implementation plus the agent's settings."""

    tool: Tool
    spec: ToolSpec

    @property
    def name(self) -> str:
        return self.tool.name

    async def execute(self, ctx: ToolContext, args: dict[str, Any]) -> ToolOutcome:
        try:
            result = await self.tool.run(ctx, args, self.spec.timeout_s)
        except TimeoutError:
            return ToolOutcome("error", f"{self.name} timed out after {self.spec.timeout_s:g} s")
        except ToolArgumentError as exc:
            return ToolOutcome("error", f"bad arguments: {exc}")
        except WebhookError as exc:
            return ToolOutcome("error", str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("tool %s failed: %s", self.name, exc, exc_info=True)
            return ToolOutcome("error", f"{type(exc).__name__}: {exc}", tuple(ctx.ui_ops))
        return ToolOutcome("ok", result, tuple(ctx.ui_ops), ctx.transfer_reason)


class ToolRegistry:
    """Python tools by name. One registry per app (no module-level state)."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def add(self, fn: ToolFn, *, name: str | None = None) -> Tool:
        tool = python_tool(fn, name=name)
        self._tools[tool.name] = tool
        return tool

    def names(self) -> list[str]:
        return sorted(self._tools)

    def bind(self, agent: AgentSpec, client: httpx.AsyncClient) -> dict[str, BoundTool]:
        """Resolve an agent's tool list; unknown names fail with a clear error."""
        bound: dict[str, BoundTool] = {}
        for spec in agent.tools:
            if spec.url is not None:
                tool = webhook_tool(spec, client)
            elif spec.name in self._tools:
                tool = self._tools[spec.name]
            else:
                raise ConfigError(
                    f"agent {agent.name}: unknown tool {spec.name!r} "
                    f"(known: {', '.join(self.names()) or 'none'}; or give it a 'url')"
                )
            bound[spec.name] = BoundTool(tool, spec)
        return bound
