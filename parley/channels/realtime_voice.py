"""Audio for ``/v1/realtime``: one ``VoiceSession`` per Realtime socket.

The voice session is Parley's, as on ``/v1/voice``: VAD, turn-taking, STT, one spoken
response at a time, barge-in. Its edges point at the Realtime state machine: every
``parley.events`` event goes to an ``EventSink`` that feeds ``rt.on_event``, and agent
audio leaves through an ``UnpacedOutput`` (as fast as TTS makes it, as OpenAI's server
does; the client paces playback and reports what it played with
``conversation.item.truncate``: a running response stops where the client is, a
stored message is cut to the words played).

What the session config decides (``VoiceShape``): input and output rates, hands-free or
push-to-talk (``turn_detection: null``), the stop silence (``silence_duration_ms``, or
``semantic_vad`` eagerness), the VAD threshold, the pre-roll (``prefix_padding_ms``) and
the output voice and speed (``realtime_tts``, where the agent's TTS engine can). A
change of shape rebuilds the voice session once it is quiet (no response running, no
utterance open). ``create_response: false`` and push-to-talk hold a finished utterance
until ``response.create`` asks for it (``RealtimeVoiceSession``).

Voice operations run one at a time, in the order the state machine asked for them
(``submit``), on one worker task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from parley.brain.client_tools import ClientTools
from parley.brain.core import Brain, UserInput
from parley.brain.turn_stream import TurnStream
from parley.channels.realtime_tts import session_tts
from parley.channels.services import Services
from parley.config import AgentSpec
from parley.events import Error, Event, Transcript
from parley.realtime.session_config import SessionConfig
from parley.voice.io import VoiceOptions
from parley.voice.response import Timings
from parley.voice.session import VoiceSession
from parley.voice.turn_taking import TurnTakingConfig
from parley.voice.turns import VoiceTurns
from parley.voice.unpaced import UnpacedOutput

log = logging.getLogger(__name__)

CHANNEL = "realtime"
DEFAULT_THRESHOLD = 0.5  # OpenAI's server_vad default: leave the agent's VAD as it is
DEFAULT_PREFIX_PADDING_MS = 300  # OpenAI's default, and Parley's pre-roll before the onset


@dataclass(frozen=True, slots=True)
class VoiceShape:
    """What a ``VoiceSession`` is built with; a change rebuilds it."""

    input_rate: int
    output_rate: int
    push_to_talk: bool
    stop_secs: float | None  # None: the agent's own (semantic_vad keeps its smart mode)
    silence: bool  # server_vad: a fixed silence ends the turn, as OpenAI
    activation: float | None  # the VAD threshold; None: the agent's
    voice: str | None = None  # audio.output.voice; None: the agent's (realtime_tts)
    speed: float = 1.0  # audio.output.speed
    prefix_padding_secs: float | None = None  # audio kept from before the onset; None: 0.3 s


def voice_shape(config: SessionConfig) -> VoiceShape:
    td = config.turn_detection
    rates, voice, speed = (config.input_rate, config.output_rate), config.voice, config.speed
    if td is None:
        return VoiceShape(*rates, True, None, False, None, voice, speed)
    stop = min(max(td.stop_secs, 0.05), 5.0)
    server = td.type == "server_vad"
    threshold = td.threshold if server and td.threshold != DEFAULT_THRESHOLD else None
    padding: float | None = None
    if server and td.prefix_padding_ms != DEFAULT_PREFIX_PADDING_MS:
        padding = td.prefix_padding_ms / 1000
    return VoiceShape(*rates, False, stop, server, threshold, voice, speed, padding)


def tuned_agent(agent: AgentSpec, shape: VoiceShape) -> AgentSpec:
    """The agent with its turn-taking set as the session config asks."""
    update: dict[str, Any] = {}
    if shape.stop_secs is not None:
        update["stop_secs"] = shape.stop_secs
    if shape.silence:
        update["turn_detection"] = "silence"
    if shape.activation is not None:
        base = TurnTakingConfig.from_voice_spec(agent.voice)
        activation = min(max(shape.activation, 0.05), 0.95)
        update["activation"] = activation
        update["deactivation"] = min(base.deactivation, activation * 0.7)
        update["echo_activation"] = max(base.echo_activation, activation)
    if shape.prefix_padding_secs is not None:
        update["prefix_padding_secs"] = shape.prefix_padding_secs
    if not update:
        return agent
    return agent.model_copy(update={"voice": agent.voice.model_copy(update=update)})


class RealtimeTurns(VoiceTurns):
    """``VoiceTurns`` that offer the client's function tools to the model."""

    def __init__(self, brain: Brain, session_id: str) -> None:
        super().__init__(brain, session_id, CHANNEL)
        self.client_tools = ClientTools()

    def user_turn(self, user: UserInput) -> TurnStream:
        return self.brain.user_turn(self.session_id, user, self.client_tools)

    def tool_outputs(self, outputs: list[tuple[str, str]], text: str) -> TurnStream:
        return self.brain.tool_outputs(
            self.session_id,
            outputs,
            channel=CHANNEL,
            client_tools=self.client_tools,
            user_text=text,
        )


