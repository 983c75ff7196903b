"""The voice session of a ``brain: realtime`` agent, built for a transport.

Every transport that makes a ``VoiceSession`` asks ``voice_session_for`` instead: a
cascaded agent gets the STT → brain → TTS session, a speech-to-speech agent an
``S2SVoiceSession`` with its own upstream connection (``engines.s2s`` and the
``PARLEY_GEMINI_*`` / ``PARLEY_OPENAI_*`` settings), its history and tools read at
connect, and the one termination path (``ERROR``) when the upstream cannot go on.
"""

from __future__ import annotations

from parley.brain.realtime_turns import RealtimeTurns, upstream_config
from parley.channels.services import Services
from parley.clock import Clock
from parley.engines.base import EngineSet
from parley.s2s.base import S2SConfig
from parley.s2s.factory import build_upstream
from parley.voice.io import AudioOutput, EventSink, VoiceOptions
from parley.voice.s2s_session import S2SVoiceSession
from parley.voice.session import VoiceSession
from parley.voice.turns import VoiceTurns

__all__ = ["voice_session_for"]


def voice_session_for(
    services: Services,
    *,
    session_id: str,
    agent_name: str,
    engines: EngineSet,
    events: EventSink,
    audio: AudioOutput,
    options: VoiceOptions,
    clock: Clock | None = None,
) -> VoiceSession:
    clock = clock or services.clock
    brain = services.brain
    agent = services.agents[agent_name]
    turns = VoiceTurns(brain, session_id, options.channel)
    if brain.runtimes[agent_name].brain_kind != "realtime":
        return VoiceSession(
            turns=turns,
            agent=agent,
            engines=engines,
            events=events,
            audio=audio,
            options=options,
            clock=clock,
        )

    async def config() -> S2SConfig:
        return await upstream_config(brain, session_id)

    async def fatal(reason: str) -> None:
        await services.lifecycle.end(session_id, reason, "the speech model upstream failed")

    return S2SVoiceSession(
        turns=turns,
        realtime=RealtimeTurns(brain, session_id, options.channel),
        upstream=build_upstream(agent.engines["s2s"], services.settings),
        config=config,
        agent=agent,
        engines=engines,
        events=events,
        audio=audio,
        options=options,
        clock=clock,
        on_fatal=fatal,
    )
