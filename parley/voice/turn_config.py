"""Turn-taking configuration: hands-free or push-to-talk, silence or smart turn detection,
and the timings an agent's ``voice:`` section sets (see ``parley.voice.turn_taking``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from parley.voice.end_of_turn import EndOfTurnConfig

if TYPE_CHECKING:
    from parley.config import VoiceSpec

__all__ = ["Mode", "TurnDetection", "TurnTakingConfig"]


class Mode(enum.StrEnum):
    HANDS_FREE = "hands_free"
    PUSH_TO_TALK = "push_to_talk"


class TurnDetection(enum.StrEnum):
    SILENCE = "silence"  # a fixed stop_secs of silence ends the turn
    SMART = "smart"  # the end-of-turn detector decides (parley.voice.end_of_turn)


@dataclass(frozen=True, slots=True)
class TurnTakingConfig:
    start_secs: float = 0.2
    stop_secs: float = 0.5
    min_utterance_secs: float = 0.25
    activation: float = 0.5
    deactivation: float = 0.35
    echo_activation: float = 0.7
    barge_in_min_secs: float = 0.3
    barge_in_min_words: int = 0
    turn_detection: TurnDetection = TurnDetection.SMART
    max_stop_secs: float = 2.0
    # audio kept from before the speech onset and given to STT (a Realtime session's
    # prefix_padding_ms; an agent may set it as a voice: extra)
    prefix_padding_secs: float = 0.3

    def __post_init__(self) -> None:
        object.__setattr__(self, "turn_detection", TurnDetection(self.turn_detection))
        _require(self.max_stop_secs > 0, "max_stop_secs must be > 0")
        for name in ("start_secs", "min_utterance_secs", "barge_in_min_secs"):
            _require(getattr(self, name) >= 0, f"{name} must be >= 0")
        _require(self.prefix_padding_secs >= 0, "prefix_padding_secs must be >= 0")
        _require(self.stop_secs > 0, "stop_secs must be > 0")
        for name in ("activation", "deactivation", "echo_activation"):
            _require(0.0 < getattr(self, name) <= 1.0, f"{name} must be in (0, 1]")
        _require(self.deactivation <= self.activation, "deactivation must be <= activation")
        _require(self.activation <= self.echo_activation, "echo_activation must be >= activation")
        _require(self.barge_in_min_words >= 0, "barge_in_min_words must be >= 0")

    @classmethod
    def from_voice_spec(cls, spec: VoiceSpec) -> TurnTakingConfig:
        """From an agent's ``voice:`` section; the thresholds may be set there as extras
        (``activation``, ``deactivation``, ``echo_activation``)."""
        extras = spec.model_extra or {}
        default = cls()
        return cls(
            start_secs=spec.start_secs,
            stop_secs=spec.stop_secs,
            min_utterance_secs=spec.min_utterance_secs,
            barge_in_min_secs=spec.barge_in_min_secs,
            barge_in_min_words=spec.barge_in_min_words,
            activation=_number(extras, "activation", default.activation),
            deactivation=_number(extras, "deactivation", default.deactivation),
            echo_activation=_number(extras, "echo_activation", default.echo_activation),
            turn_detection=TurnDetection(spec.turn_detection),
            max_stop_secs=spec.max_stop_secs,
            prefix_padding_secs=_number(extras, "prefix_padding_secs", default.prefix_padding_secs),
        )

    def end_of_turn_config(self) -> EndOfTurnConfig:
        """The detector's waits for this configuration (smart mode)."""
        base = EndOfTurnConfig()
        longest = max(self.max_stop_secs, self.stop_secs)  # never shorter than silence mode
        return EndOfTurnConfig(
            complete_secs=min(base.complete_secs, self.stop_secs),
            stop_secs=self.stop_secs,
            incomplete_secs=min(base.incomplete_secs, longest),
            max_stop_secs=longest,
        )


def _number(extras: dict[str, Any], name: str, default: float) -> float:
    value = extras.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"turn-taking config: {name} must be a number, got {value!r}")
    return float(value)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f"turn-taking config: {message}")
