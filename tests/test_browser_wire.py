"""The browser voice codec with literal frames (``parley.channels.browser_wire``)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.channels.browser_wire import (
    MAX_DEPTH,
    Approval,
    BadMessage,
    End,
    Interrupt,
    Ping,
    Played,
    Ptt,
    StartRequest,
    Text,
    UiAction,
    parse_control,
    parse_start,
    render,
)
from parley.events import AssistantDelta, Error, Interrupted, SessionEnded, Transcript

# --- start frames ------------------------------------------------------------------------


def test_a_start_frame_for_an_existing_session() -> None:
    frame = (
        '{"type": "start", "session_id": "s1", "session_token": "tok", '
        '"sample_rate": 48000, "mode": "push_to_talk", "transcripts": false}'
    )
    assert parse_start(frame) == StartRequest(
        sample_rate=48000,
        output_sample_rate=48000,
        mode="push_to_talk",
        transcripts=False,
        session_id="s1",
        session_token="tok",
    )


def test_a_start_frame_for_a_new_session_with_defaults() -> None:
    start = parse_start('{"type":"start","agent":"demo","template_vars":{"name":"Ann"}}')
    assert start == StartRequest(agent="demo", template_vars={"name": "Ann"})
    assert start.session_fields() == {"agent": "demo", "template_vars": {"name": "Ann"}}
    assert parse_start('{"type":"start","output_sample_rate":8000}').output_sample_rate == 8000
    # empty strings are passed on as sent (the resolver treats them as absent)
    blank = parse_start('{"type":"start","session_id":"","resume_token":"","agent":"demo"}')
    assert blank.session_fields() == {
        "session_id": "",
        "resume_token": "",
        "agent": "demo",
        "template_vars": {},
    }


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (None, "must be a JSON 'start' message"),
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        ("[]", "JSON objects"),
        ('"start"', "JSON objects"),
        ('{"type": "hello"}', "type 'start'"),
        ('{"type": "start", "sample_rate": 7999}', "sample_rate"),
        ('{"type": "start", "sample_rate": 16000.0}', "sample_rate"),
        ('{"type": "start", "sample_rate": true}', "sample_rate"),
        ('{"type": "start", "sample_rate": "16000"}', "sample_rate"),
        ('{"type": "start", "output_sample_rate": 48001}', "output_sample_rate"),
        ('{"type": "start", "mode": "walkie_talkie"}', "mode"),
        ('{"type": "start", "agent": "demo", "template_vars": "name=Ann"}', "template_vars"),
        ('{"type": "start", "agent": "demo", "template_vars": ["Ann"]}', "template_vars"),
        ('{"type": "start", "agent": "demo", "template_vars": {"n": "A\\u0000"}}', "NUL"),
        ('{"type": "start", "session_id": "s1", "session_token": {"a": 1}}', "session_token"),
        ('{"type": "start", "session_id": 7}', "session_id"),
        ('{"type": "start", "session_id": "s\\u00001"}', "NUL"),
        ('{"type": "start", "resume_token": ["r"]}', "resume_token"),
        ('{"type": "start", "agent": {"name": "demo"}}', "agent"),
        ("[" * 2000 + "]" * 2000, "nested deeper than 64"),
    ],
)
def test_a_bad_start_frame_is_a_bad_message(frame: str | None, problem: str) -> None:
    with pytest.raises(BadMessage, match=problem) as caught:
        parse_start(frame)
    assert caught.value.to_event() == Error("bad_message", caught.value.message)


# --- control frames ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ('{"type": "ptt", "state": "down"}', Ptt(down=True)),
        ('{"type": "ptt", "state": "up"}', Ptt(down=False)),
        ('{"type": "text", "text": "  hello  "}', Text("hello")),
        (
            '{"type": "ui_action", "msg": "Tell me", "display": "Risotto"}',
            UiAction("Tell me", "Risotto"),
        ),
        ('{"type": "ui_action", "msg": "Tell me"}', UiAction("Tell me", None)),
        (
            '{"type": "approval", "tool_call_id": "call_1", "approved": false}',
            Approval("call_1", False),
        ),
        ('{"type": "interrupt"}', Interrupt()),
        ('{"type": "played", "ms": 1250}', Played(1250.0)),
        ('{"type": "played", "ms": 0.5}', Played(0.5)),
        ('{"type": "ping"}', Ping()),
        ('{"type": "end", "extra": [1, 2]}', End()),
    ],
)
def test_control_frames(frame: str, message: object) -> None:
    assert parse_control(frame) == message


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        ("not json", "not valid JSON"),
        ("42", "JSON objects"),
        ("null", "JSON objects"),
        ('{"type": "text", "text": "   "}', "'text'"),
        ('{"type": "text"}', "'text'"),
        ('{"type": "text", "text": 5}', "'text'"),
        ('{"type": "text", "text": "a\\u0000b"}', "'text'"),
        ('{"type": "text", "text": "' + "x" * 8001 + '"}', "'text'"),
        ('{"type": "ui_action", "display": "x"}', "'ui_action'"),
        ('{"type": "ui_action", "msg": "m", "display": 3}', "'ui_action'"),
        ('{"type": "approval", "tool_call_id": "call_1"}', "'approval'"),
        ('{"type": "approval", "tool_call_id": "call_1", "approved": "yes"}', "'approval'"),
        ('{"type": "approval", "tool_call_id": "call_1", "approved": 1}', "'approval'"),
        ('{"type": "ptt", "state": "sideways"}', "'ptt'"),
        ('{"type": "played", "ms": -5}', "'played'"),
        ('{"type": "played", "ms": true}', "'played'"),
        ('{"type": "played", "ms": NaN}', "'played'"),
        ('{"type": "played", "ms": Infinity}', "'played'"),
        ('{"type": "nonsense"}', "'nonsense'"),
        ('{"type": {"deep": 1}}', "unknown or incomplete"),
        ('{"no": "type"}', "'None'"),
        ('{"type": "ping", "x": ' + "[" * 65 + "]" * 65 + "}", "nested deeper than 64"),
        ("{" * 2000, "nested deeper than 64"),
        ('{"type": "ping", "n": ' + "9" * 5000 + "}", "not valid JSON"),
    ],
)
def test_a_bad_control_frame_is_a_bad_message(frame: str, problem: str) -> None:
    with pytest.raises(BadMessage, match=problem):
        parse_control(frame)


def test_nesting_is_allowed_up_to_64_levels_and_brackets_in_strings_do_not_count() -> None:
    inner = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert parse_control('{"type": "ping", "x": ' + inner + "}") == Ping()
    brackets = json.dumps("[{" * 500 + '\\"' + "[" * 100)
    assert parse_control('{"type": "text", "text": ' + brackets + "}") == Text(json.loads(brackets))


# --- rendering ---------------------------------------------------------------------------


def test_events_render_to_the_documented_frames() -> None:
    assert json.loads(render(AssistantDelta("Hé"))) == {"type": "assistant_delta", "text": "Hé"}
    assert "Hé" in render(AssistantDelta("Hé"))  # UTF-8 as is, not \\u escapes
    assert json.loads(render(Interrupted())) == {"type": "interrupted"}
    assert json.loads(render(Transcript("hi", final=True))) == {
        "type": "transcript_final",
        "text": "hi",
    }
    ended = json.loads(render(SessionEnded("USER_ENDED")))
    assert ended["type"] == "session_ended" and ended["reason"] == "USER_ENDED"


# --- properties --------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)
frames = st.one_of(
    st.text(),
    st.binary().map(lambda b: b.decode("utf-8", "replace")),
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["start", "ptt", "text", "ui_action", "approval", "played"])},
        optional={
            "state": json_values,
            "text": json_values,
            "msg": json_values,
            "display": json_values,
            "tool_call_id": json_values,
            "approved": json_values,
            "ms": json_values,
            "sample_rate": json_values,
            "output_sample_rate": json_values,
            "mode": json_values,
            "template_vars": json_values,
            "session_id": json_values,
            "session_token": json_values,
            "resume_token": json_values,
            "agent": json_values,
        },
    ).map(json.dumps),
)


@settings(max_examples=400, deadline=None)
@given(frames)
def test_any_frame_parses_or_is_a_bad_message(frame: str) -> None:
    for parse in (parse_control, parse_start):
        try:
            parse(frame)
        except BadMessage as exc:
            assert exc.code == "bad_message" and exc.message


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=0, max_value=130), st.sampled_from(["[", '{"k":']), st.text(max_size=5)
)
def test_the_depth_limit_is_exact_whatever_the_brackets(
    depth: int, opener: str, filler: str
) -> None:
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + json.dumps(filler) + closer * depth
    frame = '{"type": "ping", "x": ' + nested + "}"
    if depth + 1 <= MAX_DEPTH:
        assert parse_control(frame) == Ping()
    else:
        with pytest.raises(BadMessage, match="nested deeper"):
            parse_control(frame)
