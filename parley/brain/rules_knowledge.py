"""Questions the rules brain answers from the agent file's data, not from a flow.

Pure functions of (text, data) → an answer or None: the menu (prices, descriptions,
vegetarian/vegan/gluten-free flags, allergens), the ``faq`` section, small talk, and
the bookings made in this conversation (confirmation codes, "I'm running late",
"cancel BX-…"). Allergens are stated only as the menu data says: a listed allergen
is confirmed, an unlisted one is never promised absent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from parley.config import DishSpec, FaqSpec

ALLERGENS = {
    "nuts": r"nuts?|peanuts?|almonds?|walnuts?|hazelnuts?|cashews?|pistachios?|pecans?",
    "dairy": r"dairy|milk|lactose|cheese|cream|butter",
    "gluten": r"gluten|wheat|coeliac|celiac",
    "eggs": r"eggs?",
    "fish": r"fish",
    "shellfish": r"shellfish|prawns?|shrimps?|crabs?|lobsters?|mussels?|oysters?",
    "soy": r"soya?",
    "sesame": r"sesame",
    "celery": r"celery",
    "mustard": r"mustard",
}
DIETS = {
    "vegan": r"vegan|plant[ -]based",
    "vegetarian": r"vegetarian|veggie|meat[ -]?free|no meat|without meat"
    r"|(?:doesn't|don't|do not|does not|can't) eat meat",
    "gluten_free": r"gluten[ -]free|without gluten|no gluten|coeliac|celiac",
}
_PRICE = re.compile(
    r"\b(how much|price|prices|cost|costs|expensive|cheap|cheapest|pricey)\b|€|\$|£"
)
_DESCRIBE = re.compile(
    r"\b(what('s| is) in|what is the|what's the|tell me about|describe|what comes with|"
    r"how is|is the|does the|what kind)\b"
)
_CODE = re.compile(r"\b([a-z]{2})-([0-9a-f]{4})\b", re.IGNORECASE)


@dataclass(frozen=True)
class Answer:
    text: str
    awaiting: str | None = None


def _find(patterns: dict[str, str], text: str) -> list[str]:
    return [k for k, p in patterns.items() if re.search(rf"\b(?:{p})\b", text)]


def _dish_words(name: str) -> list[str]:
    return [w for w in re.findall(r"[a-z]+", name.lower()) if len(w) >= 4]


def find_dish(text: str, menu: list[DishSpec]) -> DishSpec | None:
    low = text.lower()
    best: tuple[int, DishSpec] | None = None
    for dish in menu:
        name = dish.name.lower()
        score = (
            100 if name in low else sum(1 for w in _dish_words(name) if re.search(rf"\b{w}\b", low))
        )
        if score and (best is None or score > best[0]):
            best = (score, dish)
    return best[1] if best else None


def join(items: list[str], word: str = "and") -> str:
    """``["a", "b", "c"]`` → ``"a, b and c"``."""
    if not items:
        return ""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"


def dish_name(dish: dict[str, Any]) -> str:
    return str(dish.get("title") or dish.get("name") or "")


def dishes_of(result: Any) -> list[dict[str, Any]]:
    """The dishes of a menu tool's result (``{"dishes": [...]}`` or a list)."""
    if isinstance(result, dict):
        result = result.get("dishes") or result.get("items") or result.get("menu")
    if not isinstance(result, list):
        return []
    return [d for d in result if isinstance(d, dict) and dish_name(d)]


