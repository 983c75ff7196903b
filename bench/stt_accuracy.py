"""Embedded speech stack benchmark: STT word error rate and voice-to-voice latency.

1. **Word error rate** of the embedded STT (pocketsphinx with the demo agent's domain
   language model, built by ``EngineHub`` from ``voice.phrases`` plus the rules'
   examples) on sentences from ``bench/stt_phrases.txt`` spoken by espeak-ng (in
   process) at several voices and speeds. One decoder per voice is reused across its
   utterances, as a connection would; each utterance is pushed in 20 ms frames with
   the 300 ms pre-roll and 500 ms of trailing silence the voice loop gives the STT,
   then ``finish()``. Two conditions: ``clean`` is espeak's output as is (digital
   silence between words and around the utterance); ``floor`` adds Gaussian noise at
   -60 dBFS (rms 30), the noise floor of a real microphone. pocketsphinx is far more
   accurate with the latter (see bench/RESULTS.md).
2. **Voice-to-voice latency** of the embedded stack (Silero VAD + pocketsphinx +
   rules brain + espeak-ng): the real app runs in this process on a real socket; a
   client streams utterances over ``/v1/voice`` at real-time pace (a 20 ms frame
   every 20 ms, silence between utterances) and measures the time from the last
   voiced frame sent to the first reply audio frame received. The hands-free
   end-of-turn wait (``stop_secs``, 0.5 s for the demo agent) is part of it.

Usage: ``.venv/bin/python bench/stt_accuracy.py [--json out.json] [--turns 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import tempfile
import time
import zlib
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import websockets

from parley import __version__
from parley.app import create_app
from parley.config import Settings, load_agents
from parley.engines.arpa import normalize
from parley.engines.base import STT
from parley.engines.factory import EngineHub
from parley.testing.servers import serve_app
from parley.testing.speech import pad_silence, speak_pcm16k

HERE = Path(__file__).parent
PHRASES = HERE / "stt_phrases.txt"
VOICES = (("en-us", 175), ("en-us", 140), ("en-us", 200), ("en", 175), ("en-us+f3", 175))
FRAME = 640  # 20 ms of 16 kHz PCM16
FRAME_S = 0.02
PREROLL_S, TRAILING_S = 0.3, 0.5  # what the voice loop pushes around an utterance
CONDITIONS = {"clean": 0.0, "floor": 30.0}  # noise rms added to the speech
VOICED_RMS = 200.0  # a frame louder than this counts as speech (espeak output)
LATENCY_SENTENCES = (  # a conversation: questions, then a booking
    "hello",
    "what are your opening hours",
    "where are you",
    "is there parking",
    "what time do you close",
    "can i make a reservation",
    "four people",
    "on friday",
    "at seven thirty",
    "are you open on sunday",
    "thank you",
    "what's your address",
)
HEARD_TIMEOUT_S = 5.0  # end of speech -> transcript_final
TURN_TIMEOUT_S = 30.0  # transcript_final -> done (the reply is played in real time)


# --- accuracy ----------------------------------------------------------------------------


def load_phrases(path: Path) -> dict[str, list[str]]:
    """Sections (``[name]``) of sentences; ``#`` starts a comment line."""
    sets: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sets.setdefault(line[1:-1], [])
        elif current is None:
            raise ValueError(f"{path}: sentence before the first [section]: {line!r}")
        else:
            current.append(line)
    return sets


