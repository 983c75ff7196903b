"""Moonshine (``moonshine-cpp`` 0.1.4, base-en) as a bench recogniser for ``phone_stt.py``.

Not a Parley engine (issue 10 experiment; see bench/RESULTS.md, "Phone: speech
recognition"). ``moonshine-cpp`` is not a dependency: install it into the venv or a
``--target`` directory on ``PYTHONPATH`` (``pip install moonshine-cpp==0.1.4``).

Two things about the package that any engine would have to deal with:

- its Python ``transcribe()`` does not run (it uses ``ctypes.c_float_p``, which does not
  exist), so the C function is called here directly;
- ``libmoonshine`` leaks ~25–50 MB per transcription (the same input transcribed again
  grows the process by the same amount; freeing the model does not give it back), so the
  model runs in a child process that is replaced every ``TASKS_PER_CHILD`` utterances.

Options (``moonshine[:opt+opt…]`` in ``--stt``):

- ``hn`` — before recognition, add white noise above 4 kHz at rms ``HIGH_BAND_NOISE``
  (the same level as the microphone floor the bench adds to the speech): a phone line
  leaves that band empty, unlike anything the model was trained on;
- ``trim`` — cut the leading and trailing audio whose 10 ms peaks stay under ``TRIM_PEAK``,
  keeping ``TRIM_PAD_S`` of it: with the voice loop's 0.3 s pre-roll and 0.5 s of trailing
  silence the model returns nothing for ~5–8 % of utterances (trimming every utterance
  measured worse than not trimming);
- ``retry`` — when the model returns nothing, transcribe the trimmed audio once more;
- ``fix`` — map words outside the agent's vocabulary to the closest n-gram of its speech
  corpus by espeak-ng phonemes (:class:`LexicalFix`), when close enough.
"""

from __future__ import annotations

import asyncio
import ctypes
import re
import subprocess
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from parley.engines.base import STTCapabilities
from parley.engines.wrappers_stt import BufferedSTTStream

TASKS_PER_CHILD = 20
HIGH_BAND_NOISE = 30.0 / 32768  # rms, full scale = 1
TRIM_PEAK = 0.01  # full scale = 1 (-40 dBFS)
TRIM_PAD_S = 0.1

_model: Any = None


def _transcribe_in_child(audio: np.ndarray) -> str:
    global _model
    from moonshine_cpp import moonshine_cpp as m

    if _model is None:
        _model = m.MoonshineModel()
    out = ctypes.c_char_p(0)
    data = np.ascontiguousarray(audio, dtype=np.float32)
    error = m.moonshine_lib.moonshine_transcribe(
        _model.model_handle,
        data.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
        data.size,
        ctypes.byref(out),
    )
    if error:
        raise RuntimeError(f"moonshine_transcribe failed: {error}")
    text = (out.value or b"").decode()
    m.moonshine_lib.moonshine_free_text(out)
    return text


def trim_silence(
    audio: np.ndarray, peak: float = TRIM_PEAK, pad_s: float = TRIM_PAD_S
) -> np.ndarray:
    """``audio`` (16 kHz) without the quiet start and end, ``pad_s`` of each kept."""
    frames = np.abs(audio[: audio.size // 160 * 160].reshape(-1, 160)).max(axis=1)
    loud = np.nonzero(frames > peak)[0]
    if not loud.size:
        return audio
    pad = int(pad_s * 16000)
    return audio[max(0, loud[0] * 160 - pad) : (loud[-1] + 1) * 160 + pad]


def high_band_noise(audio: np.ndarray, rms: float, seed: int = 0) -> np.ndarray:
    """``audio`` (16 kHz) plus white noise of ``rms`` restricted to 4–8 kHz."""
    noise = np.random.default_rng(seed).standard_normal(audio.size)
    spectrum = np.fft.rfft(noise)
    spectrum[np.fft.rfftfreq(audio.size, 1 / 16000) < 4000] = 0
    band = np.fft.irfft(spectrum, audio.size)
    return (audio + band * (rms / max(float(band.std()), 1e-12))).astype(np.float32)


class MoonshineBench:
    """Batch recogniser in a child process that is replaced every ``TASKS_PER_CHILD`` calls."""

    capabilities = STTCapabilities(sample_rate=16000, streaming=False)

    def __init__(self, options: set[str], corpus: list[str]) -> None:
        import multiprocessing

        self.options = options
        self._pool = ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=TASKS_PER_CHILD
        )
        self._fix = LexicalFix(corpus) if "fix" in options else None

    def open_stream(self) -> BufferedSTTStream:
        return BufferedSTTStream(self.transcribe, 16000)

    async def transcribe(self, pcm: bytes) -> str:
        audio = np.frombuffer(pcm, np.int16).astype(np.float32) / 32768
        if "trim" in self.options:
            audio = trim_silence(audio)
        text = await self._recognise(audio)
        if not text.strip() and "retry" in self.options:
            text = await self._recognise(trim_silence(audio))
        return " ".join(self._fix.fix(text)) if self._fix else text

    async def _recognise(self, audio: np.ndarray) -> str:
        if "hn" in self.options:
            audio = high_band_noise(audio, HIGH_BAND_NOISE)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, _transcribe_in_child, audio)

    def close(self) -> None:
        self._pool.shutdown()


# --- lexical correction ----------------------------------------------------------------

_VOWELS = frozenset("a e i o u @ 0 3 A E I O U V a# aI aU eI oU OI e@ i@ U@ I2 I# @L @5 aa".split())
_PHONE_NUMBER = re.compile(r"\b\d+(?:-\d+)+\b")


