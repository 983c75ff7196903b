"""TTS engines: embedded espeak-ng, piper (optional extra), an OpenAI-compatible HTTP
endpoint (a real local server), and the fallback/retry wrappers."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from parley.audio import duration_s, read_wav, rms
from parley.engines.base import TTS, EngineUnavailable, ProviderError
from parley.engines.espeak import EspeakTTS, SynthReport, close_runtime, get_runtime
from parley.engines.http_tts import HttpTTS
from parley.engines.piper_tts import PiperTTS
from parley.engines.wrappers_tts import FallbackTTS, RetryTTS
from parley.testing import FakeClock
from parley.testing.servers import serve_app
from parley.testing.speech import speak_pcm

SENTENCE = "Your table for four is booked at seven thirty tonight, and we will text you."


async def collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


async def audio_of(tts: TTS, text: str) -> bytes:
    return b"".join(await collect(tts.synthesize(text)))


# --- espeak -----------------------------------------------------------------------------


async def test_first_chunk_arrives_as_pcm16(espeak_tts: EspeakTTS) -> None:
    chunks = espeak_tts.synthesize(SENTENCE)
    first = await anext(chunks)
    await chunks.aclose()  # type: ignore[attr-defined]
    assert espeak_tts.capabilities.sample_rate == 22050
    assert 0 < len(first) <= 22050 // 10 * 2 and len(first) % 2 == 0


async def test_sentence_is_streamed_with_a_sensible_duration(espeak_tts: EspeakTTS) -> None:
    chunks = await collect(espeak_tts.synthesize(SENTENCE))
    audio = b"".join(chunks)
    assert len(chunks) > 20  # streamed in ~50 ms buffers, not one blob
    assert 3.0 < duration_s(audio, 22050) < 5.5  # measured 4.0 s at 175 wpm
    assert rms(audio) > 0.02


async def test_blank_text_yields_nothing(espeak_tts: EspeakTTS) -> None:
    assert await collect(espeak_tts.synthesize("  \n\t ")) == []


async def test_closing_early_aborts_synthesis(
    espeak_tts: EspeakTTS, caplog: pytest.LogCaptureFixture
) -> None:
    long_text = " ".join([SENTENCE] * 100)  # ~400 s of audio, ~6800 chunks
    caplog.set_level(logging.DEBUG, logger="parley.engines.espeak")
    chunks = espeak_tts.synthesize(long_text)
    await anext(chunks)
    await chunks.aclose()  # type: ignore[attr-defined]
    assert get_runtime().jobs_in_flight == 0  # the synth thread has finished our job
    reports = [r.args[0] for r in caplog.records if isinstance(r.args, tuple) and r.args]
    report = next(r for r in reports if isinstance(r, SynthReport))
    assert report.aborted
    assert report.chunks < 3000  # a full synthesis makes ~6800


def test_runtime_aborts_when_the_sink_says_stop_and_uses_one_thread() -> None:
    threads: set[str] = set()
    seen: list[bytes] = []

    def sink(chunk: bytes) -> bool:
        threads.add(threading.current_thread().name)
        seen.append(chunk)
        return len(seen) < 3

    report = get_runtime().submit(SENTENCE, "en-us", 175, sink).result(timeout=10)
    assert report == SynthReport(chunks=3, samples=sum(len(c) for c in seen) // 2, aborted=True)
    assert len(threads) == 1 and threads.pop().startswith("espeak")
    full = get_runtime().submit(SENTENCE, "en-us", 175, lambda chunk: True).result(timeout=10)
    assert not full.aborted and full.chunks > 3


def envelope_corr(a: bytes, b: bytes, rate: int = 22050) -> float:
    """Correlation of the 20 ms loudness envelopes (espeak output varies slightly
    from run to run, so byte equality is not a usable test)."""

    def envelope(pcm: bytes) -> np.ndarray:
        x = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
        n = rate // 50
        frames = x[: len(x) // n * n].reshape(-1, n)
        return np.asarray(np.sqrt((frames**2).mean(axis=1)))

    ea, eb = envelope(a), envelope(b)
    size = min(len(ea), len(eb))
    return float(np.corrcoef(ea[:size], eb[:size])[0, 1])


async def test_concurrent_syntheses_do_not_interleave() -> None:
    first, second = EspeakTTS("en-us", 175), EspeakTTS("de", 260)
    text_a, text_b = SENTENCE, "Please hold while I check the calendar for next week."
    solo_a, solo_b = await audio_of(first, text_a), await audio_of(second, text_b)
    together = await asyncio.gather(*(audio_of(first, text_a), audio_of(second, text_b)) * 2)
    for audio, solo, other in zip(
        together, [solo_a, solo_b] * 2, [solo_b, solo_a] * 2, strict=True
    ):
        assert duration_s(audio, 22050) == pytest.approx(duration_s(solo, 22050), rel=0.02)
        assert envelope_corr(audio, solo) > 0.85
        assert envelope_corr(audio, other) < 0.5


async def test_voice_and_rate_change_the_output() -> None:
    slow = await audio_of(EspeakTTS("en-us", 120), SENTENCE)
    fast = await audio_of(EspeakTTS("en-us", 320), SENTENCE)
    assert duration_s(fast, 22050) < 0.6 * duration_s(slow, 22050)
    american = await audio_of(EspeakTTS("en-us"), SENTENCE)
    german = await audio_of(EspeakTTS("de"), SENTENCE)
    assert envelope_corr(american, await audio_of(EspeakTTS("en-us"), SENTENCE)) > 0.85
    assert envelope_corr(american, german) < 0.5


async def test_unknown_voice_lists_known_good_voices() -> None:
    tts = EspeakTTS("en-gb")  # rejected by espeak-ng; "en" is British
    with pytest.raises(EngineUnavailable, match=r"no voice 'en-gb'.*en-us, en,") as caught:
        await collect(tts.synthesize("hello"))
    assert caught.value.code == "unknown_voice"
    with pytest.raises(EngineUnavailable, match=r"known-good voices"):
        await tts.check()
    await EspeakTTS("de").check()


async def test_runtime_can_be_closed_and_reopened(espeak_tts: EspeakTTS) -> None:
    old = get_runtime()
    close_runtime()
    old.close()  # idempotent
    assert get_runtime() is not old
    audio = await audio_of(espeak_tts, "Still speaking after a restart.")  # re-initialised
    assert duration_s(audio, 22050) > 1.0
    assert get_runtime().jobs_in_flight == 0


def test_bad_espeak_arguments() -> None:
    with pytest.raises(ValueError, match=r"rate must be 80..450"):
        EspeakTTS(rate=30)
    with pytest.raises(ValueError, match=r"invalid espeak voice name"):
        EspeakTTS(voice=" en")


# --- test speech kit ------------------------------------------------------------------------


def test_speech_helpers(speak_pcm16k: Callable[..., bytes], wav_file: Callable[..., Path]) -> None:
    pcm = speak_pcm16k(SENTENCE)
    assert 3.0 < duration_s(pcm, 16000) < 5.5
    assert speak_pcm16k(SENTENCE) is pcm  # cached
    assert speak_pcm16k("") == b""
    path = wav_file("hello there", after_s=0.5)
    audio = read_wav(path)
    assert audio.sample_rate == 16000
    assert audio.duration_s == pytest.approx(duration_s(speak_pcm16k("hello there"), 16000) + 0.5)


# --- piper (optional extra) --------------------------------------------------------------------


def voice_files(directory: Path, config: object = None) -> Path:
    model = directory / "voice.onnx"
    model.write_bytes(b"onnx")
    body = {"audio": {"sample_rate": 16000}} if config is None else config
    (directory / "voice.onnx.json").write_text(json.dumps(body))
    return model


def test_piper_missing_model_or_config(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match=r"piper voice model not found: .*nope.onnx") as e:
        PiperTTS(tmp_path / "nope.onnx")
    assert e.value.code == "model_missing"
    (tmp_path / "lonely.onnx").write_bytes(b"x")
    with pytest.raises(EngineUnavailable, match=r"config not found: .*lonely\.onnx\.json"):
        PiperTTS(tmp_path / "lonely.onnx")
    with pytest.raises(EngineUnavailable, match=r"needs audio.sample_rate") as e:
        PiperTTS(voice_files(tmp_path, config={"espeak": {}}))
    assert e.value.code == "bad_model"


def test_piper_without_the_extra_names_it(tmp_path: Path) -> None:
    assert importlib.util.find_spec("piper") is None, "this test expects piper not installed"
    with pytest.raises(EngineUnavailable, match=r"pip install 'parley\[piper\]'") as e:
        PiperTTS(voice_files(tmp_path))
    assert e.value.code == "missing_extra"


FAKE_PIPER = """
class _Chunk:
    def __init__(self, pcm):
        self.audio_int16_bytes = pcm

