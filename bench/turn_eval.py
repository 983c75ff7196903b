"""Offline turn-taking evaluation: the corpus through VAD, pocketsphinx partials, the
turn-taking machine and the false-interruption machine, frame by frame on a virtual clock.

For each sample of ``bench/turn_corpus.py`` and each VAD (``energy``, ``silero``):

* the audio is cut into 20 ms frames; frame ``i`` covers ``[i * 0.02, (i + 1) * 0.02)``
  and its VAD score goes to ``TurnTaking.on_frame`` at ``now = i * 0.02``;
* pocketsphinx (the embedded STT, with a domain language model of the corpus phrases, as
  an agent's ``voice.phrases`` give it) decodes the same frames; every 100 ms its
  partial hypothesis goes to ``on_partial`` at the end of the frame (decode time is not
  charged: pocketsphinx keeps up with real time);
* with ``--smart-turn``, each ``EndOfTurnCheck`` is answered by the Smart Turn v3 model
  on the utterance's audio so far; the answer is delivered after the *measured*
  inference time on this machine (rounded up to whole frames).

Reported, for ``silence`` mode (fixed ``stop_secs`` = 0.5 s) and ``smart`` mode beside it:

* **decision latency** on complete utterances: from the last speech sample (ground
  truth) to the frame at which ``UtteranceEnded`` is emitted (p50 / p90), and how many
  were split early (an end emitted before the speech was over);
* **pauses held**: % of mid-sentence pauses (0.6–1.2 s) during which no end of turn was
  emitted;
* **barge-ins**: real interruptions cut (%), when playback stops after the onset (the
  pause, or the cut where there is no pause), when the cut is decided; noise bursts and
  backchannels resumed (%) — in ``silence`` mode the old ``BargeInPolicy`` decides and
  every barge-in cuts for good, so "resumed" there means "never interrupted".

Usage: ``python bench/turn_eval.py [--subset ci|full] [--vad energy,silero]
[--smart-turn auto|off|PATH] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from turn_corpus import PHRASES, RATE, Sample, build

from parley.engines.energy_vad import EnergyVAD
from parley.engines.pocketsphinx_stt import PocketsphinxSTT
from parley.engines.silero_vad import SileroVAD
from parley.engines.smart_turn import SmartTurnModel, find_model
from parley.voice.barge_in import BargeIn
from parley.voice.end_of_turn import EndOfTurnConfig, EndOfTurnDetector
from parley.voice.false_interruption import (
    FalseInterruption,
    PlaybackCut,
    PlaybackPaused,
    PlaybackResumed,
)
from parley.voice.turn_taking import (
    EndOfTurnCheck,
    SpeechStarted,
    TurnDetection,
    TurnTaking,
    TurnTakingConfig,
    UtteranceEnded,
)

FRAME = 0.02
FRAME_SAMPLES = 320
PARTIAL_EVERY = 5  # frames: a partial transcript every 100 ms
STOP_SECS = 0.5  # silence mode, as the demo agent


@dataclass
class Prepared:
    """One sample's per-frame inputs, shared by both modes."""

    sample: Sample
    probs: dict[str, list[float]]  # vad name -> score per frame
    partials: dict[int, str]  # frame index -> partial transcript at the end of that frame


def frames(pcm: bytes) -> list[bytes]:
    step = FRAME_SAMPLES * 2
    return [pcm[i : i + step] for i in range(0, len(pcm) - step + 1, step)]


def vad_scores(pcm: bytes, vad: str) -> list[float]:
    stream = (EnergyVAD() if vad == "energy" else SileroVAD()).open_stream()
    return [float(stream.process(f)) for f in frames(pcm)]


def partial_transcripts(pcm: bytes, stt: PocketsphinxSTT) -> dict[int, str]:
    decoder = stt.new_decoder()
    decoder.start_utt()
    out: dict[int, str] = {}
    last = ""
    for i, frame in enumerate(frames(pcm)):
        decoder.process_raw(frame, False, False)
        if (i + 1) % PARTIAL_EVERY == 0:
            hyp = decoder.hyp()
            text = hyp.hypstr if hyp is not None else ""
            if text != last:
                out[i] = last = text
    decoder.end_utt()
    return out


# --- end of turn ------------------------------------------------------------------------

Scorer = Callable[[np.ndarray], tuple[float, float]]  # audio -> (probability, seconds taken)


@dataclass
class TurnRun:
    ends: list[float] = field(default_factory=list)  # emission times of UtteranceEnded
    checks: int = 0
    model_ms: list[float] = field(default_factory=list)


