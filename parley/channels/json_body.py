"""Strict JSON for request bodies (RFC 8259), before any model sees them.

``parse_json_body(raw)`` returns the parsed value or raises ``MalformedJson`` (a
``json.JSONDecodeError``, so the web framework answers it as it answers any JSON
syntax error: 400 ``malformed_json``). Beyond the standard library's parser it refuses:

- bytes that are not UTF-8 (including an encoded surrogate, and a byte-order mark);
- nesting deeper than ``MAX_DEPTH`` levels (the same limit as voice frames);
- ``NaN``, ``Infinity`` and numbers too large for a float (not JSON; no store keeps them);
- integers longer than the interpreter's digit limit.

Pure: bytes in, a value or an exception out.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64


class MalformedJson(json.JSONDecodeError):
    """The body is not JSON Parley accepts; ``msg`` says why."""

    def __init__(self, msg: str, doc: str = "", pos: int = 0) -> None:
        super().__init__(msg, doc, pos)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is too large")
    return value


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply ``value`` nests arrays and objects (a scalar is 0), counting no
    further than ``limit + 1``. Iterative: any depth is safe to measure."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            level += 1
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level) for child in children)
    return deepest


def parse_json_body(raw: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of ``raw``, or ``MalformedJson`` saying what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"the body is not UTF-8 (byte {exc.start})", "", exc.start) from None
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise MalformedJson(exc.msg, "", exc.pos) from None
    except RecursionError:
        raise MalformedJson(f"nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # a constant, an overflowing float or an over-long integer
        raise MalformedJson(str(exc)) from None
    if depth(value, max_depth) > max_depth:
        raise MalformedJson(f"nested deeper than {max_depth} levels")
    return value