class PiperVoice:
    loads = []

    @staticmethod
    def load(model_path, config_path=None):
        with open(model_path, "rb") as model:
            corrupt = model.read() == b"corrupt"
        if corrupt:
            raise RuntimeError("INVALID_PROTOBUF")
        PiperVoice.loads.append(model_path)
        return PiperVoice()

    def synthesize(self, text):
        for n, sentence in enumerate(s for s in text.split(".") if s.strip()):
            yield _Chunk(bytes([n + 1, 0]) * 800)
"""


@pytest.fixture
def fake_piper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A stand-in for the third-party ``piper`` package (not installed here)."""
    package = tmp_path / "site" / "piper"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(FAKE_PIPER)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(__import__("sys").modules, "piper", raising=False)
    yield
    __import__("sys").modules.pop("piper", None)


async def test_piper_streams_chunks_at_the_config_rate(tmp_path: Path, fake_piper: Any) -> None:
    tts = PiperTTS(voice_files(tmp_path))
    try:
        assert tts.capabilities.sample_rate == 16000
        chunks = await collect(tts.synthesize("One. Two. Three."))
        assert [c[:2] for c in chunks] == [b"\x01\x00", b"\x02\x00", b"\x03\x00"]
        assert await collect(tts.synthesize("   ")) == []
        assert len(await collect(tts.synthesize("Again."))) == 1
        import piper  # the fake

        assert len(piper.PiperVoice.loads) == 1  # loaded once, lazily
    finally:
        tts.close()


