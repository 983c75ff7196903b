"""LLM adapter for any OpenAI-compatible chat-completions server.

Works with OpenAI, Ollama (``http://127.0.0.1:11434/v1``), llama.cpp ``llama-server``,
vLLM and the like. ``OpenAICompatibleLLM.stream`` POSTs ``{base_url}/chat/completions``
with ``stream: true`` and turns the SSE ``chat.completion.chunk`` stream into
``TextDelta`` (as they arrive) and, at the end, one ``ToolCallRequest`` per tool call.

Parsing is sans-I/O: ``ChunkDecoder`` takes SSE lines and returns text; its
``ToolCallAccumulator`` assembles streamed tool-call fragments. The adapter only moves
bytes and converts httpx failures into ``ProviderError`` at one boundary. It never
retries: retrying is a wrapper's job, and ``retryable`` tells the wrapper whether to.
What it yields can be stored as is: U+0000 and lone surrogates are removed from text,
tool-call names, ids and arguments, NaN/infinite arguments become null
(``parley.text_guard``), since PostgreSQL would refuse them mid-turn.

Error codes (all ``ProviderError``)::

    llm_http_error    non-2xx answer; message has the status and the provider's message;
                      retryable for 408, 429 and 5xx
    llm_timeout       connect/read/write timeout; retryable
    llm_unreachable   connection refused, DNS failure; retryable
    llm_stream_cut    the stream ended without [DONE] and without a finish_reason, or
                      the connection dropped mid-stream; retryable (text already yielded
                      stays yielded: a wrapper must not replay a partial answer)
    llm_bad_response  a data line that is not a JSON object; not retryable
    llm_stream_error  the provider sent an ``error`` object inside the stream; not retryable
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from parley.engines.base import LLMChunk, ProviderError, TextDelta, ToolCallRequest
from parley.text_guard import storable_text, storable_value

logger = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({408, 429})
_ERROR_TEXT_LIMIT = 300


# --- sans-I/O stream decoding ---------------------------------------------------------


@dataclass
class _PendingCall:
    id: str = ""
    name: str = ""
    argument_parts: list[str] = field(default_factory=list)


class ToolCallAccumulator:
    """Assembles streamed ``delta.tool_calls`` entries into complete calls.

    A call is keyed by its ``index``; when a provider omits ``index`` (Ollama), the
    entry's position in the chunk's list stands in for it. An entry whose ``id``
    differs from the id already held under its key starts a new call (providers that
    send each call whole, always at index or position 0). ``id`` and ``name`` are kept
    from the first entry that has them; ``arguments`` fragments are concatenated.
    """

    def __init__(self) -> None:
        self._calls: list[_PendingCall] = []
        self._slot_by_key: dict[int | tuple[str, int], int] = {}

    @property
    def count(self) -> int:
        return len(self._calls)

    def add(self, entries: Sequence[Any]) -> None:
        for position, entry in enumerate(entries):
            if isinstance(entry, Mapping):
                self._add_entry(entry, position)

    def _add_entry(self, entry: Mapping[str, Any], position: int) -> None:
        index = entry.get("index")
        key: int | tuple[str, int] = (
            index if isinstance(index, int) and not isinstance(index, bool) else ("pos", position)
        )
        call_id = entry.get("id") if isinstance(entry.get("id"), str) else ""
        slot = self._slot_by_key.get(key)
        if slot is None or (call_id and self._calls[slot].id and call_id != self._calls[slot].id):
            slot = len(self._calls)
            self._calls.append(_PendingCall())
            self._slot_by_key[key] = slot
        call = self._calls[slot]
        if call_id and not call.id:
            call.id = call_id
        function = entry.get("function")
        if not isinstance(function, Mapping):
            return
        name = function.get("name")
        if isinstance(name, str) and name and not call.name:
            call.name = name
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            call.argument_parts.append(arguments)
        elif isinstance(arguments, Mapping | list):  # some servers send parsed JSON
            call.argument_parts.append(json.dumps(arguments))

    def finish(self) -> list[ToolCallRequest]:
        return [_complete_call(call, slot) for slot, call in enumerate(self._calls)]


def _complete_call(call: _PendingCall, slot: int) -> ToolCallRequest:
    raw = "".join(call.argument_parts)
    call_id = call.id or f"call_{slot}"
    error: str | None = None
    arguments: dict[str, Any] = {}
    if raw.strip():
        try:  # no store keeps U+0000 or NaN: cleaned here, at the adapter's boundary
            parsed = storable_value(json.loads(raw))
        except json.JSONDecodeError as exc:
            error = f"arguments are not valid JSON ({exc.msg} at position {exc.pos})"
        except RecursionError:
            error = "arguments are nested too deeply"
        else:
            if isinstance(parsed, dict):
                arguments = parsed
            else:
                error = f"arguments must be a JSON object, got {type(parsed).__name__}"
    if not call.name:
        error = "the tool call has no function name"
    return ToolCallRequest(
        id=storable_text(call_id),
        name=storable_text(call.name),
        arguments=arguments,
        raw_arguments=storable_text(raw),
        error=error,
    )


class ChunkDecoder:
    """Turns SSE lines of a ``chat.completion.chunk`` stream into text deltas.

    ``feed_line`` returns the text of the line (possibly empty) and raises
    ``ProviderError`` for a malformed data line or an in-stream error object. After the
    stream, ``done`` says whether ``[DONE]`` came, ``finish_reason`` the last one seen,
    and ``tool_calls.finish()`` gives the complete calls. Unknown fields, comments,
    ``usage`` chunks, empty ``choices`` and choices other than index 0 are ignored.
    """

    def __init__(self) -> None:
        self.tool_calls = ToolCallAccumulator()
        self.done = False
        self.finish_reason: str | None = None

    def feed_line(self, line: str) -> str:
        if not line or line.startswith(":"):
            return ""
        name, _, value = line.partition(":")
        if name != "data":
            return ""  # event:, id:, retry:
        value = value.removeprefix(" ")
        if value.strip() == "[DONE]":
            self.done = True
            return ""
        try:
            payload = json.loads(value)
        except json.JSONDecodeError:
            raise ProviderError(
                f"LLM provider sent a data line that is not JSON: {_clip(value, 80)!r}",
                code="llm_bad_response",
            ) from None
        if not isinstance(payload, dict):
            raise ProviderError(
                f"LLM provider sent a data line that is not a JSON object: {_clip(value, 80)!r}",
                code="llm_bad_response",
            )
        return self.feed_chunk(payload)

    def feed_chunk(self, payload: Mapping[str, Any]) -> str:
        """One parsed chunk (or a whole non-streamed ``chat.completion``)."""
        if payload.get("error"):
            message = _error_message(payload) or "unknown error"
            raise ProviderError(f"LLM provider error in stream: {message}", code="llm_stream_error")
        choices = payload.get("choices")
        if not isinstance(choices, list):
            return ""
        texts: list[str] = []
        for choice in choices:
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or choice.get("message") or {}
            if isinstance(delta, Mapping):
                content = delta.get("content")
                if isinstance(content, str):
                    texts.append(content)
                tool_calls = delta.get("tool_calls")
                if isinstance(tool_calls, list):
                    self.tool_calls.add(tool_calls)
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                self.finish_reason = reason
        return "".join(texts)

    @property
    def complete(self) -> bool:
        """True when the provider said the answer is over."""
        return self.done or self.finish_reason is not None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _error_message(body: Any) -> str:
    """The human message of an error body in the common provider shapes."""
    if not isinstance(body, Mapping):
        return ""
    for key in ("error", "detail", "message"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, Mapping):
            nested = value.get("message")
            if isinstance(nested, str) and nested:
                return nested
    return ""


def normalize_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Tools in OpenAI function format; a bare ``{"name", "parameters", ...}`` is wrapped."""
    normalized: list[dict[str, Any]] = []
    for tool in tools:
        if tool.get("type") == "function" and isinstance(tool.get("function"), Mapping):
            spec = tool["function"]
            normalized.append(dict(tool))
        elif "name" in tool and "type" not in tool:
            spec = tool
            normalized.append({"type": "function", "function": dict(tool)})
        else:
            raise ValueError(f"tool is not in OpenAI function format: {_clip(repr(tool), 120)}")
        if not isinstance(spec.get("name"), str) or not spec["name"]:
            raise ValueError(f"tool has no function name: {_clip(repr(tool), 120)}")
    return normalized


