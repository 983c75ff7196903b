"""Text every store can keep: one rule for the characters refused at the edges.

PostgreSQL refuses U+0000 in ``text`` and ``jsonb`` values, and no UTF-8 encoder takes
a lone surrogate (U+D800–U+DFFF, which JSON can spell as ``"\\ud800"``); ``jsonb`` also
has no NaN or infinity. SQLite would keep some of these, so the rule is applied at
every edge, the same for both stores:

- what a client sends (HTTP bodies, voice text frames) is **refused**, naming the
  field: ``unstorable_reason`` / ``unstorable_path``; nothing is silently changed;
- what the server derives from a signal (an STT transcript, an LLM's text) is
  **cleaned** with ``storable_text``.

Pure functions: no I/O, no framework imports; used by the HTTP models, the voice
frame handlers and the speech path alike.
"""

from __future__ import annotations

import math
import re
from typing import Any

# U+0000, and every UTF-16 surrogate code point (only lone ones can reach a Python str).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable_reason(text: str) -> str | None:
    """Why ``text`` cannot be stored (names the first bad character), or ``None``."""
    found = UNSTORABLE.search(text)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return "contains U+0000 (NUL), which cannot be stored"
    return f"contains a lone surrogate U+{ord(char):04X}, which is not valid Unicode text"


def unstorable_path(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first place inside a JSON-like value that cannot be stored, as
    ``(dotted path, reason)``, or ``None``. Keys are checked as well as values;
    NaN and infinite numbers count as unstorable. Iterative, so depth is no risk."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            reason = unstorable_reason(item)
            if reason is not None:
                return where, reason
        elif isinstance(item, float):
            if not math.isfinite(item):
                return where, "is not a finite number"
        elif isinstance(item, dict):
            children: list[tuple[str, Any]] = []
            for key, child in item.items():
                name = f"{where}.{key}" if where else str(key)
                if isinstance(key, str):
                    reason = unstorable_reason(key)
                    if reason is not None:
                        return where, f"a key {reason}"
                children.append((name, child))
            stack.extend(reversed(children))
        elif isinstance(item, list | tuple):
            items = [(f"{where}.{i}" if where else str(i), c) for i, c in enumerate(item)]
            stack.extend(reversed(items))
    return None


def storable_text(text: str) -> str:
    """``text`` without the characters no store can keep (for server-derived text)."""
    return UNSTORABLE.sub("", text)


def storable_value(value: Any) -> Any:
    """A JSON-like ``value`` with ``storable_text`` applied to every key and string, and
    non-finite numbers replaced by ``None`` (for server-derived data, e.g. an LLM's
    tool-call arguments). Recursive: for values of bounded depth (parsed JSON)."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {storable_text(str(k)): storable_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_value(v) for v in value]
    return value


def escape_unstorable(text: str) -> str:
    """``text`` with each unstorable character spelled ``\\uXXXX`` (safe to echo back)."""
    return UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