async def test_piper_bad_model_is_reported_at_first_use(tmp_path: Path, fake_piper: Any) -> None:
    model = voice_files(tmp_path)
    model.write_bytes(b"corrupt")
    tts = PiperTTS(model)
    try:
        with pytest.raises(EngineUnavailable, match=r"could not load .*INVALID_PROTOBUF"):
            await collect(tts.synthesize("Hello."))
    finally:
        tts.close()


# --- HTTP (a local OpenAI-compatible /v1/audio/speech server) ------------------------------------


class SpeechServer:
    """Speaks ``/v1/audio/speech`` with espeak-made audio; the voice picks a behaviour."""

    API_KEY = "sk-test"

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.flaky_failures = 0
        self.release = asyncio.Event()
        self.app = Starlette(routes=[Route("/v1/audio/speech", self.speech, methods=["POST"])])

    async def speech(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append((dict(request.headers), body))
        voice = body["voice"]
        if request.headers.get("authorization") != f"Bearer {self.API_KEY}":
            return JSONResponse({"error": {"message": "Incorrect API key"}}, 401)
        if voice == "missing":
            return JSONResponse({"error": {"message": "voice 'missing' not found"}}, 400)
        if voice == "busy" or (voice == "flaky" and self.flaky_failures > 0):
            self.flaky_failures -= 1
            return JSONResponse({"error": {"message": "overloaded"}}, 503)
        if voice == "json":
            return JSONResponse({"audio": "AAAA"})
        if voice == "hang":
            await self.release.wait()
        if body["response_format"] == "wav":
            pcm = await asyncio.to_thread(speak_pcm, body["input"], "en-us", 175, 22050)
            data = wav_header(22050) + pcm
        else:
            data = await asyncio.to_thread(speak_pcm, body["input"], "en-us", 175, 24000)
        return StreamingResponse(pieces(data, cut=voice == "broken"), media_type="audio/pcm")


def wav_header(rate: int) -> bytes:
    import struct

    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return b"RIFF\xff\xff\xff\xffWAVEfmt " + struct.pack("<I", 16) + fmt + b"data\xff\xff\xff\xff"


async def pieces(data: bytes, cut: bool) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1001):  # odd sizes: samples split across pieces
        if cut and start > len(data) // 2:
            raise ConnectionResetError("speech backend died")
        yield data[start : start + 1001]