class RealtimeVoiceSession(VoiceSession):
    """A ``VoiceSession`` that can hold a finished utterance for ``response.create``
    (push-to-talk, ``create_response: false``) instead of answering it at once.

    A ``response.create`` with nothing to answer (the committed audio was too short,
    or silent) calls ``nothing_heard``, so that the response fails instead of waiting
    for ever."""

    hold = False
    drafts_allowed = False  # held turns and client tools: a draft would not match
    held: list[tuple[UserInput, Timings | None]]
    wanted = False  # a response.create came before the utterance's transcript
    finishing = 0  # ended utterances whose final transcript has not come yet
    nothing_heard: Callable[[], None] = staticmethod(lambda: None)

    def utterance_ended(self, final: asyncio.Future[str]) -> None:
        self.finishing += 1
        super().utterance_ended(final)

    def transcribed(self, text: str) -> None:
        """A final transcript went out (an empty one is not answered)."""
        self.finishing = max(0, self.finishing - 1)
        if not text.strip() and self.wanted and not self.finishing:
            self.wanted = False
            self.nothing_heard()

    def user_turn(self, user: UserInput, timings: Timings | None = None) -> None:
        if not self.hold or self.wanted:
            self.wanted = False
            super().user_turn(user, timings)
        else:
            self.held.append((user, timings))

    def answer(self, user: UserInput) -> None:
        """Speak the answer to ``user`` now, whatever ``hold`` says."""
        super().user_turn(user)

    def answer_outputs(self, outputs: list[tuple[str, str]], text: str) -> None:
        """Speak the model's answer to the outputs of the client's tools."""
        turns = self.turns
        assert isinstance(turns, RealtimeTurns)
        self.responder.respond(lambda: turns.tool_outputs(outputs, text))

    def quiet(self) -> bool:
        """No response running or speaking and no utterance open: a rebuild loses nothing."""
        return self._quiet()

    def release(self) -> None:
        """``response.create`` for committed speech: answer what is held, or the next
        utterance when its transcript is not there yet."""
        if not self.held:
            if self.finishing:
                self.wanted = True
            else:
                self.nothing_heard()
            return
        held, self.held = self.held, []
        text = " ".join(user.text for user, _ in held)
        super().user_turn(UserInput(text, CHANNEL), held[-1][1])


class _Edges:
    """The voice session's event sink and the output's audio sink."""

    def __init__(
        self, on_event: Callable[[Event], None], on_audio: Callable[[bytes], None]
    ) -> None:
        self.on_event = on_event
        self.on_audio = on_audio
        self.session: RealtimeVoiceSession | None = None

    async def emit(self, event: Event) -> None:
        self.on_event(event)
        if isinstance(event, Transcript) and event.final and self.session is not None:
            self.session.transcribed(event.text)

    async def send_audio(self, pcm: bytes) -> None:
        self.on_audio(pcm)


