"""Field-by-field validation of client JSON with OpenAI-shaped errors (pure).

A ``null`` string or object counts as absent (``turn_detection: null`` switches turn
detection off); a ``null`` boolean or number is ``invalid_type``, as on OpenAI's server.

``ProtocolError`` carries the fields of the Realtime ``error`` server event. ``Reader``
wraps one JSON object at a dotted path (``session.audio.input``): each getter checks one
field's type and value and names the path in its error; ``allow`` declares the known
keys, and ``check_unknown`` on the root reports the first key nobody declared, in this
object or any object read below it (``unknown_parameter``, as OpenAI's server does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

AUDIO_FORMATS = ("audio/pcm", "audio/pcmu", "audio/pcma")
MODALITIES = ("text", "audio")


@dataclass(frozen=True)
class ProtocolError(Exception):
    """A client event Parley will not act on; the fields of the ``error`` event."""

    code: str
    message: str
    param: str | None = None
    event_id: str | None = None
    type: str = "invalid_request_error"

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def for_event(self, event_id: str | None) -> ProtocolError:
        return self if self.event_id or event_id is None else replace(self, event_id=event_id)


def _type_name(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if value is None:
        return "null"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return names.get(type(value), type(value).__name__)


def invalid_type(param: str, expected: str, value: Any) -> ProtocolError:
    return ProtocolError(
        "invalid_type",
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)}.",
        param,
    )


def invalid_value(param: str, value: Any, allowed: Iterable[str]) -> ProtocolError:
    supported = ", ".join(f"'{a}'" for a in allowed)
    return ProtocolError(
        "invalid_value",
        f"Invalid value: '{value}'. Supported values are: {supported}.",
        param,
    )


class Reader:
    """One JSON object at ``prefix`` (see the module docstring)."""

    def __init__(self, data: Mapping[str, Any], prefix: str) -> None:
        self.data = data
        self.prefix = prefix
        self._allowed: set[str] = set()
        self._children: list[Reader] = []

    def path(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def allow(self, *keys: str) -> None:
        self._allowed.update(keys)

    def check_unknown(self) -> None:
        for key in self.data:
            if key not in self._allowed:
                param = self.path(key)
                raise ProtocolError("unknown_parameter", f"Unknown parameter: '{param}'.", param)
        for child in self._children:
            child.check_unknown()

    # --- plain values ----------------------------------------------------------------

    def _get(self, key: str, required: bool) -> Any:
        self._allowed.add(key)
        if key not in self.data:
            if required:
                param = self.path(key)
                raise ProtocolError(
                    "missing_required_parameter",
                    f"Missing required parameter: '{param}'.",
                    param,
                )
            return None
        return self.data[key]

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self._get(key, required)
        if value is None and not required:
            return None
        if not isinstance(value, str):
            raise invalid_type(self.path(key), "a string", value)
        return value

    def enum(self, key: str, allowed: tuple[str, ...], *, required: bool = False) -> str | None:
        value = self.string(key, required=required)
        if value is not None and value not in allowed:
            raise invalid_value(self.path(key), value, allowed)
        return value

    def boolean(self, key: str, *, required: bool = False) -> bool | None:
        value = self._get(key, required)
        if key not in self.data:
            return None
        if not isinstance(value, bool):
            raise invalid_type(self.path(key), "a boolean", value)
        return value

    def integer(
        self,
        key: str,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
        required: bool = False,
    ) -> int | None:
        value = self._get(key, required)
        if key not in self.data:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid_type(self.path(key), "an integer", value)
        self._in_range(key, value, minimum, maximum)
        return value

    def number(
        self, key: str, *, minimum: float | None = None, maximum: float | None = None
    ) -> float | None:
        value = self._get(key, False)
        if key not in self.data:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid_type(self.path(key), "a number", value)
        self._in_range(key, value, minimum, maximum)
        return float(value)

    def _in_range(
        self, key: str, value: float, minimum: float | None, maximum: float | None
    ) -> None:
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            param = self.path(key)
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ProtocolError(
                "invalid_value", f"Invalid '{param}': {value} is not {bounds}.", param
            )

    # --- nested objects ----------------------------------------------------------------

    def object(self, key: str, *, required: bool = False) -> Reader | None:
        value = self._get(key, required)
        if value is None and not required:
            return None
        if not isinstance(value, dict):
            raise invalid_type(self.path(key), "an object", value)
        child = Reader(value, self.path(key))
        self._children.append(child)
        return child

    def objects(self, key: str, *, required: bool = False) -> list[Reader] | None:
        value = self._get(key, required)
        if value is None and not required:
            return None
        if not isinstance(value, list):
            raise invalid_type(self.path(key), "an array", value)
        readers = []
        for i, entry in enumerate(value):
            param = f"{self.path(key)}[{i}]"
            if not isinstance(entry, dict):
                raise invalid_type(param, "an object", entry)
            readers.append(Reader(entry, param))
        self._children.extend(readers)
        return readers

    def string_map(self) -> dict[str, str]:
        for key, value in self.data.items():
            self._allowed.add(key)
            if not isinstance(value, str):
                raise invalid_type(self.path(key), "a string", value)
        return dict(self.data)

    # --- Realtime shapes shared by session.update and response.create -------------------

    def modalities(self, key: str) -> tuple[Literal["text", "audio"], ...] | None:
        value = self._get(key, False)
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            raise invalid_type(self.path(key), "a non-empty array", value)
        for entry in value:
            if entry not in MODALITIES:
                raise invalid_value(self.path(key), entry, MODALITIES)
        return cast(tuple[Literal["text", "audio"], ...], tuple(dict.fromkeys(value)))

    def audio_format(self, key: str) -> str | None:
        """``{"type": "audio/pcm", "rate": 24000}``, ``{"type": "audio/pcmu"}`` or
        ``{"type": "audio/pcma"}``."""
        fmt = self.object(key)
        if fmt is None:
            return None
        fmt.allow("rate")
        kind = fmt.enum("type", AUDIO_FORMATS) or "audio/pcm"
        rate = fmt.integer("rate")
        if rate is not None and (kind != "audio/pcm" or rate != 24000):
            raise ProtocolError(
                "invalid_value",
                f"Invalid '{fmt.path('rate')}': only audio/pcm takes a rate, and it is 24000.",
                fmt.path("rate"),
            )
        return kind

    def voice(self, key: str) -> str | None:
        value = self._get(key, False)
        if isinstance(value, dict):
            child = self.object(key)
            assert child is not None
            return child.string("id", required=True)
        return self.string(key)

    def tools(self, key: str) -> tuple[Mapping[str, Any], ...] | None:
        """Function tools are kept; MCP tools are accepted and dropped (the caller lists
        them as ignored)."""
        entries = self.objects(key)
        if entries is None:
            return None
        tools: list[Mapping[str, Any]] = []
        for tool in entries:
            kind = tool.enum("type", ("function", "mcp")) or "function"
            if kind == "mcp":
                tool.allow(*tool.data)
                continue
            tool.allow("description", "parameters")
            name = tool.string("name", required=True)
            description = tool.string("description")
            params = tool.data.get("parameters")
            if params is not None and not isinstance(params, dict):
                raise invalid_type(tool.path("parameters"), "an object", params)
            tools.append(
                {
                    "type": "function",
                    "name": name,
                    "description": description or "",
                    "parameters": params or {"type": "object", "properties": {}},
                }
            )
        return tuple(tools)

    def tool_choice(self, key: str) -> str | Mapping[str, Any] | None:
        value = self._get(key, False)
        if value is None:
            return None
        if isinstance(value, str):
            return self.enum(key, ("auto", "none", "required"))
        choice = self.object(key)
        assert choice is not None
        kind = choice.enum("type", ("function", "mcp"), required=True)
        if kind == "function":
            return {"type": "function", "name": choice.string("name", required=True)}
        choice.allow(*choice.data)
        return dict(choice.data)

    def max_tokens(self, key: str) -> int | Literal["inf"] | None:
        value = self._get(key, False)
        if value == "inf":
            return "inf"
        return self.integer(key, minimum=1, maximum=4096)