@pytest.fixture
async def speech_server() -> AsyncIterator[tuple[SpeechServer, str]]:
    server = SpeechServer()
    async with serve_app(server.app) as url:
        try:
            yield server, f"{url}/v1"
        finally:
            server.release.set()


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
async def http_tts() -> AsyncIterator[Callable[..., HttpTTS]]:
    """``http_tts(base_url, voice="alloy", **options)``; clients are closed afterwards."""
    made: list[HttpTTS] = []

    def make(base_url: str, voice: str = "alloy", **options: Any) -> HttpTTS:
        options.setdefault("api_key", SpeechServer.API_KEY)
        made.append(HttpTTS(base_url, "tts-1", voice, **options))
        return made[-1]

    yield make
    for tts in made:
        await tts.aclose()


async def test_http_pcm_streams_through_unchanged(
    speech_server: tuple[SpeechServer, str], http_tts: Callable[..., HttpTTS]
) -> None:
    server, url = speech_server
    tts = http_tts(url)
    chunks = await collect(tts.synthesize(SENTENCE))
    assert all(len(c) % 2 == 0 for c in chunks) and len(chunks) > 1
    assert b"".join(chunks) == speak_pcm(SENTENCE, "en-us", 175, 24000)
    headers, body = server.requests[0]
    assert body == {"model": "tts-1", "input": SENTENCE, "voice": "alloy", "response_format": "pcm"}
    assert headers["authorization"] == "Bearer sk-test"
    assert tts.capabilities.sample_rate == 24000


async def test_http_wav_header_is_stripped_and_rate_converted(
    speech_server: tuple[SpeechServer, str], http_tts: Callable[..., HttpTTS]
) -> None:
    _, url = speech_server
    tts = http_tts(url, response_format="wav")
    audio = await audio_of(tts, SENTENCE)
    expected = speak_pcm(SENTENCE, "en-us", 175, 24000)
    assert duration_s(audio, 24000) == pytest.approx(duration_s(expected, 24000), abs=0.05)
    assert abs(rms(audio) - rms(expected)) < 0.01


@pytest.mark.parametrize(
    ("voice", "code", "retryable", "message"),
    [
        ("missing", "tts_bad_request", False, "answered 400: .*voice 'missing' not found"),
        ("busy", "tts_server_error", True, "answered 503"),
        ("json", "tts_bad_response", False, "'application/json' instead of audio"),
    ],
)
async def test_http_errors_have_codes(
    speech_server: tuple[SpeechServer, str],
    voice: str,
    code: str,
    retryable: bool,
    message: str,
    http_tts: Callable[..., HttpTTS],
) -> None:
    _, url = speech_server
    with pytest.raises(ProviderError, match=message) as caught:
        await audio_of(http_tts(url, voice), "hello")
    assert (caught.value.code, caught.value.retryable) == (code, retryable)


async def test_http_auth_unreachable_timeout_and_cut(
    speech_server: tuple[SpeechServer, str], http_tts: Callable[..., HttpTTS]
) -> None:
    _, url = speech_server
    with pytest.raises(ProviderError, match=r"answered 401: .*Incorrect API key") as caught:
        await audio_of(http_tts(url, api_key="wrong"), "hello")
    assert (caught.value.code, caught.value.retryable) == ("tts_auth", False)
    with pytest.raises(ProviderError, match=r"unreachable") as caught:
        await audio_of(http_tts(dead_url()), "hello")
    assert (caught.value.code, caught.value.retryable) == ("tts_unreachable", True)
    with pytest.raises(ProviderError, match=r"timed out") as caught:
        await audio_of(http_tts(url, "hang", timeout_s=0.2), "hello")
    assert caught.value.code == "tts_timeout"
    got: list[bytes] = []
    with pytest.raises(ProviderError, match=r"broke off") as caught:
        async for chunk in http_tts(url, "broken").synthesize(SENTENCE):
            got.append(chunk)
    assert caught.value.code == "tts_connection_lost" and got


