"""The Realtime session configuration: ``session.update`` in, the session object out (pure).

``parse_session`` validates a GA ``session`` object into a ``SessionPatch``: the fields
Parley honours as typed values, and the dotted names of the valid fields it accepts but
cannot honour (``ignored``; they are echoed back unchanged and listed in
docs/REALTIME.md). ``SessionConfig.apply(patch)`` gives the new configuration and
``SessionConfig.to_wire(...)`` the ``session`` object of ``session.created`` /
``session.updated``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from parley.realtime.validate import ProtocolError, Reader

Modality = Literal["text", "audio"]

# Parley's turn-taking silence (seconds) for semantic_vad's eagerness.
EAGERNESS_STOP_SECS = {"low": 1.0, "medium": 0.6, "auto": 0.6, "high": 0.3}
# Echoed back as given, never acted on.
_ECHO_ONLY = ("include", "tracing", "truncation", "prompt", "reasoning", "parallel_tool_calls")


@dataclass(frozen=True, slots=True)
class TurnDetection:
    """``server_vad`` or ``semantic_vad``; ``None`` in the config means push-to-talk
    (the client commits the buffer)."""

    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    idle_timeout_ms: int | None = None
    create_response: bool = True
    interrupt_response: bool = True
    eagerness: str = "auto"

    @property
    def stop_secs(self) -> float:
        """Silence that ends the user's turn in Parley's turn-taking."""
        if self.type == "semantic_vad":
            return EAGERNESS_STOP_SECS[self.eagerness]
        return self.silence_duration_ms / 1000

    def to_wire(self) -> dict[str, Any]:
        common = {
            "type": self.type,
            "create_response": self.create_response,
            "interrupt_response": self.interrupt_response,
        }
        if self.type == "semantic_vad":
            return {**common, "eagerness": self.eagerness}
        return {
            **common,
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
            "idle_timeout_ms": self.idle_timeout_ms,
        }


@dataclass(frozen=True, slots=True)
class SessionPatch:
    values: Mapping[str, Any] = field(default_factory=dict)  # SessionConfig field → value
    ignored: tuple[str, ...] = ()


def format_rate(audio_format: str) -> int:
    """Sample rate of a Realtime audio format: PCM16 is 24 kHz, G.711 is 8 kHz."""
    return 24000 if audio_format == "audio/pcm" else 8000


def format_wire(audio_format: str) -> dict[str, Any]:
    if audio_format == "audio/pcm":
        return {"type": "audio/pcm", "rate": 24000}
    return {"type": audio_format}


@dataclass(frozen=True, slots=True)
class SessionConfig:
    model: str = ""
    instructions: str | None = None  # None: the agent's own instructions
    output_modalities: tuple[Modality, ...] = ("audio",)
    input_format: str = "audio/pcm"
    output_format: str = "audio/pcm"
    turn_detection: TurnDetection | None = TurnDetection()
    transcription: Mapping[str, Any] | None = None  # None: no input transcription events
    noise_reduction: Mapping[str, Any] | None = None
    voice: str | None = None  # None: the agent's voice
    speed: float = 1.0
    tools: tuple[Mapping[str, Any], ...] = ()
    tool_choice: str | Mapping[str, Any] = "auto"
    max_output_tokens: int | Literal["inf"] = "inf"
    echo: Mapping[str, Any] = field(default_factory=dict)  # ignored fields, as given

    @property
    def input_rate(self) -> int:
        return format_rate(self.input_format)

    @property
    def output_rate(self) -> int:
        return format_rate(self.output_format)

    @property
    def audio_out(self) -> bool:
        return "audio" in self.output_modalities

    def apply(self, patch: SessionPatch) -> SessionConfig:
        values = dict(patch.values)
        echo = values.pop("echo", None)
        if echo:
            values["echo"] = {**self.echo, **echo}
        return dataclasses.replace(self, **values)

    def to_wire(self, session_id: str, expires_at: int | None = None) -> dict[str, Any]:
        """The GA ``session`` object (``RealtimeSessionCreateResponse``)."""
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": session_id,
            "model": self.model,
            "output_modalities": list(self.output_modalities),
            "instructions": self.instructions or "",
            "audio": {
                "input": {
                    "format": format_wire(self.input_format),
                    "transcription": None
                    if self.transcription is None
                    else dict(self.transcription),
                    "noise_reduction": self.noise_reduction,
                    "turn_detection": None
                    if self.turn_detection is None
                    else self.turn_detection.to_wire(),
                },
                "output": {
                    "format": format_wire(self.output_format),
                    "voice": self.voice or "default",
                    "speed": self.speed,
                },
            },
            "tools": [dict(t) for t in self.tools],
            "tool_choice": self.tool_choice,
            "max_output_tokens": self.max_output_tokens,
            "expires_at": expires_at,
            "tracing": None,
            "truncation": "auto",
            "prompt": None,
            "include": None,
            **self.echo,
        }


def _turn_detection(r: Reader) -> TurnDetection:
    kind = r.enum("type", ("server_vad", "semantic_vad"), required=True)
    common: dict[str, Any] = {
        "create_response": r.boolean("create_response"),
        "interrupt_response": r.boolean("interrupt_response"),
    }
    if kind == "semantic_vad":
        common["eagerness"] = r.enum("eagerness", ("low", "medium", "high", "auto"))
    else:
        common |= {
            "threshold": r.number("threshold", minimum=0.0, maximum=1.0),
            "prefix_padding_ms": r.integer("prefix_padding_ms", minimum=0, maximum=10_000),
            "silence_duration_ms": r.integer("silence_duration_ms", minimum=0, maximum=10_000),
            "idle_timeout_ms": r.integer("idle_timeout_ms", minimum=5_000, maximum=30_000),
        }
    given = {k: v for k, v in common.items() if v is not None}
    return TurnDetection(type=kind, **given)  # type: ignore[arg-type]


def _audio_input(r: Reader, values: dict[str, Any], ignored: list[str]) -> None:
    fmt = r.audio_format("format")
    if fmt is not None:
        values["input_format"] = fmt
    if "turn_detection" in r:
        td = r.object("turn_detection")
        values["turn_detection"] = None if td is None else _turn_detection(td)
    if "transcription" in r:
        tr = r.object("transcription")
        if tr is not None:
            for key in ("model", "language", "prompt", "delay"):
                tr.string(key)
            tr.allow("keywords", "languages")
            ignored.extend(tr.path(k) for k in tr.data)
        values["transcription"] = None if tr is None else dict(tr.data)
    if "noise_reduction" in r:
        nr = r.object("noise_reduction")
        if nr is not None:
            nr.enum("type", ("near_field", "far_field"))
            nr.number("strength", minimum=0.0, maximum=1.0)
        values["noise_reduction"] = None if nr is None else dict(nr.data)
        ignored.append(r.path("noise_reduction"))


def _audio_output(r: Reader, values: dict[str, Any]) -> None:
    fmt = r.audio_format("format")
    if fmt is not None:
        values["output_format"] = fmt
    voice = r.voice("voice")
    if voice is not None:
        values["voice"] = voice
    speed = r.number("speed", minimum=0.25, maximum=1.5)
    if speed is not None:
        values["speed"] = speed


def parse_session(r: Reader) -> SessionPatch:
    """Validate one GA ``session`` object (see the module docstring)."""
    values: dict[str, Any] = {}
    ignored: list[str] = []
    kind = r.enum("type", ("realtime", "transcription"))
    if kind == "transcription":
        raise ProtocolError(
            "invalid_value",
            "Parley serves realtime sessions only; 'transcription' sessions are not supported.",
            r.path("type"),
        )
    if r.string("model") is not None:
        ignored.append(r.path("model"))  # the agent is chosen once, at connect
    for key in ("instructions",):
        value = r.string(key)
        if value is not None:
            values[key] = value
    modalities = r.modalities("output_modalities")
    if modalities is not None:
        values["output_modalities"] = modalities
    audio = r.object("audio")
    if audio is not None:
        audio.allow("input", "output")
        audio_in = audio.object("input")
        if audio_in is not None:
            _audio_input(audio_in, values, ignored)
        audio_out = audio.object("output")
        if audio_out is not None:
            _audio_output(audio_out, values)
    tools = r.tools("tools")
    if tools is not None:
        values["tools"] = tools
        ignored.extend(
            r.path(f"tools[{i}]")
            for i, t in enumerate(r.data["tools"])
            if isinstance(t, dict) and t.get("type") == "mcp"
        )
    choice = r.tool_choice("tool_choice")
    if choice is not None:
        values["tool_choice"] = choice
    max_tokens = r.max_tokens("max_output_tokens")
    if max_tokens is not None:
        values["max_output_tokens"] = max_tokens
        ignored.append(r.path("max_output_tokens"))
    echo = {key: r.data[key] for key in _ECHO_ONLY if key in r}
    r.allow(*_ECHO_ONLY)
    if echo:
        values["echo"] = echo
        ignored.extend(r.path(key) for key in echo)
    return SessionPatch(values, tuple(ignored))