def word_errors(ref: list[str], hyp: list[str]) -> int:
    """Substitutions + deletions + insertions (word-level Levenshtein distance)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


@dataclass
class Utterance:
    condition: str
    voice: str
    rate: int
    kind: str
    ref: str
    hyp: str
    errors: int
    words: int
    seconds: float = 0.0  # of audio


def with_floor(pcm: bytes, rms: float, seed: int) -> bytes:
    """``pcm`` plus Gaussian noise of the given rms (deterministic for a seed)."""
    if rms <= 0:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    samples += np.random.default_rng(seed).normal(0.0, rms, samples.size)
    return bytes(np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes())


async def recognise(
    stt: STT, condition: str, voice: str, rate: int, items: list[tuple[str, str]]
) -> list[Utterance]:
    """One decoder (stream) for this voice, reused across its utterances."""
    stream = stt.open_stream()
    out: list[Utterance] = []
    try:
        for kind, sentence in items:
            pcm = pad_silence(speak_pcm16k(sentence, voice, rate), PREROLL_S, TRAILING_S)
            pcm = with_floor(
                pcm, CONDITIONS[condition], zlib.crc32(f"{voice}{rate}{sentence}".encode())
            )
            for i in range(0, len(pcm), FRAME):
                await stream.push(pcm[i : i + FRAME])
            hyp = await stream.finish()
            ref_words, hyp_words = normalize(sentence), normalize(hyp)
            errors = word_errors(ref_words, hyp_words)
            out.append(
                Utterance(condition, voice, rate, kind, sentence, hyp, errors, len(ref_words))
            )
    finally:
        await stream.close()
    return out


def wer(utterances: list[Utterance]) -> float:
    words = sum(u.words for u in utterances)
    return sum(u.errors for u in utterances) / words if words else 0.0


async def measure_accuracy(phrases: dict[str, list[str]]) -> list[Utterance]:
    hub = EngineHub(load_agents())
    engines = await hub.engines_for("demo")
    items = [(kind, s) for kind, sentences in phrases.items() for s in sentences]
    results: list[Utterance] = []
    for condition in CONDITIONS:
        for voice, rate in VOICES:
            results += await recognise(engines.stt, condition, voice, rate, items)
    return results


# --- latency -----------------------------------------------------------------------------


def last_voiced_frame(pcm: bytes) -> int:
    """Index of the last 20 ms frame of ``pcm`` louder than ``VOICED_RMS``."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % FRAME], dtype="<i2").astype(np.float64)
    frames = samples.reshape(-1, FRAME // 2)
    loud = np.flatnonzero(np.sqrt((frames**2).mean(axis=1)) > VOICED_RMS)
    if loud.size == 0:
        raise ValueError("the utterance has no voiced frame")
    return int(loud[-1])


class Microphone:
    """Sends a 20 ms frame every 20 ms (silence when nothing is queued), on an absolute
    schedule so that delays do not accumulate."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: deque[tuple[bytes, asyncio.Future[float] | None]] = deque()

    def say(self, pcm: bytes) -> asyncio.Future[float]:
        """Queue an utterance; the future gets the send time of its last voiced frame."""
        marker: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        last = last_voiced_frame(pcm)
        for k, i in enumerate(range(0, len(pcm) - len(pcm) % FRAME, FRAME)):
            self.frames.append((pcm[i : i + FRAME], marker if k == last else None))
        return marker

    async def run(self) -> None:
        silence = bytes(FRAME)
        start = time.monotonic()
        n = 0
        while True:
            frame, marker = self.frames.popleft() if self.frames else (silence, None)
            await self.ws.send(frame)
            if marker is not None:
                marker.set_result(time.monotonic())
            n += 1
            await asyncio.sleep(max(0.0, start + n * FRAME_S - time.monotonic()))


class Listener:
    """Reads the server's frames: JSON messages to a queue, and the arrival time of the
    first audio frame since the last ``arm()``."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.first_audio: float | None = None

    def arm(self) -> None:
        self.first_audio = None

    async def run(self) -> None:
        async for message in self.ws:
            if isinstance(message, bytes):
                if self.first_audio is None:
                    self.first_audio = time.monotonic()
            else:
                await self.messages.put(json.loads(message))

    async def until(self, kind: str) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        while True:
            msg = await asyncio.wait_for(self.messages.get(), TURN_TIMEOUT_S)
            seen.append(msg)
            if msg["type"] == kind:
                return seen


@dataclass
class TurnLatency:
    said: str
    heard: str
    v2v_ms: float | None
    server_ms: dict[str, float] = field(default_factory=dict)


async def one_turn(mic: Microphone, ear: Listener, sentence: str) -> TurnLatency:
    """Say ``sentence``; wait for the reply to finish playing (``done``)."""
    ear.arm()
    ended = mic.say(pad_silence(speak_pcm16k(sentence), 0.3, 0.0))
    heard: str | None = None
    end_of_speech = await ended
    while True:
        timeout = TURN_TIMEOUT_S if heard else HEARD_TIMEOUT_S
        try:
            msg = await asyncio.wait_for(ear.messages.get(), timeout)
        except TimeoutError:  # the utterance was not taken (too short?) or no reply came
            return TurnLatency(sentence, heard or "", None)
        if msg["type"] == "transcript_final":
            heard = msg["text"]
            if not heard.strip():
                return TurnLatency(sentence, heard, None)
        elif msg["type"] == "done":
            break
    first = ear.first_audio
    v2v = None if first is None else round((first - end_of_speech) * 1000, 1)
    return TurnLatency(sentence, heard or "", v2v, dict(msg.get("latency_ms") or {}))


async def measure_latency(turns: int) -> list[TurnLatency]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(  # the embedded stack, whatever PARLEY_* says
            data_dir=Path(tmp), database_url=f"sqlite:///{tmp}/p.db",
            redis_url=None, llm_base_url=None, agents_dir=None,
        )  # fmt: skip
        app = create_app(settings)
        async with serve_app(app) as base_url:
            await app.state.services.engine_hub.engines_for("demo")  # warm up
            async with websockets.connect(base_url.replace("http", "ws", 1) + "/v1/voice") as ws:
                await ws.send(json.dumps({"type": "start", "agent": "demo", "sample_rate": 16000}))
                ear, mic = Listener(ws), Microphone(ws)
                tasks = [asyncio.create_task(ear.run()), asyncio.create_task(mic.run())]
                try:
                    await ear.until("done")  # the spoken greeting
                    sentences = [
                        LATENCY_SENTENCES[i % len(LATENCY_SENTENCES)] for i in range(turns)
                    ]
                    return [await one_turn(mic, ear, s) for s in sentences]
                finally:
                    for task in tasks:
                        task.cancel()
                    with contextlib.suppress(websockets.ConnectionClosed):
                        await ws.send(json.dumps({"type": "end"}))


# --- report ------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "load_avg_1m": os.getloadavg()[0],
        "python": platform.python_version(),
        "parley": __version__,
        "pocketsphinx": importlib.metadata.version("pocketsphinx"),
        "espeakng-loader": importlib.metadata.version("espeakng-loader"),
    }