async def test_http_blank_text_and_bad_arguments(
    speech_server: tuple[SpeechServer, str], http_tts: Callable[..., HttpTTS]
) -> None:
    server, url = speech_server
    assert await collect(http_tts(url).synthesize(" ")) == []
    assert server.requests == []
    with pytest.raises(ValueError, match=r"response_format must be 'pcm' or 'wav'"):
        http_tts(url, response_format="mp3")
    with pytest.raises(ValueError, match=r"base_url must start with http"):
        HttpTTS("127.0.0.1:8880", "tts-1", "alloy")


# --- fallback and retry ---------------------------------------------------------------------------


class Recording:
    """Records which texts an engine was asked to speak."""

    def __init__(self, inner: TTS) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities
        self.texts: list[str] = []

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.texts.append(text)
        return self.inner.synthesize(text)


async def test_http_down_falls_back_to_espeak(
    caplog: pytest.LogCaptureFixture, http_tts: Callable[..., HttpTTS]
) -> None:
    tts = FallbackTTS([http_tts(dead_url()), EspeakTTS()])
    assert tts.capabilities.sample_rate == 24000  # the primary's rate
    audio = await audio_of(tts, SENTENCE)
    espeak_audio = await audio_of(EspeakTTS(), SENTENCE)
    assert duration_s(audio, 24000) == pytest.approx(duration_s(espeak_audio, 22050), abs=0.05)
    assert "HttpTTS failed before audio" in caplog.text


async def test_fallback_uses_the_primary_when_it_works(
    speech_server: tuple[SpeechServer, str], http_tts: Callable[..., HttpTTS]
) -> None:
    _, url = speech_server
    backup = Recording(EspeakTTS())
    audio = await audio_of(FallbackTTS([http_tts(url), backup]), SENTENCE)
    assert audio == speak_pcm(SENTENCE, "en-us", 175, 24000)
    assert backup.texts == []


async def test_no_fallback_once_audio_has_started(
    speech_server: tuple[SpeechServer, str], http_tts: Callable[..., HttpTTS]
) -> None:
    _, url = speech_server
    backup = Recording(EspeakTTS())
    got: list[bytes] = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in FallbackTTS([http_tts(url, "broken"), backup]).synthesize(SENTENCE):
            got.append(chunk)
    assert caught.value.code == "tts_connection_lost"
    assert got and backup.texts == []  # never spoken twice


async def test_all_engines_failing_raises_the_last_with_notes(
    http_tts: Callable[..., HttpTTS],
) -> None:
    tts = FallbackTTS([http_tts(dead_url()), EspeakTTS("xx-none")])
    with pytest.raises(EngineUnavailable) as caught:
        await audio_of(tts, "hello")
    assert caught.value.code == "unknown_voice"
    assert any("tts_unreachable" in note for note in caught.value.__notes__)
    with pytest.raises(ValueError, match=r"at least one engine"):
        FallbackTTS([])


async def test_retry_recovers_from_transient_errors(
    speech_server: tuple[SpeechServer, str], http_tts: Callable[..., HttpTTS]
) -> None:
    server, url = speech_server
    server.flaky_failures = 2
    clock = FakeClock(autojump=True)
    audio = await audio_of(RetryTTS(http_tts(url, "flaky"), attempts=3, clock=clock), SENTENCE)
    assert audio == speak_pcm(SENTENCE, "en-us", 175, 24000)
    assert clock.sleeps == [0.2, 0.4] and len(server.requests) == 3


async def test_retry_gives_up_and_skips_non_retryable(
    speech_server: tuple[SpeechServer, str], http_tts: Callable[..., HttpTTS]
) -> None:
    server, url = speech_server
    server.flaky_failures = 5
    clock = FakeClock(autojump=True)
    with pytest.raises(ProviderError, match=r"503"):
        await audio_of(RetryTTS(http_tts(url, "flaky"), attempts=2, clock=clock), "hi")
    assert clock.sleeps == [0.2] and len(server.requests) == 2
    with pytest.raises(ProviderError) as caught:
        await audio_of(RetryTTS(http_tts(url, "missing"), attempts=3, clock=clock), "hi")
    assert caught.value.code == "tts_bad_request"
    assert len(server.requests) == 3 and clock.sleeps == [0.2]
    with pytest.raises(ValueError, match=r"attempts must be >= 1"):
        RetryTTS(EspeakTTS(), attempts=0)
