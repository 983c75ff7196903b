"""CPU cost of smart end of turn (issue 14): the turn-taking machine per session, and the
Smart Turn v3 model per decision, one at a time and batched.

    .venv/bin/python bench/turn_cost.py [--smart-turn PATH] [--json out.json]

CPU time (``time.thread_time``: this thread only), which a machine shared with other
work disturbs far less than wall time. Two parts:

* **machine**: ``TurnTaking`` driven with one session of the voice bench's script
  (``bench/voice.py``: 1 s of silence, 1.8 s of speech, 1.7 s of silence, the
  speech again, silence to 14 s; 20 ms frames) in ``silence`` mode, ``smart`` mode
  without partial transcripts (what the fake STT gives), ``smart`` with a partial every
  100 ms while the caller speaks (the embedded STT), and ``smart`` with audio scores
  (the ``EndOfTurnCheck`` answered at once), without and with partials. Microseconds
  per session-second, and the model decisions (checks) each session asks for; with a
  model file, ``model_us_per_session_second`` = checks × the model's CPU per decision.
* **model**: the Smart Turn model's front end + inference on clips of the bench's
  espeak utterance (8 s window), batches of 1, 2, 4, 8 and 16 as ``SmartTurnBatcher``
  forms them when several sessions pause at once; CPU ms per decision (the model runs
  on one onnxruntime thread, as the server loads it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from parley.engines.smart_turn import SmartTurnModel, find_model
from parley.voice.turn_taking import (
    EndOfTurnCheck,
    TurnDetection,
    TurnTaking,
    TurnTakingConfig,
)

FRAME = 0.02
SESSION_SECS = 14.0
SCRIPT = ((1.0, 0.0), (1.8, 1.0), (1.7, 0.0), (1.8, 1.0))  # (secs, VAD score), then silence
PARTIAL_WORDS = "I would like to book a table for two tonight".split()
BATCHES = (1, 2, 4, 8, 16)


def session_frames() -> list[float]:
    probs: list[float] = []
    for secs, prob in SCRIPT:
        probs += [prob] * round(secs / FRAME)
    return probs + [0.0] * (round(SESSION_SECS / FRAME) - len(probs))


def drive(mode: str, probs: list[float]) -> int:
    """One session through a fresh machine; returns the number of end-of-turn checks."""
    smart = mode != "silence"
    config = TurnTakingConfig(
        start_secs=0.2,
        stop_secs=0.2,
        min_utterance_secs=0.0,
        turn_detection=TurnDetection.SMART if smart else TurnDetection.SILENCE,
    )
    tt = TurnTaking(config, audio_scores=mode.startswith("smart+model"))
    checks = 0
    spoken = 0
    for i, prob in enumerate(probs):
        now = i * FRAME
        events = tt.on_frame(prob, now, FRAME)
        if mode.endswith("partials") and prob > 0 and i % 5 == 4:
            spoken = min(len(PARTIAL_WORDS), spoken + 1)
            events += tt.on_partial(" ".join(PARTIAL_WORDS[:spoken]), now + FRAME)
        if prob == 0:
            spoken = 0
        for event in events:
            if isinstance(event, EndOfTurnCheck):
                checks += 1
                events += tt.on_end_of_turn_score(0.9, now + FRAME)
    return checks


def machine_cost(repeats: int) -> dict[str, Any]:
    probs = session_frames()
    out: dict[str, Any] = {}
    for mode in ("silence", "smart", "smart+partials", "smart+model", "smart+model+partials"):
        drive(mode, probs)  # warm up
        times = []
        for _ in range(repeats):
            t0 = time.thread_time()
            checks = drive(mode, probs)
            times.append(time.thread_time() - t0)
        per_session = statistics.median(times)
        out[mode] = {
            "us_per_session_second": round(per_session / SESSION_SECS * 1e6, 1),
            "us_per_frame": round(per_session / len(probs) * 1e6, 2),
            "checks_per_session": checks,
        }
    return out


def bench_clips() -> list[np.ndarray]:
    """The voice bench's espeak utterance (the harness's file) or a stand-in tone burst."""
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import _common

        raw = (_common.HARNESS / "audio" / "utterance_16k.raw").read_bytes()
        audio = np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768.0
    except (OSError, SystemExit):
        t = np.arange(round(1.8 * 16000)) / 16000
        audio = (0.1 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(
            np.float32
        )
    lead = np.zeros(16000, np.float32)
    clip = np.concatenate([lead, audio, np.zeros(3200, np.float32)])
    rng = np.random.default_rng(0)
    return [clip + rng.normal(0, 1e-3, clip.size).astype(np.float32) for _ in range(16)]


def model_cost(path: Path, repeats: int) -> dict[str, Any]:
    model = SmartTurnModel(path, threads=1)
    clips = bench_clips()
    model.score_many(clips[:1])  # warm up
    out: dict[str, Any] = {"model": path.name}
    for batch in BATCHES:
        cpu, wall = [], []
        for _ in range(repeats):
            t0, w0 = time.thread_time(), time.perf_counter()
            model.score_many(clips[:batch])
            cpu.append((time.thread_time() - t0) * 1000 / batch)
            wall.append((time.perf_counter() - w0) * 1000 / batch)
        out[f"batch{batch}"] = {
            "cpu_ms_per_decision": round(statistics.median(cpu), 1),
            "wall_ms_per_decision": round(statistics.median(wall), 1),
        }
    t0 = time.thread_time()
    for clip in clips:
        model.front_end(clip)
    out["front_end_cpu_ms"] = round((time.thread_time() - t0) * 1000 / len(clips), 1)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smart-turn", default="auto", help="auto | off | path to .onnx")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"machine": machine_cost(args.repeats)}
    path = None
    if args.smart_turn != "off":
        path = find_model(None if args.smart_turn == "auto" else args.smart_turn)
    if path is not None:
        report["model"] = model_cost(path, max(3, args.repeats // 4))
        per_decision = report["model"]["batch1"]["cpu_ms_per_decision"]
        for row in report["machine"].values():
            model_us = row["checks_per_session"] * per_decision * 1000 / SESSION_SECS
            row["model_us_per_session_second"] = round(model_us, 1)
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