def accuracy_table(results: list[Utterance]) -> list[dict[str, Any]]:
    """One row per voice: WER per condition, and per sentence kind under each."""
    rows = []
    for voice, rate in VOICES:
        mine = [u for u in results if (u.voice, u.rate) == (voice, rate)]
        row: dict[str, Any] = {"voice": voice, "rate": rate}
        for condition in CONDITIONS:
            these = [u for u in mine if u.condition == condition]
            row[f"wer_{condition}"] = wer(these)
            for kind in sorted({u.kind for u in these}):
                row[f"wer_{condition}_{kind}"] = wer([u for u in these if u.kind == kind])
        row["utterances"] = len(mine) // len(CONDITIONS)
        rows.append(row)
    return rows


def overall(results: list[Utterance]) -> dict[str, float]:
    out: dict[str, float] = {}
    for condition in CONDITIONS:
        these = [u for u in results if u.condition == condition]
        out[condition] = wer(these)
        for kind in sorted({u.kind for u in these}):
            out[f"{condition}_{kind}"] = wer([u for u in these if u.kind == kind])
    return out


def print_accuracy(results: list[Utterance]) -> None:
    kinds = sorted({u.kind for u in results})
    cols = [f"{c}_{k}" for c in CONDITIONS for k in ("", *kinds)]
    names = [c.rstrip("_") for c in cols]
    print(f"{'voice':<10} {'rate':>4} " + " ".join(f"{n:>15}" for n in names) + "  utts")
    for row in accuracy_table(results):
        cells = " ".join(f"{row['wer_' + c.rstrip('_')]:>15.1%}" for c in cols)
        print(f"{row['voice']:<10} {row['rate']:>4} {cells}  {row['utterances']}")
    total = overall(results)
    cells = " ".join(f"{total[c.rstrip('_')]:>15.1%}" for c in cols)
    print(f"{'overall':<15} {cells}  {len(results) // len(CONDITIONS)}\n")
    for condition in CONDITIONS:
        misses = [u for u in results if u.errors and u.condition == condition]
        these = sum(1 for u in results if u.condition == condition)
        print(f"{condition}: {len(misses)} of {these} utterances had errors, e.g.:")
        for u in misses[:8]:
            print(f"  [{u.voice} {u.rate}] {u.ref!r} -> {u.hyp!r}")


def print_latency(turns: list[TurnLatency]) -> None:
    done = [t.v2v_ms for t in turns if t.v2v_ms is not None]
    print(f"\nvoice-to-voice (last voiced frame sent -> first reply audio), {len(turns)} turns:")
    for t in turns:
        print(f"  {t.v2v_ms!s:>7} ms  server {t.server_ms}  said {t.said!r} heard {t.heard!r}")
    if done:
        print(
            f"p50 {percentile(done, 0.5):.0f} ms, p95 {percentile(done, 0.95):.0f} ms "
            f"(min {min(done):.0f}, max {max(done):.0f}; "
            f"{len(turns) - len(done)} turns without a reply)"
        )
    for key in ("stt_final", "first_token", "first_audio"):
        values = [t.server_ms[key] for t in turns if key in t.server_ms]
        if values:
            print(f"  server, VAD end -> {key}: median {statistics.median(values):.0f} ms")


def print_report(info: dict[str, Any], results: list[Utterance], turns: list[TurnLatency]) -> None:
    print(f"{info['date']}  {info['nproc']} cores  {info['cpu']}  load {info['load_avg_1m']:.1f}")
    print(
        f"parley {info['parley']}, pocketsphinx {info['pocketsphinx']}, "
        f"espeakng-loader {info['espeakng-loader']}, Python {info['python']}\n"
    )
    if results:
        print_accuracy(results)
    if turns:
        print_latency(turns)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    info = machine()
    started = time.monotonic()
    results = [] if args.skip_accuracy else await measure_accuracy(load_phrases(args.phrases))
    accuracy_s = time.monotonic() - started
    turns = await measure_latency(args.turns) if args.turns else []
    info["runtime_s"] = {
        "accuracy": round(accuracy_s, 1),
        "total": round(time.monotonic() - started, 1),
    }
    print_report(info, results, turns)
    done = [t.v2v_ms for t in turns if t.v2v_ms is not None]
    return {
        "machine": info,
        "conditions": CONDITIONS,
        "voices": accuracy_table(results),
        "overall_wer": overall(results),
        "utterances": [asdict(u) for u in results],
        "latency": {
            "turns": [asdict(t) for t in turns],
            "p50_ms": percentile(done, 0.5) if done else None,
            "p95_ms": percentile(done, 0.95) if done else None,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--phrases", type=Path, default=PHRASES, help="test sentences file")
    parser.add_argument("--turns", type=int, default=10, help="latency turns (0 to skip)")
    parser.add_argument("--skip-accuracy", action="store_true", help="measure latency only")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
