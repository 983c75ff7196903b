"""STT engines: the domain LM builder, real pocketsphinx on espeak speech, the HTTP
engine against a local server speaking the OpenAI transcription endpoint, the
wrappers, and the error paths of the optional Whisper engine."""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from parley.audio.pcm import array_to_pcm, pcm_to_array
from parley.audio.wav import read_wav
from parley.engines.arpa import (
    build_arpa,
    build_domain_lm,
    expand_slots,
    normalize,
    number_to_words,
    ordinal_to_words,
)
from parley.engines.base import (
    EngineError,
    EngineUnavailable,
    ProviderError,
    STTCapabilities,
)
from parley.engines.http_stt import HttpSTT
from parley.engines.pocketsphinx_stt import (
    ESPEAK_CMNINIT,
    NO_REPLIES,
    YES_REPLIES,
    PocketsphinxSTT,
    yes_no_jsgf,
)
from parley.engines.whisper_stt import WhisperSTT
from parley.engines.wrappers_stt import FallbackSTT, RetrySTT, VADChunkedSTT
from parley.testing import FakeClock
from parley.testing.servers import serve_app
from parley.testing.speech import speak_pcm16k

FRAME = 640  # 20 ms of 16 kHz PCM16

PHRASES = [
    "I would like to book a table for {party} {when}",
    "book a table for {party} on {day} at {time}",
    "can I book a table for {party} people",
    "what is on the menu",
    "what's on the menu today",
    "what time do you open",
    "when do you close on {day}",
    "I want to cancel my booking",
    "can I change my reservation to {time}",
    "do you have vegetarian dishes",
    "where are you located",
    "can I speak to a human",
    "my name is {name}",
    "thank you goodbye",
]
SLOTS = {
    "party": ["one", "two", "three", "four", "five", "six"],
    "when": ["tonight", "tomorrow", "on friday", "this evening"],
    "day": "monday tuesday wednesday thursday friday saturday sunday".split(),
    "time": ["six", "seven", "7:30", "eight", "8:15"],
    "name": ["john", "mary", "alex"],
}
TEST_UTTERANCES = [
    "I would like to book a table for two tonight",
    "yes please",
    "no",
    "what is on the menu",
    "book a table for four on friday at seven",
    "I want to cancel my booking",
    "can I book a table for six people",
    "what time do you open",
]


