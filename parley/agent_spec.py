"""Agent-file models: what one ``agents/*.yaml`` file may say, validated by pydantic.

``AgentSpec`` is the whole file; the ``*Spec`` classes are its blocks (tools, rules,
voice, limits, context, on_end, venue, menu, faq, realtime). Reading and error
locations live in ``parley.agent_files``. Imports nothing of parley.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolSpec(_Strict):
    """One tool an agent may call. Python tools are found by name in the registry;
    a tool with ``url`` is an HTTP webhook tool declared entirely in YAML."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    requires_approval: bool = False
    filler: str | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=600)
    approval_prompt: str | None = None
    # webhook tools
    url: str | None = None
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    description: str | None = None
    parameters: dict[str, Any] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    # what customers see instead of the internal name ("Book a table"); default: the name
    label: str | None = None
    # the rules brain's reply after the tool ran: {field}s from the result and arguments
    say: str | None = None


_DAY_KEY = r"(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*"
_HOURS_VALUE = r"\d{1,2}:\d{2}\s*-\s*\d{1,2}:\d{2}(?:\s*,\s*\d{1,2}:\d{2}\s*-\s*\d{1,2}:\d{2})*"


class VenueSpec(_Strict):
    """The place an agent books for: time zone, opening hours and booking rules.

    ``hours`` maps a weekday (``monday`` or ``mon``), or a range of them
    (``tue-sun``), to ``"12:00-22:00"`` (several ranges: ``"12:00-15:00, 18:00-22:00"``)
    or ``closed``; a day left out is closed. Bookings are taken from opening time until
    ``last_booking_min`` minutes before closing, at least ``min_notice_min`` minutes
    ahead and at most ``book_ahead_days`` days ahead, for 1 to ``max_party_size``.
    """

    timezone: str = "UTC"
    hours: dict[str, str] = Field(default_factory=dict)
    last_booking_min: int = Field(default=60, ge=0, le=24 * 60)
    min_notice_min: int = Field(default=0, ge=0)
    book_ahead_days: int = Field(default=90, ge=1, le=3650)
    max_party_size: int = Field(default=20, ge=1, le=1000)
    address: str | None = None

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Europe/Amsterdam, UTC)") from None
        return value

    @field_validator("hours")
    @classmethod
    def _check_hours(cls, value: dict[str, str]) -> dict[str, str]:
        for key, hours in value.items():
            days = key.strip().lower()
            if not re.fullmatch(rf"{_DAY_KEY}(?:\s*-\s*{_DAY_KEY})?", days):
                raise ValueError(f"hours: {key!r} is not a weekday or a range like tue-sun")
            text = str(hours).strip().lower()
            if text != "closed" and not re.fullmatch(_HOURS_VALUE, text):
                raise ValueError(f"hours.{key}: {hours!r} is not like 12:00-22:00 or closed")
        return value


class DishSpec(_Strict):
    """One dish of the menu. ``allergens`` lists what it contains (e.g. nuts, dairy,
    gluten); ``allergens_listed: false`` says the list is not known to be complete."""

    name: str
    price: str | None = None
    subtitle: str = ""
    description: str = ""
    vegetarian: bool = False
    vegan: bool = False
    gluten_free: bool = False
    allergens: list[str] = Field(default_factory=list)
    allergens_listed: bool = True
    image: str | None = None


class FaqSpec(_Strict):
    """A question the rules brain answers from data: matched by keywords or patterns."""

    topic: str
    keywords: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    answer: str


class RuleSpec(_Strict):
    """One intent of the rules brain: matched by keywords or regex patterns.

    ``say`` is a reply template (``{slot}`` placeholders); ``tool`` calls a tool when
    every slot in ``needs`` is filled, otherwise ``ask`` holds the question per slot.
    ``replies`` overrides the brain's named phrasings (``parley/brain/rulebook.py``).
    """

    intent: str
    keywords: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    say: str | None = None
    tool: str | None = None
    needs: list[str] = Field(default_factory=list)
    ask: dict[str, str] = Field(default_factory=dict)
    examples: list[str] = Field(default_factory=list)
    replies: dict[str, str] = Field(default_factory=dict)

    @field_validator("patterns")
    @classmethod
    def _check_patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return value


