"""Ids for Realtime items, responses and events: random by default, sequential in tests."""

from __future__ import annotations

import secrets
from typing import Protocol


class IdSource(Protocol):
    def new(self, prefix: str) -> str:
        """A fresh id such as ``item_…``, ``resp_…``, ``event_…``."""
        ...


class RandomIds:
    def new(self, prefix: str) -> str:
        return f"{prefix}_{secrets.token_hex(10)}"


class SequentialIds:
    """``item_1``, ``item_2``, … per prefix: literal ids for literal-event tests."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def new(self, prefix: str) -> str:
        self._counts[prefix] = self._counts.get(prefix, 0) + 1
        return f"{prefix}_{self._counts[prefix]}"
