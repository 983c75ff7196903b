"""The phone-band channel transform (parley.engines.phone_band): its front end matches
pocketsphinx's, its fit recovers the line, and it makes phone speech recognisable."""

from __future__ import annotations

import numpy as np
import pocketsphinx
import pytest

from parley.config import load_agents
from parley.engines.factory import speech_phrases
from parley.engines.phone_band import (
    CEPSTRA,
    cepstra,
    fit_transform,
    mllr_text,
    phone_band_mllr,
    phone_line,
)
from parley.engines.pocketsphinx_stt import (
    NOISE_FLOOR_RMS,
    PHONE_NOISE_FLOOR_RMS,
    PocketsphinxSTT,
    add_noise_floor,
)
from parley.testing.speech import pad_silence, speak_pcm16k
from tests.test_stt import say, word_errors


def _floored(pcm: bytes, rms: float = 30.0) -> bytes:
    return add_noise_floor(pcm, np.random.default_rng(1), rms)


def test_cepstra_agree_with_pocketsphinx_front_end() -> None:
    for text in ("what are your opening hours", "can i make a reservation"):
        pcm = _floored(pad_silence(speak_pcm16k(text), 0.3, 0.5))
        decoder = pocketsphinx.Decoder(samprate=16000, cmn="batch", remove_noise=False,
                                       loglevel="FATAL")  # fmt: skip
        decoder.start_utt()
        decoder.process_raw(pcm, False, True)
        decoder.end_utt()
        theirs = np.array([float(v) for v in decoder.get_cmn().split(",")])
        ours = cepstra(pcm).mean(axis=0)
        assert ours.shape == (CEPSTRA,)
        assert abs(ours[0] - theirs[0]) < 1.5, (ours, theirs)
        assert np.max(np.abs(ours - theirs)) < 5, (ours, theirs)
        assert np.corrcoef(ours[1:], theirs[1:])[0, 1] > 0.95


def test_fit_explains_the_phone_line() -> None:
    pairs = []
    for text in ("the birch canoe slid on the smooth planks", "four hours of steady work faced us"):
        wide = _floored(pad_silence(speak_pcm16k(text), 0.3, 0.3))
        pairs.append((wide, _floored(phone_line(wide), PHONE_NOISE_FLOOR_RMS)))
    a, b = fit_transform(pairs)
    assert a.shape == (CEPSTRA, CEPSTRA) and b.shape == (CEPSTRA,)
    w = np.vstack([cepstra(x) - cepstra(x).mean(0) for x, _ in pairs])
    assert not np.allclose(a, np.eye(CEPSTRA), atol=0.1)  # the line changes the cepstra
    assert np.linalg.norm(a @ w.T) > 0.3 * np.linalg.norm(w)  # and keeps most of them
    with pytest.raises(ValueError):
        fit_transform([(b"", b"")])


def test_mllr_text_format() -> None:
    text = mllr_text(np.eye(CEPSTRA), np.arange(CEPSTRA, dtype=np.float64))
    lines = text.splitlines()
    assert lines[:3] == ["1", "3", "13"]
    assert len(lines) == 2 + 3 * (1 + CEPSTRA + 2)
    assert lines[3 + CEPSTRA].split()[1] == "1.000000"  # stream 0 keeps the offset
    assert set(lines[3 + 2 * CEPSTRA + 3].split()) == {"0.000000"}  # deltas have none
    assert phone_band_mllr(NOISE_FLOOR_RMS, PHONE_NOISE_FLOOR_RMS).startswith("1\n3\n13\n")


LISTED = (
    "can i make a reservation",
    "table for four on friday at eight",
    "there will be five of us",
    "quarter past eight",
    "my name is john smith",
    "what's on the menu",
    "do you have vegetarian dishes",
    "is there parking",
)


async def _errors(stt: PocketsphinxSTT) -> int:
    errors = 0
    stream = stt.open_stream()
    try:
        for text in LISTED:
            pcm = phone_line(_floored(pad_silence(speak_pcm16k(text, "en-us+f3", 160), 0.3, 0.5)))
            await say(stream, pcm)
            errors += word_errors(text, await stream.finish())[0]
    finally:
        await stream.close()
    return errors


async def test_transform_makes_phone_speech_recognisable() -> None:
    """The phone-grade engine with and without the transform, on phone-line speech of the
    agent's phrases (measured over the bench's sets: see bench/RESULTS.md)."""
    phrases = speech_phrases(load_agents()["demo"])
    with_it = PocketsphinxSTT(phrases, phone_grade=True)
    without = PocketsphinxSTT(phrases, phone_grade=True, phone_band_transform=False)
    try:
        better, worse = await _errors(with_it), await _errors(without)
    finally:
        with_it.close()
        without.close()
    assert better < worse, (better, worse)
