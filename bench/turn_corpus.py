"""Turn-taking corpus: espeak-ng speech for the end-of-turn and false-interruption evaluation.

Four kinds of sample, all 16 kHz PCM16 with a -60 dBFS noise floor (a real microphone's;
pocketsphinx and the VADs see what they would see live), each with its ground truth:

* ``complete``: a finished sentence, then 2.5 s of silence. Truth: ``speech_end``.
* ``pause``: a sentence with a 0.6–1.2 s pause at an incomplete point ("I would like a
  table for ... four people tonight"). It is spoken as one sentence with a comma at the
  pause point (so the prosody continues, as a person's does) and the comma's silence is
  stretched to the pause length. Truth: ``pause`` = (start, end) of the pause, and
  ``speech_end``.
* ``barge_*`` — sounds made while the agent is speaking (the mic is echo-cancelled, so
  only the caller is heard), 0.3 s after the start, then 1.5 s of silence:
  ``barge_real`` a real interruption ("wait, that's not what I asked"),
  ``barge_noise`` a cough-like burst (0.15–0.35 s of band-limited noise with a fast
  attack and a decay), ``barge_backchannel`` a backchannel word ("mm-hm", "yeah").
  Truth: ``onset`` of the sound.

Subsets: ``ci`` (2 voices, a few sentences: seconds to build and evaluate) and ``full``
(5 voices and speeds, every sentence: the benchmark). Samples are deterministic.

Usage: ``python bench/turn_corpus.py --subset full --out /tmp/turn-corpus`` writes WAVs
and ``manifest.json``; ``bench/turn_eval.py`` builds the corpus in memory by itself.
"""

from __future__ import annotations

import argparse
import json
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from parley.audio.wav import write_wav
from parley.testing.speech import speak_pcm16k

RATE = 16000
NOISE_FLOOR_RMS = 30.0  # int16 units, about -60 dBFS
TRAIL_SECS = 2.5
LEAD_SECS = 0.3
SILENT_ABS = 40  # |sample| below this is espeak's silence (before the noise floor)
GAP_RMS = 150.0  # a 5 ms block quieter than this is part of a pause

VOICES_FULL = (
    ("en-us", 175),
    ("en-us", 140),
    ("en-us+f3", 200),
    ("en", 160),
    ("en-us+m3", 220),
)
VOICES_CI = (("en-us", 175), ("en-us+f3", 200))

COMPLETE = (
    "I would like a table for four people tonight",
    "Can I book it for tomorrow at seven",
    "What time do you close on Sunday",
    "Thank you very much",
    "Yes that sounds good",
    "I need a taxi to the airport",
    "My name is John Smith",
    "Please cancel my booking",
    "Is the restaurant open today",
    "I want to change my order",
)
PAUSED = (  # (before the pause, after it): the pause falls at an incomplete point
    ("I would like a table for", "four people tonight"),
    ("My phone number is five five five", "one two three four"),
    ("Can I book it for", "tomorrow at seven"),
    ("I want to change my order and", "add a salad"),
    ("Is there a table near the", "window please"),
    ("I need a taxi to", "the airport"),
    ("Send the receipt to my", "email address"),
    ("We are coming with um", "two children"),
    ("Could you tell me where", "the station is"),
    ("I think I will have the", "chicken soup"),
)
INTERRUPTIONS = (
    "Wait that is not what I asked",
    "No I want the vegetarian menu",
    "Sorry can you repeat the address",
)
BACKCHANNELS = ("mm-hm", "yeah", "okay", "right", "uh-huh")
# how a recogniser spells backchannels (its dictionary has no "mm-hm"): an agent would
# list these in its phrases, as the embedded STT lists yes/no replies
BACKCHANNEL_WORDS = ("mhm", "hmm", "mm", "uh-huh", "yeah", "okay", "right")

# Every word the corpus says, for the recogniser's domain language model (an agent lists
# its phrases the same way).
PHRASES = (
    *COMPLETE,
    *(f"{a} {b}" for a, b in PAUSED),
    *INTERRUPTIONS,
    *BACKCHANNEL_WORDS,
)


@dataclass
class Sample:
    name: str
    kind: str  # complete | pause | barge_real | barge_noise | barge_backchannel
    text: str
    voice: str
    rate: int
    pcm: bytes
    speech_end: float  # seconds: the last speech sample
    pause: tuple[float, float] | None = None
    onset: float | None = None  # barge-ins: when the sound starts

    def manifest(self) -> dict[str, object]:
        out = asdict(self)
        del out["pcm"]
        out["secs"] = len(self.pcm) / 2 / RATE
        return out


def _rng(*key: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype=np.int16).astype(np.float64)


def _trim(x: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(x) >= SILENT_ABS)
    return x[loud[0] : loud[-1] + 1] if loud.size else x[:0]


def _finish(x: np.ndarray, *key: object) -> bytes:
    noise = _rng("floor", *key).normal(0.0, NOISE_FLOOR_RMS, x.size)
    return bytes(np.clip(np.round(x + noise), -32768, 32767).astype(np.int16).tobytes())


def _silence(secs: float) -> np.ndarray:
    return np.zeros(round(secs * RATE))


def complete(text: str, voice: str, rate: int) -> Sample:
    speech = _trim(_samples(speak_pcm16k(text, voice, rate)))
    x = np.concatenate([_silence(LEAD_SECS), speech, _silence(TRAIL_SECS)])
    end = LEAD_SECS + speech.size / RATE
    return Sample(
        f"complete/{voice}-{rate}/{text[:24]}",
        "complete",
        text,
        voice,
        rate,
        _finish(x, text, voice, rate),
        end,
    )