class RealtimeVoice:
    """The voice session of one Realtime socket, (re)built for the session config."""

    def __init__(
        self,
        services: Services,
        session_id: str,
        agent: str,
        on_event: Callable[[Event], None],
        on_audio: Callable[[bytes], None],
        nothing_heard: Callable[[], None] = lambda: None,
    ) -> None:
        self.services = services
        self.nothing_heard = nothing_heard
        self.session_id = session_id
        self.agent = agent
        self.edges = _Edges(on_event, on_audio)
        self.session: RealtimeVoiceSession | None = None
        self.turns = RealtimeTurns(services.brain, session_id)
        self.output: UnpacedOutput | None = None
        self.shape: VoiceShape | None = None
        self.ptt_down = False
        self.jobs: asyncio.Queue[Callable[[], Awaitable[Any]] | None] = asyncio.Queue()
        self.worker = asyncio.create_task(self._work())

    def submit(self, job: Callable[[], Awaitable[Any]]) -> None:
        self.jobs.put_nowait(job)

    async def _work(self) -> None:
        while (job := await self.jobs.get()) is not None:
            try:
                await job()
            except Exception:
                log.exception("a realtime voice job of %s failed", self.session_id)
                self.edges.on_event(Error("internal_error", "the voice session failed"))

    async def configure(self, config: SessionConfig) -> RealtimeVoiceSession:
        """The voice session for ``config``: rebuilt when its shape changes, once it is
        quiet (a running response, or the user's open utterance, is never cut off: a
        later call rebuilds it)."""
        shape = voice_shape(config)
        session = self.session
        if session is None or (shape != self.shape and session.quiet()):
            if session is not None:
                await session.close()
            session = await self._build(shape)
        td = config.turn_detection
        session.hold = td is None or not td.create_response
        self.turns.client_tools = ClientTools.from_realtime(config.tools, config.tool_choice)
        return session

    async def _build(self, shape: VoiceShape) -> RealtimeVoiceSession:
        services = self.services
        options = VoiceOptions(
            input_rate=shape.input_rate,
            output_rate=shape.output_rate,
            mode="push_to_talk" if shape.push_to_talk else "hands_free",
            channel=CHANNEL,
        )
        self.output = UnpacedOutput(shape.output_rate, self.edges, services.clock)
        self.turns = RealtimeTurns(services.brain, self.session_id)
        agent = services.agents[self.agent]
        engines = await services.engine_hub.engines_for(self.agent)
        tts = await session_tts(engines.tts, agent, shape.voice, shape.speed)
        session = RealtimeVoiceSession(
            turns=self.turns,
            agent=tuned_agent(agent, shape),
            engines=engines if tts is engines.tts else replace(engines, tts=tts),
            events=self.edges,
            audio=self.output,
            options=options,
            clock=services.clock,
        )
        session.held = []
        session.nothing_heard = self.nothing_heard
        self.edges.session = session
        self.session, self.shape, self.ptt_down = session, shape, False
        await session.start()
        return session

    async def feed(self, config: SessionConfig, pcm: bytes) -> None:
        session = await self.configure(config)
        if config.turn_detection is None and not self.ptt_down:
            self.ptt_down = True
            await session.ptt(True)
        await session.feed_audio(pcm)

    async def commit(self, config: SessionConfig) -> None:
        session = await self.configure(config)
        if self.ptt_down:
            self.ptt_down = False
            await session.ptt(False)

    async def respond(self, config: SessionConfig, text: str, tools: ClientTools) -> None:
        """A typed turn whose answer is spoken."""
        session = await self.configure(config)
        self.turns.client_tools = tools
        session.answer(UserInput(text, CHANNEL))

    async def release(self, config: SessionConfig, tools: ClientTools) -> None:
        """``response.create`` for committed speech."""
        session = await self.configure(config)
        self.turns.client_tools = tools
        session.release()

    async def tool_outputs(
        self, config: SessionConfig, outputs: list[tuple[str, str]], text: str, tools: ClientTools
    ) -> None:
        """``response.create`` after ``function_call_output`` items: spoken."""
        session = await self.configure(config)
        self.turns.client_tools = tools
        session.answer_outputs(outputs, text)

    async def decide(self, config: SessionConfig, tool_call_id: str, approved: bool) -> None:
        (await self.configure(config)).decide(tool_call_id, approved, "user")

    def decided_elsewhere(self, tool_call_id: str) -> None:
        if self.session is not None:
            self.session.decided_elsewhere(tool_call_id)

    def notice(self, text: str) -> None:
        if self.session is not None:
            self.session.notice(text)

    async def interrupt(self, then: Callable[[], None]) -> None:
        if self.session is not None:
            await self.session.interrupt(notify=False)
        then()

    async def stop_at(self, audio_end_ms: int) -> None:
        """The running response was played to ``audio_end_ms`` (a truncate): it stops
        there, and its stored message holds what was played."""
        session = self.session
        if session is not None:
            session.client_played(audio_end_ms)
            await session.interrupt()

    async def played_out(self) -> None:
        """The client stopped playing an earlier response (a truncate after it ended
        or was interrupted): nothing of it is heard any more. Returns once a stop under
        way has stored its message."""
        session = self.session
        if session is not None and session.responder.response is None:  # never a newer one
            await session.interrupt(notify=False)
            if self.output is not None:
                self.output.clear(self.services.clock.monotonic())

    async def close(self) -> None:
        self.jobs.put_nowait(None)
        with contextlib.suppress(Exception):
            await self.worker
        if self.session is not None:
            await self.session.close()
