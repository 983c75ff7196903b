"""One cheap call that tells whether the configured LLM will answer, before any customer.

``probe_llm`` asks ``GET {base}/models`` (free on every OpenAI-compatible server we know)
and, when that route is missing or says nothing about the model, falls back to a 1-token
``POST {base}/chat/completions``. The answer is ``None`` (the LLM is usable) or one line
that names the ``PARLEY_LLM_*`` setting to change, e.g.::

    PARLEY_LLM_API_KEY: the LLM at https://api.openai.com/v1 refused the key (HTTP 401)

The provider's own error text is never quoted for a refused key: OpenAI echoes part of it.
``parley serve`` and ``parley doctor`` both use this (see ``parley.startup_checks``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx

BASE_URL = "PARLEY_LLM_BASE_URL"
API_KEY = "PARLEY_LLM_API_KEY"
MODEL = "PARLEY_LLM_MODEL"
TIMEOUT = "PARLEY_LLM_TIMEOUT_S"


class _Problem(Exception):
    """Internal: the probe found what is wrong; the message is the line to print."""


async def probe_llm(
    base_url: str, model: str, api_key: str | None, timeout_s: float = 10.0
) -> str | None:
    """``None`` if ``model`` at ``base_url`` answers; else one line naming the setting."""
    base = base_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        return f"{BASE_URL}: {base_url!r} must start with http:// or https://"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))
    async with httpx.AsyncClient(timeout=timeout, headers=headers) as client:
        try:
            if await _models_say_yes(client, base, model, api_key):
                return None
            await _one_token(client, base, model, api_key)
        except _Problem as problem:
            return str(problem)
        except httpx.TimeoutException:
            return (
                f"{BASE_URL}: the LLM at {base} did not answer within {timeout_s:g} s "
                f"(is it running? a slow server needs a larger {TIMEOUT})"
            )
        except httpx.ConnectError as exc:
            return f"{BASE_URL}: cannot reach the LLM at {base}: {_reason(exc)}"
        except httpx.HTTPError as exc:
            return f"{BASE_URL}: request to {base} failed: {type(exc).__name__}: {_reason(exc)}"
    return None


async def _models_say_yes(
    client: httpx.AsyncClient, base: str, model: str, api_key: str | None
) -> bool:
    """True if ``/models`` lists the model; raises ``_Problem`` for a clear refusal."""
    response = await client.get(f"{base}/models")
    _refused_key(response, base, api_key)
    if response.status_code != 200:
        return False  # no such route here: the completion call decides
    ids = _model_ids(response)
    if not ids:
        return False
    if model in ids or any(i.split(":", 1)[0] == model for i in ids):
        return True
    offered = ", ".join(sorted(ids)[:8]) + (" …" if len(ids) > 8 else "")
    raise _Problem(f"{MODEL}: the LLM at {base} has no model {model!r} (it offers: {offered})")


async def _one_token(client: httpx.AsyncClient, base: str, model: str, api_key: str | None) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
    response = await client.post(f"{base}/chat/completions", json=body)
    _refused_key(response, base, api_key)
    status = response.status_code
    payload = _json(response)
    if status == 200:
        if isinstance(payload, dict) and "choices" in payload:
            return
        raise _Problem(
            f"{BASE_URL}: {base}/chat/completions did not answer like an OpenAI-compatible "
            "API (does the URL end in /v1?)"
        )
    message = _error_text(payload)
    if _about_model(payload, message) and status in (400, 404):
        raise _Problem(f"{MODEL}: the LLM at {base} has no model {model!r} ({message})")
    if status in (404, 405):
        raise _Problem(
            f"{BASE_URL}: no chat-completions API at {base} (HTTP {status}; "
            "OpenAI-compatible servers usually end in /v1)"
        )
    raise _Problem(f"{BASE_URL}: the LLM at {base} answered HTTP {status}: {message}")


def _refused_key(response: httpx.Response, base: str, api_key: str | None) -> None:
    if response.status_code not in (401, 403):
        return
    if not api_key:
        raise _Problem(
            f"{API_KEY}: the LLM at {base} wants an API key (HTTP {response.status_code}) "
            f"and {API_KEY} is not set"
        )
    raise _Problem(f"{API_KEY}: the LLM at {base} refused the key (HTTP {response.status_code})")


def _model_ids(response: httpx.Response) -> list[str]:
    payload = _json(response)
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        data = payload.get("models") if isinstance(payload, dict) else None  # Ollama's /api/tags
    if not isinstance(data, list):
        return []
    ids = [d.get("id") or d.get("name") for d in data if isinstance(d, dict)]
    return [i for i in ids if isinstance(i, str)]


def _about_model(payload: Any, message: str) -> bool:
    error = payload.get("error") if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code == "model_not_found" or "model" in message.lower()


def _error_text(payload: Any) -> str:
    if isinstance(payload, dict):
        error = payload.get("error", payload.get("detail"))
        if isinstance(error, dict):
            error = error.get("message")
        if isinstance(error, str) and error:
            return _clip(error)
    return "no error message"


def _json(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _reason(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno).lower()
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    text = str(exc).strip() or type(exc).__name__
    return _clip(text.splitlines()[-1])


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
