"""The voice loop: pure (sans-I/O) cores here, the async session that drives them beside.

Pure parts, importable without asyncio: ``turn_taking`` (when the user's turn starts
and ends, push-to-talk), ``end_of_turn`` (how long a pause must be, from the transcript
and an audio model), ``barge_in`` (when user speech may interrupt the agent),
``false_interruption`` (pause the agent on a sound, then resume or cut), ``chunker``
(LLM deltas → speakable sentences) and ``playout`` (paced output, pauses and what was
actually heard).

The async side: ``session.VoiceSession`` (one voice attachment, transport-neutral)
built from ``input.VoiceInput``, ``responder.Responder`` (with ``response.Response``)
and ``turns.VoiceTurns`` (the brain adapter); its edges are in ``io`` (``EventSink``,
``AudioOutput``), with ``pump.AudioPump`` (push-paced) and ``unpaced.UnpacedOutput``.
"""

from __future__ import annotations

from parley.voice.barge_in import AgentState, BargeIn, BargeInError, BargeInPolicy
from parley.voice.chunker import SentenceChunker, speakable
from parley.voice.playout import Playout
from parley.voice.turn_taking import (
    Mode,
    SpeechStarted,
    SpeechStopped,
    TurnState,
    TurnTaking,
    TurnTakingConfig,
    TurnTakingError,
    TurnTakingEvent,
    UtteranceDiscarded,
    UtteranceEnded,
)

__all__ = [
    "AgentState",
    "BargeIn",
    "BargeInError",
    "BargeInPolicy",
    "Mode",
    "Playout",
    "SentenceChunker",
    "SpeechStarted",
    "SpeechStopped",
    "TurnState",
    "TurnTaking",
    "TurnTakingConfig",
    "TurnTakingError",
    "TurnTakingEvent",
    "UtteranceDiscarded",
    "UtteranceEnded",
    "speakable",
]
