"""PCM16 helpers, resampling (soxr), G.711 μ-law/A-law and WAV files: pure functions and
small stateful stream objects, no I/O besides ``wav``'s file access.

Audio is PCM signed 16-bit little-endian mono everywhere in Parley.
"""

from parley.audio.g711 import decode_alaw, decode_ulaw, encode_alaw, encode_ulaw
from parley.audio.pcm import (
    FrameSplitter,
    SampleAligner,
    array_to_pcm,
    byte_count,
    duration_s,
    frame_bytes,
    pcm_to_array,
    rms,
    silence,
)
from parley.audio.resample import Resampler, resample
from parley.audio.wav import (
    WavAudio,
    WavFormatError,
    WavStreamDecoder,
    encode_wav,
    read_wav,
    write_wav,
)

__all__ = [
    "FrameSplitter",
    "Resampler",
    "SampleAligner",
    "WavAudio",
    "WavFormatError",
    "WavStreamDecoder",
    "array_to_pcm",
    "byte_count",
    "decode_alaw",
    "decode_ulaw",
    "duration_s",
    "encode_alaw",
    "encode_ulaw",
    "encode_wav",
    "frame_bytes",
    "pcm_to_array",
    "read_wav",
    "resample",
    "rms",
    "silence",
    "write_wav",
]
