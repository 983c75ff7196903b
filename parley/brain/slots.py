"""Slot extraction for the rules brain: party size, day, time and name from one message.

Pure functions over text (typed or transcribed, so numbers may be digits or words).
Values are normalised, so that a later message can override an earlier one and tools
get stable arguments:

- ``party_size``: ``int`` from 1 to 50 ("for two", "4 people", "party of six")
- ``date``: a readable day: ``"tonight"``, ``"today"``, ``"tomorrow"``, ``"Friday"``,
  ``"next Friday"``, ``"the 5th"``, ``"5 March"``, ``"Friday 14 March 2025"`` (ISO input)
- ``time``: 24-hour ``"HH:MM"`` ("7pm", "seven thirty", "at 19:30", "noon");
  ``say_time`` renders it for people (``"7:30 pm"``). An hour without am/pm takes
  the half of the day the venue's hours allow (``bookable``); failing that, "9:00"
  is 9 am as written and a spoken or bare hour from 1 to 10 is the evening.
- ``name``: as written, title-cased when written all in lower case

``expecting`` names the slot the assistant just asked for, so a bare answer
("four", "seven", "the fifth", "Sam Smith") fills it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# --- numbers ----------------------------------------------------------------------------

_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50}
_WORD_VALUE = {w: i for i, w in enumerate(_UNITS)} | _TENS
_ONE_TO_NINE = "|".join(_UNITS[1:10])
_NUM_WORD = rf"(?:(?:twenty|thirty|forty|fifty)(?:\s(?:{_ONE_TO_NINE}))?|{'|'.join(_UNITS)})"
NUM = rf"(?:\d{{1,2}}|{_NUM_WORD})"
_MINUTE_WORD = (
    rf"(?:oh\s(?:{_ONE_TO_NINE})|(?:twenty|thirty|forty|fifty)(?:\s(?:{_ONE_TO_NINE}))?"
    r"|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen)"
)

_ORDINALS = (
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
    "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth"
).split()
_ORD_VALUE = {w: i + 1 for i, w in enumerate(_ORDINALS)} | {"thirtieth": 30}
_ORD_WORD = rf"(?:(?:twenty|thirty)\s(?:{'|'.join(_ORDINALS[:9])})|{'|'.join(_ORD_VALUE)})"
_ORD = rf"(?:\d{{1,2}}(?:st|nd|rd|th)|{_ORD_WORD})"

_WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
_MONTHS = (
    "january february march april may june july august september october november december"
).split()
_MONTH = "|".join(_MONTHS)


def number_value(token: str) -> int | None:
    """``"7"`` → 7, ``"forty five"`` → 45, ``"oh five"`` → 5; None if not a number."""
    token = token.strip()
    if token.isdigit():
        return int(token)
    total = 0
    for part in token.split():
        if part == "oh":
            continue
        if part not in _WORD_VALUE:
            return None
        total += _WORD_VALUE[part]
    return total


def ordinal_value(token: str) -> int | None:
    """``"5th"`` → 5, ``"twenty first"`` → 21."""
    token = token.strip()
    digits = re.match(r"(\d{1,2})(?:st|nd|rd|th)?$", token)
    if digits:
        return int(digits[1])
    parts = token.split()
    if len(parts) == 2 and parts[0] in _TENS and parts[1] in _ORD_VALUE:
        return _TENS[parts[0]] + _ORD_VALUE[parts[1]]
    return _ORD_VALUE.get(token)


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# --- rendering ----------------------------------------------------------------------------


_NO_ON = ("today", "tonight", "tomorrow", "the day after tomorrow")


def on_date(date: str) -> str:
    """The day as it reads after "a table for two …": ``"on Friday"``, ``"tomorrow"``."""
    if date.lower() in _NO_ON or date.lower().startswith(("next ", "this ")):
        return date
    return f"on {date}"


# --- normalising and matching ---------------------------------------------------------------


def _normalise(text: str) -> str:
    t = " " + text.lower().replace("\u2019", "'") + " "
    t = re.sub(r"\b([ap])\.\s?m\b\.?", r"\1m", t)
    t = re.sub(r"\b([ap])\s+m\b", r"\1m", t)
    t = re.sub(r"\bo\s*'\s*clock\b|\bo\s+clock\b", "oclock", t)
    t = re.sub(r"(?<=\d)(am|pm|oclock)\b", r" \1", t)
    t = re.sub(r"[-\u2013,;!?\"()]", " ", t)
    t = re.sub(r"\.(?!\d)", " ", t)
    return re.sub(r"\s+", " ", t)


Match = tuple[int, Any]  # (position, value)
Handler = Callable[[re.Match[str]], Any]


def _scan(
    text: str, patterns: Sequence[tuple[re.Pattern[str], Handler]]
) -> tuple[str, list[Match]]:
    """Run patterns in priority order; each match's span is blanked so later (weaker)
    patterns cannot reuse it. Handlers return None to reject a match."""
    found: list[Match] = []
    for pattern, handler in patterns:
        for m in list(pattern.finditer(text)):
            value = handler(m)
            if value is None:
                continue
            found.append((m.start(), value))
            text = text[: m.start()] + " " * (m.end() - m.start()) + text[m.end() :]
    return text, found


def _latest(found: list[Match]) -> Any:
    return max(found, key=lambda f: f[0])[1] if found else None


# --- time -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ambiguous:
    """An hour said without am/pm ("at seven", "9:00"): which half of the day depends
    on the venue's hours; without them, ``default``."""

    am: str
    pm: str
    default: str

    def pick(self, bookable: Callable[[str], bool] | None) -> str:
        if bookable is not None:
            am_ok, pm_ok = bookable(self.am), bookable(self.pm)
            if am_ok != pm_ok:
                return self.am if am_ok else self.pm
        return self.default


