"""Silero windows of concurrent connections scored in shared batches: same results,
fewer forward passes, failures reach every waiting stream."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from parley.engines.silero_vad import SileroVAD
from parley.engines.vad_batch import WindowBatcher
from parley.testing.speech import speak_pcm16k

FRAME = 640  # 20 ms at 16 kHz


@pytest.fixture(scope="module")
def speech() -> bytes:
    pcm = speak_pcm16k("I would like to book a table for two tonight", "en-us", 175)
    return bytes(16000) + pcm[: len(pcm) // FRAME * FRAME] + bytes(16000)


async def test_concurrent_streams_get_the_same_probabilities_in_shared_batches(
    speech: bytes,
) -> None:
    vad = SileroVAD(backend="numpy")
    assert vad.batcher is not None
    alone = vad.open_stream()
    expected = [alone.process(speech[i : i + FRAME]) for i in range(0, len(speech), FRAME)]
    streams = [vad.open_stream() for _ in range(5)]
    got: list[list[float]] = [[] for _ in streams]
    calls_before = vad.batcher.batches
    for i in range(0, len(speech), FRAME):
        frame = speech[i : i + FRAME]
        probs = await asyncio.gather(*(s.process_async(frame) for s in streams))
        for row, prob in zip(got, probs, strict=True):
            row.append(prob)
    assert all(row == expected for row in got)
    assert max(expected) > 0.9  # the speech was heard
    windows = streams[0].model_calls * len(streams)
    assert vad.batcher.windows >= windows
    assert vad.batcher.batches - calls_before == streams[0].model_calls  # one pass per window


class Exploding:
    def forward(self, windows: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[
        np.ndarray, np.ndarray, np.ndarray
    ]:
        raise RuntimeError("model broke")


async def test_a_failed_batch_fails_every_waiting_stream() -> None:
    batcher = WindowBatcher(Exploding())
    row, state = np.zeros((1, 512), np.float32), np.zeros((1, 128), np.float32)
    results = await asyncio.gather(
        batcher.score(row, state, state), batcher.score(row, state, state), return_exceptions=True
    )
    assert [str(r) for r in results] == ["model broke", "model broke"]


class Counting:
    def __init__(self) -> None:
        self.sizes: list[int] = []

    def forward(self, windows: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[
        np.ndarray, np.ndarray, np.ndarray
    ]:
        self.sizes.append(len(windows))
        return windows[:, 0].copy(), h + 1, c + 2


async def test_a_full_batch_is_scored_at_once_and_a_cancelled_caller_is_skipped() -> None:
    net = Counting()
    batcher = WindowBatcher(net, max_batch=3)
    state = np.zeros((1, 128), np.float32)
    futures = [batcher.score(np.full((1, 512), i, np.float32), state, state) for i in range(5)]
    assert net.sizes == [3]  # the first three went as soon as the batch was full
    futures[3].cancel()
    await asyncio.gather(*futures, return_exceptions=True)
    assert net.sizes == [3, 2]
    prob, h, c = futures[4].result()
    assert prob == 4.0 and h.shape == (1, 128) and float(h[0, 0]) == 1 and float(c[0, 0]) == 2
    assert futures[3].cancelled()