# --- helpers ---------------------------------------------------------------------------


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference length) over words."""
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)


def wer(pairs: Sequence[tuple[str, str]]) -> float:
    errors = total = 0
    for ref, hyp in pairs:
        e, n = word_errors(" ".join(normalize(ref)), hyp)
        errors, total = errors + e, total + n
    return errors / total


def as_heard(text: str, voice: str = "en-us", rate: int = 175, seed: int = 0) -> bytes:
    """Speech as a microphone delivers it: a pause before and after, and a low noise
    floor (real input is never digital silence)."""
    speech = pcm_to_array(speak_pcm16k(text, voice, rate)).astype(np.float64)
    padded = np.concatenate([np.zeros(4800), speech, np.zeros(9600)])
    noise = np.random.default_rng(seed).normal(0.0, 20.0, padded.size)
    return array_to_pcm(padded + noise)


async def say(stream: Any, pcm: bytes) -> list[str]:
    """Push ``pcm`` in 20 ms frames; the partials returned on the way."""
    partials = []
    for i in range(0, len(pcm), FRAME):
        partial = await stream.push(pcm[i : i + FRAME])
        if partial is not None:
            partials.append(partial)
    return partials


@pytest.fixture(scope="module")
def domain_stt() -> PocketsphinxSTT:
    return PocketsphinxSTT(PHRASES, slots=SLOTS)


# --- arpa ----------------------------------------------------------------------------------


def test_number_words() -> None:
    assert number_to_words(0) == "zero"
    assert number_to_words(42) == "forty two"
    assert number_to_words(105) == "one hundred five"
    assert number_to_words(2024) == "two thousand twenty four"
    assert number_to_words(3_000_017) == "three million seventeen"
    assert ordinal_to_words(1) == "first"
    assert ordinal_to_words(22) == "twenty second"
    assert ordinal_to_words(30) == "thirtieth"
    with pytest.raises(ValueError, match="out of range"):
        number_to_words(-1)


def test_normalize_spells_out_numbers_and_strips_punctuation() -> None:
    assert (
        normalize("Book a table for 4, at 7:30!") == "book a table for four at seven thirty".split()
    )
    assert normalize("at 8:05 on the 21st") == "at eight oh five on the twenty first".split()
    assert normalize("call 5551234") == "call five five five one two three four".split()
    assert normalize("It's 2.5% — café & bar") == "it's two point five percent cafe and bar".split()
    assert normalize("'quoted' words") == ["quoted", "words"]
    assert normalize("...") == []


def test_expand_slots() -> None:
    slots = {"n": ["two", "four"], "when": ["tonight", "on friday"]}
    assert [" ".join(t.split()) for t in expand_slots("for {n} {when}", slots)] == [
        "for two tonight",
        "for two on friday",
        "for four tonight",
        "for four on friday",
    ]
    # unknown placeholders disappear; too many combinations are covered, not enumerated
    assert " ".join(expand_slots("book {what} now")[0].split()) == "book now"
    many = {"a": [str(i) for i in range(30)], "b": [str(i) for i in range(30)]}
    covered = expand_slots("{a} {b}", many, max_expansions=100)
    assert len(covered) == 30
    assert {t.split()[0] for t in covered} == set(many["a"])
    assert {t.split()[1] for t in covered} == set(many["b"])


def _parse_arpa(text: str) -> tuple[dict[str, tuple[float, float]], dict[tuple[str, str], float]]:
    unigrams: dict[str, tuple[float, float]] = {}
    bigrams: dict[tuple[str, str], float] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("\\"):
            section = line
            continue
        parts = line.split()
        if section == "\\1-grams:" and parts:
            unigrams[parts[1]] = (float(parts[0]), float(parts[2]) if len(parts) > 2 else 0.0)
        elif section == "\\2-grams:" and parts:
            bigrams[(parts[1], parts[2])] = float(parts[0])
    return unigrams, bigrams


def test_arpa_is_a_normalised_backoff_bigram_model() -> None:
    phrases = ["book a table for two", "book a table for four", "what is on the menu", "no"]
    lm = build_domain_lm(phrases, vocabulary=set(" ".join(phrases).split()))
    unigrams, bigrams = _parse_arpa(lm.arpa)
    assert f"ngram 1={len(unigrams)}" in lm.arpa and f"ngram 2={len(bigrams)}" in lm.arpa
    assert unigrams["<s>"][0] == -99.0
    assert ("<s>", "book") in bigrams and ("menu", "</s>") in bigrams
    predicted = [w for w in unigrams if w != "<s>"]
    for history in [w for w in unigrams if w != "</s>"]:
        bow = unigrams[history][1]
        total = sum(
            10 ** bigrams[(history, w)] if (history, w) in bigrams else 10 ** (bow + unigrams[w][0])
            for w in predicted
        )
        assert math.isclose(total, 1.0, abs_tol=2e-3), (history, total)
    assert lm.words == tuple(sorted(set(" ".join(phrases).split())))
    assert lm.sentences == 4
    assert build_arpa(phrases, vocabulary=set(lm.words)) == lm.arpa  # deterministic


def test_arpa_drops_and_reports_words_missing_from_the_dictionary() -> None:
    lm = build_domain_lm(["book a table at zorblaxia tonight", "no"])  # the real cmudict
    assert lm.oov == ("zorblaxia",)
    assert "zorblaxia" not in lm.arpa
    assert "at\ttonight" not in lm.arpa and ("at tonight" in lm.arpa)
    with pytest.raises(ValueError, match="no phrase"):
        build_domain_lm(["zorblaxia", "!!!"], vocabulary={"book"})
    with pytest.raises(ValueError, match="discount"):
        build_domain_lm(["book"], vocabulary={"book"}, discount=1.5)


# --- pocketsphinx --------------------------------------------------------------------------


async def test_domain_lm_word_error_rate_on_espeak_speech(domain_stt: PocketsphinxSTT) -> None:
    assert domain_stt.lm is not None and domain_stt.lm.oov == ()
    results: dict[str, float] = {}
    for voice, rate in [("en-us", 175), ("en-us", 140), ("en", 175)]:
        stream = domain_stt.open_stream()
        pairs = []
        for i, text in enumerate(TEST_UTTERANCES):
            await say(stream, as_heard(text, voice, rate, seed=i))
            pairs.append((text, await stream.finish()))
        await stream.close()
        results[f"{voice}@{rate}"] = wer(pairs)
        print(f"WER {voice}@{rate}: {wer(pairs):.1%}", pairs)
    assert results["en-us@175"] <= 0.25
    assert sum(results.values()) / len(results) <= 0.25


async def test_yes_no_grammar(domain_stt: PocketsphinxSTT) -> None:
    stream = domain_stt.open_stream()
    stream.set_mode("yes_no")
    heard = []
    for i, text in enumerate(["yes", "no", "yes please", "nope", "sure", "no thanks"]):
        await say(stream, as_heard(text, seed=i))
        heard.append((text, await stream.finish()))
    await stream.close()
    print("yes/no:", heard)
    for said, text in heard:
        assert text in YES_REPLIES or text in NO_REPLIES, text  # the grammar only
        assert (text in YES_REPLIES) == (said in YES_REPLIES), heard  # never the wrong answer
    assert heard[0][1] in YES_REPLIES and heard[1][1] in NO_REPLIES
    assert "no thank you" in yes_no_jsgf() and "public <answer>" in yes_no_jsgf()


async def test_mode_switches_between_utterances(domain_stt: PocketsphinxSTT) -> None:
    stream = domain_stt.open_stream()
    stream.set_mode("yes_no")
    await say(stream, as_heard("what is on the menu"))
    assert (await stream.finish()) in YES_REPLIES + NO_REPLIES
    stream.set_mode("default")
    await say(stream, as_heard("what is on the menu"))
    assert word_errors("what is on the menu", await stream.finish())[0] <= 1
    with pytest.raises(ValueError, match="unknown STT mode"):
        stream.set_mode("digits")  # type: ignore[arg-type]
    await stream.close()


async def test_partials_while_pushing_frames(domain_stt: PocketsphinxSTT) -> None:
    stream = domain_stt.open_stream()
    text = "book a table for four on friday at seven"
    partials = await say(stream, as_heard(text))
    final = await stream.finish()
    await stream.close()
    assert len(partials) >= 3, partials
    # only changes are reported; a hypothesis may come back later (A, B, A): how the
    # decoder's work falls between frames depends on the machine's load
    assert all(a != b for a, b in itertools.pairwise(partials)), partials
    assert len(partials[-1].split()) >= 4
    assert word_errors(" ".join(normalize(text)), final)[0] <= 1


async def test_stream_is_reused_across_utterances(domain_stt: PocketsphinxSTT) -> None:
    stream = domain_stt.open_stream()
    texts = ["what is on the menu", "no", "I want to cancel my booking", "yes please"]
    finals = []
    for i, text in enumerate(texts):
        await say(stream, as_heard(text, seed=i))
        finals.append(await stream.finish())
    assert await stream.finish() == ""  # nothing pushed since
    await stream.close()
    assert finals[1] == "no" and all(finals)
    assert wer(list(zip(texts, finals, strict=True))) <= 0.25
    with pytest.raises(RuntimeError, match="closed"):
        await stream.push(b"\0\0")


async def test_first_utterance_on_a_fresh_stream_is_not_much_worse(
    domain_stt: PocketsphinxSTT,
) -> None:
    cold = []
    for i, text in enumerate(TEST_UTTERANCES):
        domain_stt.remember_cmn(ESPEAK_CMNINIT)  # as on a freshly started server
        stream = domain_stt.open_stream()
        await say(stream, as_heard(text, seed=i))
        cold.append((text, await stream.finish()))
        await stream.close()
    warm_stream = domain_stt.open_stream()
    await say(warm_stream, as_heard("what time do you open", seed=99))
    await warm_stream.finish()
    warm = []
    for i, text in enumerate(TEST_UTTERANCES):
        await say(warm_stream, as_heard(text, seed=i))
        warm.append((text, await warm_stream.finish()))
    await warm_stream.close()
    print(f"cold WER {wer(cold):.1%}, warm WER {wer(warm):.1%}")
    assert wer(cold) <= wer(warm) + 0.10
    assert domain_stt.cmn != ESPEAK_CMNINIT  # finished utterances update the seed


async def test_cancel_drops_the_utterance(domain_stt: PocketsphinxSTT) -> None:
    stream = domain_stt.open_stream()
    half = as_heard("can I speak to a human")
    await say(stream, half[: len(half) // 4 * 2])
    stream.cancel()
    await say(stream, as_heard("no"))
    assert await stream.finish() == "no"
    stream.cancel()  # nothing pending: harmless
    assert await stream.finish() == ""
    with pytest.raises(ValueError, match="even number"):
        await stream.push(b"\0")
    await stream.close()
    await stream.close()  # idempotent


async def test_transcribe_one_shot(domain_stt: PocketsphinxSTT) -> None:
    assert domain_stt.capabilities == STTCapabilities(sample_rate=16000, streaming=True)
    text = await domain_stt.transcribe(as_heard("what is on the menu"))
    assert word_errors("what is on the menu", text)[0] <= 1
    assert await domain_stt.transcribe(b"") == ""


async def test_generic_model_without_phrases() -> None:
    stt = PocketsphinxSTT()
    assert stt.lm is None
    text = await stt.transcribe(as_heard("yes please"))
    assert text.split()[0] == "yes", text
    stt.close()


def test_bad_cmninit_is_rejected() -> None:
    with pytest.raises(ValueError, match="cmninit"):
        PocketsphinxSTT(["yes"], cmninit="forty,three")


# --- HTTP STT against a local OpenAI-compatible server ---------------------------------------


@dataclass
class TranscriptionServer:
    """Speaks ``POST /v1/audio/transcriptions``; ``replies`` queues canned answers
    (an int status, a raw body string, or None for a normal answer)."""

    url: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    replies: list[int | str | None] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        async with request.form() as form:
            upload: Any = form["file"]
            audio = read_wav(await upload.read())
            self.calls.append(
                {
                    "model": form.get("model"),
                    "response_format": form.get("response_format"),
                    "language": form.get("language"),
                    "auth": request.headers.get("authorization"),
                    "filename": upload.filename,
                    "audio": audio,
                }
            )
        reply = self.replies.pop(0) if self.replies else None
        if isinstance(reply, int):
            return JSONResponse({"error": {"message": "nope"}}, status_code=reply)
        if isinstance(reply, str):
            return PlainTextResponse(reply)
        return JSONResponse({"text": f" heard {audio.duration_s:.2f} seconds "})


@pytest.fixture
async def transcription_server() -> AsyncIterator[TranscriptionServer]:
    server = TranscriptionServer()
    app = Starlette(routes=[Route("/v1/audio/transcriptions", server.handle, methods=["POST"])])
    async with serve_app(app) as url:
        server.url = url
        yield server


@pytest.fixture
async def http_stt(transcription_server: TranscriptionServer) -> AsyncIterator[HttpSTT]:
    stt = HttpSTT(f"{transcription_server.url}/v1", "whisper-1", api_key="sk-test", language="en")
    yield stt
    await stt.aclose()


async def test_http_stt_sends_wav_and_reads_text(
    http_stt: HttpSTT, transcription_server: TranscriptionServer
) -> None:
    pcm = speak_pcm16k("yes please")
    text = await http_stt.transcribe(pcm)
    seconds = len(pcm) / 32000
    assert text == f"heard {seconds:.2f} seconds"
    (call,) = transcription_server.calls
    assert call["model"] == "whisper-1" and call["response_format"] == "json"
    assert call["language"] == "en" and call["auth"] == "Bearer sk-test"
    assert call["filename"].endswith(".wav")
    assert call["audio"].sample_rate == 16000 and call["audio"].pcm == pcm
    assert await http_stt.transcribe(b"") == ""
    assert len(transcription_server.calls) == 1  # no request for empty audio


async def test_http_stt_stream_buffers_the_utterance(
    http_stt: HttpSTT, transcription_server: TranscriptionServer
) -> None:
    assert http_stt.capabilities.streaming is False
    stream = http_stt.open_stream()
    pcm = as_heard("no")
    assert await say(stream, pcm) == []
    assert (await stream.finish()).startswith("heard")
    assert transcription_server.calls[0]["audio"].pcm == pcm
    assert await stream.finish() == ""
    await stream.close()


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (500, "stt_server_error", True),
        (429, "stt_rate_limited", True),
        (401, "stt_auth", False),
        (404, "stt_bad_request", False),
    ],
)
async def test_http_stt_errors(
    http_stt: HttpSTT,
    transcription_server: TranscriptionServer,
    status: int,
    code: str,
    retryable: bool,
) -> None:
    transcription_server.replies.append(status)
    with pytest.raises(ProviderError) as caught:
        await http_stt.transcribe(speak_pcm16k("no"))
    assert caught.value.code == code and caught.value.retryable is retryable
    assert str(status) in str(caught.value) and "sk-test" not in str(caught.value)


async def test_http_stt_bad_body_and_unreachable(
    http_stt: HttpSTT, transcription_server: TranscriptionServer, unused_tcp_port: int
) -> None:
    transcription_server.replies.append("not json")
    with pytest.raises(ProviderError) as caught:
        await http_stt.transcribe(speak_pcm16k("no"))
    assert caught.value.code == "stt_bad_response"
    gone = HttpSTT(f"http://127.0.0.1:{unused_tcp_port}/v1", "whisper-1")
    with pytest.raises(ProviderError) as caught:
        await gone.transcribe(speak_pcm16k("no"))
    assert caught.value.code == "stt_unreachable" and caught.value.retryable
    await gone.aclose()
    with pytest.raises(ValueError, match="http"):
        HttpSTT("ftp://example", "m")
    with pytest.raises(ValueError, match="even number"):
        await http_stt.transcribe(b"\0")


# --- wrappers --------------------------------------------------------------------------------


class RecordingBatchSTT:
    """A batch recogniser double: records each utterance, answers its length."""

    capabilities = STTCapabilities(sample_rate=16000, streaming=False)

    def __init__(self) -> None:
        self.utterances: list[bytes] = []

    async def transcribe(self, pcm: bytes) -> str:
        self.utterances.append(pcm)
        return f"{len(pcm)} bytes"


async def test_vad_chunked_wrapper_sends_whole_utterances() -> None:
    inner = RecordingBatchSTT()
    stt = VADChunkedSTT(inner)
    assert stt.capabilities.streaming is False
    stream = stt.open_stream()
    first = bytes(range(256)) * 10
    assert await say(stream, first) == []
    assert inner.utterances == []  # nothing sent while speaking
    assert await stream.finish() == f"{len(first)} bytes"
    await stream.push(b"\1\0" * 100)
    stream.cancel()
    assert await stream.finish() == ""  # cancelled, and no request for nothing
    await stream.push(b"\2\0" * 50)
    assert await stream.finish() == "100 bytes"
    assert inner.utterances == [first, b"\2\0" * 50]
    stream.set_mode("yes_no")
    with pytest.raises(ValueError, match="unknown STT mode"):
        stream.set_mode("spelling")  # type: ignore[arg-type]
    assert await stt.transcribe(b"\0\0") == "2 bytes"
    await stream.close()
    with pytest.raises(RuntimeError, match="closed"):
        await stream.push(b"\0\0")


async def test_fallback_replays_the_utterance_into_the_next_engine(
    http_stt: HttpSTT, transcription_server: TranscriptionServer, domain_stt: PocketsphinxSTT
) -> None:
    stt = FallbackSTT([http_stt, domain_stt])
    transcription_server.replies.extend([503, 503])
    stream = stt.open_stream()
    await say(stream, as_heard("I want to cancel my booking"))
    text = await stream.finish()
    assert stream.engine is domain_stt
    assert word_errors("i want to cancel my booking", text)[0] <= 1
    await say(stream, as_heard("no"))
    assert await stream.finish() == "no"  # stays on the engine that works
    await stream.close()
    assert await stt.transcribe(as_heard("no")) == "no"  # second 503, then pocketsphinx
    assert len(transcription_server.calls) == 2


async def test_fallback_raises_the_last_error_with_notes(
    transcription_server: TranscriptionServer,
) -> None:
    first = HttpSTT(f"{transcription_server.url}/v1", "a")
    second = HttpSTT(f"{transcription_server.url}/v1/audio/transcriptions", "b")
    transcription_server.replies.extend([500, 401, 500, 401])
    stt = FallbackSTT([first, second])
    with pytest.raises(ProviderError) as caught:
        await stt.transcribe(b"\0\0" * 160)
    assert caught.value.code == "stt_auth"
    assert any("stt_server_error" in note for note in caught.value.__notes__)
    stream = stt.open_stream()
    await stream.push(b"\0\0" * 160)
    with pytest.raises(EngineError):
        await stream.finish()
    await stream.close()
    await first.aclose()
    await second.aclose()
    with pytest.raises(ValueError, match="at least one"):
        FallbackSTT([])


async def test_retry_retries_retryable_errors_only(
    http_stt: HttpSTT, transcription_server: TranscriptionServer
) -> None:
    clock = FakeClock(autojump=True)
    waits = clock.sleeps
    stt = RetrySTT(http_stt, attempts=3, backoff_s=0.1, clock=clock)
    transcription_server.replies.extend([503, 429])
    stream = stt.open_stream()
    await stream.push(b"\0\0" * 1600)
    assert (await stream.finish()).startswith("heard")
    assert waits == [0.1, 0.2]
    transcription_server.replies.append(401)
    with pytest.raises(ProviderError, match="401"):
        await stt.transcribe(b"\0\0" * 10)
    assert waits == [0.1, 0.2]  # not retryable: no wait
    with pytest.raises(ValueError, match="attempts"):
        RetrySTT(http_stt, attempts=0)


# --- Whisper (not installed here): the error paths --------------------------------------------


def test_whisper_needs_a_local_model_directory(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match="not found"):
        WhisperSTT(str(tmp_path / "missing"))
    with pytest.raises(EngineUnavailable, match=r"model\.bin"):
        WhisperSTT(str(tmp_path))


def test_whisper_without_the_extra_names_it(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"\0")
    with pytest.raises(EngineUnavailable, match=r"parley\[whisper\]"):
        WhisperSTT(str(tmp_path))
