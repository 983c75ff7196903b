"""``parley say`` and ``parley transcribe``: the embedded speech engines from a shell.

* ``parley say "text" -o out.wav [--voice en-us] [--rate 175] [--sample-rate N]``
  speaks with espeak-ng (in process) and writes a PCM16 mono WAV (22050 Hz unless
  ``--sample-rate``). Without ``-o`` the WAV goes to stdout, unless stdout is a
  terminal. ``-`` as the text reads it from stdin.
* ``parley transcribe in.wav [--agent demo]`` prints what was said in a PCM16 WAV
  (any rate, mono or stereo), recognised with that agent's STT — for pocketsphinx,
  with the agent's own domain language model. ``-`` reads the WAV from stdin.

Exit status: 0 done, 2 bad input (missing or invalid file, unknown voice or agent,
bad option), 1 an engine failed.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import sys
from pathlib import Path
from typing import Any

from parley.audio.resample import resample
from parley.audio.wav import WavAudio, WavFormatError, encode_wav, read_wav
from parley.config import ConfigError, load_agents, load_settings
from parley.engines.base import STT, TTS, EngineError, EngineUnavailable

log = logging.getLogger(__name__)

RATES = range(8000, 48001)


class UsageError(Exception):
    """Bad input from the user: printed, exit status 2."""


def add_commands(sub: Any) -> None:
    """Register ``say`` and ``transcribe`` on the ``parley`` sub-command parser."""
    say = sub.add_parser("say", help="speak text with espeak-ng into a WAV file")
    say.add_argument("text", help='the text to speak ("-" reads it from stdin)')
    say.add_argument("-o", "--output", help="WAV file to write (default: stdout)")
    say.add_argument("--voice", default="en-us", help="espeak-ng voice (en-us, en, en-us+f3, …)")
    say.add_argument("--rate", type=int, default=175, help="words per minute, 80–450")
    say.add_argument("--sample-rate", type=int, help="resample to this rate (default 22050)")
    say.set_defaults(fn=_guarded(_say))
    transcribe = sub.add_parser("transcribe", help="print the words spoken in a WAV file")
    transcribe.add_argument("wav", help='a PCM16 WAV file ("-" reads it from stdin)')
    transcribe.add_argument("--agent", default="demo", help="whose recogniser to use")
    transcribe.set_defaults(fn=_guarded(_transcribe))


def _guarded(command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            code: int = command(args)
        except (UsageError, ConfigError) as exc:
            print(f"parley {args.command}: {exc}", file=sys.stderr)
            return 2
        except EngineError as exc:
            print(f"parley {args.command}: {exc}", file=sys.stderr)
            return 1
        return code

    return run


# --- say ---------------------------------------------------------------------------------


def _say(args: argparse.Namespace) -> int:
    from parley.engines.espeak import EspeakTTS, close_runtime

    text = sys.stdin.read() if args.text == "-" else args.text
    if not text.strip():
        raise UsageError("nothing to say: the text is empty")
    if args.sample_rate is not None and args.sample_rate not in RATES:
        raise UsageError(f"--sample-rate must be from 8000 to 48000, got {args.sample_rate}")
    target = _output(args.output)
    try:
        tts = EspeakTTS(args.voice, args.rate)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        pcm = asyncio.run(_collect(tts, text))
    except EngineUnavailable as exc:
        if exc.code == "unknown_voice":
            raise UsageError(str(exc)) from None
        raise
    finally:
        close_runtime()
    rate = tts.capabilities.sample_rate
    if args.sample_rate is not None and args.sample_rate != rate:
        pcm, rate = resample(pcm, rate, args.sample_rate), args.sample_rate
    wav = encode_wav(pcm, rate)
    if target is None:
        sys.stdout.buffer.write(wav)
        sys.stdout.buffer.flush()
        return 0
    target.write_bytes(wav)
    seconds = len(pcm) / 2 / rate
    print(f"wrote {target}: {seconds:.2f} s of speech at {rate} Hz", file=sys.stderr)
    return 0


def _output(option: str | None) -> Path | None:
    """Where ``say`` writes: a file, or None for stdout (refused when it is a terminal)."""
    if option is None or option == "-":
        if sys.stdout.isatty():
            raise UsageError("refusing to write audio to a terminal: use -o FILE or redirect")
        return None
    path = Path(option)
    if path.is_dir():
        raise UsageError(f"{path} is a directory; give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: no directory {path.parent}")
    return path


async def _collect(tts: TTS, text: str) -> bytes:
    return b"".join([chunk async for chunk in tts.synthesize(text)])


# --- transcribe ----------------------------------------------------------------------------


def _read_input(name: str) -> WavAudio:
    if name == "-":
        data = sys.stdin.buffer.read()
        label = "stdin"
    else:
        path = Path(name)
        if not path.exists():
            raise UsageError(f"no such file: {path}")
        if not path.is_file():
            raise UsageError(f"not a file: {path}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from None
        label = str(path)
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise UsageError(f"{label} is not a WAV file")
    try:
        return read_wav(data)
    except WavFormatError as exc:
        raise UsageError(f"{label}: {exc}") from None


def _transcribe(args: argparse.Namespace) -> int:
    from parley.engines.factory import build_stt

    audio = _read_input(args.wav)
    agents = load_agents(load_settings().agents_dir)
    agent = agents.get(args.agent)
    if agent is None:
        raise UsageError(f"no agent named {args.agent!r} (agents: {', '.join(sorted(agents))})")
    logging.basicConfig(level=logging.ERROR, format="parley: %(message)s")
    stt = build_stt(agent)
    try:
        pcm = resample(audio.pcm, audio.sample_rate, stt.capabilities.sample_rate)
        text = asyncio.run(_recognise(stt, pcm))
    finally:
        close = getattr(stt, "close", None)
        if callable(close) and not inspect.iscoroutinefunction(close):
            close()
    print(text)
    return 0


async def _recognise(stt: STT, pcm: bytes) -> str:
    return (await stt.transcribe(pcm)).strip()
