"""Settings (``PARLEY_*`` environment and ``parley.toml``) and agent files (YAML).

``Settings`` is read once at start; a bad value raises ``ConfigError`` naming the
setting. Agent files are validated with pydantic and errors name the file, the
line and the field, e.g. ``agents/demo.yaml:12: tools.1.timeout_s: ...``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

BUILTIN_AGENTS_DIR = Path(__file__).parent / "agents"

# the store's URL schemes (parley.sessions.sql_engine says what each means)
SQLITE_URL_PREFIXES = ("sqlite://", "sqlite+pysqlite://", "sqlite+aiosqlite://")
POSTGRES_URL_PREFIX = "postgresql+asyncpg://"
DATABASE_URL_PREFIXES = (*SQLITE_URL_PREFIXES, POSTGRES_URL_PREFIX)
DATABASE_URL_PREFIXES = (
    "sqlite://",
    "sqlite+pysqlite://",
    "sqlite+aiosqlite://",
    "postgresql+asyncpg://",
)


def _key_hash(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class ConfigError(Exception):
    """A setting or an agent file is invalid; the message says which and why."""


# --- server settings --------------------------------------------------------------


class Settings(BaseSettings):
    """Server settings. Environment variables win over ``parley.toml``."""

    model_config = SettingsConfigDict(
        env_prefix="PARLEY_", extra="ignore", toml_file="parley.toml", validate_default=True
    )

    data_dir: Path = Path(".parley")
    agents_dir: Path | None = None
    database_url: str | None = None
    redis_url: str | None = None
    llm_base_url: str | None = None
    llm_model: str = Field(default="gpt-4o-mini", min_length=1)
    llm_api_key: str | None = None
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_max_tool_rounds: int = Field(default=6, ge=1, le=50)
    # Speech-to-speech upstreams (``brain: realtime``); separate from PARLEY_LLM_*, no fallback.
    # Base URLs: ``https://`` means a TLS WebSocket, ``http://`` a plain one.
    gemini_api_key: str | None = None
    gemini_base_url: str = "https://generativelanguage.googleapis.com"
    openai_api_key: str | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    tools_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="modules with a register(registry) function adding Python tools",
    )
    operator_key: str | None = None
    webhook_secret: str | None = None  # signs end-of-session reports (agent on_end.url)
    # PARLEY_API_KEYS: a comma list of plaintext keys for /v1/realtime; only their
    # hashes ("sha256:<hex>") are kept, from validation on.
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # NoDecode: the environment gives a comma list ("https://a,https://b") or JSON.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    session_rate_limit: int = Field(default=30, ge=0, description="sessions per IP per minute")
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_voice_connections: int = Field(
        default=0, ge=0, description="open voice WebSockets per worker; 0 = no limit"
    )
    turn_lock_ttl_s: float = Field(
        default=5.0, gt=0, description="turn lock TTL, renewed by the running turn"
    )
    drain_s: float = Field(
        default=10.0, gt=0, description="on shutdown, how long running turns may finish"
    )
    attach_lease_ttl_s: float = Field(
        default=5.0, gt=0, description="TTL of a live voice attachment, renewed while it lives"
    )
    smart_turn_model: Path | None = Field(
        default=None,
        description="Smart Turn v3 .onnx for smart turn detection (onnx extra); "
        "default: the one inside an installed pipecat-ai package, if any",
    )
    log_level: str = "INFO"

    # --- telephony (parley.channels.telephony_http) ---
    public_url: str | None = Field(
        default=None, description="this server's public base URL, e.g. https://parley.example.com"
    )
    twilio_auth_token: str | None = None
    twilio_account_sid: str | None = None
    twilio_from: str | None = Field(default=None, description="caller id of outbound calls")
    twilio_default_agent: str = "demo"
    twilio_api_base: str = "https://api.twilio.com"
    # called number (E.164) -> agent name; the environment gives JSON
    phone_agents: dict[str, str] = Field(default_factory=dict)
    telephony_stream_secret: str | None = Field(
        default=None, description="signs stream tokens; defaults to the carrier's auth token"
    )
    telnyx_public_key: str | None = Field(
        default=None, description="base64 Ed25519 public key that signs Telnyx webhooks"
    )
    telnyx_default_agent: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @field_validator("cors_origins", "tools_modules", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().startswith("["):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON list: {exc}") from None
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _hash_api_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list):
            return value
        keys = [str(k).strip() for k in value if str(k).strip()]
        return [k if k.startswith("sha256:") else _key_hash(k) for k in keys]

    @field_validator("database_url")
    @classmethod
    def _check_db_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(DATABASE_URL_PREFIXES):
            raise ValueError(
                "must start with sqlite:// or postgresql+asyncpg:// "
                f"(got {value.split(':', 1)[0]!r})"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("llm_base_url")
    @classmethod
    def _check_llm_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https:// (got {value!r})")
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("https://", "http://")) or "://" == value[-3:]:
            raise ValueError("must be an absolute http(s) URL, e.g. https://parley.example.com")
        return value.rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        levels = {"DEBUG", "INFO", "WARNING", "ERROR"}
        if value.upper() not in levels:
            raise ValueError(f"must be one of {sorted(levels)}")
        return value.upper()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'parley.db').resolve()}"


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning validation errors into one ``ConfigError`` per field."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            problems.append(f"PARLEY_{name.upper()}: {err['msg']}")
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise ConfigError(f"parley.toml: {exc}") from None
    except SettingsError as exc:
        raise ConfigError(f"invalid settings: {exc}") from None


def settings_warnings(
    environ: Mapping[str, str] | None = None, toml_path: Path = Path("parley.toml")
) -> list[str]:
    """Unknown ``PARLEY_*`` variables and ``parley.toml`` keys, each with the closest
    known name ("did you mean PARLEY_LLM_MODEL?"). Settings ignores them; this says so."""
    known = sorted(Settings.model_fields)
    env = os.environ if environ is None else environ
    warnings = []
    for name in sorted(env):
        if not name.startswith("PARLEY_") or name[7:].lower() in known:
            continue
        if name in _NOT_SETTINGS or name.startswith(_NOT_SETTINGS_PREFIXES):
            continue
        guess = _closest(name[7:].lower(), known)
        hint = f"; did you mean PARLEY_{guess.upper()}?" if guess else ""
        warnings.append(f"unknown setting {name} is ignored{hint}")
    if toml_path.is_file():
        try:
            data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError):
            return warnings  # load_settings reports it
        for key in sorted(data):
            if key.lower() in known:
                continue
            guess = _closest(key.lower().removeprefix("parley_"), known)
            hint = f"; did you mean {guess}?" if guess else ""
            warnings.append(f"{toml_path}: unknown key {key!r} is ignored{hint}")
    return warnings


# Variables of the environment that are not server settings (tests, scripts).
_NOT_SETTINGS = frozenset({"PARLEY_SCREENSHOTS_DIR", "PARLEY_REUSE_VENV"})
_NOT_SETTINGS_PREFIXES = ("PARLEY_TEST_", "PARLEY_BENCH_")


def _closest(name: str, known: list[str]) -> str | None:
    if name in known:
        return name
    matches = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return matches[0] if matches else None


# --- agent files ----------------------------------------------------------------------


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
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
    # brain: realtime — engines.s2s names the upstream (gemini_live | openai_realtime).
    realtime: RealtimeSpec = Field(default_factory=RealtimeSpec)
    # false: no transcript and no assistant text reach the client (interviews); all is
    # still stored (channels/transcript_policy.py)
    transcripts_to_client: bool = True

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

    def render_instructions(self, template_vars: dict[str, Any]) -> str:
        values = {**self.template_vars, **{k: str(v) for k, v in template_vars.items()}}
        return _SafeFormat(values).format(self.instructions)

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


def _line_of(node: yaml.Node, loc: tuple[int | str, ...]) -> int:
    """Walk a composed YAML node tree along a pydantic error location."""
    line = node.start_mark.line + 1
    for part in loc:
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, val in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    nxt = val
                    line = key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                nxt = node.value[part]
                line = nxt.start_mark.line + 1
        if nxt is None:
            break
        node = nxt
    return line


def parse_agent(text: str, source: str) -> AgentSpec:
    """Parse and validate one agent file; errors name ``source:line: field``."""
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise ConfigError(
            f"{source}:{line}: invalid YAML: {getattr(exc, 'problem', exc)}"
        ) from None
    if not isinstance(data, dict) or node is None:
        raise ConfigError(f"{source}:1: an agent file must be a mapping with at least 'name'")
    try:
        return AgentSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not isinstance(p, str) or not p.startswith("function"))
        field = ".".join(str(p) for p in loc) or "(file)"
        line = _line_of(node, loc)
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"{source}:{line}: {field}: {err['msg']}{more}") from None


def load_agents(extra_dir: Path | None = None) -> dict[str, AgentSpec]:
    """Built-in agents, then ``extra_dir`` (same name overrides the built-in)."""
    agents: dict[str, AgentSpec] = {}
    dirs = [BUILTIN_AGENTS_DIR] + ([extra_dir] if extra_dir else [])
    for directory in dirs:
        if not directory.is_dir():
            raise ConfigError(f"PARLEY_AGENTS_DIR: {directory} is not a directory")
        for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
            spec = parse_agent(path.read_text(encoding="utf-8"), str(path))
            agents[spec.name] = spec
    return agents
