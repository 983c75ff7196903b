"""Typing as people type: abbreviations, misspellings, emoji — made readable for the rules.

Pure text → text, applied to a user message before intents and slots are read:

- emoji and other pictographs are dropped; "@ 7" reads "at 7"
- common chat abbreviations are spelled out ("tmrw", "ppl", "pls", "2nite", "thx")
- a number word misspelled as its homophone before a party noun ("too people") is fixed
- a word that is one edit (two for long words) away from a known word ("tomorow",
  "reservaton", "vegatarian") becomes that word; known words come from a built-in list
  plus the agent's own keywords, so an agent file's vocabulary is covered too

Short words are never "corrected" (too many real words are one letter apart), nor
are capitalised words inside a sentence (names: "my name is Fridah"). The rules
brain does not fix an answer to "what name should I put it under?" at all.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

ABBREVIATIONS = {
    "tmrw": "tomorrow",
    "tmr": "tomorrow",
    "tmrow": "tomorrow",
    "tmw": "tomorrow",
    "tomoz": "tomorrow",
    "2moro": "tomorrow",
    "2morrow": "tomorrow",
    "tommorow": "tomorrow",
    "2nite": "tonight",
    "tonite": "tonight",
    "2night": "tonight",
    "tdy": "today",
    "ppl": "people",
    "ppls": "people",
    "pple": "people",
    "peeps": "people",
    "pax": "people",
    "pls": "please",
    "plz": "please",
    "pleas": "please",
    "thx": "thanks",
    "thnx": "thanks",
    "ty": "thanks",
    "u": "you",
    "ur": "your",
    "r": "are",
    "wanna": "want to",
    "gonna": "going to",
    "resv": "reservation",
    "rez": "reservation",
    "res": "reservation",
    "reso": "reservation",
    "tbl": "table",
    "veggie": "vegetarian",
    "veg": "vegetarian",
    "mon": "monday",
    "tue": "tuesday",
    "tues": "tuesday",
    "wed": "wednesday",
    "thu": "thursday",
    "thur": "thursday",
    "thurs": "thursday",
    "fri": "friday",
    "sat": "saturday",
    "sun": "sunday",
    "wknd": "weekend",
    "b4": "before",
    "w/": "with",
    "hrs": "hours",
    "pm.": "pm",
    "am.": "am",
    "abt": "about",
    "hw": "how",
    "nite": "night",
    "2day": "today",
    "lol": "",
    "pls.": "please",
    "dont": "don't",
    "cant": "can't",
    "im": "i'm",
    "whats": "what's",
    "wats": "what's",
    "wat": "what",
}
_PARTY_NOUN = r"(?:people|persons|guests|adults|of us|ppl)"
VOCABULARY = set(
    """
    tomorrow tonight today reservation reserve booking available availability table
    people vegetarian vegan gluten allergy allergic allergies allergens restaurant
    monday tuesday wednesday thursday friday saturday sunday weekend
    january february march april june july august september october november december
    please thanks thank cancel confirmation number opening hours address location
    parking payment credit highchair takeaway delivery running late dessert desserts
    menu dishes special specials morning afternoon evening o'clock quarter half
    seven eight three four twelve eleven twenty thirty fifteen forty
    tell about chocolate mushroom risotto parmesan steak frites fondant bass
    """.split()
)


def _distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein distance (adjacent swaps count one), capped at ``limit + 1``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


class TypingFixer:
    """Fixes one agent's users' typing; ``vocabulary`` adds the agent's own words."""

    def __init__(self, vocabulary: Iterable[str] = ()) -> None:
        extra = {w.lower() for phrase in vocabulary for w in re.findall(r"[a-z']+", phrase.lower())}
        self.known = VOCABULARY | {w for w in extra if len(w) >= 5}

    def _correct(self, word: str) -> str:
        low = word.lower()
        if low in ABBREVIATIONS:
            return ABBREVIATIONS[low]
        if len(low) < 6 or low in self.known or not low.isalpha():
            return word
        limit = 2 if len(low) >= 9 else 1
        best: tuple[int, str] | None = None
        for known in self.known:
            if known[0] != low[0] and len(low) < 9:
                continue
            d = _distance(low, known, limit)
            if d <= limit and (best is None or d < best[0]):
                best = (d, known)
        return best[1] if best is not None else word

    def fix(self, text: str) -> str:
        t = "".join(
            " " if unicodedata.category(ch) in ("So", "Sk", "Cs") or ch == "\ufe0f" else ch
            for ch in text.replace("\u2019", "'")
        )
        t = re.sub(r"@\s*(?=\d)", "at ", t)
        t = re.sub(rf"\b(?:too|to)\s+(?={_PARTY_NOUN}\b)", "two ", t, flags=re.IGNORECASE)
        t = re.sub(rf"\bfor\s+(?:too|to)\b(?=\s*(?:$|[.,!?]|{_PARTY_NOUN}))", "for two", t)
        t = re.sub(  # "table for too tomorrow": nobody books a table "for to"
            r"\b(table|booking|reservation|book|reserve|seats?)\s+for\s+(?:too|to)\b",
            r"\1 for two",
            t,
            flags=re.IGNORECASE,
        )
        t = re.sub(r"(\d)\s*(ppl|pax)\b", r"\1 people", t, flags=re.IGNORECASE)
        words = re.split(r"(\s+|[.,!?;:()\"]+)", t)
        fixed = [
            self._correct(w) if w and w.strip() and w[0].isalnum() and not _proper(words, i) else w
            for i, w in enumerate(words)
        ]
        return re.sub(r"\s+", " ", "".join(fixed)).strip()


def _proper(parts: list[str], i: int) -> bool:
    """A capitalised word inside a sentence ("my name is Fridah") is a name: left alone."""
    word = parts[i]
    if not word[:1].isupper() or word.isupper():
        return False
    before = "".join(parts[:i]).rstrip()
    return bool(before) and before[-1] not in ".!?"
