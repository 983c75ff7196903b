"""``parley say`` and ``parley transcribe`` with the real espeak-ng and pocketsphinx,
in process through ``parley.cli.main`` and as the installed ``parley`` command."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from parley.audio import read_wav, write_wav
from parley.cli import main

PARLEY = Path(sys.executable).with_name("parley")


def test_say_writes_a_wav_that_transcribe_reads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "parking.wav"
    assert main(["say", "is there parking", "-o", str(out)]) == 0
    audio = read_wav(out)
    assert audio.sample_rate == 22050 and 0.5 < audio.duration_s < 3.0
    assert f"wrote {out}" in capsys.readouterr().err
    assert main(["transcribe", str(out), "--agent", "demo"]) == 0
    assert capsys.readouterr().out == "is there parking\n"


def test_say_voice_rate_and_sample_rate(tmp_path: Path) -> None:
    slow, fast = tmp_path / "slow.wav", tmp_path / "fast.wav"
    assert main(["say", "where are you", "-o", str(slow), "--rate", "120", "--voice", "en"]) == 0
    assert (
        main(["say", "where are you", "-o", str(fast), "--rate", "300", "--sample-rate", "16000"])
        == 0
    )
    slow_audio, fast_audio = read_wav(slow), read_wav(fast)
    assert fast_audio.sample_rate == 16000
    assert slow_audio.duration_s > 1.5 * fast_audio.duration_s


def test_installed_command_pipes_speech_into_transcribe(tmp_path: Path) -> None:
    said = subprocess.run(
        [str(PARLEY), "say", "-"], input=b"do you have vegetarian dishes",
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    assert said.stdout[:4] == b"RIFF" and read_wav(said.stdout).duration_s > 1.0
    heard = subprocess.run(
        [str(PARLEY), "transcribe", "-"], input=said.stdout,
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    assert heard.stdout.decode() == "do you have vegetarian dishes\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["transcribe", "{tmp}/missing.wav"], "no such file"),
        (["transcribe", "{tmp}"], "not a file"),
        (["transcribe", "{tmp}/notes.txt"], "is not a WAV file"),
        (["transcribe", "{tmp}/eight-bit.wav"], "16-bit"),
        (["transcribe", "{tmp}/ok.wav", "--agent", "nobody"], "no agent named 'nobody'"),
        (["say", "   ", "-o", "{tmp}/x.wav"], "the text is empty"),
        (["say", "hi", "-o", "{tmp}/no/such/dir/x.wav"], "no directory"),
        (["say", "hi", "-o", "{tmp}"], "is a directory"),
        (["say", "hi", "-o", "{tmp}/x.wav", "--voice", "xx-nothing"], "has no voice"),
        (["say", "hi", "-o", "{tmp}/x.wav", "--rate", "2000"], "rate must be"),
        (["say", "hi", "-o", "{tmp}/x.wav", "--sample-rate", "100"], "--sample-rate"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (tmp_path / "notes.txt").write_text("not audio")
    (tmp_path / "eight-bit.wav").write_bytes(_eight_bit_wav())
    write_wav(tmp_path / "ok.wav", bytes(3200), 16000)
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"parley {args[0]}: ") and message in err, err
    assert not (tmp_path / "x.wav").exists()


def test_say_refuses_to_write_audio_to_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["say", "hello"]) == 2
    assert "use -o FILE" in capsys.readouterr().err


def _eight_bit_wav() -> bytes:
    body = bytes(800)
    header = struct.pack("<4sI4s", b"RIFF", 36 + len(body), b"WAVE")
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 8000, 8000, 1, 8)
    return header + fmt + struct.pack("<4sI", b"data", len(body)) + body