class VoiceSpec(_Strict):
    model_config = ConfigDict(extra="allow", frozen=True)

    stt: str = "pocketsphinx"
    tts: str = "espeak"
    vad: str = "silero"
    voice: str = "en-us"
    rate: int = Field(default=175, ge=80, le=450)
    phrases: list[str] = Field(default_factory=list)
    stop_secs: float = Field(default=0.5, gt=0, le=5)
    start_secs: float = Field(default=0.2, ge=0, le=2)
    min_utterance_secs: float = Field(default=0.25, ge=0, le=5)
    barge_in_min_secs: float = Field(default=0.3, ge=0, le=5)
    barge_in_min_words: int = Field(default=0, ge=0, le=10)
    # Natural turn-taking (parley.voice.end_of_turn, parley.voice.false_interruption):
    # smart = the end-of-turn detector decides when a pause ends the turn, never later
    # than max_stop_secs; silence = a fixed stop_secs of silence.
    turn_detection: Literal["silence", "smart"] = "smart"
    max_stop_secs: float = Field(default=2.0, gt=0, le=10)
    # Speech while the agent talks pauses it; within this window noise or a backchannel
    # resumes it, words cut it. 0 = no pause, cut at once as before.
    false_interruption_secs: float = Field(default=1.0, ge=0, le=5)
    # Start the reply when the caller falls silent, before the turn is known to be over
    # (parley.voice.preemptive); auto = on with smart turn detection, off with silence.
    preemptive_generation: bool | Literal["auto"] = "auto"
    # ...but only once the silence has lasted this long: the gaps the VAD hears between
    # words (20-60 ms on the turn corpus) start no draft. Keep it below the shortest
    # end of turn (0.2 s after words that read complete) or no draft is ever in time.
    draft_after_secs: float = Field(default=0.1, ge=0, le=5)


class LimitsSpec(_Strict):
    """Session limits (``limits:`` in the agent file); see ``sessions/deadlines.py``.

    ``max_duration_s`` is wall clock from the session's start, kept across reconnects
    and workers; ``warning_before_s`` is one mark or several (seconds before the end);
    ``idle_timeout_s`` (off by default) ends a session with no user speech or message
    for that long; ``resume_grace_s`` is how long a dropped voice connection can be
    resumed; ``heartbeat_s`` is the server's WebSocket ping interval."""

    model_config = ConfigDict(extra="allow", frozen=True)

    max_duration_s: float | None = Field(default=None, gt=0)
    warning_before_s: float | list[float] = Field(default=60.0)
    warning_message: str | None = "Just so you know, we have about {minutes} left."
    idle_timeout_s: float | None = Field(default=None, gt=0)
    resume_grace_s: float = Field(default=60.0, ge=0, le=3600)
    heartbeat_s: float = Field(default=20.0, gt=0, le=600)

    @field_validator("warning_before_s")
    @classmethod
    def _marks(cls, value: float | list[float]) -> float | list[float]:
        marks = value if isinstance(value, list) else [value]
        if any(m < 0 for m in marks):
            raise ValueError("warning marks must be >= 0 seconds")
        return value

    @property
    def warning_marks(self) -> tuple[float, ...]:
        """The warning marks, largest (earliest) first, without duplicates or zeros."""
        marks = self.warning_before_s
        raw = marks if isinstance(marks, list) else [marks]
        return tuple(sorted({m for m in raw if m > 0}, reverse=True))


class ContextSpec(_Strict):
    """Context compression for the LLM brain (``context:`` in the agent file).

    When the conversation the model would see passes ``max_tokens`` (estimated; the
    system prompt does not count), older turns are replaced by a running summary and
    the model sees the summary plus the most recent ``keep_recent_tokens``."""

    max_tokens: int | None = Field(default=8000, ge=200)
    keep_recent_tokens: int = Field(default=2000, ge=50)
    summary_max_tokens: int = Field(default=400, ge=20)

    @model_validator(mode="after")
    def _recent_fits(self) -> ContextSpec:
        if self.max_tokens is not None and self.keep_recent_tokens + self.summary_max_tokens > (
            self.max_tokens
        ):
            raise ValueError("keep_recent_tokens + summary_max_tokens must not exceed max_tokens")
        return self


class OnEndSpec(_Strict):
    """``on_end:`` in the agent file: where the end-of-session report is POSTed."""

    url: str | None = Field(default=None, pattern=r"^https?://")
    transcript: bool = True  # include the transcript in the report


class CompressionSpec(_Strict):
    """Gemini ``contextWindowCompression``: a sliding window, on by default."""

    enabled: bool = True
    trigger_tokens: int | None = Field(default=None, ge=1)
    target_tokens: int | None = Field(default=None, ge=1)


class RealtimeSpec(_Strict):
    """The ``realtime:`` block of an agent with ``brain: realtime`` (a speech-to-speech model)."""

    model: str | None = None  # None: the adapter's default model
    voice: str | None = None  # None: the provider's default voice
    compression: CompressionSpec = Field(default_factory=CompressionSpec)
    input_transcription: bool = True
    output_transcription: bool = True
    # Provider-side voice activity detection; False = Parley commits turns itself.
    server_vad: bool = True
    transcription_model: str = "gpt-4o-mini-transcribe"  # OpenAI only