def _clock(
    hour: int | None, minute: int | None, meridiem: str | None, *, digits: bool = False
) -> str | _Ambiguous | None:
    """``digits``: written as "9:00" (read as written, 9 am, unless the hours say
    otherwise); a spoken or bare hour from 1 to 10 defaults to the evening."""
    if hour is None or minute is None or hour > 23 or minute > 59:
        return None
    if meridiem in ("am", "pm"):
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    elif 1 <= hour <= 11:
        am, pm = f"{hour:02d}:{minute:02d}", f"{hour + 12:02d}:{minute:02d}"
        default = am if digits or hour == 11 else pm  # "at seven" at a restaurant: evening
        return _Ambiguous(am, pm, default)
    return f"{hour:02d}:{minute:02d}"


def _relative(m: re.Match[str]) -> str | _Ambiguous | None:
    hour = number_value(m[2])
    if hour is None:
        return None
    offset = {"half past": 30, "quarter past": 15, "quarter to": -15}[m[1]]
    if offset < 0:
        hour, offset = hour - 1, 45
    return _clock(hour, offset, m[3])


_MER = r"(?:\s?(am|pm|oclock))?"
_TIME_PATTERNS: list[tuple[re.Pattern[str], Handler]] = [
    (
        re.compile(rf"\b(\d{{1,2}})[:.](\d{{2}}){_MER}\b"),
        lambda m: _clock(int(m[1]), int(m[2]), m[3], digits=True),
    ),
    (re.compile(rf"\b(half past|quarter past|quarter to)\s({NUM}){_MER}\b"), _relative),
    (
        re.compile(rf"\b({NUM})\s({_MINUTE_WORD}){_MER}\b"),
        lambda m: _clock(number_value(m[1]), number_value(m[2]), m[3]),
    ),
    (
        re.compile(rf"\b({NUM})\s?(am|pm|oclock)\b"),
        lambda m: _clock(number_value(m[1]), 0, m[2]),
    ),
    (
        re.compile(
            rf"\b(?:at|around|about|by|say)\s({NUM})\b"
            r"(?!\s(?:people|persons?|guests|adults|diners|of us))"
        ),
        lambda m: _clock(number_value(m[1]), 0, None),
    ),
    (re.compile(r"\b(?:noon|midday|lunchtime|(?:at|for) lunch)\b"), lambda m: "12:00"),
    (  # "half seven" (British): half past seven
        re.compile(rf"\bhalf\s({NUM}){_MER}\b(?!\s(?:people|persons?|guests|of us))"),
        lambda m: _clock(number_value(m[1]), 30, m[2]),
    ),
]
_BARE_HOUR = [(re.compile(rf"\b({NUM})\b"), lambda m: _clock(number_value(m[1]), 0, None))]


