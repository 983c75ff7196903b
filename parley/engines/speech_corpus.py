"""Training text for an agent's speech language model that reaches past its phrase list.

A bigram model of ``voice.phrases`` alone knows only those word sequences: a caller who
says "a table for seven next friday" or asks about something the phrases never mention
is forced onto the nearest listed phrase. This module turns a whole agent file into a
larger, still in-domain corpus, with three generic devices:

* **Word classes.** Spans of the phrases that are a number, a clock time, a day, a month
  day or a person's name are recognised and every sentence is re-emitted with the other
  members of that class ("table for four on friday" → "... for seven on thursday"), so
  every member gets every context any member has (a class bigram written out in words).
* **Topics in carrier sentences.** The things the agent talks about — rule and FAQ
  keywords, dishes, allergens, tool labels — are put into common caller sentence frames
  ("do you have …", "is there …", "how much is …", "i'd like …").
* **The agent's own sentences.** Instructions, greeting, replies and FAQ answers are
  split into sentences: callers reuse the words they hear.

Pure and deterministic: the same agent file gives the same corpus.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from parley.engines.arpa import normalize, number_to_words, ordinal_to_words

_ONES = "one two three four five six seven eight nine ten eleven twelve".split()

NUMBERS: tuple[str, ...] = (
    *(number_to_words(n) for n in range(1, 21)),
    *("thirty", "forty", "fifty", "a hundred"),
)
"""Counts a caller says (party sizes, quantities, minutes)."""

TIMES: tuple[str, ...] = (
    *itertools.chain.from_iterable(
        (
            f"{h} thirty",
            f"{h} fifteen",
            f"{h} forty five",
            f"half past {h}",
            f"quarter past {h}",
            f"quarter to {h}",
            f"{h} o'clock",
            f"{h} p m",
            f"{h} a m",
        )
        for h in _ONES
    ),
    *("noon", "midday", "midnight", "lunchtime", "dinner time"),
)
"""Clock times in words (a bare hour is a member of ``NUMBERS``)."""

DAYS: tuple[str, ...] = (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "today", "tonight", "tomorrow", "tomorrow night", "tomorrow evening", "this evening",
    "this weekend", "next week", "the day after tomorrow",
)  # fmt: skip
"""Days, absolute and relative."""

MONTHS = (
    "january february march april may june july august september october november december"
).split()
DATES: tuple[str, ...] = tuple(ordinal_to_words(n) for n in range(1, 32)) + tuple(MONTHS)
"""Days of the month and months ("the fifth", "june")."""

FIRST_NAMES: tuple[str, ...] = tuple(
    """james john robert michael william david richard joseph thomas charles christopher
    daniel matthew anthony mark paul steven andrew kevin brian george edward peter jack
    harry oliver henry sam alex tom ben mary patricia jennifer linda elizabeth barbara
    susan jessica sarah karen lisa nancy emily emma anna maria laura helen rachel sophie
    olivia kate lucy amy claire julia""".split()
)
SURNAMES: tuple[str, ...] = tuple(
    """smith johnson williams brown jones miller davis wilson taylor anderson thomas
    moore martin jackson thompson white harris clark lewis robinson walker young allen
    king wright scott green baker adams hill wood hall evans turner cooper""".split()
)
NAMES: tuple[str, ...] = (
    FIRST_NAMES
    + SURNAMES
    + tuple(f"{f} {s}" for f, s in zip(FIRST_NAMES, itertools.cycle(SURNAMES), strict=False))
)
"""Common English given names and surnames, alone and as pairs (a name slot)."""

CLASSES: dict[str, tuple[str, ...]] = {
    "time": TIMES,
    "day": DAYS,
    "date": DATES,
    "name": NAMES,
    "number": NUMBERS,
}
"""Order matters only for ties: the longest matching span wins, then the first class."""

CARRIER_FRAMES: tuple[str, ...] = (
    "{x}",
    "{x} please",
    "the {x}",
    "about the {x}",
    "do you have {x}",
    "do you have any {x}",
    "do you do {x}",
    "do you offer {x}",
    "is there {x}",
    "is there any {x}",
    "is there a {x}",
    "what about {x}",
    "what about the {x}",
    "tell me about {x}",
    "tell me about the {x}",
    "can you tell me about the {x}",
    "i have a question about {x}",
    "i have a question about the {x}",
    "i'm calling about {x}",
    "i'm calling about the {x}",
    "i'd like {x}",
    "i would like the {x}",
    "i want {x}",
    "can i have the {x}",
    "can i get {x}",
    "how much is the {x}",
    "how much does the {x} cost",
    "what is the {x}",
    "what's the {x}",
    "is the {x} good",
    "does the {x} have {x2}",
    "is the {x} {x2}",
    "is {x} possible",
    "is {x} available",
    "is it possible to {x}",
    "can i {x}",
    "can we {x}",
    "could i {x}",
    "i need to {x}",
    "i want to {x}",
    "i'd like to {x}",
    "we would like to {x}",
    "how do i {x}",
    "yes {x}",
    "no {x}",
)
"""Common caller sentence shapes. ``{x}`` is a topic, ``{x2}`` a second topic."""


@dataclass(frozen=True, slots=True)
class SpeechCorpus:
    """Sentences (plain text) for :func:`parley.engines.arpa.build_domain_lm`, in three
    parts that are weighted differently when counted."""

    phrases: tuple[str, ...]  # what users say: listed phrases and their class variants
    topics: tuple[str, ...]  # topics in carrier frames
    agent_text: tuple[str, ...] = field(default=())  # the agent's own sentences

    def weighted(self, phrase_weight: int = 6, agent_weight: int = 1) -> list[str]:
        """One list in which each phrase counts ``phrase_weight`` times."""
        return [*self.phrases * phrase_weight, *self.topics, *self.agent_text * agent_weight]


# --- word classes -------------------------------------------------------------------------


def _class_index() -> dict[tuple[str, ...], str]:
    index: dict[tuple[str, ...], str] = {}
    for name, members in CLASSES.items():
        for member in members:
            index.setdefault(tuple(member.split()), name)
    for first, last in itertools.product(FIRST_NAMES, SURNAMES):  # any full name is one span
        index.setdefault((first, last), "name")
    return index


_INDEX = _class_index()
_LONGEST = max(len(k) for k in _INDEX)


def tag_classes(words: Sequence[str]) -> list[str | tuple[str, str]]:
    """Words with class spans replaced by ``(class, span text)``, longest match first."""
    out: list[str | tuple[str, str]] = []
    i = 0
    while i < len(words):
        for n in range(min(_LONGEST, len(words) - i), 0, -1):
            span = tuple(words[i : i + n])
            if span in _INDEX:
                out.append((_INDEX[span], " ".join(span)))
                i += n
                break
        else:
            out.append(words[i])
            i += 1
    return out


def class_variants(sentence: str, *, limit: int = 64) -> list[str]:
    """``sentence`` (normalised) and its variants with class members substituted.

    Each class span cycles through all members of its class (spans of one sentence
    advance together, offset so that pairs differ), capped at ``limit`` variants.
    """
    words = normalize(sentence)
    tagged = tag_classes(words)
    slots = [t for t in tagged if isinstance(t, tuple)]
    if not slots:
        return [" ".join(words)] if words else []
    width = min(limit, max(len(CLASSES[c]) for c, _ in slots))
    variants = {" ".join(words)}
    for i in range(width):
        parts: list[str] = []
        k = 0
        for t in tagged:
            if isinstance(t, tuple):
                members = CLASSES[t[0]]
                parts.append(members[(i + 7 * k) % len(members)])
                k += 1
            else:
                parts.append(t)
        variants.add(" ".join(parts))
    return sorted(variants)


# --- topics -------------------------------------------------------------------------------


def _words_of(text: str) -> str:
    return " ".join(normalize(text))


def topic_sentences(topics: Iterable[str], qualities: Iterable[str] = ()) -> list[str]:
    """Every topic in every carrier frame; ``{x2}`` frames pair it with a quality."""
    clean = sorted({t for t in (_words_of(x) for x in topics) if t})
    second = sorted({q for q in (_words_of(x) for x in qualities) if q}) or clean[:1]
    out: list[str] = []
    for i, topic in enumerate(clean):
        for j, frame in enumerate(CARRIER_FRAMES):
            x2 = second[(i + j) % len(second)] if second else ""
            out.append(frame.format(x=topic, x2=x2))
    return out


_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")
_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


def sentences_of(texts: Iterable[str]) -> list[str]:
    """Plain sentences of prose (``{placeholders}`` dropped)."""
    out: list[str] = []
    for text in texts:
        for part in _SENTENCE_END.split(_PLACEHOLDER.sub(" ", text)):
            words = _words_of(part)
            if words:
                out.append(words)
    return out


# --- the whole corpus ---------------------------------------------------------------------


def build_corpus(
    phrases: Iterable[str],
    topics: Iterable[str] = (),
    qualities: Iterable[str] = (),
    agent_text: Iterable[str] = (),
) -> SpeechCorpus:
    """The corpus of a domain given as plain lists (see :func:`agent_corpus`)."""
    expanded: list[str] = []
    for phrase in phrases:
        expanded.extend(class_variants(phrase))
    return SpeechCorpus(
        phrases=tuple(expanded),
        topics=tuple(topic_sentences(topics, qualities)),
        agent_text=tuple(sentences_of(agent_text)),
    )
