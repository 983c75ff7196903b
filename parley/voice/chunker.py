"""Streaming LLM text → speakable chunks (sentences), and markdown → plain speech.

Theory of operation
-------------------
``SentenceChunker.push(delta)`` appends text to a buffer and scans it left to right
once. At each position the scanner decides *cut here*, *not here*, or *wait*: it
waits only when the decision needs characters that have not arrived yet, so the
chunks never depend on how the text was split into deltas (pushing one character at
a time gives exactly the chunks of pushing the whole text). ``flush()`` ends the
stream: pending decisions are taken with "end of text" as lookahead and the rest is
emitted.

Where a chunk ends:

* ``!`` or ``?`` (runs such as ``?!`` too), then optional closers (quotes, brackets,
  markdown ``*``/``_``/backtick), then whitespace.
* ``.`` then closers and whitespace, unless the word before it is
  - a title or a Latin abbreviation that never ends a sentence (``Dr.``, ``Mr.``,
    ``Mrs.``, ``St.``, ``e.g.``, ``i.e.``, ``vs.`` …) — never a cut;
  - a single capital letter, an initial (``J. R. R. Tolkien``; not ``I``) — never;
  - a number at the start of a chunk, a list enumerator (``1. Buy milk``) — never;
  - an abbreviation that may end a sentence (``etc.``, ``a.m.``, ``p.m.``, ``Inc.``,
    dotted acronyms like ``U.S.``) — a cut only if the next word starts with a capital.
  A ``.`` followed by anything but whitespace (``3.5``, ``$4.50``, ``7.30``, ``x.com``)
  is never a cut.
* an ellipsis (``...`` or ``…``) followed by whitespace: a cut only if the next word
  starts with a capital ("Wait... what?" stays whole; "Well… Maybe." is two chunks).
* a newline (lists, paragraphs, headings are one chunk per line).
* ``:`` and ``;`` are clause marks, not sentence ends, like ``,``: only the *first*
  chunk of a stream may end at a clause mark followed by whitespace, and only once it
  is at least ``first_clause_chars`` long — this cuts the latency to the first audio
  when an answer opens with a long clause (``None`` disables it).
* a chunk that reaches ``max_chars`` without any of the above is cut at its last space.

``speakable(text)`` is separate and pure: it removes markdown noise from a chunk
before TTS (the chunker works on the raw text so the stored message keeps it).
"""

from __future__ import annotations

import enum
import re

_TERMINATORS = ".!?…"
_CLAUSE_MARKS = ",;:"
_CLOSERS = "\"')]}”’»*_`"
_OPENERS = "\"'([{“‘«*_`"

# Words (lowercase, without the final dot) that never end a sentence.
_NEVER_FINAL = frozenset(
    "mr mrs ms mx dr prof rev hon st mt sgt capt gen col lt e.g i.e cf vs viz approx fig".split()
)
# Words that may end a sentence: cut only if a capitalised word follows.
_MAYBE_FINAL = frozenset("etc jr sr inc ltd co corp al a.m p.m".split())
_DOTTED = re.compile(r"(?:[a-z]\.)+[a-z]")  # u.s, a.m, e.g


class _Verdict(enum.Enum):
    CUT = "cut"  # the chunk ends before position `pos`
    SKIP = "skip"  # no cut here; resume scanning at `pos`
    WAIT = "wait"  # need more text to decide


class _Rule(enum.Enum):
    ALWAYS = "always"
    NEVER = "never"
    IF_CAPITAL_FOLLOWS = "if a capitalised word follows"


