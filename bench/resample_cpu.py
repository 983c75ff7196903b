"""CPU per 20 ms chunk and audio held back: soxr ``Resampler`` beside ``RationalResampler``.

    .venv/bin/python bench/resample_cpu.py

For 24 → 16 kHz (the Realtime input) and 16 → 24 kHz (16 kHz TTS to a 24 kHz Realtime
client): the best of 7 repeats of 500 chunks of noise (µs per chunk, one process, one
core), and the audio held back after each of the first 50 chunks (what went in minus
what came out, in ms; the filter's group delay comes on top of it).
"""

from __future__ import annotations

import timeit

import numpy as np

from parley.audio.polyphase import RationalResampler
from parley.audio.resample import Resampler

PAIRS = ((24000, 16000), (16000, 24000))


def held_back_ms(rs: Resampler | RationalResampler, chunk: bytes, in_rate: int) -> list[float]:
    taken = given = 0
    held = []
    for _ in range(50):
        given += len(rs.process(chunk)) // 2
        taken += len(chunk) // 2
        held.append(1000 * (taken / in_rate - given / rs.out_rate))
    return held


def make(name: str, in_rate: int, out_rate: int) -> Resampler | RationalResampler:
    if name == "soxr LQ":
        return Resampler(in_rate, out_rate)
    return RationalResampler(in_rate, out_rate)


def us_per_chunk(rs: Resampler | RationalResampler, chunk: bytes) -> float:
    def run() -> None:
        rs.process(chunk)

    return min(timeit.repeat(run, number=500, repeat=7)) / 500 * 1e6


def main() -> None:
    rng = np.random.default_rng(0)
    for in_rate, out_rate in PAIRS:
        chunk = (rng.standard_normal(in_rate // 50) * 3000).astype("<i2").tobytes()
        for name in ("soxr LQ", "polyphase"):
            rs = make(name, in_rate, out_rate)
            cpu = us_per_chunk(rs, chunk)
            held = held_back_ms(make(name, in_rate, out_rate), chunk, in_rate)
            delay = f", group delay {rs.delay_s * 1000:.2f} ms" if name == "polyphase" else ""
            print(
                f"{in_rate} -> {out_rate} {name:9}: {cpu:5.1f} µs per 20 ms chunk; "
                f"held back {min(held):.1f}–{max(held):.1f} ms, "
                f"mean {float(np.mean(held)):.1f} ms{delay}"
            )


if __name__ == "__main__":
    main()
