"""The pure edge codecs: ``parley.text_guard`` and ``parley.channels.json_body``.

Literal cases for each rule, and properties over generated text and JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.channels.json_body import MAX_DEPTH, MalformedJson, depth, parse_json_body
from parley.text_guard import (
    escape_unstorable,
    storable_text,
    storable_value,
    unstorable_path,
    unstorable_reason,
)

BAD = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"])
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


# --- text_guard ------------------------------------------------------------------------------


def test_reasons_name_the_character() -> None:
    assert unstorable_reason("fine: café, 日本, emoji 🎉, U+FFFF \uffff") is None
    assert "U+0000" in (unstorable_reason("a\x00b") or "")
    assert "U+D834" in (unstorable_reason("half \ud834") or "")


def test_paths_point_into_keys_values_and_lists() -> None:
    assert unstorable_path({"a": [1, {"b": "ok"}], "c": 2.5}) is None
    assert unstorable_path({"a": [1, {"b": "x\x00"}]}) == ("a.1.b", unstorable_reason("\x00"))
    where, reason = unstorable_path({"a": {"k\x00": 1}}) or ("", "")
    assert where == "a" and reason.startswith("a key contains U+0000")
    assert unstorable_path({"n": math.inf}) == ("n", "is not a finite number")
    assert unstorable_path(["\udc00"], "metadata") == ("metadata.0", unstorable_reason("\udc00"))


def test_paths_survive_any_depth() -> None:
    value: Any = "\x00"
    for _ in range(10_000):
        value = [value]
    found = unstorable_path(value)
    assert found is not None and found[0].count(".") == 9_999


@given(st.text(), BAD, st.text())
def test_any_bad_character_is_found_cleaned_and_escaped(head: str, bad: str, tail: str) -> None:
    text = head + bad + tail
    assert unstorable_reason(text) is not None
    assert unstorable_path({"k": [text]}) is not None
    cleaned = storable_text(text)
    assert unstorable_reason(cleaned) is None
    assert cleaned == storable_text(head) + storable_text(tail)
    escaped = escape_unstorable(text)
    assert unstorable_reason(escaped) is None
    escaped.encode("utf-8")  # always encodable: safe to echo in an error


@given(st.text())
def test_storable_text_changes_nothing_storable(text: str) -> None:
    if unstorable_reason(text) is None:
        assert storable_text(text) == text == escape_unstorable(text)
        text.encode("utf-8")


# --- json_body -------------------------------------------------------------------------------


@given(JSON)
def test_any_json_within_the_depth_limit_parses_as_the_standard_library_does(value: Any) -> None:
    for raw in (json.dumps(value, ensure_ascii=False), json.dumps(value)):
        assert parse_json_body(raw.encode("utf-8")) == json.loads(raw)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"{not json", "Expecting property name"),
        (b'{"t": "caf\xe9"}', "not UTF-8"),
        (b'"\xed\xa0\x80"', "not UTF-8"),
        (b"\xef\xbb\xbf{}", "BOM"),
        (b"[" * 100_000, "nested deeper than 64"),
        (b"[" * 65 + b"]" * 65, "nested deeper than 64"),
        (b'{"n": NaN}', "NaN is not a JSON number"),
        (b"[-Infinity]", "-Infinity is not a JSON number"),
        (b"1e400", "too large"),
        (b"9" * 5000, "digits"),
    ],
)
def test_malformed_bodies_say_why(raw: bytes, why: str) -> None:
    with pytest.raises(MalformedJson) as err:
        parse_json_body(raw)
    assert why in err.value.msg
    assert isinstance(err.value, json.JSONDecodeError)  # what the web framework answers as 400


def test_depth_limit_is_inclusive() -> None:
    assert parse_json_body(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    assert depth([[], {"a": [1]}]) == 3 and depth(5) == 0 and depth({}) == 1
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    assert depth(deep) == MAX_DEPTH + 1  # stops counting past the limit


def test_storable_value_cleans_keys_strings_and_numbers() -> None:
    value = {"a\x00": ["x\ud800y", math.nan, 1.5, {"k": math.inf}], "n": 3, "b": None}
    assert storable_value(value) == {"a": ["xy", None, 1.5, {"k": None}], "n": 3, "b": None}


@given(JSON)
def test_storable_value_keeps_storable_json(value: Any) -> None:
    if unstorable_path(value) is None:
        assert storable_value(value) == value
    else:
        assert unstorable_path(storable_value(value)) is None