class SentenceChunker:
    """Cut a stream of text deltas into speakable chunks (see the module docstring)."""

    def __init__(self, first_clause_chars: int | None = 60, max_chars: int = 250) -> None:
        if first_clause_chars is not None and first_clause_chars < 1:
            raise ValueError(f"first_clause_chars must be >= 1 or None, got {first_clause_chars}")
        if max_chars < 10:
            raise ValueError(f"max_chars must be >= 10, got {max_chars}")
        self.first_clause_chars = first_clause_chars
        self.max_chars = max_chars
        self._buf = ""  # the pending chunk starts at index 0
        self._scan = 0  # next index of _buf to judge
        self._emitted = 0  # chunks emitted since the stream began

    def push(self, delta: str) -> list[str]:
        """Add a delta; return the chunks it completed (often none)."""
        self._buf += delta
        return self._drain(final=False)

    def flush(self) -> list[str]:
        """End of the stream: return the remaining chunks and reset for the next one."""
        chunks = self._drain(final=True)
        rest = self._buf.strip()
        if rest:
            chunks.append(rest)
        self._buf, self._scan, self._emitted = "", 0, 0
        return chunks

    # --- scanning --------------------------------------------------------------------

    def _drain(self, final: bool) -> list[str]:
        chunks: list[str] = []
        while (chunk := self._next_chunk(final)) is not None:
            chunks.append(chunk)
        return chunks

    def _next_chunk(self, final: bool) -> str | None:
        if self._scan == 0:
            self._buf = self._buf.lstrip()
        i = self._scan
        while i < len(self._buf):
            if i >= self.max_chars:
                return self._cut(self._forced_cut(i))
            verdict, pos = self._judge(i, final)
            if verdict is _Verdict.WAIT:
                break
            if verdict is _Verdict.CUT:
                return self._cut(pos)
            i = pos
        self._scan = i
        return None

    def _cut(self, end: int) -> str:
        chunk = self._buf[:end].strip()
        self._buf = self._buf[end:]
        self._scan = 0
        self._emitted += 1
        return chunk

    def _forced_cut(self, i: int) -> int:
        space = max(self._buf.rfind(" ", 0, i), self._buf.rfind("\t", 0, i))
        return space if space > 0 else i

    def _judge(self, i: int, final: bool) -> tuple[_Verdict, int]:
        ch = self._buf[i]
        if ch == "\n":
            return _Verdict.CUT, i + 1
        if ch in _TERMINATORS:
            return self._judge_terminator(i, final)
        if ch in _CLAUSE_MARKS and self._may_cut_clause(i):
            return self._followed_by_space(i + 1, i, final)
        return _Verdict.SKIP, i + 1

    def _may_cut_clause(self, i: int) -> bool:
        limit = self.first_clause_chars
        return limit is not None and self._emitted == 0 and i + 1 >= limit

    def _followed_by_space(self, k: int, i: int, final: bool) -> tuple[_Verdict, int]:
        """A cut at ``k`` if whitespace (or the end of text) is at ``k``."""
        if k == len(self._buf):
            return (_Verdict.CUT, k) if final else (_Verdict.WAIT, i)
        return (_Verdict.CUT, k) if self._buf[k].isspace() else (_Verdict.SKIP, k)

    def _judge_terminator(self, i: int, final: bool) -> tuple[_Verdict, int]:
        buf, n = self._buf, len(self._buf)
        j = i
        while j < n and buf[j] in _TERMINATORS:
            j += 1
        k = j
        while k < n and buf[k] in _CLOSERS:
            k += 1
        if k == n:
            return (_Verdict.CUT, n) if final else (_Verdict.WAIT, i)
        if not buf[k].isspace():
            return _Verdict.SKIP, j
        run = buf[i:j]
        if "!" in run or "?" in run:
            rule = _Rule.ALWAYS
        elif run == ".":
            rule = self._period_rule(i)
        else:
            rule = _Rule.IF_CAPITAL_FOLLOWS  # an ellipsis
        if rule is _Rule.ALWAYS:
            return _Verdict.CUT, k
        if rule is _Rule.NEVER:
            return _Verdict.SKIP, k
        m = k
        while m < n and buf[m].isspace():
            m += 1
        if m == n:
            return (_Verdict.CUT, k) if final else (_Verdict.WAIT, i)
        return (_Verdict.CUT, k) if _starts_sentence(buf[m]) else (_Verdict.SKIP, k)

    def _period_rule(self, i: int) -> _Rule:
        """Whether a lone ``.`` at ``i`` (followed by whitespace) ends a chunk."""
        start = i
        while start > 0 and not self._buf[start - 1].isspace():
            start -= 1
        word = self._buf[start:i].lstrip(_OPENERS)
        lower = word.lower()
        if lower in _NEVER_FINAL:
            return _Rule.NEVER
        if len(word) == 1 and word.isupper() and word != "I":
            return _Rule.NEVER  # an initial
        if word.isdigit() and not self._buf[:start].strip():
            return _Rule.NEVER  # "1. " opening a list item
        if lower in _MAYBE_FINAL or _DOTTED.fullmatch(lower):
            return _Rule.IF_CAPITAL_FOLLOWS
        return _Rule.ALWAYS


def _starts_sentence(ch: str) -> bool:
    return ch.isupper() or ch in '"“'


# --- markdown → speech ---------------------------------------------------------------

_FENCE = re.compile(r"^[ \t]*(?:```|~~~).*$", re.M)
_RULE_LINE = re.compile(r"^[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*$", re.M)
_TABLE_RULE = re.compile(r"^[ \t]*\|?(?:[ \t]*:?-{3,}:?[ \t]*\|?)+[ \t]*$", re.M)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.I)
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]*", re.M)
_BULLET = re.compile(r"^[ \t]*[-*+•][ \t]+", re.M)
_QUOTE = re.compile(r"^[ \t]*>[ \t]?", re.M)
_EMPHASIS = re.compile(r"\*+|~~|`+|(?<![A-Za-z0-9])_+|_+(?![A-Za-z0-9])")
_PIPES = re.compile(r"[ \t]*\|[ \t]*")
_SPACES = re.compile(r"\s+")
_URL_TRAILERS = ".,;:!?)]}'\""


def _url_to_word(match: re.Match[str]) -> str:
    url = match.group(0)
    trailing = len(url) - len(url.rstrip(_URL_TRAILERS))
    return "link" + (url[len(url) - trailing :] if trailing else "")


def speakable(text: str) -> str:
    """``text`` without markdown noise, on one line, for a TTS engine.

    Code fences, horizontal and table rules go; ``[label](url)`` and ``![alt](url)``
    become their label; bare URLs become the word "link"; heading marks, list
    bullets, block quotes, ``*``/``_``/``~~``/backticks go; table cells are joined
    with commas. Numbered list items keep their number. Returns "" when nothing
    speakable is left (the caller should then skip TTS for the chunk).
    """
    text = _FENCE.sub("", text)
    text = _RULE_LINE.sub("", text)
    text = _TABLE_RULE.sub("", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub(_url_to_word, text)
    text = _HEADING.sub("", text)
    text = _BULLET.sub("", text)
    text = _QUOTE.sub("", text)
    text = _EMPHASIS.sub("", text)
    lines = [_PIPES.sub(", ", line).strip(" ,") for line in text.splitlines()]
    return _SPACES.sub(" ", " ".join(lines)).strip()
