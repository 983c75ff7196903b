"""Context compression: the pure plan on literal histories, and 200 turns on the LLM path."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.brain.context import (
    SUMMARY_INSTRUCTIONS,
    SUMMARY_PREFIX,
    Summary,
    estimate_tokens,
    plan,
)
from parley.brain.history import to_model_messages
from parley.config import ContextSpec
from parley.sessions.records import Message
from parley.testing.fake_openai import FakeOpenAIServer
from tests.plugins.apps import AppFactory
from tests.test_chat_api import collect


def msg(i: int, role: str, text: str, blocks: list[dict[str, object]] | None = None) -> Message:
    return Message(id=f"m{i}", session_id="s", seq=i, role=role, text=text,  # type: ignore[arg-type]
                   blocks=blocks or [])


def chat(turns: int, words: int = 20) -> list[Message]:
    out: list[Message] = []
    for _ in range(turns):
        out.append(msg(len(out), "user", " ".join(["hello"] * words)))
        out.append(msg(len(out), "assistant", " ".join(["answer"] * words)))
    return out


SPEC = ContextSpec(max_tokens=400, keep_recent_tokens=150, summary_max_tokens=50)


def test_a_short_history_is_sent_whole() -> None:
    assert plan(chat(2), None, SPEC).start == 0
    assert plan(chat(2), None, SPEC).fold is None


def test_a_long_history_is_cut_at_a_user_message_within_the_recent_budget() -> None:
    history = chat(20)
    decided = plan(history, None, SPEC)
    assert decided.fold == (0, decided.start)
    assert history[decided.start].role == "user"
    tail = to_model_messages("", history[decided.start :])[1:]
    assert estimate_tokens(tail) <= SPEC.keep_recent_tokens
    # the earliest such cut: one user message earlier would not fit
    earlier = to_model_messages("", history[decided.start - 2 :])[1:]
    assert estimate_tokens(earlier) > SPEC.keep_recent_tokens


def test_the_stored_summary_is_reused_while_the_view_fits() -> None:
    history = chat(20)
    first = plan(history, None, SPEC)
    summary = Summary(history[first.start - 1].id, "short summary")
    again = plan(history + chat(1), summary, SPEC)
    assert again.fold is None and again.start == first.start


def test_a_tool_call_is_never_separated_from_its_results() -> None:
    history = chat(10)
    call = [{"type": "tool_call", "id": "c1", "name": "t", "arguments": {"x": "y" * 200}}]
    result = [{"type": "tool_result", "tool_call_id": "c1", "name": "t", "status": "ok",
               "result": "z" * 400}]
    history += [msg(100, "user", "use the tool"), msg(101, "assistant", "", call),
                msg(102, "tool", "t: ok", result), msg(103, "assistant", "done")]
    decided = plan(history, None, SPEC)
    assert history[decided.start].role == "user"
    kept = history[decided.start :]
    assert any(m.id == "m101" for m in kept) == any(m.id == "m102" for m in kept)


def test_the_system_prompt_does_not_count() -> None:
    assert plan(chat(2), None, SPEC).fold is None  # whatever the prompt, which plan never sees


def test_off_when_max_tokens_is_none() -> None:
    assert plan(chat(100), None, ContextSpec(max_tokens=None)).fold is None


def test_a_recent_budget_that_does_not_fit_the_total_is_refused() -> None:
    with pytest.raises(ValueError, match="keep_recent_tokens"):
        ContextSpec(max_tokens=300, keep_recent_tokens=290, summary_max_tokens=20)


AGENT = """
name: longtalk
brain: llm
instructions: "You are a patient interviewer. {filler}"
template_vars: {filler: "%s"}
context: {max_tokens: 600, keep_recent_tokens: 250, summary_max_tokens: 60}
"""


async def test_200_turns_keep_every_request_under_the_budget_and_reuse_the_summary(
    make_app: AppFactory, fake_openai: FakeOpenAIServer, tmp_path: Path
) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    # a long system prompt: it must not count toward the trigger
    (agents / "longtalk.yaml").write_text(AGENT % ("x " * 2000))
    async with make_app(
        llm_base_url=fake_openai.base_url, llm_model="fake-model", agents_dir=agents
    ) as app:
        client = app.client()
        await client.create_session("longtalk")
        for turn in range(200):
            events = await collect(client.send(f"turn {turn}: " + "tell me more " * 8))
            assert events[-1].data["status"] == "completed"
        history = await client.messages()
        session = await app.services.store.get_session(client.session_id)  # type: ignore[arg-type]
        await client.aclose()
    assert len([m for m in history if m["role"] == "user"]) == 200  # the store keeps all
    chats = [r.body for r in fake_openai.requests if r.path.endswith("/chat/completions")]
    turns = [b for b in chats if not b["messages"][0]["content"].startswith(SUMMARY_INSTRUCTIONS)]
    summaries = [b for b in chats if b["messages"][0]["content"].startswith(SUMMARY_INSTRUCTIONS)]
    assert len(turns) == 200
    for body in turns:
        assert estimate_tokens(body["messages"][1:]) <= 600
    assert turns[-1]["messages"][1]["content"].startswith(SUMMARY_PREFIX)
    assert 1 <= len(summaries) <= 200 // 5  # folded now and then, not every turn
    assert session is not None and session.agent_state["_context"]["summary"]
