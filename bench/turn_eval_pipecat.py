"""Pipecat's own Smart Turn setup on the turn-taking corpus (issue 14), beside ``turn_eval.py``.

Runs in a separate venv that has ``pipecat-ai`` (its core install: the Smart Turn v3
analyzer needs only onnxruntime, soxr and numpy, and the model ships in the wheel; the
``local-smart-turn`` extra, which pulls torch, is for the older v2 analyzer and is not
needed). Pipecat is imported at run time only; nothing of it is in this repository::

    python3 -m venv /tmp/pcvenv && /tmp/pcvenv/bin/pip install pipecat-ai
    .venv/bin/python bench/turn_corpus.py --subset full --out /tmp/turn-corpus
    /tmp/pcvenv/bin/python bench/turn_eval_pipecat.py /tmp/turn-corpus --json out.json

The set-up is Pipecat's default user-turn stop strategy,
``TurnAnalyzerUserTurnStopStrategy(LocalSmartTurnAnalyzerV3())`` with its default
``SmartTurnParams`` (3 s silence timeout, 0.5 s pre-speech, 8 s window) behind
``SileroVADAnalyzer`` with its default ``VADParams`` (confidence 0.7, start 0.2 s, stop
0.2 s, min volume 0.6). Pipecat's own classes do the work; this script only plays the
part of the pipeline around them, frame by frame on a virtual clock, the way the
strategy calls them:

* each 20 ms frame first goes to ``analyzer.append_audio(frame, vad_speaking)`` (a
  ``COMPLETE`` there is the 3 s silence timeout), then to the VAD; a VAD transition to
  SPEAKING calls ``update_vad_start_secs``, one to QUIET (the VAD's 0.2 s stop) calls
  ``analyze_end_of_turn()`` — the model — whose ``COMPLETE`` ends the turn after the
  *measured* inference time on this machine;
* ``time.monotonic`` inside Pipecat's analyzer (its buffer timestamps) reads the
  virtual clock, so its pre-speech window and silence timeout see the audio's time.

Each clip is followed by ``PAD_SECS`` more of the corpus's noise floor, so that
Pipecat's 3 s silence timeout can fire inside it (the corpus leaves 2.5 s after the
speech, enough for Parley's 2 s maximum). Reported with the same definitions as
``turn_eval.py``: on complete utterances the decision latency (last speech sample →
the turn analyzer's end of turn, including the model's inference time measured on this
machine, p50 / p90; also without it) and how many ended early; on utterances with a
0.6–1.2 s pause at an incomplete point, the share of pauses during which no end of
turn was decided ("pauses held": a "complete" verdict in the pause counts however long
the model took to give it).

Not included: the strategy's wait for a transcript (``wait_for_transcript=True`` also
waits for a finalized transcript or the STT's p99 latency, which depends on the STT
service), so Pipecat's end-of-turn latency in a pipeline is this figure or more; and
barge-ins (Pipecat's interruption strategies need an STT; the corpus's false-interruption
figures have no Pipecat counterpart here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

RATE = 16000
NOISE_FLOOR_RMS = 30.0  # the corpus's noise floor (bench/turn_corpus.py)
PAD_SECS = 4.0  # more noise floor after each clip: the corpus leaves 2.5 s after the speech,
# Pipecat's "incomplete" waits 3 s after the VAD's 0.2 s stop
FRAME = 0.02
FRAME_BYTES = 640
CLOCK_ORIGIN = 1000.0  # Pipecat's analyzer treats a start time of 0 as "none"


class VirtualTime:
    """Stands in for the ``time`` module inside Pipecat's Smart Turn analyzer."""

    def __init__(self) -> None:
        self.now = CLOCK_ORIGIN

    def monotonic(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        return time.perf_counter()

    def time(self) -> float:
        return time.time()


def read_corpus(root: Path) -> list[dict[str, Any]]:
    manifest = json.loads((root / "manifest.json").read_text())
    for entry in manifest:
        with wave.open(str(root / entry["file"]), "rb") as w:
            if w.getframerate() != RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
                raise SystemExit(f"{entry['file']}: expected 16 kHz mono PCM16")
            entry["pcm"] = w.readframes(w.getnframes())
    return manifest


def padded(pcm: bytes, seed: int) -> bytes:
    """``pcm`` followed by ``PAD_SECS`` of the corpus's noise floor (seeded)."""
    noise = np.random.default_rng(seed).normal(0.0, NOISE_FLOOR_RMS, round(PAD_SECS * RATE))
    return pcm + np.round(noise).astype(np.int16).tobytes()


Decision = tuple[float, float]  # (audio time of the verdict, + the model's measured time)


async def run_sample(pcm: bytes, clock: VirtualTime) -> tuple[list[Decision], list[float]]:
    """End-of-turn decisions (seconds into the clip) and model times (ms)."""
    from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
    from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.audio.vad.vad_analyzer import VADState

    analyzer = LocalSmartTurnAnalyzerV3()
    analyzer.set_sample_rate(RATE)
    vad = SileroVADAnalyzer()
    vad.set_sample_rate(RATE)
    ends: list[Decision] = []
    model_ms: list[float] = []
    vad_state = VADState.QUIET
    speaking = False
    try:
        for i in range(len(pcm) // FRAME_BYTES):
            frame = pcm[i * FRAME_BYTES : (i + 1) * FRAME_BYTES]
            end = (i + 1) * FRAME
            clock.now = CLOCK_ORIGIN + end
            if analyzer.append_audio(frame, speaking) == EndOfTurnState.COMPLETE:
                await analyzer.analyze_end_of_turn()  # as the strategy does (buffer cleared)
                ends.append((end, end))
                analyzer.clear()
            new_state = await vad.analyze_audio(frame)
            if new_state != vad_state and new_state not in (VADState.STARTING, VADState.STOPPING):
                vad_state = new_state
                if new_state == VADState.SPEAKING:
                    analyzer.update_vad_start_secs(vad.params.start_secs)
                    speaking = True
                elif new_state == VADState.QUIET:
                    speaking = False
                    t0 = time.perf_counter()
                    state, _ = await analyzer.analyze_end_of_turn()
                    secs = time.perf_counter() - t0
                    model_ms.append(secs * 1000)
                    if state == EndOfTurnState.COMPLETE:
                        ends.append((end, end + secs))
                        analyzer.clear()
    finally:
        await analyzer.cleanup()
        await vad.cleanup()
    return ends, model_ms


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000)


async def evaluate(corpus: list[dict[str, Any]]) -> dict[str, Any]:
    import pipecat.audio.turn.smart_turn.base_smart_turn as base_smart_turn

    clock = VirtualTime()
    base_smart_turn.time = clock  # type: ignore[assignment]  # the analyzer's buffer clock
    latency: list[float] = []
    latency_no_model: list[float] = []
    by_timeout: list[str] = []  # complete, but the model said incomplete: the 3 s timeout
    split: list[bool] = []
    held: list[bool] = []
    undecided: list[str] = []
    misses: list[str] = []
    model_ms: list[float] = []
    for index, s in enumerate(corpus):
        if s["kind"] not in ("complete", "pause"):
            continue
        ends, ms = await run_sample(padded(s["pcm"], index), clock)
        model_ms += ms
        name = f"{s['name']} ({s['voice']} {s['rate']})"
        if s["kind"] == "pause":
            # the verdict counts, however long the model took: once it has said
            # "complete", Pipecat ends the turn even if the caller has resumed meanwhile
            ok = not any(t <= s["pause"][1] + 1e-9 for t, _ in ends)
            held.append(ok)
            if not ok:
                misses.append(name)
            continue
        split.append(any(t < s["speech_end"] for t, _ in ends))
        after = [(t, done) for t, done in ends if t >= s["speech_end"]]
        if after:
            latency.append(after[0][1] - s["speech_end"])
            latency_no_model.append(after[0][0] - s["speech_end"])
            if after[0][0] - s["speech_end"] > 3.0:
                by_timeout.append(name)
        else:
            undecided.append(name)

    def pct(values: list[bool]) -> float | None:
        return round(100 * sum(values) / len(values), 1) if values else None

    return {
        "setup": "pipecat LocalSmartTurnAnalyzerV3 defaults + SileroVADAnalyzer defaults",
        "complete": len(split),
        "decision_p50_ms": quantile(latency, 0.5),
        "decision_p90_ms": quantile(latency, 0.9),
        "decision_mean_ms": round(1000 * statistics.mean(latency)) if latency else None,
        "decision_without_model_time_p50_ms": quantile(latency_no_model, 0.5),
        "split_early_pct": pct(split),
        "complete_ended_by_timeout": by_timeout,
        "undecided_complete": undecided,
        "pauses": len(held),
        "pauses_held_pct": pct(held),
        "model_ms_p50": round(statistics.median(model_ms), 1) if model_ms else None,
        "model_calls": len(model_ms),
        "misses": misses,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", type=Path, help="a directory written by bench/turn_corpus.py")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    try:
        from importlib.metadata import version

        pipecat_version = version("pipecat-ai")
    except Exception:
        raise SystemExit("pipecat-ai is not installed in this Python (see the docstring)") from None
    from loguru import logger

    logger.remove()  # Pipecat logs every decision at DEBUG
    logger.add(sys.stderr, level="WARNING")
    corpus = read_corpus(args.corpus)
    t0 = time.perf_counter()
    report = asyncio.run(evaluate(corpus))
    report["pipecat_ai"] = pipecat_version
    report["samples"] = sum(1 for s in corpus if s["kind"] in ("complete", "pause"))
    report["wall_secs"] = round(time.perf_counter() - t0, 1)
    print(json.dumps({k: v for k, v in report.items() if k != "misses"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
