"""Choosing from what was just offered: "the first one", "the later one", "6:30 works".

Pure: the user's words, the intents they matched, the slots they gave, and the
options offered (times ``HH:MM`` or ISO dates, in the order they were said) → the
slot the choice fills, or nothing when the words choose none of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from parley.brain.dates import minutes
from parley.brain.slots import ordinal_value


def pick_offered(
    text: str, intents: list[str], found: dict[str, Any], key: str, options: Sequence[str]
) -> dict[str, Any]:
    """``{key: option}`` for the option chosen: by position ("the second", "the later
    one", "earliest"), by a time that matches one offered ("6:30" → 18:30), or "yes"
    for the first; ``{}`` when none is chosen."""
    if not options:
        return {}
    low = text.lower()
    index: int | None = None
    if re.search(r"\b(later|latest|last)\b", low):
        index = len(options) - 1
    elif re.search(r"\b(earlier|earliest|sooner|soonest)\b", low):
        index = 0
    elif m := re.search(r"\b(first|second|third|1st|2nd|3rd)\b", low):
        index = (ordinal_value(m[1]) or 1) - 1
    elif key == "time" and "time" in found:
        at = minutes(str(found["time"]))
        for option in options:
            offered = minutes(option)
            if at is not None and offered is not None and offered % 720 == at % 720:
                return {"time": option}  # "6:30" means the 6:30 pm just offered
        return {}
    elif key == "date" and "date" in found:
        return {}
    elif "yes" in intents and "no" not in intents:
        index = 0
    if index is None or not 0 <= index < len(options):
        return {}
    return {key: options[index]}
