"""Embedded streaming STT: pocketsphinx with a domain language model.

Construction (blocking, ~0.3–1 s; call it via ``asyncio.to_thread`` at startup):

* With ``phrases``, a bigram LM is built from them plus the yes/no replies
  (:mod:`parley.engines.arpa`) and written with a dictionary cut down to its words,
  so a decoder loads in ~20–30 ms. Without phrases the generic en-us LM and the full
  CMU dictionary are used (~0.6 s and ~95 MB per decoder).
* Every decoder also gets a JSGF yes/no grammar; ``set_mode("yes_no")`` selects it
  from the next utterance on.

Cold start. Live cepstral mean normalisation adapts over the first utterance, and a
fresh decoder with pocketsphinx's default ``cmninit`` misrecognises it badly. The
cheapest fix that measurably works is a better seed: the engine starts from
``cmninit`` (default: the mean measured on espeak speech) and then remembers the CMN
of the latest finished utterance, which seeds every new decoder.

Streams. ``open_stream()`` holds ONE decoder reused across utterances (created in a
worker thread, started right away when a loop is running). ``process_raw`` costs
~1–3 ms per 20 ms frame with a domain LM and releases the GIL, so it runs in a worker
thread: the event loop stays free for other connections and decoding can use another
core. A thread hop costs ~0.1 ms, so audio is batched to 100 ms per hop; partial
hypotheses therefore update ten times a second. A ``threading.Lock`` per stream keeps
the decoder in one thread at a time; a generation counter drops the work of
cancelled utterances.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from parley.engines.arpa import DomainLM, build_domain_lm, load_dictionary, normalize
from parley.engines.base import EngineUnavailable, STTCapabilities, STTMode
from parley.engines.wrappers_stt import check_mode

log = logging.getLogger(__name__)

NOISE_FLOOR_RMS = 30.0
"""Gaussian noise (≈ −60 dBFS) added before decoding. pocketsphinx misrecognises
digital silence between words badly (29.5 % → 10.6 % word error rate on espeak speech
with this floor, see bench/RESULTS.md); a real microphone always has such a floor."""


def add_noise_floor(pcm: bytes, rng: np.random.Generator, rms: float = NOISE_FLOOR_RMS) -> bytes:
    """PCM16 with low-level Gaussian noise added (deterministic for a seeded ``rng``)."""
    if not pcm or rms <= 0:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    samples += np.asarray(rng.normal(0.0, rms, size=samples.shape[0]), dtype=np.float32)
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


SAMPLE_RATE = 16000
BATCH_BYTES = 3200  # 100 ms of 16 kHz PCM16 per worker-thread hop
ESPEAK_CMNINIT = "52.86,2.81,-3.22,21.16,-8.35"
"""Cepstral mean measured on espeak-ng speech; a far better cold start than the default."""

YES_NO_SEARCH = "yes_no"
YES_REPLIES = (
    "yes", "yes please", "yeah", "yep", "sure", "okay", "correct", "that's right", "go ahead",
)  # fmt: skip
NO_REPLIES = ("no", "no thanks", "no thank you", "nope", "cancel", "don't", "stop")
BACKCHANNELS = ("mhm", "hmm", "uh-huh", "right")
"""What callers say while listening ("mm-hm"): in the domain model so that
false-interruption recovery hears a backchannel, not some phrase's words."""


def yes_no_jsgf() -> str:
    """The JSGF grammar used in ``yes_no`` mode."""
    alternatives = " | ".join(" ".join(normalize(r)) for r in (*YES_REPLIES, *NO_REPLIES))
    return f"#JSGF V1.0;\ngrammar yes_no;\npublic <answer> = {alternatives};\n"


# Phone grade (``phone_grade=True``), for 8 kHz μ-law speech. The acoustic model is
# wideband (filters up to 6.8 kHz); nothing above 4 kHz survives a phone line. No
# front-end trick tried (a narrower filterbank, spectral folding, noise-excited or
# shifted high band) beat a louder noise floor; what works is moving the model instead:
# a channel transform fitted on espeak speech heard both ways (parley.engines.phone_band)
# is applied to its means as MLLR. With it a floor of rms 100 measures best, a language
# weight of 7 and background unigrams let the model leave the phrases
# (bench/phone_stt.py, tuned on the [dev] and [dev2] sets only).
PHONE_NOISE_FLOOR_RMS = 100.0
PHONE_CMNINIT = "61.8,-4.08,-5.45,3.44,-1.85"
"""Cepstral mean of espeak speech through a phone line (the [dev] set)."""
PHONE_BACKGROUND_WORDS = 5000
PHONE_BACKGROUND_WEIGHT = 0.1
PHONE_LANGUAGE_WEIGHT = 7.0