# --- date -----------------------------------------------------------------------------------


def _iso(m: re.Match[str]) -> str | None:
    try:
        day = dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None
    return f"{day:%A} {day.day} {day:%B} {day.year}"


def _day_month(day_token: str, month: str) -> str | None:
    day = ordinal_value(day_token)
    if day is None or not 1 <= day <= 31:
        return None
    return f"{day} {month.capitalize()}"


def _nth(token: str) -> str | None:
    day = ordinal_value(token)
    return f"the {ordinal(day)}" if day is not None and 1 <= day <= 31 else None


def _weekday(m: re.Match[str]) -> str:
    day = m[2].capitalize()
    return f"next {day}" if m[1] == "next" else day


_HOLIDAYS = {
    "christmas eve": "24 December",
    "christmas day": "25 December",
    "christmas": "25 December",
    "boxing day": "26 December",
    "new year's eve": "31 December",
    "new years eve": "31 December",
    "new year's day": "1 January",
    "new years day": "1 January",
    "valentine's day": "14 February",
    "valentines day": "14 February",
}
_RELATIVE_DAYS = {
    "tonight": "tonight",
    "this evening": "tonight",
    "today": "today",
    "this afternoon": "today",
    "tomorrow": "tomorrow",
}


def _in_days(m: re.Match[str]) -> str | None:
    n = 7 if m[1] in ("a week", "one week") else number_value(m[1])
    return f"in {n} days" if n is not None and 0 < n <= 366 else None