def espeak_phonemes(words: list[str]) -> list[tuple[str, ...]]:
    """espeak-ng's phonemes of each word (stress and length marks dropped)."""
    out = (
        subprocess.run(
            ["espeak-ng", "-q", "-x", "--sep=_", "-v", "en-us"],
            input="\n".join(words) + "\n",
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip("\n")
        .split("\n")
    )
    if len(out) != len(words):
        raise RuntimeError("espeak-ng gave a different number of lines")
    phones = []
    for line in out:
        symbols = (s.strip("',:") for s in re.split(r"[_ ]+", line.strip()))
        phones.append(tuple(s for s in symbols if s))
    return phones


class LexicalFix:
    """Words outside the corpus vocabulary → the corpus n-gram (1–3 words) with the
    smallest phoneme edit distance (vowel for vowel costs ``vowel_cost``), normalised by
    the longer length, if ≤ ``theta`` (≤ ``theta_common`` when every word of the run
    is one of the ``common`` commonest English words: by default such a run is kept).
    A run may take one in-vocabulary neighbour on each side with it when that matches
    better (``neighbour_cost`` each)."""

    def __init__(
        self,
        corpus: list[str],
        *,
        theta: float = 0.4,
        theta_common: float = -1.0,
        common: int = 20000,
        vowel_cost: float = 0.6,
        neighbour_cost: float = 0.05,
        max_words: int = 4,
    ) -> None:
        from parley.engines.pocketsphinx_stt import background_unigrams

        grams: dict[tuple[str, ...], None] = {}
        self.vocab: set[str] = set()
        for sentence in corpus:
            words = sentence.split()
            self.vocab.update(words)
            for n in (1, 2, 3):
                for i in range(len(words) - n + 1):
                    grams[tuple(words[i : i + n])] = None
        self.common = set(background_unigrams(common)) if common else set()
        self.grams = list(grams)
        self._cache: dict[str, tuple[str, ...]] = {}
        self._phonemes(sorted(self.vocab))
        gram_phones = [sum((self._cache[w] for w in g), ()) for g in self.grams]
        self._symbols: dict[str, int] = {}
        self.lengths = np.array([len(p) for p in gram_phones])
        self.table = np.full((len(gram_phones), int(self.lengths.max())), -1, np.int32)
        for k, phones in enumerate(gram_phones):
            self.table[k, : len(phones)] = self._code(phones)
        self.theta, self.theta_common = theta, theta_common
        self.vowel_cost, self.neighbour_cost, self.max_words = vowel_cost, neighbour_cost, max_words

    def _phonemes(self, words: list[str]) -> tuple[str, ...]:
        todo = sorted({w for w in words if w not in self._cache})
        if todo:
            self._cache.update(zip(todo, espeak_phonemes(todo), strict=True))
        return sum((self._cache[w] for w in words), ())

    def _code(self, phones: tuple[str, ...]) -> list[int]:
        return [self._symbols.setdefault(s, len(self._symbols)) for s in phones]

    def _vowel(self, codes: np.ndarray) -> np.ndarray:
        names = {i: s for s, i in self._symbols.items()}
        lookup = np.array([names.get(i, "") in _VOWELS for i in range(len(names) + 1)])
        return lookup[np.where(codes < 0, len(names), codes)]

    def nearest(self, phones: tuple[str, ...]) -> tuple[float, tuple[str, ...]]:
        """(normalised distance, n-gram) of the closest corpus n-gram."""
        a = self._code(phones)
        n = len(a)
        idx = np.nonzero((self.lengths >= n * 0.6) & (self.lengths <= n / 0.6 + 1))[0]
        if not n or not len(idx):
            return 9.0, ()
        table = self.table[idx]
        rows, width = table.shape
        vowels = self._vowel(table)
        a_vowel = self._vowel(np.array(a))
        prev = np.tile(np.arange(width + 1, dtype=np.float32), (rows, 1))
        for i in range(1, n + 1):
            sub = np.where(
                table == a[i - 1], 0.0, np.where(vowels & a_vowel[i - 1], self.vowel_cost, 1.0)
            )
            base = np.minimum(prev[:, :-1] + sub, prev[:, 1:] + 1)
            cur = np.empty_like(prev)
            cur[:, 0] = i
            for j in range(1, width + 1):
                cur[:, j] = np.minimum(base[:, j - 1], cur[:, j - 1] + 1)
            prev = cur
        lengths = self.lengths[idx]
        dist = prev[np.arange(rows), lengths] / np.maximum(lengths, n)
        k = int(np.argmin(dist))
        return float(dist[k]), self.grams[idx[k]]

    def fix(self, text: str) -> list[str]:
        from parley.engines.arpa import normalize

        text = _PHONE_NUMBER.sub(lambda m: " ".join(m.group(0).replace("-", "")), text)
        words = normalize(text)
        out: list[str] = []
        i = 0
        while i < len(words):
            if words[i] in self.vocab:
                out.append(words[i])
                i += 1
                continue
            j = i
            while j < len(words) and words[j] not in self.vocab and j - i < self.max_words:
                j += 1
            common = all(w in self.common for w in words[i:j])
            theta = self.theta_common if common else self.theta
            best: tuple[float, int, int, tuple[str, ...]] | None = None
            for left in (0, 1):
                for right in (0, 1):
                    start, end = i - left, j + right
                    if (left and not out) or end > len(words) or end - start > self.max_words:
                        continue
                    dist, gram = self.nearest(self._phonemes(words[start:end]))
                    score = dist + self.neighbour_cost * (left + right)
                    if gram and dist <= theta and (best is None or score < best[0]):
                        best = (score, left, right, gram)
            if best is None:
                out.extend(words[i:j])
                i = j
                continue
            _, left, right, gram = best
            if left:
                out.pop()
            out.extend(gram)
            i = j + right
        return out