def run_turns(p: Prepared, vad: str, mode: str, scorer: Scorer | None) -> TurnRun:
    """``mode``: silence | smart | model_only (Pipecat's setup: a 0.2 s VAD stop, then
    Smart Turn alone decides; "incomplete" waits up to 3 s; no transcript)."""
    model_only = mode == "model_only"
    config = TurnTakingConfig(
        stop_secs=STOP_SECS,
        turn_detection=TurnDetection.SILENCE if mode == "silence" else TurnDetection.SMART,
        max_stop_secs=3.0 if model_only else 2.0,
    )
    detector = None
    if model_only:
        detector = EndOfTurnDetector(
            # a 0.2 s VAD stop, then the model's answer is awaited (up to stop_secs)
            EndOfTurnConfig(complete_secs=0.2, incomplete_secs=3.0, max_stop_secs=3.0)
        )
    tt = TurnTaking(
        config, audio_scores=scorer is not None and mode != "silence", detector=detector
    )
    audio = np.frombuffer(p.sample.pcm, dtype=np.int16).astype(np.float32) / 32768.0
    run = TurnRun()
    due: tuple[float, float] | None = None  # (time the score arrives, score)
    started_at = 0.0
    for i, prob in enumerate(p.probs[vad]):
        now = round(i * FRAME, 6)
        events = []
        if due is not None and now >= due[0] - 1e-9:
            events += tt.on_end_of_turn_score(due[1], now)
            due = None
        events += tt.on_frame(prob, now, FRAME)
        if i in p.partials and not model_only:
            events += tt.on_partial(p.partials[i], now + FRAME)
        for event in events:
            if isinstance(event, SpeechStarted):
                started_at = event.at
            elif isinstance(event, UtteranceEnded):
                run.ends.append(now + FRAME)
            elif isinstance(event, EndOfTurnCheck) and scorer is not None:
                start = max(0, round((started_at - 0.2) * RATE))
                score, secs = scorer(audio[start : round(event.at * RATE)])
                run.checks += 1
                run.model_ms.append(secs * 1000)
                due = (event.at + math.ceil(secs / FRAME) * FRAME, score)
    return run


# --- barge-in ---------------------------------------------------------------------------


@dataclass
class BargeRun:
    paused_at: float | None = None
    cut_at: float | None = None
    resumed_at: float | None = None


def run_barge(p: Prepared, vad: str, mode: str) -> BargeRun:
    run = BargeRun()
    if mode == "silence":  # the old policy: the barge-in rule cuts at once, for good
        tt = TurnTaking(TurnTakingConfig(stop_secs=STOP_SECS, turn_detection=TurnDetection.SILENCE))
        tt.set_agent_speaking(True, 0.0)
        for i, prob in enumerate(p.probs[vad]):
            now = round(i * FRAME, 6)
            events = tt.on_frame(prob, now, FRAME)
            if i in p.partials:
                events += tt.on_partial(p.partials[i], now + FRAME)
            if any(isinstance(e, BargeIn) for e in events) and run.cut_at is None:
                run.cut_at = now + FRAME
        return run
    fi = FalseInterruption()
    fi.agent_started(0.0)
    for i, prob in enumerate(p.probs[vad]):
        now = round(i * FRAME, 6)
        events = fi.on_frame(prob, now, FRAME)
        if i in p.partials:
            events += fi.on_partial(p.partials[i], now + FRAME)
        for event in events:
            if isinstance(event, PlaybackPaused) and run.paused_at is None:
                run.paused_at = event.at
            elif isinstance(event, PlaybackCut):
                run.cut_at = event.at
            elif isinstance(event, PlaybackResumed):
                run.resumed_at = event.at
        if run.cut_at is not None:
            break
    return run


# --- report -----------------------------------------------------------------------------


def pct(values: list[bool]) -> float | None:
    return round(100.0 * sum(values) / len(values), 1) if values else None


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 0)


def evaluate(
    prepared: list[Prepared], vad: str, mode: str, scorer: Scorer | None
) -> dict[str, Any]:
    latency: list[float] = []
    split: list[bool] = []
    held: list[bool] = []
    model_ms: list[float] = []
    real_cut: list[bool] = []
    stop_after: list[float] = []
    cut_after: list[float] = []
    resumed: dict[str, list[bool]] = {"barge_noise": [], "barge_backchannel": []}
    misses: list[str] = []
    for p in prepared:
        s = p.sample
        if s.kind in ("complete", "pause"):
            run = run_turns(p, vad, mode, scorer)
            model_ms += run.model_ms
            if s.kind == "pause":
                assert s.pause is not None
                ok = not any(t <= s.pause[1] + 1e-9 for t in run.ends)
                held.append(ok)
                if not ok:
                    misses.append(s.name)
                continue
            early = any(t < s.speech_end for t in run.ends)
            split.append(early)
            after = [t for t in run.ends if t >= s.speech_end]
            if after:
                latency.append(after[0] - s.speech_end)
            continue
        if mode == "model_only":
            continue  # Pipecat's false-interruption handling is not emulated
        barge = run_barge(p, vad, mode)
        assert s.onset is not None
        if s.kind == "barge_real":
            real_cut.append(barge.cut_at is not None)
            stops = [t for t in (barge.paused_at, barge.cut_at) if t is not None]
            if stops:
                stop_after.append(min(stops) - s.onset)
            if barge.cut_at is not None:
                cut_after.append(barge.cut_at - s.onset)
            else:
                misses.append(s.name)
        else:
            resumed[s.kind].append(barge.cut_at is None)
            if barge.cut_at is not None:
                misses.append(s.name)
    return {
        "vad": vad,
        "mode": mode,
        "audio_model": scorer is not None and mode != "silence",
        "complete": len(split),
        "decision_p50_ms": quantile(latency, 0.5),
        "decision_p90_ms": quantile(latency, 0.9),
        "split_early_pct": pct(split),
        "pauses": len(held),
        "pauses_held_pct": pct(held),
        "real_interruptions_cut_pct": pct(real_cut),
        "playback_stops_after_onset_p50_ms": quantile(stop_after, 0.5),
        "cut_decided_after_onset_p50_ms": quantile(cut_after, 0.5),
        "noise_resumed_pct": pct(resumed["barge_noise"]),
        "backchannel_resumed_pct": pct(resumed["barge_backchannel"]),
        "model_ms_p50": round(statistics.median(model_ms), 1) if model_ms else None,
        "misses": misses,
    }


