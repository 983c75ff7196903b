"""Reading a message as an answer to a pending approval: approve, deny, or neither.

Pure text in, a verdict out; used by every channel that can receive words while an
approval is pending (typed chat, speech, the terminal prompt).

A message is an *answer* only when everything in it is an answer: yes/no words
("sure", "go ahead", "nope", "don't"), polite filler ("please", "thanks", "ok then")
and words naming the pending action itself ("book it", "transfer me"; asking for
the pending action in its own words is consent too). A message
that carries anything new — "yes but at 8 pm", "actually, four people", "what's on
the menu?" — is ``"other"``: the caller keeps its policy for new messages (the pending
call is denied and the message is handled as a request). Mixed signals ("yes no",
"not sure") are ``"other"`` too: nothing runs on a guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

Answer = Literal["approve", "deny", "other"]

# Longest phrases first when matching; each phrase is a tuple of words.
_APPROVE = """
yes|yeah|yea|yah|ya|yep|yup|yess|yesss|yas|aye|y|sure|surely|ok|okay|okey|k|kk|okie|alright|
all right|right|fine|good|great|perfect|lovely|excellent|brilliant|awesome|cool|nice|
sounds good|sounds great|sounds perfect|sounds fine|that works|works for me|works|
that's fine|that is fine|that's good|that's great|that's perfect|that's right|correct|
go ahead|go on|go for it|go|proceed|continue|do it|do that|do so|please do|let's do it|
let's go|lets do it|lets go|book it|book that|book|reserve it|reserve|confirm|confirmed|
i confirm|approve|approved|i approve|allow|allowed|accept|accepted|agree|agreed|
absolutely|definitely|certainly|of course|indeed|affirmative|why not|by all means|
yes please|sure thing|no problem|no worries|make it so|make the booking|
make the reservation|i'd like that|i would like that|i do|i want that|want it|
i think so|fine by me|fine with me|ok by me|ok with me|okay with me|good with me|
that one|sounds lovely|you bet|deal|done|go ahead with it
"""
_DENY = """
no|nope|nah|na|naw|n|no thanks|no thank you|not|not really|not now|not yet|
don't|do not|dont|don't do it|don't book|don't book it|do not book|dont book|
cancel|cancel it|cancel that|stop|abort|decline|declined|deny|denied|reject|refuse|
never mind|nevermind|forget it|forget that|scrap that|scratch that|negative|
hold on|hold off|wait|not interested|i don't want|i do not want|i don't think so|
rather not|i'd rather not|i would rather not|changed my mind|i changed my mind|
no way|nah thanks|skip it|leave it|don't bother|no need
"""
_UNSURE = """
not sure|i'm not sure|i am not sure|maybe|perhaps|i don't know|dunno|idk|let me think|
hmm|what|why|how
"""
_FILLER = set(
    """
    please pls plz thanks thank you thx ty oh ah um uh er well so then just and that
    it this the a for me us now thats that's its it's i think guess mean actually
    really yes's very much indeed great again one
    """.split()
)


def _phrases(block: str) -> list[tuple[str, ...]]:
    items = {tuple(p.split()) for p in block.replace("\n", "").split("|") if p.strip()}
    return sorted(items, key=len, reverse=True)


_PHRASES: list[tuple[tuple[str, ...], Answer | None]] = sorted(
    [(p, "approve") for p in _phrases(_APPROVE)]
    + [(p, "deny") for p in _phrases(_DENY)]
    + [(p, None) for p in _phrases(_UNSURE)],
    key=lambda item: len(item[0]),
    reverse=True,
)
_EMOJI = {
    "\U0001f44d": " yes ",  # thumbs up
    "\u2705": " yes ",  # check mark button
    "\u2714": " yes ",  # heavy check mark
    "\U0001f44c": " yes ",  # OK hand
    "\U0001f44e": " no ",  # thumbs down
    "\u274c": " no ",  # cross mark
    "\U0001f6ab": " no ",  # prohibited
}


def _words(text: str) -> list[str]:
    t = text.lower().replace("\u2019", "'")
    for emoji, word in _EMOJI.items():
        t = t.replace(emoji, word)
    t = re.sub(r"[^\w\s']", " ", t)
    return [w.strip("'") for w in t.split() if w.strip("'")]


def classify(text: str, action_words: Iterable[str] = ()) -> Answer:
    """``"approve"``, ``"deny"`` or ``"other"`` for a message sent while an approval is
    pending. ``action_words`` name the pending action (e.g. ``book``, ``table``,
    ``transfer``), so "please book the table" is read as consent."""
    words = _words(text)
    if not words:
        return "other"
    action = {w.lower() for w in action_words}
    seen: set[Answer] = set()
    named_action = False
    i = 0
    while i < len(words):
        for phrase, verdict in _PHRASES:
            if tuple(words[i : i + len(phrase)]) == phrase:
                if verdict is None:
                    return "other"
                seen.add(verdict)
                i += len(phrase)
                break
        else:
            if words[i] in _FILLER or words[i] in action:
                named_action = named_action or (words[i] in action and words[i] not in _FILLER)
                i += 1
                continue
            return "other"
    if seen == {"approve"} or (not seen and named_action and "?" not in text):
        return "approve"  # "please transfer me": asking for the very action pending
    if seen == {"deny"}:
        return "deny"
    return "other"


def action_words(tool_name: str, label: str | None = None) -> list[str]:
    """The words that name a tool's action: ``book_table`` → book, table (plus the
    label's words, and a few nouns the same action goes by)."""
    words = re.split(r"[_\W]+", f"{tool_name} {label or ''}".lower())
    out = [w for w in words if w]
    if {"book", "table", "reservation", "booking"} & set(out):
        out += ["table", "booking", "reservation", "book", "it", "in", "under", "name", "my"]
    if "transfer" in out:
        out += ["me", "through", "connect", "put"]
    return out


def yes_or_no(text: str, words: Iterable[str] = ()) -> bool | None:
    """``classify`` in the shape of ``parley.voice.connection.yes_or_no``: True, False,
    or None when the words are no answer (a drop-in for spoken approvals)."""
    verdict = classify(text, words)
    return None if verdict == "other" else verdict == "approve"
