"""End of speech → first reply audio on the turn corpus, ``smart`` beside ``silence``.

The embedded stack of the demo agent (Silero VAD, pocketsphinx with a domain language
model, the rules brain, espeak-ng) runs in this process behind the real app on a real
socket, once per ``voice.turn_detection`` mode; the agent's ``voice.phrases`` get the
corpus sentences added (as an agent author lists what callers say). A client streams
the corpus's ``complete`` utterances (``bench/turn_corpus.py``: espeak-ng voices and
speeds, -60 dBFS floor) over ``/v1/voice`` at real-time pace — a 20 ms frame every
20 ms, digital silence between utterances — and measures, per turn, the time from the
last voiced frame sent to the first reply audio frame received (the same measure as
``bench/stt_accuracy.py``'s voice-to-voice). Once the first audio has arrived the client
sends ``interrupt`` (the reply need not play out) and waits 0.5 s before the next.

Turn detection with ``smart`` uses the transcript (and the Smart Turn model if
``PARLEY_SMART_TURN_MODEL`` names one, or pipecat-ai is installed); ``silence`` waits the
agent's ``stop_secs`` (0.5 s). A mode may end in ``:drafts`` or ``:nodrafts`` to set
``voice.preemptive_generation`` (else ``auto``: on with smart); the drafts each mode
started, used and dropped are counted from the server's debug log.

Usage: ``python bench/turn_latency.py [--subset ci|full] [--voices N] [--turns N]
[--modes smart,silence] [--json out.json]``. Real time: about 4 s per turn.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import websockets
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from stt_accuracy import FRAME, Listener, Microphone, machine, percentile
from turn_corpus import PHRASES, Sample, build

from parley.app import create_app
from parley.config import BUILTIN_AGENTS_DIR, Settings
from parley.testing.servers import serve_app

REPLY_TIMEOUT_S = 6.0
GAP_S = 0.5


@dataclass
class Turn:
    mode: str
    sample: str
    said: str
    heard: str
    v2v_ms: float | None


class DraftCounter(logging.Handler):
    """Counts the preemption actions the voice sessions log (parley.voice.drafts)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts = {"StartDraft": 0, "UseDraft": 0, "DropDraft": 0}

    def emit(self, record: logging.LogRecord) -> None:
        for action in record.args[1] if isinstance(record.args, tuple) else ():
            name = type(action).__name__
            if name in self.counts:
                self.counts[name] += 1


def agent_dir(root: Path, mode: str) -> Path:
    """The demo agent with ``turn_detection: mode`` (and ``:drafts`` / ``:nodrafts``)
    and the corpus phrases."""
    spec = yaml.safe_load((BUILTIN_AGENTS_DIR / "demo.yaml").read_text(encoding="utf-8"))
    voice = spec.setdefault("voice", {})
    detection, _, drafts = mode.partition(":")
    voice["turn_detection"] = detection
    if drafts:
        voice["preemptive_generation"] = drafts == "drafts"
    voice["phrases"] = [*voice.get("phrases", []), *(p.lower() for p in PHRASES)]
    out = root / mode.replace(":", "-")
    out.mkdir()
    (out / "demo.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    return out


async def one_turn(mic: Microphone, ear: Listener, ws: Any, sample: Sample, mode: str) -> Turn:
    ear.arm()
    end = int(sample.speech_end * 16000) * 2
    pcm = sample.pcm[: end + FRAME * 5]  # the speech; the microphone sends silence after it
    ended = mic.say(pcm[: len(pcm) - len(pcm) % FRAME])
    end_of_speech = await ended
    heard = ""
    deadline = time.monotonic() + REPLY_TIMEOUT_S
    while ear.first_audio is None and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            msg = await asyncio.wait_for(ear.messages.get(), 0.05)
            if msg["type"] == "transcript_final":
                heard = msg["text"]
    first = ear.first_audio
    await ws.send(json.dumps({"type": "interrupt"}))
    await asyncio.sleep(GAP_S)
    while not ear.messages.empty():  # the rest of this turn's events
        msg = ear.messages.get_nowait()
        if msg["type"] == "transcript_final" and not heard:
            heard = msg["text"]
    v2v = None if first is None else round((first - end_of_speech) * 1000, 1)
    return Turn(mode, sample.name, sample.text, heard, v2v)


async def measure(mode: str, samples: list[Sample], root: Path) -> list[Turn]:
    name = mode.replace(":", "-")
    settings = Settings(  # the embedded stack, whatever PARLEY_* says
        data_dir=root / f"data-{name}", database_url=f"sqlite:///{root}/{name}.db",
        redis_url=None, llm_base_url=None, agents_dir=agent_dir(root, mode),
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
                return [await one_turn(mic, ear, ws, s, mode) for s in samples]
            finally:
                for task in tasks:
                    task.cancel()
                with contextlib.suppress(websockets.ConnectionClosed):
                    await ws.send(json.dumps({"type": "end"}))


def summary(turns: list[Turn]) -> dict[str, Any]:
    done = [t.v2v_ms for t in turns if t.v2v_ms is not None]
    return {
        "turns": len(turns),
        "replied": len(done),
        "p50_ms": round(percentile(done, 0.5), 1) if done else None,
        "p90_ms": round(percentile(done, 0.9), 1) if done else None,
        "p95_ms": round(percentile(done, 0.95), 1) if done else None,
        "min_ms": min(done) if done else None,
        "max_ms": max(done) if done else None,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    info = machine()
    corpus = [s for s in build(args.subset) if s.kind == "complete"]
    voices = list(dict.fromkeys((s.voice, s.rate) for s in corpus))[: args.voices]
    samples = [s for s in corpus if (s.voice, s.rate) in voices][: args.turns]
    results: dict[str, Any] = {"machine": info, "modes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        drafts_log = logging.getLogger("parley.voice.drafts")
        drafts_log.setLevel(logging.DEBUG)
        for mode in args.modes.split(","):
            counter = DraftCounter()
            drafts_log.addHandler(counter)
            try:
                turns = await measure(mode, samples, Path(tmp))
            finally:
                drafts_log.removeHandler(counter)
            results["modes"][mode] = {
                "summary": summary(turns),
                "drafts": counter.counts,
                "turns": [asdict(t) for t in turns],
            }
            print(f"\n{mode}: {summary(turns)}  drafts {counter.counts}")
            for t in turns:
                print(f"  {t.v2v_ms!s:>7} ms  {t.said!r} -> {t.heard!r}")
    print(f"\n{info['date']}  {info['nproc']} cores  load {info['load_avg_1m']:.1f}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", default="ci", choices=("ci", "full"))
    parser.add_argument("--voices", type=int, default=2, help="how many corpus voices")
    parser.add_argument("--turns", type=int, default=10, help="turns per mode, at most")
    parser.add_argument("--modes", default="smart,silence")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
