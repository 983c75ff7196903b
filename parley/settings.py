"""Server settings: ``PARLEY_*`` environment variables and ``parley.toml``.

``Settings`` is read once at start; a bad value raises ``ConfigError`` naming the
setting. ``settings_warnings`` names unknown variables and keys with a guess.
Imports nothing of parley.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

# the store's URL schemes (parley.sessions.sql_engine says what each means)
SQLITE_URL_PREFIXES = ("sqlite://", "sqlite+pysqlite://", "sqlite+aiosqlite://")
POSTGRES_URL_PREFIX = "postgresql+asyncpg://"
DATABASE_URL_PREFIXES = (*SQLITE_URL_PREFIXES, POSTGRES_URL_PREFIX)


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
    # every Redis key and channel starts with this: several deployments can share one Redis
    redis_prefix: str = Field(default="parley:", min_length=1, max_length=100)
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
    transfer_to: str | None = Field(
        default=None,
        pattern=r"^\+[1-9][0-9]{1,14}$",
        description="E.164 number a warm transfer dials (an agent's transfer_to wins); "
        "unset: transfers go to the operator console",
    )
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