def make_scorer(setting: str) -> Scorer | None:
    if setting == "off":
        return None
    path = find_model(None if setting == "auto" else setting)
    if path is None:
        print("Smart Turn model not found (no pipecat-ai, no path): text-only smart mode")
        return None
    model = SmartTurnModel(path)

    def score(audio: np.ndarray) -> tuple[float, float]:
        t0 = time.perf_counter()
        (prob,) = model.score_many([audio])
        return prob, time.perf_counter() - t0

    return score


def model_cost(path: Path, clips: list[np.ndarray], repeats: int = 3) -> dict[str, float]:
    """Milliseconds per decision of the Smart Turn model (front end + inference, one
    thread), one clip at a time and in batches of 8 as the batcher forms them."""
    model = SmartTurnModel(path)
    model.score_many(clips[:1])  # warm up
    out: dict[str, float] = {}
    for batch in (1, 8):
        times = []
        for _ in range(repeats):
            for i in range(0, len(clips) - batch + 1, batch):
                t0 = time.perf_counter()
                model.score_many(clips[i : i + batch])
                times.append((time.perf_counter() - t0) * 1000 / batch)
        out[f"batch{batch}_ms_per_decision_p50"] = round(statistics.median(times), 1)
    t0 = time.perf_counter()
    for clip in clips:
        model.front_end(clip)
    out["front_end_ms"] = round((time.perf_counter() - t0) * 1000 / len(clips), 1)
    return out


def prepare(subset: str, vads: list[str]) -> list[Prepared]:
    stt = PocketsphinxSTT(list(PHRASES))
    out = []
    try:
        for sample in build(subset):
            probs = {vad: vad_scores(sample.pcm, vad) for vad in vads}
            out.append(Prepared(sample, probs, partial_transcripts(sample.pcm, stt)))
    finally:
        stt.close()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subset", choices=("ci", "full"), default="ci")
    parser.add_argument("--vad", default="energy,silero")
    parser.add_argument("--smart-turn", default="auto", help="auto | off | path to .onnx")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    vads = [v for v in args.vad.split(",") if v]
    t0 = time.perf_counter()
    prepared = prepare(args.subset, vads)
    prep_secs = time.perf_counter() - t0
    scorer = make_scorer(args.smart_turn)
    rows = []
    for vad in vads:
        for mode in ("silence", "smart"):
            rows.append(evaluate(prepared, vad, mode, None))
            if mode == "smart" and scorer is not None:
                rows.append(evaluate(prepared, vad, mode, scorer))
        if scorer is not None:
            rows.append(evaluate(prepared, vad, "model_only", scorer))
    cost = None
    if scorer is not None:
        clips = [
            np.frombuffer(p.sample.pcm, dtype=np.int16).astype(np.float32)[: 4 * RATE] / 32768.0
            for p in prepared[:16]
        ]
        found = find_model(None if args.smart_turn == "auto" else args.smart_turn)
        assert found is not None
        cost = model_cost(found, clips)
        print("Smart Turn cost:", cost)
    report = {
        "subset": args.subset,
        "samples": len(prepared),
        "audio_secs": round(sum(len(p.sample.pcm) for p in prepared) / 2 / RATE, 1),
        "prepare_secs": round(prep_secs, 1),
        "rows": rows,
        "smart_turn_cost": cost,
    }
    keys = [
        "decision_p50_ms",
        "decision_p90_ms",
        "split_early_pct",
        "pauses_held_pct",
        "real_interruptions_cut_pct",
        "playback_stops_after_onset_p50_ms",
        "cut_decided_after_onset_p50_ms",
        "noise_resumed_pct",
        "backchannel_resumed_pct",
        "model_ms_p50",
    ]
    print(f"{report['samples']} samples, {report['audio_secs']} s of audio")
    print("| vad | mode | " + " | ".join(keys) + " |")
    for row in rows:
        mode = row["mode"] + ("+model" if row["audio_model"] and row["mode"] == "smart" else "")
        print(f"| {row['vad']} | {mode} | " + " | ".join(str(row[k]) for k in keys) + " |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