def _gaps(x: np.ndarray, min_secs: float = 0.03) -> list[tuple[int, int]]:
    """(start, end) sample indices of the quiet runs inside ``x`` (5 ms blocks whose RMS
    is under ``GAP_RMS``; some espeak voices breathe, so their pauses are not all zeros)."""
    block = RATE // 200
    n = x.size // block
    rms = np.sqrt(np.mean(x[: n * block].reshape(n, block) ** 2, axis=1))
    quiet = np.concatenate([[0], (rms < GAP_RMS).astype(np.int8), [0]])
    edges = np.diff(quiet)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [
        (a * block, b * block)
        for a, b in zip(starts, ends, strict=True)
        if (b - a) * block >= min_secs * RATE
    ]


def _comma_gap(speech: np.ndarray, before: str, voice: str, rate: int) -> tuple[int, int]:
    """The silence espeak left at the comma: the gap nearest to where the words before
    it end when they are spoken alone."""
    prefix_end = _trim(_samples(speak_pcm16k(before, voice, rate))).size
    gaps = _gaps(speech)
    if not gaps:
        raise ValueError(f"no pause found in {before!r} ({voice}, {rate})")
    return min(gaps, key=lambda g: abs(g[0] - prefix_end))


def paused(before: str, after: str, voice: str, rate: int) -> Sample:
    text = f"{before}, {after}"
    speech = _trim(_samples(speak_pcm16k(text, voice, rate)))
    gap_start, gap_end = _comma_gap(speech, before, voice, rate)
    pause_secs = float(_rng("pause", text, voice, rate).uniform(0.6, 1.2))
    x = np.concatenate(
        [
            _silence(LEAD_SECS),
            speech[:gap_start],
            _silence(pause_secs),
            speech[gap_end:],
            _silence(TRAIL_SECS),
        ]
    )
    p0 = LEAD_SECS + gap_start / RATE
    end = p0 + pause_secs + (speech.size - gap_end) / RATE
    return Sample(
        f"pause/{voice}-{rate}/{before[:24]}",
        "pause",
        text,
        voice,
        rate,
        _finish(x, text, voice, rate),
        end,
        pause=(p0, p0 + pause_secs),
    )


def barge_speech(kind: str, text: str, voice: str, rate: int) -> Sample:
    speech = _trim(_samples(speak_pcm16k(text, voice, rate)))
    x = np.concatenate([_silence(LEAD_SECS), speech, _silence(1.5)])
    return Sample(
        f"{kind}/{voice}-{rate}/{text[:24]}",
        kind,
        text,
        voice,
        rate,
        _finish(x, kind, text, voice, rate),
        LEAD_SECS + speech.size / RATE,
        onset=LEAD_SECS,
    )


def cough(index: int) -> Sample:
    rng = _rng("cough", index)
    secs = float(rng.uniform(0.15, 0.35))
    n = round(secs * RATE)
    noise = rng.normal(0.0, 1.0, n)
    # band-limit to roughly 300-3000 Hz with two one-pole filters
    lp = np.empty(n)
    acc = 0.0
    for i, v in enumerate(noise):
        acc += 0.45 * (v - acc)
        lp[i] = acc
    band = lp - np.convolve(lp, np.ones(12) / 12, mode="same")
    t = np.arange(n) / RATE
    envelope = np.minimum(1.0, t / 0.01) * np.exp(-t / (secs / 2.5))
    burst = band / (np.sqrt(np.mean(band**2)) + 1e-9) * 3000.0 * envelope
    x = np.concatenate([_silence(LEAD_SECS), burst, _silence(1.5)])
    return Sample(
        f"barge_noise/{index}",
        "barge_noise",
        "",
        "",
        0,
        _finish(x, "cough", index),
        LEAD_SECS + secs,
        onset=LEAD_SECS,
    )


def build(subset: str = "ci") -> list[Sample]:
    """The corpus: ``ci`` (small, for the test) or ``full`` (the benchmark)."""
    if subset not in ("ci", "full"):
        raise ValueError(f"subset must be ci or full, got {subset!r}")
    full = subset == "full"
    voices = VOICES_FULL if full else VOICES_CI
    sentences = COMPLETE if full else COMPLETE[:5]
    pauses = PAUSED if full else PAUSED[:6]
    real = INTERRUPTIONS if full else INTERRUPTIONS[:2]
    back = BACKCHANNELS if full else BACKCHANNELS[:3]
    out: list[Sample] = []
    for voice, rate in voices:
        out += [complete(s, voice, rate) for s in sentences]
        out += [paused(a, b, voice, rate) for a, b in pauses]
        out += [barge_speech("barge_real", s, voice, rate) for s in real]
        out += [barge_speech("barge_backchannel", s, voice, rate) for s in back]
    out += [cough(i) for i in range(10 if full else 4)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subset", choices=("ci", "full"), default="ci")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for i, sample in enumerate(build(args.subset)):
        path = args.out / f"{i:03d}-{sample.kind}.wav"
        write_wav(path, sample.pcm, RATE)
        manifest.append({"file": path.name, **sample.manifest()})
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"{len(manifest)} samples in {args.out}")


if __name__ == "__main__":
    main()