class AgentSpec(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    description: str = ""
    instructions: str = "You are a helpful assistant."
    greeting: str | None = None
    brain: Literal["rules", "llm", "auto", "realtime"] = "auto"
    tools: list[ToolSpec] = Field(default_factory=list)
    rules: list[RuleSpec] = Field(default_factory=list)
    fallback: str = "Sorry, I didn't catch that. Could you say it another way?"
    voice: VoiceSpec = Field(default_factory=VoiceSpec)
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    context: ContextSpec = Field(default_factory=ContextSpec)
    on_end: OnEndSpec = Field(default_factory=OnEndSpec)
    template_vars: dict[str, str] = Field(default_factory=dict)
    display_name: str | None = None  # shown to customers ("Bistro"); default: name
    venue: VenueSpec | None = None
    menu: list[DishSpec] = Field(default_factory=list)
    faq: list[FaqSpec] = Field(default_factory=list)
    # Engine name per kind for this agent, e.g. {llm: fake}. For stt/tts/vad a name
    # here wins over voice.stt/tts/vad; without "llm" the server's LLM is used.
    engines: dict[Literal["llm", "stt", "tts", "vad", "s2s"], str] = Field(default_factory=dict)
    # warm transfer: the E.164 number to dial for a person (else PARLEY_TRANSFER_TO, else
    # the operator console)
    transfer_to: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{1,14}$")
    # false: no transcript or assistant text reaches the client (interviews); all is stored
    transcripts_to_client: bool = True
    # brain: realtime — engines.s2s names the upstream (gemini_live | openai_realtime).
    realtime: RealtimeSpec = Field(default_factory=RealtimeSpec)

    @field_validator("tools", mode="before")
    @classmethod
    def _tool_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _rules_name_known_tools(self) -> AgentSpec:
        names = {t.name for t in self.tools}
        for i, rule in enumerate(self.rules):
            if rule.tool and rule.tool not in names:
                known = ", ".join(sorted(names)) or "none"
                raise ValueError(
                    f"rules.{i} ({rule.intent}): tool {rule.tool!r} is not in this agent's "
                    f"tools (declared: {known})"
                )
        return self

    @property
    def greeting_mode(self) -> Literal["static", "llm", "none"]:
        if self.greeting is None:
            return "none"
        return "llm" if self.greeting.strip().lower() == "llm" else "static"

    def tool(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)

    @property
    def time_zone(self) -> str:
        """The agent's time zone: its venue's, else UTC."""
        return self.venue.timezone if self.venue is not None else "UTC"

    def render_instructions(
        self, template_vars: dict[str, Any], now: dt.datetime | None = None
    ) -> str:
        """The system prompt. With ``now``, ``{today}`` ("Friday 4 December 2026") and
        ``{now}`` (that, the time and the agent's time zone) are filled in too, unless
        the agent or the session sets them."""
        values = {**self.clock_vars(now), **self.template_vars}
        values.update((k, str(v)) for k, v in template_vars.items())
        return _SafeFormat(values).format(self.instructions)

    def clock_vars(self, now: dt.datetime | None) -> dict[str, str]:
        if now is None:
            return {}
        local = now.astimezone(ZoneInfo(self.time_zone))
        today = f"{local:%A} {local.day} {local:%B %Y}"
        return {"today": today, "now": f"{today}, {local:%H:%M} ({self.time_zone})"}

    def render_greeting(self, template_vars: dict[str, Any]) -> str | None:
        if self.greeting_mode != "static" or self.greeting is None:
            return None
        values = {**self.template_vars, **{k: str(v) for k, v in template_vars.items()}}
        return _SafeFormat(values).format(self.greeting)


class _SafeFormat:
    """``str.format`` that leaves unknown ``{names}`` as they are and never raises:
    a text that is not a valid format string (a lone ``{``, a bad format spec) gets
    plain ``{name}`` substitution instead."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def format(self, text: str) -> str:
        try:
            return self._format(text)
        except ValueError:
            return re.sub(r"\{(\w+)\}", lambda m: self.values.get(m[1], m[0]), text)

    def _format(self, text: str) -> str:
        import string

        out: list[str] = []
        for literal, name, spec, conv in string.Formatter().parse(text):
            out.append(literal)
            if name is None:
                continue
            if name in self.values:
                out.append(format(self.values[name], spec or ""))
            else:
                out.append(
                    "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
                )
        return "".join(out)
