"""``EngineHub``: builds each agent's speech engines once and shares them.

An agent picks engines by name in its ``voice:`` section (``stt``, ``tts``, ``vad``)
or its ``engines:`` map (which wins). Heavy things — the pocketsphinx language
model, VAD weights — are built once per agent (in a thread, never on the event
loop) and shared by every connection; each connection opens its own streams.

Names per kind (options are extra ``voice:`` keys):

- stt: ``pocketsphinx`` (default), ``whisper`` (``whisper_model_dir``), ``http``
  (``stt_base_url``, ``stt_model``, ``stt_api_key``), ``fake``
- tts: ``espeak`` (default), ``piper`` (``piper_model``), ``http`` (``tts_base_url``,
  ``tts_model``, ``tts_voice``, ``tts_api_key``; ``tts_fallback: espeak``), ``fake``
- vad: ``silero`` (default; ``vad_gate_rms``), ``silero_onnx`` (``silero_onnx_model``),
  ``energy`` (``energy_threshold``), ``fake_energy``
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parley.config import AgentSpec
from parley.engines.base import STT, TTS, VAD, EndOfTurnModel, EngineSet, EngineUnavailable

if TYPE_CHECKING:
    from parley.engines.speech_corpus import SpeechCorpus

log = logging.getLogger(__name__)


def engine_name(agent: AgentSpec, kind: str) -> str:
    engines: dict[str, str] = dict(getattr(agent, "engines", {}) or {})
    return engines.get(kind) or str(getattr(agent.voice, kind))


def _option(agent: AgentSpec, key: str, default: Any = None) -> Any:
    extra = agent.voice.model_extra or {}
    return extra.get(key, default)


def _required(agent: AgentSpec, key: str) -> Any:
    value = _option(agent, key)
    if value is None:
        raise EngineUnavailable(f"agent {agent.name}: voice.{key} is required for this engine")
    return value


def speech_phrases(agent: AgentSpec) -> list[str]:
    """What users say to this agent: the agent's phrases plus its rules' examples."""
    phrases = list(agent.voice.phrases)
    for rule in agent.rules:
        phrases.extend(rule.examples)
    return phrases


def build_stt(agent: AgentSpec) -> STT:
    name = engine_name(agent, "stt")
    if name == "pocketsphinx":
        from parley.engines.pocketsphinx_stt import PocketsphinxSTT

        return PocketsphinxSTT(speech_phrases(agent) or None)
    if name == "whisper":
        from parley.engines.whisper_stt import WhisperSTT
        from parley.engines.wrappers_stt import VADChunkedSTT

        return VADChunkedSTT(WhisperSTT(_required(agent, "whisper_model_dir")))
    if name == "http":
        from parley.engines.http_stt import HttpSTT
        from parley.engines.wrappers_stt import VADChunkedSTT

        return VADChunkedSTT(
            HttpSTT(
                _required(agent, "stt_base_url"),
                _option(agent, "stt_model", "whisper-1"),
                _option(agent, "stt_api_key"),
            )
        )
    if name == "fake":
        from parley.engines.fake import FakeSTT

        return FakeSTT()
    raise EngineUnavailable(f"agent {agent.name}: unknown stt engine {name!r}")


NARROWBAND_MAX_RATE = 8000


def is_narrowband(sample_rate: int) -> bool:
    """Telephone-band audio: nothing above 4 kHz to recognise."""
    return sample_rate <= NARROWBAND_MAX_RATE


def build_phone_stt(agent: AgentSpec, phrases: Sequence[str] = ()) -> STT:
    """pocketsphinx for 8 kHz speech with the phone-band transform. With ``phrases``
    (a few expected answers), a model of those alone; otherwise a language model of the
    agent's whole corpus (:func:`speech_corpus`), which generalises past its phrases
    (held-out sentences: fewer errors at 8 kHz) at some cost on the listed phrases; the
    16 kHz engine keeps the sharper phrase-only model."""
    from parley.engines.pocketsphinx_stt import PocketsphinxSTT

    if phrases:
        return PocketsphinxSTT(list(phrases), phone_grade=True)
    corpus = speech_corpus(agent).weighted() if speech_phrases(agent) else None
    return PocketsphinxSTT(corpus, phone_grade=True)


def build_tts(agent: AgentSpec) -> TTS:
    name = engine_name(agent, "tts")
    tts: TTS
    if name == "espeak":
        from parley.engines.espeak import EspeakTTS

        return EspeakTTS(agent.voice.voice, agent.voice.rate)
    if name == "piper":
        from parley.engines.piper_tts import PiperTTS

        tts = PiperTTS(_required(agent, "piper_model"))
    elif name == "http":
        from parley.engines.http_tts import HttpTTS

        tts = HttpTTS(
            _required(agent, "tts_base_url"),
            _option(agent, "tts_model", "tts-1"),
            _option(agent, "tts_voice", "alloy"),
            _option(agent, "tts_api_key"),
        )
    elif name == "fake":
        from parley.engines.fake import FakeTTS

        return FakeTTS()
    else:
        raise EngineUnavailable(f"agent {agent.name}: unknown tts engine {name!r}")
    if _option(agent, "tts_fallback") == "espeak":
        from parley.engines.espeak import EspeakTTS
        from parley.engines.wrappers_tts import FallbackTTS

        return FallbackTTS([tts, EspeakTTS(agent.voice.voice, agent.voice.rate)])
    return tts


def build_vad(agent: AgentSpec) -> VAD:
    name = engine_name(agent, "vad")
    if name == "silero":
        from parley.engines.silero_vad import SileroVAD

        return SileroVAD(gate_rms=float(_option(agent, "vad_gate_rms", 40.0)))
    if name == "silero_onnx":
        from parley.engines.silero_vad import OnnxSileroVAD

        return OnnxSileroVAD(_required(agent, "silero_onnx_model"))
    if name == "energy":
        from parley.engines.energy_vad import EnergyVAD

        return EnergyVAD(float(_option(agent, "energy_threshold", 100.0)))
    if name == "fake_energy":
        from parley.engines.fake import FakeEnergyVAD

        return FakeEnergyVAD()
    raise EngineUnavailable(f"agent {agent.name}: unknown vad engine {name!r}")


class EngineHub:
    """Engines per agent, built on first use (in a thread) and cached. The Smart Turn
    audio end-of-turn model, when installed, is loaded once per process and shared by
    every cascaded agent with ``turn_detection: smart`` (one ``SmartTurnBatcher``);
    never for a ``brain: realtime`` agent."""

    def __init__(
        self, agents: dict[str, AgentSpec], *, smart_turn_model: str | Path | None = None
    ) -> None:
        self.agents = agents
        self.smart_turn_model = smart_turn_model
        self._sets: dict[str, EngineSet] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._phone: dict[str, STT] = {}
        self._warming: dict[str, asyncio.Task[STT]] = {}
        self._end_of_turn: EndOfTurnModel | None = None
        self._end_of_turn_tried = False

    async def stt_for_rate(self, agent_name: str, sample_rate: int) -> STT:
        """The recogniser for audio that arrives at ``sample_rate``: narrowband input
        (≤ 8 kHz: phone calls, 8 kHz WAVs) gets the agent's phone-grade engine."""
        if is_narrowband(sample_rate):
            return await self.phone_stt(agent_name)
        return (await self.engines_for(agent_name)).stt

    async def phone_stt(self, agent_name: str) -> STT:
        """The embedded recogniser tuned for 8 kHz μ-law speech (pocketsphinx with
        ``phone_grade``); other engines (whisper, http) serve the phone unchanged."""
        if agent_name in self._phone:
            return self._phone[agent_name]
        agent = self.agents[agent_name]
        if engine_name(agent, "stt") != "pocketsphinx":
            return (await self.engines_for(agent_name)).stt
        lock = self._locks.setdefault(f"phone:{agent_name}", asyncio.Lock())
        async with lock:
            if agent_name not in self._phone:
                self._phone[agent_name] = await asyncio.to_thread(build_phone_stt, agent)
        return self._phone[agent_name]

    def warm_phone_stt(self, agent_name: str) -> None:
        """Start building the agent's phone-grade recogniser now, if it is not built
        (a carrier's webhook comes a moment before the call's media stream)."""
        if agent_name in self._phone or agent_name in self._warming:
            return
        task = asyncio.create_task(self.phone_stt(agent_name), name=f"warm-phone-stt:{agent_name}")
        self._warming[agent_name] = task

        def done(task: asyncio.Task[STT]) -> None:
            self._warming.pop(agent_name, None)
            if not task.cancelled() and (exc := task.exception()) is not None:
                log.warning("building the phone recogniser of %s failed: %s", agent_name, exc)

        task.add_done_callback(done)

    def warming(self, agent_name: str) -> asyncio.Task[STT] | None:
        """The build ``warm_phone_stt`` started, while it runs."""
        return self._warming.get(agent_name)

    def phone_stt_ready(self, agent_name: str) -> bool:
        return agent_name in self._phone

    async def close(self) -> None:
        """Stop the builds still running (at shutdown)."""
        tasks = list(self._warming.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def phone_answer_stt(self, agent_name: str, phrases: Sequence[str]) -> STT:
        """A phone-grade recogniser that expects one of a few answers (a dialled
        person's "connect" / "decline"): the embedded engine built for ``phrases``
        alone; other engines serve unchanged."""
        agent = self.agents[agent_name]
        if engine_name(agent, "stt") != "pocketsphinx":
            return (await self.engines_for(agent_name)).stt
        key = "answers:" + "|".join(phrases)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._phone:
                self._phone[key] = await asyncio.to_thread(build_phone_stt, agent, phrases)
        return self._phone[key]

    async def engines_for(self, agent_name: str) -> EngineSet:
        if agent_name in self._sets:
            return self._sets[agent_name]
        lock = self._locks.setdefault(agent_name, asyncio.Lock())
        async with lock:
            if agent_name not in self._sets:
                agent = self.agents[agent_name]
                engines = await asyncio.to_thread(self._build, agent)
                # a speech-to-speech agent's provider takes the turns: no model
                if agent.voice.turn_detection == "smart" and agent.brain != "realtime":
                    engines = replace(engines, end_of_turn=await self.end_of_turn())
                self._sets[agent_name] = engines
                log.info("speech engines ready for agent %s", agent_name)
        return self._sets[agent_name]

    async def end_of_turn(self) -> EndOfTurnModel | None:
        """The process's one Smart Turn batcher; None when no model file is found or
        onnxruntime is missing (smart mode then uses the transcript alone). A
        ``smart_turn_model`` setting naming a missing file raises ``EngineUnavailable``."""
        lock = self._locks.setdefault("end_of_turn", asyncio.Lock())
        async with lock:
            if not self._end_of_turn_tried:
                self._end_of_turn = await asyncio.to_thread(load_end_of_turn, self.smart_turn_model)
                self._end_of_turn_tried = True
        return self._end_of_turn

    @staticmethod
    def _build(agent: AgentSpec) -> EngineSet:
        return EngineSet(stt=build_stt(agent), tts=build_tts(agent), vad=build_vad(agent))


def load_end_of_turn(setting: str | Path | None) -> EndOfTurnModel | None:
    """Load Smart Turn v3 (blocking) and wrap it in a batcher; see ``EngineHub.end_of_turn``."""
    from parley.engines.smart_turn import SmartTurnBatcher, SmartTurnModel, find_model

    path = find_model(setting)
    if path is None:
        log.info("no Smart Turn model installed: smart turn detection uses the transcript")
        return None
    try:
        model = SmartTurnModel(path)
    except EngineUnavailable as exc:
        if setting:
            raise
        log.warning("Smart Turn model not used: %s", exc)
        return None
    log.info("Smart Turn end-of-turn model loaded from %s", path)
    return SmartTurnBatcher(model)


def speech_corpus(agent: AgentSpec) -> SpeechCorpus:
    """The language-model corpus of an agent file: its phrases (with class variants),
    the topics it knows about in caller sentence frames, and its own sentences."""
    from parley.engines.speech_corpus import build_corpus

    topics: list[str] = []
    qualities: list[str] = []
    text: list[str] = [agent.description, agent.instructions, agent.fallback]
    text += [agent.greeting or ""]
    said: list[str] = []  # what a conversational rule hears: alone, not in frames
    for rule in agent.rules:
        (topics if rule.tool else said).extend(rule.keywords)
        text += [rule.say or "", *rule.ask.values(), *rule.replies.values()]
    for faq in agent.faq:
        topics += [faq.topic, *faq.keywords]
        text.append(faq.answer)
    for dish in agent.menu:
        topics += [dish.name, *dish.subtitle.split(","), *dish.allergens]
        qualities += [*dish.allergens]
        qualities += [q for q, on in (("vegetarian", dish.vegetarian), ("vegan", dish.vegan),
                                      ("gluten free", dish.gluten_free)) if on]  # fmt: skip
        text.append(dish.description)
    for tool in agent.tools:
        topics += [tool.label or "", tool.name.replace("_", " ")]
        topics += _parameter_words(tool.parameters or {})
        text += [tool.filler or "", tool.approval_prompt or "", tool.description or ""]
        text += [tool.say or ""]
    return build_corpus([*speech_phrases(agent), *said], topics, qualities, text)


def _parameter_words(schema: dict[str, Any]) -> list[str]:
    """Property names and enum values of a JSON schema (``party_size`` → "party size")."""
    out: list[str] = []
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for name, sub in properties.items():
            out.append(str(name).replace("_", " "))
            if isinstance(sub, dict):
                out += [str(v) for v in sub.get("enum", []) if isinstance(v, str)]
                out += _parameter_words(sub)
    return out