_DATE_PATTERNS: list[tuple[re.Pattern[str], Handler]] = [
    (re.compile(r"\b(?:the\s)?day after tomorrow\b"), lambda m: "the day after tomorrow"),
    (re.compile(rf"\b(?:on\s)?({'|'.join(_HOLIDAYS)})\b"), lambda m: _HOLIDAYS[m[1]]),
    (re.compile(rf"\bin\s(a week|one week|{NUM})\s?(?:days?)?\b(?<!\d)"), _in_days),
    (re.compile(r"\ba week (?:from )?today\b"), lambda m: "in 7 days"),
    (
        re.compile(r"\b(tonight|this evening|today|this afternoon|tomorrow)\b"),
        lambda m: _RELATIVE_DAYS[m[1]],
    ),
    (re.compile(rf"\b(?:(this|next|coming)\s)?({'|'.join(_WEEKDAYS)})s?\b"), _weekday),
    (
        re.compile(rf"\b({_MONTH})\s(?:the\s)?({_ORD}|\d{{1,2}})\b"),
        lambda m: _day_month(m[2], m[1]),
    ),
    (
        re.compile(rf"\b(?:the\s)?({_ORD}|\d{{1,2}})\s(?:of\s)?({_MONTH})\b"),
        lambda m: _day_month(m[1], m[2]),
    ),
    (
        re.compile(rf"\b(?:on\s)?the\s({_ORD})\b(?!\s(?:one|option|time|slot))"),
        lambda m: _nth(m[1]),
    ),
    (re.compile(r"\bon\s(\d{1,2}(?:st|nd|rd|th))\b"), lambda m: _nth(m[1])),
]
_DAY_THEN_HOUR = re.compile(
    rf"\b(tonight|today|tomorrow|{'|'.join(_WEEKDAYS)})\s(?=(?:{NUM})\b"
    r"(?!\s?(?:people|persons?|guests|adults|of us|st|nd|rd|th)\b)(?![:.]?\d))"
)
_BARE_ORDINAL = [(re.compile(rf"\b({_ORD})\b"), lambda m: _nth(m[1]))]
_ISO_DATE = [(re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b"), _iso)]


# --- party size -------------------------------------------------------------------------------


def _party(token: str) -> int | None:
    n = number_value(token)
    return n if n is not None and 1 <= n <= 50 else None


_KIDS = r"(?:kids?|children|child|babies|baby|toddlers?|teens?|teenagers?|little ones?)"
_GROWN = r"(?:adults?|grown ?ups?|grownups?|people|persons?)"


def _sum_party(m: re.Match[str]) -> int | None:
    a, b = number_value(m[1]), number_value(m[2])
    return _party(str(a + b)) if a is not None and b is not None else None


_PARTY_PATTERNS: list[tuple[re.Pattern[str], Handler]] = [
    (  # "2 adults and 2 kids": everyone needs a seat
        re.compile(rf"\b({NUM})\s{_GROWN}\s?(?:and|\+|&|with|plus)\s({NUM})\s{_KIDS}\b"),
        _sum_party,
    ),
    (
        re.compile(rf"\b({NUM})\s(?:people|persons?|guests|adults|diners|pax|of us)\b"),
        lambda m: _party(m[1]),
    ),
    (
        re.compile(rf"\b(?:party|group|table|booking|reservation)\s(?:of|for)\s({NUM})\b"),
        lambda m: _party(m[1]),
    ),
    (
        re.compile(
            rf"\b(?:we are|we're|we will be|we'll be|there are|there will be|there'll be)"
            rf"\s({NUM})\b"
        ),
        lambda m: _party(m[1]),
    ),
    (re.compile(rf"\bfor\s({NUM})\b"), lambda m: _party(m[1])),
    (re.compile(r"\b(?:just|only)\s(?:me|myself)\b|\bby myself\b|\bon my own\b"), lambda m: 1),
    (
        re.compile(r"\bme and my\s(?:wife|husband|partner|girlfriend|boyfriend|friend|date)\b"),
        lambda m: 2,
    ),
]
_BARE_PARTY = [(re.compile(rf"\b({NUM})\b"), lambda m: _party(m[1]))]


# --- name -----------------------------------------------------------------------------------

_NOT_NAME = (
    set(
        """
    a an the my our your his her their me us it its this that these those here there
    just not so very really also still only too sorry fine good great ok okay well sure
    yes yeah yep no nope please thanks thank and or but for at on in to from with of by
    about after before around looking hoping trying wondering calling booking going coming
    interested hungry vegetarian vegan allergic gluten new back done ready free available
    afraid glad happy confused late early alone open closed gonna wanting able here's
    book table reservation menu party people person guests time day date name tonight
    today tomorrow noon midday evening morning afternoon night lunch dinner week weekend
    i i'd i'll we we're you they he she what when where why how who which can could would
    will shall should may might must do does did is are was were be been have has had
    fully quite pretty definitely probably actually maybe um uh hmm christmas easter
    birthday anniversary valentine's valentines mother's father's new year's everyone all
    """.split()
    )
    | set(_UNITS)
    | set(_TENS)
    | set(_WEEKDAYS)
    | set(_MONTHS)
    | set(_ORD_VALUE)
)

_MAYBE_NAMES = set(_MONTHS) | {"will", "hope", "joy", "grace", "faith", "summer"}
_NAME_WORD = r"[^\W\d_][^\W\d_'\-]*(?:['\-][^\W\d_]+)*"  # any alphabet: Müller, Zoë
_NAME_WORDS = rf"({_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})"
_SURE_INTRO = re.compile(  # what follows is meant as a name
    r"(?:\b(?:my name is|my name's|the name is|name is|name's|under the name(?: of)?"
    r"|in the name of|call me)|(?:^|(?<=[,;]))\s*name:?)\s+"
    rf"{_NAME_WORDS}",
    re.IGNORECASE,
)
_MAYBE_INTRO = re.compile(  # what follows may be a name ("I'm Sam") or not ("I'm hungry")
    rf"\b(?:under|it's for|it is for|i'm|i am|this is)\s+{_NAME_WORDS}", re.IGNORECASE
)
_FOR_NAME = re.compile(r"\bfor\s+([A-Z][a-z'\-]+(?:\s+[A-Z][a-z'\-]+)?)\b")  # "a table for Lee"
_NAME_FILLERS = re.compile(
    r"^(?:(?:yes|yeah|sure|ok|okay|um|uh|so|well|please|it's|it is|its|that's|that is"
    r"|the name is|name is|name's|my name is|put it under|book it under|under)\b\s*)+",
    re.IGNORECASE,
)
_NAME_TRAILERS = re.compile(r"(?:\s+(?:please|thanks|thank you))+$", re.IGNORECASE)


def _clean_name(candidate: str, *, sure: bool = False) -> str | None:
    """Keep the leading words that look like a name; None if the first does not.
    When the words are ``sure`` to be meant as a name, "Will" or "June" are names too."""
    kept: list[str] = []
    for word in candidate.split():
        low = word.lower()
        if sure and low in _MAYBE_NAMES:
            kept.append(word)
            continue
        if low in _NOT_NAME or low.endswith(("ing", "'s")) or low.endswith("'"):
            break
        kept.append(word)
    if not kept:
        return None
    name = " ".join(kept)
    return name.title() if name == name.lower() else name


def _intro_name(text: str) -> str | None:
    found = [(m.start(), m[1], True) for m in _SURE_INTRO.finditer(text)]
    found += [(m.start(), m[1], False) for m in _MAYBE_INTRO.finditer(text)]
    found += [(m.start(), m[1], False) for m in _FOR_NAME.finditer(text)]
    names = [n for _, words, sure in sorted(found) if (n := _clean_name(words, sure=sure))]
    return names[-1] if names else None


def _bare_name(text: str) -> str | None:
    """A reply that is only a name ("Sam Smith", "it's Sam please")."""
    t = re.sub(r"[.,!?;:\"]", " ", text.replace("\u2019", "'")).strip()
    t = _NAME_TRAILERS.sub("", _NAME_FILLERS.sub("", t)).strip()
    words = t.split()
    if not 1 <= len(words) <= 3 or not all(re.fullmatch(_NAME_WORD, w) for w in words):
        return None
    name = _clean_name(t, sure=True)
    return name if name is not None and len(name.split()) == len(words) else None


# --- the one entry point ------------------------------------------------------------------------


def extract_slots(
    text: str, expecting: str | None = None, bookable: Callable[[str], bool] | None = None
) -> dict[str, Any]:
    """The slots one user message gives; ``expecting`` lets a bare answer fill that slot.
    ``bookable("HH:MM")`` (the venue's hours) decides whether "9:00" is am or pm."""
    slots: dict[str, Any] = {}
    raw = " " + text.lower() + " "
    raw, iso = _scan(raw, _ISO_DATE)
    t = _normalise(raw)
    t = _DAY_THEN_HOUR.sub(r"\1 at ", t)  # "tomorrow 7" means at seven
    t, dates = _scan(t, _DATE_PATTERNS)
    t, times = _scan(t, _TIME_PATTERNS)
    t, parties = _scan(t, _PARTY_PATTERNS)
    if expecting == "time" and not times:
        t, times = _scan(t, _BARE_HOUR)
    if expecting == "party_size" and not parties:
        t, parties = _scan(t, _BARE_PARTY)
    if expecting == "date" and not (dates or iso):
        t, dates = _scan(t, _BARE_ORDINAL)
    date = _latest(dates) if dates else _latest(iso)
    times = [(pos, t.pick(bookable) if isinstance(t, _Ambiguous) else t) for pos, t in times]
    for key, value in (("date", date), ("time", _latest(times)), ("party_size", _latest(parties))):
        if value is not None:
            slots[key] = value
    name = _intro_name(text)
    if name is None and expecting == "name" and not slots:
        name = _bare_name(text)
    if name is not None:
        slots["name"] = name
    return slots
