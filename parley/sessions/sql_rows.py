"""Rows <-> records for ``SqlStore``: plain functions, no I/O.

A record dataclass and its table share column names; a table column the record has no
field for (``sessions.last_seq``) is the store's own bookkeeping."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa

R = TypeVar("R")


def check_aware(name: str, value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} is a naive datetime; pass a timezone-aware UTC one")


_FIELDS: dict[type, frozenset[str]] = {}


def _field_names(cls: type) -> frozenset[str]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    return names


def to_values(table: sa.Table, record: Any) -> dict[str, Any]:
    """The record's fields that are columns of ``table``, for an INSERT."""
    names = _field_names(type(record))
    return {c.name: getattr(record, c.name) for c in table.columns if c.name in names}


def from_row(cls: type[R], table: sa.Table, row: sa.Row[Any]) -> R:
    """A ``cls`` record from a row of ``table``."""
    names = _field_names(cls)
    mapping = row._mapping
    return cls(**{c.name: mapping[c] for c in table.columns if c.name in names})
