"""Phone-grade speech recognition: word error rate of the embedded STT on phone audio.

Sentences from ``bench/phone_phrases.txt``: ``[listed]`` (the demo agent's
``voice.phrases``) and ``[heldout]`` (in-domain sentences the agent file does not list,
written before any measurement and never used to tune). Each is spoken by espeak-ng
and recognised in two channel conditions:

- ``16k``: the 16 kHz speech as the browser would send it;
- ``phone``: the same speech through a phone line — resampled to 8 kHz, μ-law encoded
  and decoded (G.711, as Twilio carries it), then back to 16 kHz with the streaming
  resampler the phone call uses (``parley.telephony.call.PhoneCall``).

Also ``[dev]`` and ``[dev2]``: the sentences the phone-grade settings were tuned on.

Recognisers (``--stt``): ``demo`` is the demo agent's engine as ``EngineHub`` builds it;
``phone`` is the same agent's phone-grade engine as calls and 8 kHz uploads get it
(``build_phone_stt``: the phone-band transform + a language model of the agent's whole
corpus with background unigrams); ``phone-plain`` is the phone-grade engine of the
listed phrases only, ``phone-no-transform`` the corpus model without the transform.
``moonshine[:hn,fix]`` is Moonshine base-en (``moonshine-cpp``, not a dependency; see
``bench/moonshine_phone.py`` for the options), run on the same audio.
One decoder per voice is reused across its utterances, fed in 20 ms frames with the
voice loop's 300 ms pre-roll and 500 ms of trailing silence. CPU-light on purpose: two
voices, 75 sentences.

Usage: ``.venv/bin/python bench/phone_stt.py [--stt demo,phone] [--json out.json] [-v]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
import zlib
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from stt_accuracy import (  # noqa: E402  (the bench's own helpers)
    FRAME,
    PREROLL_S,
    TRAILING_S,
    Utterance,
    load_phrases,
    wer,
    with_floor,
    word_errors,
)

from parley.audio.g711 import decode_ulaw, encode_ulaw  # noqa: E402
from parley.audio.resample import resample  # noqa: E402
from parley.config import load_agents  # noqa: E402
from parley.engines.arpa import normalize  # noqa: E402
from parley.engines.base import STT  # noqa: E402
from parley.engines.factory import build_phone_stt, speech_corpus, speech_phrases  # noqa: E402
from parley.engines.pocketsphinx_stt import PocketsphinxSTT  # noqa: E402
from parley.telephony.call import caller_resampler  # noqa: E402
from parley.testing.speech import pad_silence, speak_pcm16k  # noqa: E402

PHRASES = HERE / "phone_phrases.txt"
VOICES = (("en-us", 175), ("en-us+f3", 160))
FLOOR_RMS = 30.0  # a microphone's noise floor, as in stt_accuracy's "floor" condition


def through_phone(pcm16k: bytes) -> bytes:
    """16 kHz speech as it reaches the engine after a μ-law 8 kHz phone line."""
    narrow = resample(pcm16k, 16000, 8000)
    line = decode_ulaw(encode_ulaw(narrow))
    up = caller_resampler(16000)
    return up.process(line) + up.flush()


def make_stt(name: str) -> STT:
    agent = load_agents()["demo"]
    phrases = speech_phrases(agent)
    if name == "demo":
        return PocketsphinxSTT(phrases)
    if name == "phone":  # what calls and 8 kHz uploads use
        return build_phone_stt(agent)
    if name == "phone-plain":  # the phone-grade engine of the listed phrases only
        return PocketsphinxSTT(phrases, phone_grade=True)
    if name == "phone-no-transform":
        return PocketsphinxSTT(
            speech_corpus(agent).weighted(), phone_grade=True, phone_band_transform=False
        )
    if name.split(":")[0] == "moonshine":
        from moonshine_phone import MoonshineBench

        options = set(name.split(":")[1].split("+")) if ":" in name else set()
        corpus = speech_corpus(agent)
        return MoonshineBench(options, [*corpus.phrases, *corpus.topics, *corpus.agent_text])
    raise SystemExit(f"unknown --stt {name!r}")


def child_cpu_s() -> float:
    """CPU of ended child processes since the last call."""
    global _CHILD_CPU
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = usage.ru_utime + usage.ru_stime
    spent, _CHILD_CPU = total - _CHILD_CPU, total
    return spent


_CHILD_CPU = 0.0


async def recognise(
    stt: STT, condition: str, voice: str, rate: int, items: list[tuple[str, str]]
) -> list[Utterance]:
    stream = stt.open_stream()
    out: list[Utterance] = []
    try:
        for kind, sentence in items:
            pcm = pad_silence(speak_pcm16k(sentence, voice, rate), PREROLL_S, TRAILING_S)
            seed = zlib.crc32(f"{voice}{rate}{sentence}".encode())
            pcm = with_floor(pcm, FLOOR_RMS, seed)  # the caller's microphone
            if condition == "phone":
                pcm = through_phone(pcm)
            for i in range(0, len(pcm), FRAME):
                await stream.push(pcm[i : i + FRAME])
            hyp = await stream.finish()
            ref, got = normalize(sentence), normalize(hyp)
            errors = word_errors(ref, got)
            out.append(
                Utterance(
                    condition, voice, rate, kind, sentence, hyp, errors, len(ref), len(pcm) / 32000
                )
            )
    finally:
        await stream.close()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stt", default="demo,phone")
    parser.add_argument("--conditions", default="16k,phone")
    parser.add_argument("--sets", default="listed,heldout,dev,dev2")
    parser.add_argument("--json", type=Path)
    parser.add_argument("-v", "--verbose", action="store_true", help="print every error")
    args = parser.parse_args()
    sets = load_phrases(PHRASES)
    kinds = [k for k in args.sets.split(",") if k in sets]
    items = [(kind, s) for kind in kinds for s in sets[kind]]
    rows: list[dict[str, object]] = []
    for name in args.stt.split(","):
        for condition in args.conditions.split(","):
            stt = make_stt(name)
            started = time.process_time()
            results: list[Utterance] = []
            for voice, rate in VOICES:
                results += await recognise(stt, condition, voice, rate, items)
            close = getattr(stt, "close", None)
            if callable(close):
                close()  # (a child process's CPU counts once it has ended)
            cpu = time.process_time() - started + child_cpu_s()
            for kind in kinds:
                subset = [u for u in results if u.kind == kind]
                rows.append(
                    {
                        "stt": name,
                        "condition": condition,
                        "set": kind,
                        "utterances": len(subset),
                        "words": sum(u.words for u in subset),
                        "wer": round(wer(subset), 4),
                    }
                )
                label = f"{name:6} {condition:6} {kind:8}"
                print(f"{label} WER {wer(subset):6.1%}  ({len(subset)} utt)")
                if args.verbose:
                    for u in subset:
                        if u.errors:
                            print(f"    {u.voice:9} {u.ref!r} -> {u.hyp!r}")
            audio_s = len(results) and sum(u.seconds for u in results)
            print(
                f"{name:6} {condition:6} cpu {cpu:.1f} s for {audio_s:.1f} s of speech"
                f" ({cpu / max(audio_s, 1e-9):.3f} s per second)"
            )
            if args.json:
                rows.append({"stt": name, "condition": condition, "cpu_s": round(cpu, 2)})
                rows.extend({"utterance": asdict(u)} for u in results)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
