"""Domain bigram language model for pocketsphinx, built from an agent's phrases.

A handful of example sentences ("book a table for four on friday at seven") make a
far better recogniser for one agent than the generic English model: the text is
normalised (lowercase, numbers spelled out, punctuation stripped, ``{slot}``
placeholders expanded from given values), words the pronouncing dictionary does not
know are dropped (and reported), and a bigram model with absolute discounting and
backoff to unigrams is written as ARPA text.

Everything here is pure and deterministic except :func:`load_dictionary`, which reads
the pronouncing dictionary shipped with pocketsphinx.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

SENTENCE_START = "<s>"
SENTENCE_END = "</s>"
MAX_EXPANSIONS = 200
"""Templates whose slot combinations exceed this are covered, not enumerated."""

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((1_000_000_000, "billion"), (1_000_000, "million"), (1_000, "thousand"))
_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TIME = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b")
_DECIMAL = re.compile(r"\b(\d+)\.(\d+)\b")
_NUMBER = re.compile(r"\d+")
_NON_WORD = re.compile(r"[^a-z' ]+")


@dataclass(frozen=True, slots=True)
class DomainLM:
    """A built model: the ARPA text plus what went into it."""

    arpa: str
    words: tuple[str, ...]  # the LM's vocabulary, sorted (without <s> and </s>)
    oov: tuple[str, ...]  # words dropped because the dictionary lacks them, sorted
    sentences: int  # normalised sentences the counts came from


# --- text normalisation ----------------------------------------------------------------


def number_to_words(n: int) -> str:
    """Cardinal English words for ``0 <= n < 10**12`` ("one hundred five")."""
    if n < 0 or n >= 10**12:
        raise ValueError(f"number out of range for spelling out: {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_to_words(rest)}" if rest else "")
    for value, name in _SCALES:
        if n >= value:
            high, rest = divmod(n, value)
            head = f"{number_to_words(high)} {name}"
            return head + (f" {number_to_words(rest)}" if rest else "")
    raise AssertionError("unreachable")


def ordinal_to_words(n: int) -> str:
    """Ordinal English words ("twenty first")."""
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _spell_digits(digits: str) -> str:
    return " ".join("oh" if d == "0" else _ONES[int(d)] for d in digits)


def _spell_number(match: re.Match[str]) -> str:
    digits = match.group(0)
    # Phone numbers, codes and zero-padded numbers are read digit by digit.
    if len(digits) >= 5 or (len(digits) > 1 and digits.startswith("0")):
        return f" {_spell_digits(digits)} "
    return f" {number_to_words(int(digits))} "


def _spell_time(match: re.Match[str]) -> str:
    hour, minute = int(match.group(1)), int(match.group(2))
    if minute == 0:
        return f" {number_to_words(hour)} "
    if minute < 10:
        return f" {number_to_words(hour)} oh {_ONES[minute]} "
    return f" {number_to_words(hour)} {number_to_words(minute)} "


def normalize(text: str) -> list[str]:
    """Lowercase words with numbers spelled out and punctuation removed."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.replace("&", " and ").replace("%", " percent ").replace("’", "'")
    text = _TIME.sub(_spell_time, text)
    text = _ORDINAL.sub(lambda m: f" {ordinal_to_words(int(m.group(1)))} ", text)
    text = _DECIMAL.sub(
        lambda m: f" {number_to_words(int(m.group(1)))} point {_spell_digits(m.group(2))} ", text
    )
    text = _NUMBER.sub(_spell_number, text)
    text = _NON_WORD.sub(" ", text)
    return [w for w in (raw.strip("'") for raw in text.split()) if w]


# --- slot expansion ---------------------------------------------------------------------


def expand_slots(
    template: str,
    slots: Mapping[str, Sequence[str]] | None = None,
    *,
    max_expansions: int = MAX_EXPANSIONS,
) -> list[str]:
    """Fill ``{name}`` placeholders with every combination of the given values.

    Placeholders without values are removed. When the combinations exceed
    ``max_expansions``, a deterministic subset is returned in which every value of
    every slot occurs at least once.
    """
    names = [name for name in _SLOT.findall(template) if slots and slots.get(name)]
    if not names:
        return [_SLOT.sub(" ", template)]
    unique = list(dict.fromkeys(names))
    assert slots is not None
    choices = [list(slots[name]) for name in unique]
    total = math.prod(len(c) for c in choices)
    if total <= max_expansions:
        combos: Iterable[tuple[str, ...]] = itertools.product(*choices)
    else:
        width = max(len(c) for c in choices)
        combos = (tuple(c[(i + k) % len(c)] for k, c in enumerate(choices)) for i in range(width))
        log.debug("template %r has %d slot combinations; using %d", template, total, width)
    return [_fill(template, dict(zip(unique, combo, strict=True))) for combo in combos]


def _fill(template: str, values: Mapping[str, str]) -> str:
    return _SLOT.sub(lambda m: f" {values.get(m.group(1), '')} ", template)


# --- the pronouncing dictionary ----------------------------------------------------------


def default_dictionary_path() -> str:
    """The CMU dictionary bundled with pocketsphinx."""
    import pocketsphinx  # local: keeps this module importable without the engine

    return os.path.join(pocketsphinx.get_model_path(), "en-us", "cmudict-en-us.dict")


