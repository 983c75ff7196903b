"""espeak-ng text-to-speech, in process, through ctypes and the ``espeakng-loader``
wheel (which bundles ``libespeak-ng`` and its data).

libespeak-ng keeps all its state in C globals and is not re-entrant, so a process has
exactly one ``EspeakRuntime``: it owns the library and the single worker thread that
may call it. ``get_runtime()`` creates it on first use; that one shared object is
deliberate, because it mirrors the C library's own process-wide state. Voice and rate
belong to each ``EspeakTTS`` and are set before every synthesis (≈0.1 ms).

Synthesis is synchronous inside espeak: the library calls our callback with each
~50 ms buffer, and the callback returning 1 aborts it, which is how closing the
iterator (barge-in) stops speech at once.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from parley.engines.base import EngineError, EngineUnavailable, TTSCapabilities
from parley.engines.thread_stream import ChunkSink, stream_from_thread

logger = logging.getLogger(__name__)

SAMPLE_RATE = 22050
KNOWN_GOOD_VOICES = ("en-us", "en", "en-gb-x-rp", "en-029", "de", "fr", "es")
MIN_RATE, MAX_RATE = 80, 450  # words per minute accepted by espeak-ng

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_BUFFER_MS = 50
_INITIALIZE_DONT_EXIT = 0x8000
_PARAM_RATE = 1
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


@dataclass(frozen=True, slots=True)
class SynthReport:
    """What one synthesis produced; ``aborted`` when the consumer stopped it early."""

    chunks: int
    samples: int
    aborted: bool


class _Job:
    """The state of the synthesis in progress (touched only on the worker thread)."""

    def __init__(self, sink: ChunkSink) -> None:
        self.sink = sink
        self.chunks = 0
        self.samples = 0
        self.aborted = False
        self.error: BaseException | None = None


def _load_library() -> tuple[ctypes.CDLL, int]:
    try:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data_parent = espeakng_loader.get_data_path().rsplit("/espeak-ng-data", 1)[0]
    except (ImportError, OSError) as exc:
        raise EngineUnavailable(
            f"espeak-ng could not be loaded ({exc}); reinstall 'espeakng-loader'"
        ) from exc
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    # text, size, position, position type, end position, flags, unique id, user data
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int]
    lib.espeak_Synth.argtypes += [ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    rate = lib.espeak_Initialize(
        _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, data_parent.encode(), _INITIALIZE_DONT_EXIT
    )
    if rate != SAMPLE_RATE:
        raise EngineUnavailable(f"espeak-ng failed to initialise (returned {rate})")
    return lib, rate


class EspeakRuntime:
    """The process's espeak-ng library and the one thread allowed to call it.
    Obtain it with ``get_runtime()``; ``close()`` at shutdown."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="espeak")
        self._lib: ctypes.CDLL | None = None
        self._callback = _SynthCallback(self._on_audio)  # must outlive every synthesis
        self._job: _Job | None = None
        self._count_lock = threading.Lock()
        self._jobs_in_flight = 0
        self._closed = False

    @property
    def jobs_in_flight(self) -> int:
        """Syntheses submitted and not yet finished (queued or running)."""
        with self._count_lock:
            return self._jobs_in_flight

    def submit(self, text: str, voice: str, rate: int, sink: ChunkSink) -> Future[SynthReport]:
        """Queue a synthesis on the worker thread; ``sink`` gets each PCM16 chunk."""
        return self._executor.submit(self._counted, text, voice, rate, sink)

    def stream(self, text: str, voice: str, rate: int) -> AsyncGenerator[bytes, None]:
        """Synthesize on the worker thread, yielding chunks as espeak makes them."""
        return stream_from_thread(
            self._executor, lambda sink: self._counted(text, voice, rate, sink)
        )

    def close(self) -> None:
        """Finish queued work, release the library and stop the worker thread."""
        with self._count_lock:
            if self._closed:
                return
            self._closed = True
        self._executor.submit(self._terminate)
        self._executor.shutdown(wait=True)

    def _counted(self, text: str, voice: str, rate: int, sink: ChunkSink) -> SynthReport:
        with self._count_lock:
            self._jobs_in_flight += 1
        try:
            return self._synthesize(text, voice, rate, sink)
        finally:
            with self._count_lock:
                self._jobs_in_flight -= 1

    def _ready_library(self) -> ctypes.CDLL:
        if self._lib is None:
            self._lib, _ = _load_library()
        self._lib.espeak_SetSynthCallback(self._callback)
        return self._lib

    def _synthesize(self, text: str, voice: str, rate: int, sink: ChunkSink) -> SynthReport:
        lib = self._ready_library()
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EngineUnavailable(
                f"espeak-ng has no voice {voice!r}; known-good voices: "
                + ", ".join(KNOWN_GOOD_VOICES),
                code="unknown_voice",
            )
        lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
        encoded = text.replace("\x00", " ").encode()
        job = self._job = _Job(sink)
        try:
            status = lib.espeak_Synth(
                encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
        finally:
            self._job = None
        if job.error is not None:
            raise job.error
        if status != 0:
            raise EngineError(f"espeak-ng synthesis failed with status {status}", code="tts_failed")
        report = SynthReport(job.chunks, job.samples, job.aborted)
        logger.debug("espeak synthesis done: %s", report)
        return report

    def _on_audio(self, wav: Any, num_samples: int, events: Any) -> int:
        job = self._job
        if job is None or num_samples <= 0:
            return 0
        try:
            keep_going = job.sink(ctypes.string_at(wav, num_samples * 2))
        except BaseException as exc:  # an exception must not cross the C frames
            job.error, job.aborted = exc, True
            return 1
        job.chunks += 1
        job.samples += num_samples
        if not keep_going:
            job.aborted = True
            return 1
        return 0

    def _terminate(self) -> None:
        if self._lib is not None:
            self._lib.espeak_Terminate()
            self._lib = None


_runtime: EspeakRuntime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> EspeakRuntime:
    """The process's espeak runtime (created on first use; see the module docstring)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = EspeakRuntime()
        return _runtime


def close_runtime() -> None:
    """Close the shared runtime (app shutdown); a later ``get_runtime`` makes a new one."""
    global _runtime
    with _runtime_lock:
        runtime, _runtime = _runtime, None
    if runtime is not None:
        runtime.close()


class EspeakTTS:
    """The embedded default TTS: PCM16 at 22050 Hz, streamed as espeak synthesizes."""

    def __init__(
        self, voice: str = "en-us", rate: int = 175, *, runtime: EspeakRuntime | None = None
    ) -> None:
        if not voice or not voice.isprintable() or voice != voice.strip():
            raise ValueError(f"invalid espeak voice name {voice!r}")
        if not MIN_RATE <= rate <= MAX_RATE:
            raise ValueError(f"espeak rate must be {MIN_RATE}..{MAX_RATE} words/min, got {rate}")
        self.voice = voice
        self.rate = rate
        self.capabilities = TTSCapabilities(sample_rate=SAMPLE_RATE, streaming=True)
        self._runtime = runtime  # None: the shared runtime, looked up per call

    @property
    def runtime(self) -> EspeakRuntime:
        return self._runtime or get_runtime()

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if not text.strip():
            return
        chunks = self.runtime.stream(text, self.voice, self.rate)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()

    async def check(self) -> None:
        """Raise ``EngineUnavailable`` now if espeak or the voice is unusable."""
        await asyncio.wrap_future(self.runtime.submit("", self.voice, self.rate, _discard))


def _discard(chunk: bytes) -> bool:
    return True
