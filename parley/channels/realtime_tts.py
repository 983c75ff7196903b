"""``audio.output.voice`` and ``audio.output.speed`` of a Realtime session, on the agent's TTS.

Where the agent's TTS engine can honour them cheaply, a Realtime session speaks with
the voice and speed it asked for; elsewhere the agent's own voice speaks.

- espeak-ng: ``voice`` is an espeak voice name (``en-us``, ``en-us+f3``, ``fr``, …),
  used when espeak knows it, or one of OpenAI's voice names, mapped to a fixed espeak
  variant of the agent's language (``OPENAI_VOICE_VARIANTS``: ``coral`` on an ``en-us``
  agent speaks ``en-us+f3``); another name leaves the agent's voice. ``speed`` scales
  the agent's rate (words per minute, kept within espeak's 80–450).
- the OpenAI-compatible HTTP TTS (``tts: http``): ``voice`` goes to its ``voice``
  parameter as given; ``speed`` is not applied.
- other engines (piper, fake, a fallback chain): neither is applied.
"""

from __future__ import annotations

import logging

from parley.config import AgentSpec
from parley.engines.base import TTS, EngineUnavailable
from parley.engines.espeak import MAX_RATE, MIN_RATE, EspeakTTS
from parley.engines.http_tts import HttpTTS

log = logging.getLogger(__name__)

# OpenAI's Realtime voices → an espeak-ng variant (female f1–f5, male m1–m7).
OPENAI_VOICE_VARIANTS = {
    "alloy": "f1",
    "ash": "m3",
    "ballad": "m5",
    "cedar": "m4",
    "coral": "f3",
    "echo": "m1",
    "marin": "f2",
    "sage": "f4",
    "shimmer": "f5",
    "verse": "m2",
}


def espeak_voice(agent_voice: str, requested: str) -> str:
    """The espeak voice for a requested name: an OpenAI name becomes a variant of the
    agent's language; any other name is taken as an espeak voice name."""
    variant = OPENAI_VOICE_VARIANTS.get(requested.lower())
    if variant is None:
        return requested
    return f"{agent_voice.split('+', 1)[0]}+{variant}"


def espeak_rate(agent_rate: int, speed: float) -> int:
    return min(max(round(agent_rate * speed), MIN_RATE), MAX_RATE)


async def session_tts(tts: TTS, agent: AgentSpec, voice: str | None, speed: float) -> TTS:
    """The TTS a Realtime session speaks with (``tts`` itself when nothing applies)."""
    if isinstance(tts, EspeakTTS):
        name = espeak_voice(tts.voice, voice) if voice else tts.voice
        rate = espeak_rate(agent.voice.rate, speed)
        if (name, rate) == (tts.voice, tts.rate):
            return tts
        try:
            chosen = EspeakTTS(name, rate)
            await chosen.check()
        except (ValueError, EngineUnavailable) as exc:
            log.info("realtime voice %r not used (%s); the agent's voice speaks", voice, exc)
            return EspeakTTS(tts.voice, rate) if rate != tts.rate else tts
        return chosen
    if isinstance(tts, HttpTTS) and voice and voice != tts.voice:
        return tts.with_voice(voice)
    return tts