def load_dictionary(path: str | None = None) -> dict[str, list[str]]:
    """Word -> its dictionary lines (``"word PH O N"``, alternates ``"word(2) ..."``)."""
    entries: dict[str, list[str]] = defaultdict(list)
    with open(path or default_dictionary_path(), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(";;;"):
                continue
            head = line.split(None, 1)[0]
            entries[head.split("(", 1)[0]].append(line)
    return dict(entries)


# --- the model ----------------------------------------------------------------------------


def normalized_sentences(
    phrases: Iterable[str], slots: Mapping[str, Sequence[str]] | None = None
) -> list[list[str]]:
    """Each phrase expanded and normalised; empty results are dropped."""
    out: list[list[str]] = []
    for phrase in phrases:
        for text in expand_slots(phrase, slots):
            words = normalize(text)
            if words:
                out.append(words)
    return out


def build_domain_lm(
    phrases: Iterable[str],
    *,
    slots: Mapping[str, Sequence[str]] | None = None,
    vocabulary: Container[str] | None = None,
    discount: float | None = None,
    background: Mapping[str, float] | None = None,
    background_weight: float = 0.0,
) -> DomainLM:
    """A bigram ARPA model of ``phrases`` restricted to ``vocabulary``.

    ``vocabulary`` defaults to the words of the pocketsphinx dictionary. ``discount``
    (0 < D < 1) defaults to Ney's estimate ``n1 / (n1 + 2 n2)`` from the bigram counts.

    ``background`` (word → probability, e.g. the commonest words of general English)
    lets the model generalise past the phrases: the unigram distribution the bigrams
    back off to becomes ``(1 - w) P_phrases + w P_background`` over both vocabularies
    (``w`` = ``background_weight``), so unseen words stay possible but unlikely.
    """
    if discount is not None and not 0 < discount < 1:
        raise ValueError(f"discount must be between 0 and 1, got {discount}")
    if not 0 <= background_weight < 1 or (background_weight > 0) != bool(background):
        raise ValueError("background_weight must be in [0, 1) and > 0 exactly with a background")
    known: Container[str] = load_dictionary() if vocabulary is None else vocabulary
    oov: set[str] = set()
    sentences: list[list[str]] = []
    for words in normalized_sentences(phrases, slots):
        kept = [w for w in words if w in known]
        oov.update(w for w in words if w not in known)
        if kept:
            sentences.append(kept)
    if not sentences:
        raise ValueError("no phrase has a word in the recogniser's dictionary")
    if oov:
        log.warning("dropped %d words missing from the dictionary: %s", len(oov), sorted(oov))
    mix: dict[str, float] = {}
    if background:
        kept_bg = {w: p for w, p in background.items() if w in known and p > 0}
        total = sum(kept_bg.values())
        mix = {w: background_weight * p / total for w, p in kept_bg.items()}
    arpa, vocab = _bigram_arpa(sentences, discount, mix)
    return DomainLM(arpa=arpa, words=vocab, oov=tuple(sorted(oov)), sentences=len(sentences))


def build_arpa(
    phrases: Iterable[str],
    *,
    slots: Mapping[str, Sequence[str]] | None = None,
    vocabulary: Container[str] | None = None,
) -> str:
    """ARPA text of :func:`build_domain_lm`."""
    return build_domain_lm(phrases, slots=slots, vocabulary=vocabulary).arpa


def _bigram_arpa(
    sentences: list[list[str]], discount: float | None, mix: Mapping[str, float] | None = None
) -> tuple[str, tuple[str, ...]]:
    """``mix``: background unigram mass per word (summing to the background weight)."""
    unigrams: Counter[str] = Counter()
    bigrams: Counter[tuple[str, str]] = Counter()
    for words in sentences:
        tokens = [SENTENCE_START, *words, SENTENCE_END]
        unigrams.update(tokens[1:])
        bigrams.update(itertools.pairwise(tokens))
    total = sum(unigrams.values())
    keep = 1.0 - sum((mix or {}).values())
    p_uni = {w: keep * c / total for w, c in unigrams.items()}
    for w, p in (mix or {}).items():
        if w not in (SENTENCE_START, SENTENCE_END):
            p_uni[w] = p_uni.get(w, 0.0) + p
    d = discount if discount is not None else _ney_discount(bigrams)

    followers: dict[str, list[str]] = defaultdict(list)
    history_count: Counter[str] = Counter()
    for (h, w), c in bigrams.items():
        followers[h].append(w)
        history_count[h] += c

    p_bi: dict[tuple[str, str], float] = {}
    backoff: dict[str, float] = {}
    for h, seen in followers.items():
        c_h = history_count[h]
        rest = 1.0 - sum(p_uni[w] for w in seen)
        d_h = d if rest > 1e-9 else 0.0  # h is followed by every word: nothing to back off to
        for w in seen:
            p_bi[(h, w)] = (bigrams[(h, w)] - d_h) / c_h
        backoff[h] = (d_h * len(seen) / c_h) / rest if d_h else 1.0

    vocab = sorted(w for w in p_uni if w != SENTENCE_END)
    lines = ["", "\\data\\", f"ngram 1={len(p_uni) + 1}", f"ngram 2={len(p_bi)}", ""]
    lines.append("\\1-grams:")
    for w in [SENTENCE_END, SENTENCE_START, *vocab]:
        prob = "-99.0000" if w == SENTENCE_START else f"{math.log10(p_uni[w]):.4f}"
        bow = f"\t{math.log10(backoff[w]):.4f}" if w in backoff else ""
        lines.append(f"{prob}\t{w}{bow}")
    lines += ["", "\\2-grams:"]
    for (h, w), p in sorted(p_bi.items()):
        lines.append(f"{math.log10(p):.4f}\t{h} {w}")
    lines += ["", "\\end\\", ""]
    return "\n".join(lines), tuple(vocab)


def _ney_discount(bigrams: Counter[tuple[str, str]]) -> float:
    n1 = sum(1 for c in bigrams.values() if c == 1)
    n2 = sum(1 for c in bigrams.values() if c == 2)
    if n1 == 0 or n2 == 0:
        return 0.5
    return min(0.9, max(0.1, n1 / (n1 + 2 * n2)))
