"""Settings (``PARLEY_*`` environment and ``parley.toml``) and agent files (YAML).

``Settings`` is read once at start; a bad value raises ``ConfigError`` naming the
setting. Agent files are validated with pydantic and errors name the file, the
line and the field, e.g. ``agents/demo.yaml:12: tools.1.timeout_s: ...``.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
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
    llm_model: str = "gpt-4o-mini"
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
    # NoDecode: the environment gives a comma list ("https://a,https://b") or JSON.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    session_rate_limit: int = Field(default=30, ge=0, description="sessions per IP per minute")
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_voice_connections: int = Field(
        default=0, ge=0, description="open voice WebSockets per worker; 0 = no limit"
    )
    turn_lock_ttl_s: float = Field(default=120.0, gt=0)
    log_level: str = "INFO"

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


class LimitsSpec(_Strict):
    model_config = ConfigDict(extra="allow", frozen=True)

    max_duration_s: float | None = Field(default=None, gt=0)
    warning_before_s: float = Field(default=60.0, ge=0)


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
    template_vars: dict[str, str] = Field(default_factory=dict)
    # Engine name per kind for this agent, e.g. {llm: fake}. For stt/tts/vad a name
    # here wins over voice.stt/tts/vad; without "llm" the server's LLM is used.
    engines: dict[Literal["llm", "stt", "tts", "vad", "s2s"], str] = Field(default_factory=dict)
    # brain: realtime — engines.s2s names the upstream (gemini_live | openai_realtime).
    realtime: RealtimeSpec = Field(default_factory=RealtimeSpec)

    @field_validator("tools", mode="before")
    @classmethod
    def _tool_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

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