@functools.lru_cache(maxsize=4)
def background_unigrams(count: int) -> dict[str, float]:
    """The ``count`` commonest words of general English with their probabilities, read
    from the generic en-us model shipped with pocketsphinx (~0.2 s, cached)."""
    import pocketsphinx

    model_dir = os.path.join(pocketsphinx.get_model_path(), "en-us")
    logmath = pocketsphinx.LogMath()
    model = pocketsphinx.NGramModel(
        pocketsphinx.Config(), logmath, os.path.join(model_dir, "en-us.lm.bin")
    )
    scale = math.log(10) / math.log(1.0001)  # the model's log base is 1.0001
    scored = []
    for word in load_dictionary():
        if word.isalpha() or "'" in word:
            scored.append((model.prob([word]), word))
    scored.sort(reverse=True)
    return {word: 10 ** (logp / scale) for logp, word in scored[:count]}


def _parse_cmn(value: str) -> str:
    try:
        numbers = [float(v) for v in value.split(",")]
    except ValueError:
        numbers = []
    if not 1 <= len(numbers) <= 13:
        raise ValueError(f"cmninit must be 1 to 13 comma-separated numbers, got {value!r}")
    return ",".join(f"{n:g}" for n in numbers)


class PocketsphinxSTT:
    """Streaming recogniser; see the module docstring for the design.

    ``phone_grade``: tuned for 8 kHz phone speech (noise floor, language weight,
    background words, cepstral seed) and, unless ``phone_band_transform`` is False, the
    acoustic model moved to the phone band (:mod:`parley.engines.phone_band`).
    """

    capabilities = STTCapabilities(sample_rate=SAMPLE_RATE, streaming=True)

    def __init__(
        self,
        phrases: Sequence[str] | None = None,
        *,
        slots: Mapping[str, Sequence[str]] | None = None,
        cmninit: str | None = None,
        phone_grade: bool = False,
        phone_band_transform: bool | None = None,
    ) -> None:
        try:
            import pocketsphinx
        except ImportError as exc:  # a core dependency, but say so clearly
            raise EngineUnavailable("pocketsphinx is not installed") from exc
        self._decoder_class: Any = pocketsphinx.Decoder
        self._cmn = _parse_cmn(cmninit or (PHONE_CMNINIT if phone_grade else ESPEAK_CMNINIT))
        self._cmn_lock = threading.Lock()
        self._dir = tempfile.mkdtemp(prefix="parley-pocketsphinx-")
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._dir, ignore_errors=True)
        self.lm: DomainLM | None = None
        self._config: dict[str, Any] = {"samprate": SAMPLE_RATE, "loglevel": "FATAL"}
        self._config["fwdflat"] = False  # a second pass costs 20–150 ms per final, no gain
        self.phone_grade = phone_grade
        self.noise_floor_rms = PHONE_NOISE_FLOOR_RMS if phone_grade else NOISE_FLOOR_RMS
        if phone_grade:
            self._config["lw"] = PHONE_LANGUAGE_WEIGHT
        if phone_grade if phone_band_transform is None else phone_band_transform:
            self._write_phone_band_transform()
        if phrases:
            self._write_domain_model(phrases, slots)
        self._oneshot_lock = threading.Lock()
        try:
            self._oneshot = self.new_decoder()
        except (RuntimeError, ValueError) as exc:
            self.close()
            raise EngineUnavailable(f"pocketsphinx failed to load its models: {exc}") from exc

    def _write_domain_model(
        self, phrases: Sequence[str], slots: Mapping[str, Sequence[str]] | None
    ) -> None:
        dictionary = load_dictionary()
        # answers to questions are common, and so are backchannels over the agent
        corpus = [*phrases, *YES_REPLIES, *NO_REPLIES, *BACKCHANNELS]
        background = background_unigrams(PHONE_BACKGROUND_WORDS) if self.phone_grade else None
        self.lm = build_domain_lm(
            corpus,
            slots=slots,
            vocabulary=dictionary,
            background=background,
            background_weight=PHONE_BACKGROUND_WEIGHT if background else 0.0,
        )
        lm_path = os.path.join(self._dir, "domain.arpa")
        dict_path = os.path.join(self._dir, "domain.dict")
        with open(lm_path, "w", encoding="utf-8") as f:
            f.write(self.lm.arpa)
        with open(dict_path, "w", encoding="utf-8") as f:
            for word in self.lm.words:
                f.writelines(line + "\n" for line in dictionary[word])
        self._config.update(lm=lm_path, dict=dict_path)
        log.info("domain LM: %d words, %d sentences", len(self.lm.words), self.lm.sentences)

    def _write_phone_band_transform(self) -> None:
        from parley.engines.phone_band import phone_band_mllr

        path = os.path.join(self._dir, "phone_band.mllr")
        with open(path, "w", encoding="utf-8") as f:
            f.write(phone_band_mllr(NOISE_FLOOR_RMS, PHONE_NOISE_FLOOR_RMS))
        self._config["mllr"] = path

    @property
    def cmn(self) -> str:
        """The cepstral mean new decoders start from."""
        with self._cmn_lock:
            return self._cmn

    def remember_cmn(self, cmn: str) -> None:
        with self._cmn_lock:
            self._cmn = cmn

    def new_decoder(self) -> Any:
        """A configured decoder (blocking: run it in a thread)."""
        decoder = self._decoder_class(**self._config)
        # A search reads "bestpath" when it is created. The lattice pass helps the
        # n-gram search (WER 11 % vs 16 %) but breaks finals of the yes/no grammar
        # ("correct" -> "no"), so the grammar is added with it switched off.
        decoder.config["bestpath"] = False
        decoder.add_jsgf_string(YES_NO_SEARCH, yes_no_jsgf())
        decoder.config["bestpath"] = True
        decoder.set_cmn(self.cmn)
        return decoder

    def open_stream(self) -> PocketsphinxStream:
        return PocketsphinxStream(self)

    async def transcribe(self, pcm: bytes) -> str:
        """One whole utterance of 16 kHz PCM16 (uses a shared one-shot decoder)."""
        _check_pcm(pcm)
        if not pcm:
            return ""
        return await asyncio.to_thread(self._transcribe_blocking, pcm)

    def _transcribe_blocking(self, pcm: bytes) -> str:
        with self._oneshot_lock:
            decoder = self._oneshot
            decoder.set_cmn(self.cmn)
            decoder.start_utt()
            try:
                decoder.process_raw(
                    add_noise_floor(pcm, np.random.default_rng(0), self.noise_floor_rms),
                    False,
                    False,
                )
            finally:
                decoder.end_utt()
            hyp = decoder.hyp()
            return str(hyp.hypstr) if hyp else ""

    def close(self) -> None:
        """Delete the temporary model files (also done when garbage-collected)."""
        self._cleanup()