# --- I/O ------------------------------------------------------------------------------


class OpenAICompatibleLLM:
    """Streams chat completions from an OpenAI-compatible server (see module docstring).

    Pass a shared ``client`` to manage connections yourself; otherwise the adapter
    creates one on first use and ``aclose()`` (or ``async with``) releases it.
    ``extra_body`` is merged into every request body last (e.g. ``temperature``,
    ``max_tokens``, ``stream_options``).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 60,
        *,
        client: httpx.AsyncClient | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"LLM base_url must start with http:// or https://: {base_url!r}")
        if not model:
            raise ValueError("LLM model name must not be empty")
        if not timeout_s > 0:
            raise ValueError(f"LLM timeout_s must be positive, got {timeout_s}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.url = f"{self.base_url}/chat/completions"
        self._api_key = api_key or None
        self._timeout = httpx.Timeout(timeout_s)
        self._timeout_s = timeout_s
        self._client = client
        self._owns_client = client is None
        self._extra_body = dict(extra_body or {})

    async def __aenter__(self) -> OpenAICompatibleLLM:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client the adapter created (a passed-in client is left open)."""
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def request_body(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": list(messages), "stream": True}
        if tools:
            body["tools"] = normalize_tools(tools)
            body["tool_choice"] = "auto"
        body.update(self._extra_body)
        return body

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _http_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient()
        return self._client

    async def stream(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]
    ) -> AsyncIterator[LLMChunk]:
        body = self.request_body(messages, tools)
        decoder = ChunkDecoder()
        timing = _Timing(time.perf_counter())
        logger.debug(
            "llm request model=%s url=%s messages=%d tools=%d",
            self.model,
            self.url,
            len(body["messages"]),
            len(body.get("tools", ())),
        )
        try:
            async with self._http_client().stream(
                "POST", self.url, json=body, headers=self._headers(), timeout=self._timeout
            ) as response:
                timing.headers = time.perf_counter()
                if not response.is_success:
                    raise await _http_error(response)
                async for text in self._read_text(response, decoder, timing):
                    if text := storable_text(text):  # no store keeps U+0000 (text_guard)
                        yield TextDelta(text)
        except httpx.HTTPError as exc:
            if not (isinstance(exc, _DROPPED) and decoder.finish_reason is not None):
                raise self._convert(exc, started=timing.headers is not None) from exc
            logger.debug("llm connection dropped after finish_reason; answer is complete")
        if not decoder.complete:
            raise ProviderError(
                f"LLM stream from {self.url} ended before the answer was complete "
                "(no [DONE] and no finish_reason)",
                code="llm_stream_cut",
                retryable=True,
            )
        calls = decoder.tool_calls.finish()
        logger.debug(
            "llm done in %.0f ms (first token %s, finish_reason=%s, tool_calls=%d)",
            (time.perf_counter() - timing.start) * 1000,
            timing.first_token_text(),
            decoder.finish_reason,
            len(calls),
        )
        for call in calls:
            yield call

    async def _read_text(
        self, response: httpx.Response, decoder: ChunkDecoder, timing: _Timing
    ) -> AsyncIterator[str]:
        """Text of the response as it arrives; a non-streamed JSON answer is accepted too."""
        if response.headers.get("content-type", "").startswith("application/json"):
            raw = await response.aread()
            try:
                completion = json.loads(raw)
            except json.JSONDecodeError:
                raise ProviderError(
                    f"LLM provider sent invalid JSON: {_clip(raw.decode(errors='replace'), 80)!r}",
                    code="llm_bad_response",
                ) from None
            if not isinstance(completion, dict):
                raise ProviderError("LLM provider sent a non-object JSON", code="llm_bad_response")
            decoder.done = True
            text = decoder.feed_chunk(completion)
            timing.token_seen(decoder)
            if text:
                yield text
            return
        async for line in response.aiter_lines():
            text = decoder.feed_line(line)
            timing.token_seen(decoder, text)
            if text:
                yield text
            if decoder.done:
                return

    def _convert(self, exc: httpx.HTTPError, *, started: bool) -> ProviderError:
        if isinstance(exc, httpx.TimeoutException):
            return ProviderError(
                f"LLM at {self.url} did not answer within {self._timeout_s:g} s "
                f"({type(exc).__name__})",
                code="llm_timeout",
                retryable=True,
            )
        if isinstance(exc, httpx.ConnectError):
            return ProviderError(
                f"cannot reach LLM at {self.url}: {exc or type(exc).__name__}",
                code="llm_unreachable",
                retryable=True,
            )
        if isinstance(exc, _DROPPED):
            where = "mid-stream" if started else "before the response"
            return ProviderError(
                f"LLM connection to {self.url} dropped {where}: {exc or type(exc).__name__}",
                code="llm_stream_cut",
                retryable=True,
            )
        return ProviderError(
            f"LLM request to {self.url} failed: {type(exc).__name__}: {exc}",
            code="llm_unreachable",
        )


_DROPPED = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


@dataclass
class _Timing:
    """Wall-clock marks of one request, for DEBUG logs only."""

    start: float
    headers: float | None = None
    first_token: float | None = None

    def token_seen(self, decoder: ChunkDecoder, text: str = "") -> None:
        if self.first_token is None and (text or decoder.tool_calls.count):
            self.first_token = time.perf_counter()
            logger.debug("llm first token after %.0f ms", (self.first_token - self.start) * 1000)

    def first_token_text(self) -> str:
        if self.first_token is None:
            return "none"
        return f"{(self.first_token - self.start) * 1000:.0f} ms"


async def _http_error(response: httpx.Response) -> ProviderError:
    raw = await response.aread()
    text = raw.decode(errors="replace")
    try:
        message = _error_message(json.loads(text))
    except json.JSONDecodeError:
        message = ""
    message = message or _clip(text.strip(), _ERROR_TEXT_LIMIT) or response.reason_phrase
    status = response.status_code
    return ProviderError(
        f"LLM provider returned HTTP {status}: {_clip(message, _ERROR_TEXT_LIMIT)}",
        code="llm_http_error",
        retryable=status in _RETRYABLE_STATUS or status >= 500,
    )
