"""The audio bridge of a joined transfer: caller ⇄ human, any leg format to any other.

A ``LegFormat`` says what one leg speaks on its wire (PCM16 at a rate, or G.711
μ-law at 8 kHz for carriers). ``Bridge`` holds one ``Direction`` each way; a
direction decodes, resamples and encodes with its own resampler state, so chunk
boundaries leave no clicks and the two directions never share state. Integer ratios
(8 ⇄ 16 kHz for two phone legs — calls hand over 16 kHz — 16 ⇄ 48 kHz or 8 ⇄ 48 kHz
for a phone and a browser) use the low-delay polyphase filters of
``parley.audio.polyphase`` (3–6 ms) instead of soxr, which holds back up to ~22 ms
(16 ⇄ 48 kHz) or ~60 ms (8 ⇄ 16 kHz) in 20 ms chunks. Pure: bytes in, bytes out; the
legs' socket loops feed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from parley.audio.g711 import decode_ulaw, encode_ulaw
from parley.audio.pcm import SampleAligner
from parley.audio.polyphase import Decimator, Interpolator
from parley.audio.resample import Resampler

Encoding = Literal["pcm16", "ulaw"]


@dataclass(frozen=True, slots=True)
class LegFormat:
    encoding: Encoding = "pcm16"
    rate: int = 16000

    def __post_init__(self) -> None:
        if self.encoding == "ulaw" and self.rate != 8000:
            raise ValueError("G.711 μ-law legs run at 8000 Hz")


class RateConverter(Protocol):
    def process(self, pcm: bytes) -> bytes: ...


def rate_converter(in_rate: int, out_rate: int) -> RateConverter:
    """The streaming converter with the least delay for these rates."""
    if out_rate > in_rate and out_rate % in_rate == 0:
        return Interpolator(in_rate, out_rate // in_rate)
    if in_rate > out_rate and in_rate % out_rate == 0:
        return Decimator(in_rate, in_rate // out_rate)
    return Resampler(in_rate, out_rate)


class Direction:
    """One way of the bridge: ``source`` wire bytes → ``target`` wire bytes."""

    def __init__(self, source: LegFormat, target: LegFormat) -> None:
        self.source = source
        self.target = target
        self._aligner = SampleAligner()
        self._resampler = rate_converter(source.rate, target.rate)

    def convert(self, data: bytes) -> bytes:
        pcm = decode_ulaw(data) if self.source.encoding == "ulaw" else self._aligner.feed(data)
        pcm = self._resampler.process(pcm)
        return encode_ulaw(pcm) if self.target.encoding == "ulaw" else pcm


class Bridge:
    """Caller ⇄ human audio; ``to_human`` and ``to_caller`` keep separate state."""

    def __init__(
        self,
        caller: LegFormat,
        human: LegFormat,
        *,
        caller_out: LegFormat | None = None,
        human_out: LegFormat | None = None,
    ) -> None:
        """``caller``/``human`` are what each leg sends; ``*_out`` what it takes when
        that differs (a browser sending 48 kHz and playing 24 kHz)."""
        self.caller = caller
        self.human = human
        self.to_human = Direction(caller, human_out or human)
        self.to_caller = Direction(human, caller_out or caller)
        self.heard_caller = False  # audio has flowed caller → human
        self.heard_human = False

    def from_caller(self, data: bytes) -> bytes:
        self.heard_caller = self.heard_caller or bool(data)
        return self.to_human.convert(data)

    def from_human(self, data: bytes) -> bytes:
        self.heard_human = self.heard_human or bool(data)
        return self.to_caller.convert(data)

    @property
    def flowing(self) -> bool:
        """Audio has gone both ways: the transfer may be marked ``joined``."""
        return self.heard_caller and self.heard_human