def _check_pcm(pcm: bytes) -> None:
    if len(pcm) % 2:
        raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm)}")


class PocketsphinxStream:
    """One connection's decoder, reused across utterances."""

    def __init__(self, engine: PocketsphinxSTT) -> None:
        self._engine = engine
        self._rng = np.random.default_rng(0)  # the noise floor; seeded: same audio, same text
        self._decoder: Any = None
        self._starting: asyncio.Future[Any] | None = None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:  # build the decoder while the caller is still setting up
            self._start_decoder()
        self._default_search = ""
        self._buffer = bytearray()
        self._lock = threading.Lock()  # guards the decoder and the fields below it
        self._in_utterance = False
        self._utterance_generation = 0
        self._active_mode: STTMode = "default"
        self._mode: STTMode = "default"
        self._generation = 0
        self._partial = ""
        self._closed = False

    @property
    def mode(self) -> STTMode:
        return self._mode

    async def push(self, pcm: bytes) -> str | None:
        """Feed audio of the current utterance; returns a new partial or None."""
        self._check_open()
        _check_pcm(pcm)
        self._buffer += pcm
        if len(self._buffer) < BATCH_BYTES:
            return None
        chunk = bytes(self._buffer)
        self._buffer.clear()
        decoder = await self._ready_decoder()
        generation = self._generation
        partial = await asyncio.to_thread(self._decode, decoder, chunk, generation)
        if generation != self._generation or not partial or partial == self._partial:
            return None
        self._partial = partial
        return partial

    async def finish(self) -> str:
        """End the utterance and return its final transcript ("" if nothing was heard)."""
        self._check_open()
        chunk = bytes(self._buffer)
        self._buffer.clear()
        self._partial = ""
        if self._decoder is None and self._starting is None:
            return ""  # nothing was ever pushed
        decoder = await self._ready_decoder()
        generation = self._generation
        text = await asyncio.to_thread(self._final, decoder, chunk, generation)
        return text if generation == self._generation else ""

    def cancel(self) -> None:
        """Drop the current utterance; queued or running work for it is discarded."""
        self._generation += 1
        self._buffer.clear()
        self._partial = ""

    def set_mode(self, mode: STTMode) -> None:
        """Choose the search for the next utterance ("default" or "yes_no")."""
        self._mode = check_mode(mode)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.cancel()
        if self._decoder is None and self._starting is None:
            return
        decoder = await self._ready_decoder()
        await asyncio.to_thread(self._end_quietly, decoder)
        self._decoder = None

    # --- worker-thread side -----------------------------------------------------------------

    def _decode(self, decoder: Any, chunk: bytes, generation: int) -> str:
        with self._lock:
            if generation != self._generation:
                return ""
            self._start_utterance(decoder, generation)
            decoder.process_raw(
                add_noise_floor(chunk, self._rng, self._engine.noise_floor_rms), False, False
            )
            hyp = decoder.hyp()
            return str(hyp.hypstr) if hyp else ""

    def _final(self, decoder: Any, chunk: bytes, generation: int) -> str:
        with self._lock:
            if generation != self._generation:
                return ""
            self._end_stale_utterance(decoder, generation)
            if not chunk and not self._in_utterance:
                return ""
            self._start_utterance(decoder, generation)
            if chunk:
                decoder.process_raw(
                    add_noise_floor(chunk, self._rng, self._engine.noise_floor_rms), False, False
                )
            decoder.end_utt()
            self._in_utterance = False
            hyp = decoder.hyp()
            text = str(hyp.hypstr) if hyp else ""
            if text:
                self._engine.remember_cmn(decoder.get_cmn())
            log.debug("final (%s): %r", self._active_mode, text)
            return text

    def _end_stale_utterance(self, decoder: Any, generation: int) -> None:
        """With the lock held: end an utterance that was cancelled."""
        if self._in_utterance and self._utterance_generation != generation:
            decoder.end_utt()
            self._in_utterance = False

    def _start_utterance(self, decoder: Any, generation: int) -> None:
        """With the lock held: make sure an utterance of ``generation`` is running."""
        self._end_stale_utterance(decoder, generation)
        if self._in_utterance:
            return
        if self._mode != self._active_mode:
            search = YES_NO_SEARCH if self._mode == "yes_no" else self._default_search
            decoder.activate_search(search)
            self._active_mode = self._mode
        decoder.start_utt()
        self._in_utterance = True
        self._utterance_generation = generation

    def _end_quietly(self, decoder: Any) -> None:
        with self._lock:
            if self._in_utterance:
                decoder.end_utt()
                self._in_utterance = False

    # --- loop side --------------------------------------------------------------------------

    def _start_decoder(self) -> asyncio.Future[Any]:
        if self._starting is None:
            loop = asyncio.get_running_loop()
            self._starting = loop.run_in_executor(None, self._engine.new_decoder)
            # An unused stream must not log "exception was never retrieved".
            self._starting.add_done_callback(lambda f: f.cancelled() or f.exception())
        return self._starting

    async def _ready_decoder(self) -> Any:
        if self._decoder is None:
            decoder = await asyncio.shield(self._start_decoder())
            if self._decoder is None:
                self._default_search = decoder.current_search()
                self._decoder = decoder
        return self._decoder

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the STT stream is closed")
