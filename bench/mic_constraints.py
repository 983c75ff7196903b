"""Do the browser's audio processing options hurt the embedded recogniser?

Chromium (Debian's, headless) plays an espeak-made WAV as its fake microphone
(``--use-file-for-fake-audio-capture``); the real page runs in hands-free voice mode
against the real app (Silero VAD, pocketsphinx with the demo agent's language model).
Before the page loads, an init script wraps ``getUserMedia`` so the page's constraints
are replaced by one combination of ``noiseSuppression`` and ``autoGainControl`` (echo
cancellation stays on in all of them) and records the settings the track really got.
The word error rate compares all reference words with all final transcripts of a run
(concatenated, so a split or merged utterance costs only its real word errors).

Three conditions: ``floor`` adds Gaussian noise at rms 30 (-60 dBFS, a quiet room's mic
floor) to the whole file; ``noisy`` adds rms 600 (about -35 dBFS, a fan or a street
behind the speaker); ``quiet`` is a distant or quiet speaker (speech at -20 dB) over the
same floor, which is what automatic gain is for.

Usage: ``.venv/bin/python bench/mic_constraints.py [--json out.json] [--runs 1]``
(about 50 s of real-time audio per run; 4 combinations x 3 conditions;
``--conditions`` and ``--combinations`` pick a subset).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from parley.app import create_app
from parley.audio.wav import write_wav
from parley.config import Settings
from parley.engines.arpa import normalize
from parley.testing.servers import serve_app
from parley.testing.speech import speak_pcm16k

sys.path.insert(0, str(Path(__file__).parent))
from stt_accuracy import word_errors

CHROMIUM = "/usr/bin/chromium"
RATE = 16000
GREETING_S = 7.0  # the spoken greeting finishes before the first request
GAP_S = 4.5  # room for the agent's spoken reply between requests
# No names (a name completes a booking, and the approval switches the recogniser to
# yes/no) and no "a person" (a transfer ends the agent's part).
PHRASES = (
    "what's on the menu",
    "do you have vegetarian dishes",
    "what time do you open on sunday",
    "tell me about the sea bass please",
    "can i see the specials",
    "do you have a table for six tonight",
)
COMBINATIONS = {
    "ns+agc (before)": {"noiseSuppression": True, "autoGainControl": True},
    "ns only": {"noiseSuppression": True, "autoGainControl": False},
    "agc only": {"noiseSuppression": False, "autoGainControl": True},
    "neither": {"noiseSuppression": False, "autoGainControl": False},
}
# condition: (speech gain, noise rms)
CONDITIONS = {"floor": (1.0, 30.0), "noisy": (1.0, 600.0), "quiet": (0.1, 30.0)}
TRACK_SETTINGS = ("echoCancellation", "noiseSuppression", "autoGainControl")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
OVERRIDE = """
(() => {
  const wanted = %s;
  const md = navigator.mediaDevices;
  const original = md.getUserMedia.bind(md);
  md.getUserMedia = async (constraints) => {
    const audio = { ...(constraints.audio || {}), echoCancellation: true, ...wanted };
    const stream = await original({ ...constraints, audio });
    window.__micSettings = stream.getAudioTracks()[0].getSettings();
    return stream;
  };
})();
"""


def make_wav(directory: Path, condition: str, seed: int) -> Path:
    parts = [np.zeros(int(GREETING_S * RATE), dtype=np.int16)]
    for phrase in PHRASES:
        parts.append(np.frombuffer(speak_pcm16k(phrase), dtype=np.int16))
        parts.append(np.zeros(int(GAP_S * RATE), dtype=np.int16))
    gain, noise_rms = CONDITIONS[condition]
    speech = np.concatenate(parts).astype(np.float64) * gain
    noise = np.random.default_rng(seed).normal(0.0, noise_rms, speech.size)
    mixed = np.clip(speech + noise, -32768, 32767).astype(np.int16)
    path = directory / f"{condition}-{seed}.wav"
    write_wav(path, mixed.tobytes(), RATE)
    return path


async def one_run(base_url: str, wav: Path, combo: dict[str, bool]) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    seconds = GREETING_S + len(PHRASES) * (GAP_S + 2.5)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[*FLAGS, f"--use-file-for-fake-audio-capture={wav}%noloop"],
        )
        try:
            page = await browser.new_page()
            await page.add_init_script(OVERRIDE % json.dumps(combo))
            await page.goto(base_url + "/")
            await page.wait_for_function("window.parley && window.parley.snapshot().sessionId")
            await page.click("#mic")
            await page.wait_for_function("window.parley.snapshot().channel === 'voice'")
            await page.wait_for_timeout(int(seconds * 1000))
            finals: list[str] = await page.evaluate(
                "window.parley.events().filter(e => e.type === 'transcript_final')"
                ".map(e => e.text || '')"
            )
            settings: dict[str, Any] = await page.evaluate("window.__micSettings || {}")
        finally:
            await browser.close()
    ref = [w for p in PHRASES for w in normalize(p)]
    hyp = [w for f in finals for w in normalize(f)]
    return {
        "errors": word_errors(ref, hyp),
        "words": len(ref),
        "finals": finals,
        "track": {k: settings.get(k) for k in TRACK_SETTINGS},
    }


async def measure(
    runs: int, conditions: list[str], combinations: list[str]
) -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="mic-bench-"))
    app = create_app(Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp}/db.sqlite"))
    results: list[dict[str, Any]] = []
    async with serve_app(app) as base_url:
        for condition in conditions:
            for seed in range(runs):
                wav = make_wav(tmp, condition, seed)
                for name in combinations:
                    combo = COMBINATIONS[name]
                    result = await one_run(base_url, wav, combo)
                    result.update(condition=condition, combination=name, seed=seed)
                    results.append(result)
                    wer = result["errors"] / result["words"]
                    print(
                        f"{condition:6} {name:16} WER {wer:6.1%}  track {result['track']}",
                        flush=True,
                    )
                    print(f"       heard: {result['finals']}", flush=True)
    print("\n| condition | combination | WER |\n|---|---|---|")
    for condition in conditions:
        for name in combinations:
            mine = [r for r in results if r["condition"] == condition and r["combination"] == name]
            wer = sum(r["errors"] for r in mine) / sum(r["words"] for r in mine)
            spread = statistics.pstdev([r["errors"] / r["words"] for r in mine])
            shown = f"{wer:.1%}" + (f" ± {spread:.1%}" if runs > 1 else "")
            print(f"| {condition} | {name} | {shown} |")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="WAVs (noise seeds) per condition")
    parser.add_argument("--json", type=Path, help="write every run here")
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=list(CONDITIONS))
    parser.add_argument(
        "--combinations", nargs="+", choices=COMBINATIONS, default=list(COMBINATIONS)
    )
    args = parser.parse_args()
    everything = asyncio.run(measure(args.runs, args.conditions, args.combinations))
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))
