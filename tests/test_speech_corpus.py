"""The agent corpus behind the phone-grade language model: word classes, topics in
caller sentence frames, the agent's own sentences (parley.engines.speech_corpus)."""

from __future__ import annotations

from parley.config import load_agents
from parley.engines.arpa import build_domain_lm, normalize
from parley.engines.factory import speech_corpus, speech_phrases
from parley.engines.speech_corpus import (
    CLASSES,
    build_corpus,
    class_variants,
    sentences_of,
    tag_classes,
    topic_sentences,
)


def test_class_spans_are_tagged_longest_first() -> None:
    words = "a table for four on friday at seven thirty under john smith".split()
    assert tag_classes(words) == [
        "a", "table", "for", ("number", "four"), "on", ("day", "friday"), "at",
        ("time", "seven thirty"), "under", ("name", "john smith"),
    ]  # fmt: skip
    assert tag_classes(["the", "day", "after", "tomorrow"]) == [("day", "the day after tomorrow")]


def test_class_variants_give_every_member_the_context() -> None:
    variants = class_variants("table for four on friday")
    assert "table for four on friday" in variants
    for n in CLASSES["number"]:
        assert any(v.startswith(f"table for {n} on ") for v in variants), n
    for d in CLASSES["day"]:
        assert any(v.endswith(f" on {d}") for v in variants), d
    assert class_variants("what are your opening hours") == ["what are your opening hours"]
    assert len(class_variants("my name is john smith", limit=5)) <= 6
    assert class_variants("") == []


def test_topics_go_into_caller_frames() -> None:
    out = topic_sentences(["Sea bass", "parking"], ["gluten free"])
    assert "do you have parking" in out
    assert "how much is the sea bass" in out
    assert "is the sea bass gluten free" in out
    assert topic_sentences([]) == []


def test_agent_text_is_split_into_plain_sentences() -> None:
    got = sentences_of(["We're open {hours}. Closed on Mondays!\nCall us on 555 0123."])
    assert got == [
        "we're open",
        "closed on mondays",
        "call us on five hundred fifty five oh one two three",
    ]


def test_demo_agent_corpus_reaches_past_its_phrases() -> None:
    agent = load_agents()["demo"]
    corpus = speech_corpus(agent)
    assert corpus == speech_corpus(agent)  # deterministic
    listed = {" ".join(normalize(p)) for p in speech_phrases(agent)}
    assert listed <= set(corpus.phrases)
    # a party size and a day that no listed phrase pairs, a dish in a frame, an FAQ topic
    assert "table for seven on friday at eight" not in listed
    assert any(p.startswith("table for seven on ") for p in corpus.phrases)
    assert "how much is the chocolate fondant" in corpus.topics
    assert "do you have wifi" in corpus.topics
    assert any("harbour street" in s for s in corpus.agent_text)
    weighted = corpus.weighted(phrase_weight=3)
    assert weighted.count(corpus.phrases[0]) >= 3


def test_corpus_model_knows_sequences_the_phrase_model_does_not() -> None:
    phrases = ["a table for two on friday", "is there parking"]
    vocabulary = {w for p in ["a table for two seven on friday sunday is there parking do you "
                              "have wifi the how much"] for w in p.split()}  # fmt: skip
    plain = build_domain_lm(phrases, vocabulary=vocabulary)
    rich = build_domain_lm(
        build_corpus(phrases, topics=["wifi", "parking"]).weighted(), vocabulary=vocabulary
    )
    assert "seven" not in plain.words and "wifi" not in plain.words
    assert "seven\tsunday" not in rich.arpa
    assert "for seven" in rich.arpa and "have wifi" in rich.arpa
