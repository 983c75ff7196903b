"""SentenceChunker (streaming deltas → speakable chunks) and speakable() (markdown → speech)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.voice.chunker import SentenceChunker, speakable


def whole(text: str, **kwargs: int | None) -> list[str]:
    chunker = SentenceChunker(**kwargs)
    return chunker.push(text) + chunker.flush()


def streamed(deltas: list[str], **kwargs: int | None) -> list[str]:
    chunker = SentenceChunker(**kwargs)
    out: list[str] = []
    for delta in deltas:
        out += chunker.push(delta)
    return out + chunker.flush()


def by_char(text: str, **kwargs: int | None) -> list[str]:
    return streamed(list(text), **kwargs)


# --- boundaries -------------------------------------------------------------------------


def test_sentences_end_at_terminators() -> None:
    text = "Hello there. How are you? I'm fine! Really?! Yes…"
    assert whole(text) == ["Hello there.", "How are you?", "I'm fine!", "Really?!", "Yes…"]


def test_first_sentence_is_emitted_as_soon_as_it_is_complete() -> None:
    chunker = SentenceChunker()
    assert chunker.push("Sure") == []
    assert chunker.push(".") == []  # could be "Sure.com" or an abbreviation
    assert chunker.push(" I") == ["Sure."]
    assert chunker.push(" can help.") == []
    assert chunker.flush() == ["I can help."]
    assert chunker.flush() == []


def test_question_mark_waits_only_for_the_next_character() -> None:
    chunker = SentenceChunker()
    assert chunker.push("Ready?") == []
    assert chunker.push("\n") == ["Ready?"]


@pytest.mark.parametrize(
    "text",
    [
        "Dr. Smith and Mr. Jones met Mrs. Brown on Main St. today.",
        "Bring fruit, e.g. apples, i.e. something sweet.",
        "It costs $4.50 per unit and 3.5 units in total.",
        "The train leaves at 7.30 sharp.",
        "We met at 7 a.m. on a Monday.",
        "Apples, pears, etc. are all fine.",
        "Call after 5 p.m. tomorrow.",
        "J. R. R. Tolkien wrote it.",
        "Well... maybe not.",
        "Hmm… probably.",
        "Visit example.com/a.b for more.",
        "The U.S. team won.",
        "Paul vs. Peter was close.",
    ],
)
def test_abbreviations_numbers_initials_and_ellipses_do_not_split(text: str) -> None:
    assert whole(text) == [text]
    assert by_char(text) == [text]


@pytest.mark.parametrize(
    ("text", "chunks"),
    [
        ("We met at 7 a.m. Then we left.", ["We met at 7 a.m.", "Then we left."]),
        ("Pears, apples, etc. That is all.", ["Pears, apples, etc.", "That is all."]),
        ("Wait... What was that?", ["Wait...", "What was that?"]),
        ("It was 42. Next one.", ["It was 42.", "Next one."]),
        ("It costs $4.50. Cheap.", ["It costs $4.50.", "Cheap."]),
        ("So did I. Then we went.", ["So did I.", "Then we went."]),
        ("Go to example.com. Then log in.", ["Go to example.com.", "Then log in."]),
        ('He said "hi." Then he left.', ['He said "hi."', "Then he left."]),
        ("(Really.) Yes.", ["(Really.)", "Yes."]),
        ("**Done.** Next step.", ["**Done.**", "Next step."]),
        ('"Inc." is a suffix.', ['"Inc." is a suffix.']),
        ('Ask "Dr." Who.', ['Ask "Dr." Who.']),
    ],
)
def test_sentence_final_abbreviations_and_closers(text: str, chunks: list[str]) -> None:
    assert whole(text) == chunks
    assert by_char(text) == chunks


def test_maybe_final_abbreviation_waits_for_the_next_word() -> None:
    chunker = SentenceChunker()
    assert chunker.push("Open at 9 a.m.") == []
    assert chunker.push("   ") == []
    assert chunker.push("Closed") == ["Open at 9 a.m."]


def test_newlines_split_lists_and_paragraphs() -> None:
    text = "Here are the steps:\n1. Buy milk.\n2. Go home\n\n- one\n- two\n"
    assert whole(text) == ["Here are the steps:", "1. Buy milk.", "2. Go home", "- one", "- two"]


def test_clause_marks_are_not_sentence_ends() -> None:
    text = "Note: this; that, and more. Fine."
    assert whole(text) == ["Note: this; that, and more.", "Fine."]


def test_long_first_clause_is_cut_at_a_comma() -> None:
    opening = "Thanks for waiting while I looked through all of your recent orders,"
    text = f"{opening} and I found it, the blue one. Then, later, more."
    assert whole(text) == [opening, "and I found it, the blue one.", "Then, later, more."]
    assert whole(text, first_clause_chars=None) == [
        f"{opening} and I found it, the blue one.",
        "Then, later, more.",
    ]


def test_short_first_clause_is_not_cut() -> None:
    assert whole("Yes, of course.") == ["Yes, of course."]
    assert whole("1,000,000 is a big number, right?", first_clause_chars=5) == [
        "1,000,000 is a big number,",
        "right?",
    ]


def test_clause_cut_waits_for_the_next_character() -> None:
    chunker = SentenceChunker(first_clause_chars=5)
    assert chunker.push("Hello there,") == []
    assert chunker.push(" friend") == ["Hello there,"]
    assert chunker.flush() == ["friend"]


def test_a_chunk_without_punctuation_is_cut_at_max_chars() -> None:
    words = " ".join(f"word{i}" for i in range(40))
    chunks = whole(words, max_chars=50)
    assert all(len(c) <= 50 for c in chunks)
    assert " ".join(chunks) == words
    assert len(chunks) > 1


def test_a_giant_word_is_cut_at_max_chars() -> None:
    assert whole("x" * 25, max_chars=10) == ["x" * 10, "x" * 10, "x" * 5]


def test_flush_emits_the_rest_and_resets() -> None:
    chunker = SentenceChunker(first_clause_chars=5)
    assert chunker.push("Trailing text without end") == []
    assert chunker.flush() == ["Trailing text without end"]
    assert chunker.push("   ") == []
    assert chunker.flush() == []
    # the first-clause rule applies to each new stream again
    assert chunker.push("Hello there, friend") == ["Hello there,"]


def test_flush_decides_pending_lookahead() -> None:
    for text in ["Ends with etc.", "Ends with a.m.", "Ends with...", "Title Dr.", 'Quote."']:
        assert whole(text) == [text]


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="first_clause_chars"):
        SentenceChunker(first_clause_chars=0)
    with pytest.raises(ValueError, match="max_chars"):
        SentenceChunker(max_chars=5)


# --- streaming equals whole text ----------------------------------------------------------

SAMPLE = (
    "Hi! I'm Dr. Who, e.g. a doctor.  It costs $4.50 at 7.30 p.m. Today... or not… "
    "Well... Fine. J. R. R. Tolkien? Yes: really; ok.\n\n1. First item.\n- second, "
    "a.m. U.S. etc. Then a very long clause that keeps going, and going, and going on."
)


def test_one_char_deltas_equal_the_whole_text() -> None:
    assert by_char(SAMPLE) == whole(SAMPLE)
    assert by_char(SAMPLE, first_clause_chars=20, max_chars=40) == whole(
        SAMPLE, first_clause_chars=20, max_chars=40
    )


_ALPHABET = [*"ab A.!?,;:…\n\"')*$3", "Dr", "etc", "e.g", "a.m", "...", " I", "  "]


@settings(database=None, max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(_ALPHABET), max_size=80),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=30),
    first_clause=st.sampled_from([None, 1, 8]),
)
def test_any_split_gives_the_same_chunks(
    pieces: list[str], cuts: list[int], first_clause: int | None
) -> None:
    text = "".join(pieces)
    points = sorted({c for c in cuts if c < len(text)} | {0, len(text)})
    deltas = [text[a:b] for a, b in itertools.pairwise(points)]
    expected = whole(text, first_clause_chars=first_clause, max_chars=20)
    assert streamed(deltas, first_clause_chars=first_clause, max_chars=20) == expected
    # nothing is lost but whitespace, and no chunk is empty
    assert "".join(expected).replace(" ", "") == "".join(text.split())
    assert all(chunk and chunk == chunk.strip() for chunk in expected)


# --- speakable ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("**Bold** and *italic* and __strong__ and _em_", "Bold and italic and strong and em"),
        ("Use `pip install` now", "Use pip install now"),
        ("## Opening hours", "Opening hours"),
        ("- an item", "an item"),
        ("* another item", "another item"),
        ("1. Keep numbers", "1. Keep numbers"),
        ("> quoted text", "quoted text"),
        ("See [the docs](https://example.com/docs) please.", "See the docs please."),
        ("![a cat](cat.png)", "a cat"),
        ("Go to https://example.com/a?b=1.", "Go to link."),
        ("Or www.example.com, then", "Or link, then"),
        ("keep snake_case names", "keep snake_case names"),
        ("~~old~~ new", "old new"),
        ("```python\nprint('hi')\n```", "print('hi')"),
        ("---", ""),
        ("| a | b |\n|---|:---:|\n| 1 | 2 |", "a, b 1, 2"),
        ("two\nlines  and   spaces", "two lines and spaces"),
        ("", ""),
    ],
)
def test_speakable_strips_markdown_noise(text: str, spoken: str) -> None:
    assert speakable(text) == spoken
