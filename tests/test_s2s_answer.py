"""``ModelAnswer``: the pure bookkeeping of one speech-to-speech answer."""

from __future__ import annotations

from parley.voice.s2s_answer import ModelAnswer

CHUNK_20MS = 960  # 20 ms of 24 kHz PCM16


def answer_of(words: int, chunks: int, item: str | None = "item_1") -> ModelAnswer:
    answer = ModelAnswer()
    for _ in range(chunks):
        answer.add_audio(CHUNK_20MS, item)
    answer.add_text(" ".join(f"w{i}" for i in range(1, words + 1)))
    return answer


def test_heard_is_the_played_share_of_the_words() -> None:
    answer = answer_of(words=10, chunks=10)  # 200 ms
    assert answer.heard_of(0.0) == ""
    assert answer.heard_of(0.1) == "w1 w2 w3 w4 w5"
    assert answer.heard_of(0.119) == "w1 w2 w3 w4 w5"  # a word counts once wholly played
    assert answer.heard_of(5.0) == answer.text


def test_truncation_is_measured_from_the_playing_items_first_audio() -> None:
    answer = ModelAnswer()
    for _ in range(5):
        answer.add_audio(CHUNK_20MS, "a")  # 0-100 ms
    for _ in range(5):
        answer.add_audio(CHUNK_20MS, "b")  # 100-200 ms
    assert answer.truncation(0.05) == ("a", 50)
    assert answer.truncation(0.15) == ("b", 50)
    assert ModelAnswer().truncation(0.1) is None


def test_text_before_a_tool_call_is_stored_once() -> None:
    answer = ModelAnswer()
    answer.add_text("Let me check.")
    assert answer.take_unstored() == "Let me check."
    answer.add_text(" It is free.")
    # Gemini's final transcript repeats the whole turn: only the rest is new
    assert answer.final_text("Let me check. It is free.") == "It is free."
    assert answer.final_text("Something else.") == "Something else."


def test_heard_after_a_stored_part_is_the_rest() -> None:
    answer = ModelAnswer(stored="Let me check.")
    assert answer.unstored_heard("Let me check. It is") == "It is"
    assert answer.unstored_heard("Let me") == ""