def dish_named(text: str, dishes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The dish ``text`` names: its whole name, else most of its longer words."""
    low = text.lower()
    best: tuple[int, dict[str, Any]] | None = None
    for dish in dishes:
        name = dish_name(dish).lower()
        words = [w for w in name.split() if len(w) >= 4]
        score = 100 if name and name in low else sum(1 for w in words if w in low)
        if score and (best is None or score > best[0]):
            best = (score, dish)
    return best[1] if best else None


def _priced(dish: DishSpec) -> str:
    return f"{dish.name} ({dish.price})" if dish.price else dish.name


def _has_diet(dish: DishSpec, diet: str) -> bool:
    if diet == "vegan":
        return dish.vegan
    if diet == "vegetarian":
        return dish.vegetarian or dish.vegan
    return dish.gluten_free or (dish.allergens_listed and "gluten" not in dish.allergens)


_DIET_WORDS = {"vegan": "vegan", "vegetarian": "vegetarian", "gluten_free": "gluten-free"}
TELL_STAFF = "please tell the staff about any allergy when you arrive"


def menu_answer(text: str, menu: list[DishSpec]) -> str | None:
    """An answer to a question about the menu's dishes, or None if it is not one."""
    if not menu:
        return None
    low = text.lower()
    dish = find_dish(low, menu)
    diets = _find(DIETS, low)
    allergens = [a for a in _find(ALLERGENS, low) if not (a == "gluten" and "gluten_free" in diets)]
    allergic = re.search(
        r"\b(allerg\w*|intoleran\w*|free from|contain\w*|traces?)\b|\w[ -]free\b", low
    )
    if dish is not None:
        if allergens:
            return _dish_allergens(dish, allergens)
        if diets:
            diet = diets[0]
            word = _DIET_WORDS[diet]
            if _has_diet(dish, diet):
                return f"Yes, the {dish.name.lower()} is {word}."
            others = [d.name for d in menu if _has_diet(d, diet)]
            alt = f" Our {word} options: {join(others)}." if others else ""
            return f"No, the {dish.name.lower()} isn't {word}.{alt}"
        if _PRICE.search(low):
            return f"The {dish.name.lower()} is {dish.price}." if dish.price else None
        if allergic:
            return _dish_allergens(dish, [])
        return None  # a dish named without a question: the flow describes it
    if diets:
        diet = diets[0]
        word = _DIET_WORDS[diet]
        found = [_priced(d) for d in menu if _has_diet(d, diet)]
        if not found:
            return f"I'm sorry, there's nothing {word} on our menu at the moment."
        note = " If it's for an allergy, " + TELL_STAFF + "." if diet == "gluten_free" else ""
        return f"Yes: our {word} dishes are {join(found)}.{note}"
    if allergens and (allergic or re.search(r"\b(eat|have|safe|avoid|without|no)\b", low)):
        return _safe_dishes(allergens, menu)
    if _PRICE.search(low) and re.search(
        r"\b(food|menu|dishes|mains?|meal|dinner|lunch|prices)\b", low
    ):
        return f"Our prices: {join([_priced(d) for d in menu])}."
    return None


def _dish_allergens(dish: DishSpec, asked: list[str]) -> str:
    name = dish.name.lower()
    listed = [a for a in asked if a in dish.allergens]
    if listed:
        return f"Yes, the {name} contains {join(listed)}; please tell the staff about your allergy."
    if not dish.allergens_listed:
        return f"I can't promise anything about allergens in the {name}; {TELL_STAFF}."
    if asked:
        return (
            f"Our menu doesn't list {join(asked, 'or')} in the {name}, but I can't promise "
            f"it's free of traces; {TELL_STAFF}."
        )
    contains = join(dish.allergens) or "none of the common allergens"
    return f"The menu lists {contains} for the {name}; {TELL_STAFF}."


def _safe_dishes(allergens: list[str], menu: list[DishSpec]) -> str:
    containing = [d.name for d in menu if set(allergens) & set(d.allergens)]
    without = [d.name for d in menu if d.allergens_listed and not set(allergens) & set(d.allergens)]
    what = join(allergens, "or")
    parts = []
    if containing:
        parts.append(
            f"{join(containing)} {'contains' if len(containing) == 1 else 'contain'} {what}."
        )
    if without:
        parts.append(
            f"The menu lists no {what} in {join(without)}, but I can't promise there are no traces."
        )
    parts.append(TELL_STAFF[0].upper() + TELL_STAFF[1:] + ".")
    return " ".join(parts)


def faq_answer(text: str, faq: list[FaqSpec]) -> FaqSpec | None:
    low = text.lower().replace("\u2019", "'")
    for entry in faq:
        keywords = [rf"(?<!\w){re.escape(k.lower())}(?!\w)" for k in entry.keywords if k.strip()]
        for pattern in keywords + entry.patterns:
            if re.search(pattern, low, re.IGNORECASE):
                return entry
    return None


_HOW_ARE_YOU = re.compile(
    r"\b(how are you|how're you|how are u|how's it going|how do you do|you ok)\b"
)
_WHAT_DAY = re.compile(
    r"\bwhat(?:'s| is)? (?:the )?(?:date|day)\b|\bwhat(?:'s| is) today\b|\btoday's date\b"
    r"|\bwhich day is it\b"
)
_WHAT_TIME = re.compile(r"\bwhat(?:'s| is)? the time\b|\bwhat time is it\b")
_WHO_AM_I = re.compile(r"\bwho am i (?:speaking|talking|chatting) (?:with|to)\b")
_WHO = re.compile(
    r"\b(are you a (bot|robot|human|person|real person|machine|ai)|who are you|what are you)\b"
)


def small_talk(text: str) -> str | None:
    """The reply key for small talk in ``text``, or None."""
    low = text.lower().replace("\u2019", "'")
    if _WHAT_DAY.search(low):
        return "what_day"
    if _WHAT_TIME.search(low):
        return "what_time"
    if _HOW_ARE_YOU.search(low):
        return "how_are_you"
    if _WHO.search(low) or _WHO_AM_I.search(low):
        return "who_are_you"
    return None


_LATE = re.compile(
    r"\b(?:running|run|be|being|are|we're|i'm|am|is|minutes?|mins?|bit|little)\s+"
    r"(?:\w+\s+){0,2}late\b|\brunning behind\b|\bstuck in traffic\b|\bdelayed\b"
)
_CONFIRMATION = re.compile(
    r"\b(confirmation|reference|booking (number|code|id)|reservation (number|code|id))\b"
    r"|\bmy (code|number|booking number|reference)\b"
)
_MY_BOOKING = re.compile(
    r"\b(my|our|existing|the) (booking|reservation|table)\b"
    r"|\b(booked|reserved) (already|earlier|before)\b"
)
_CHANGE = re.compile(r"\b(cancel|change|move|modify|amend|reschedule|update)\b")


def booking_question(
    text: str, bookings: list[dict[str, Any]]
) -> tuple[str, dict[str, Any]] | None:
    """``(reply key, values)`` for a question about an existing booking, or None."""
    low = text.lower().replace("\u2019", "'")
    code = _CODE.search(text)
    if code is not None:
        wanted = f"{code[1]}-{code[2]}".upper()
        booking = next(
            (b for b in bookings if str(b.get("confirmation", "")).upper() == wanted), None
        )
        if booking is None:
            return "booking_unknown", {"confirmation": wanted}
        key = "booking_change" if _CHANGE.search(low) else "booking_found"
        return key, booking
    last = bookings[-1] if bookings else None
    if _LATE.search(low):
        return ("running_late", last or {}) if last else ("running_late_unknown", {})
    if _CONFIRMATION.search(low):
        return ("confirmation", last) if last else ("no_booking", {})
    if _MY_BOOKING.search(low) and (_CHANGE.search(low) or "?" in text):
        if last is None:
            return "booking_which", {}
        return ("booking_change" if _CHANGE.search(low) else "booking_found"), last
    return None
