"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions protocol.

Scripted for tests: queue ``Reply`` objects with ``FakeOpenAIServer.script``; each
request to ``POST /v1/chat/completions`` takes the next one. A reply is a list of
steps (text deltas, tool-call fragments, raw lines, waits on an ``asyncio.Event``, a
connection cut) or an HTTP error. With an empty queue the server echoes
("You said: <last user text>"), so it also serves manual runs::

    python -m parley.testing.fake_openai --port 8089

``GET /v1/models`` lists the served models. Like OpenAI, the server refuses a wrong
key (``api_key=...``: 401 ``invalid_api_key``) and an unknown model (``models=[...]``:
404 ``model_not_found``); both are off by default. ``models_route=False`` answers
``/models`` with 404, as some OpenAI-compatible servers do.

Every request is recorded in ``requests`` (method, path, headers, parsed JSON body).
``stream: true`` gets SSE ``chat.completion.chunk`` events over chunked HTTP/1.1;
``stream: false`` gets one ``chat.completion`` JSON. Each connection serves one
request (``Connection: close``). HTTP/1.1 is written by hand on ``asyncio.start_server``
so that a cut is a real dropped connection mid-body.

    async with FakeOpenAIServer() as srv:
        srv.script(Reply.text("Hello", " there"),
                   Reply.tool_calls(ToolCallScript("get_time", {"tz": "UTC"})))
        llm = OpenAICompatibleLLM(srv.base_url, "fake-model")
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from parley.testing.openai_script import (  # noqa: F401 - re-exported
    Cut,
    Done,
    Finish,
    RawChunk,
    RawLine,
    Reply,
    Step,
    Text,
    ToolCallChunk,
    ToolCallPart,
    ToolCallScript,
    Wait,
    _call_parts,
    _merge_parts,
    _split,
)

logger = logging.getLogger(__name__)


# --- server -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request as received; ``body`` is the parsed JSON (None if it was not JSON)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    raw: bytes = field(repr=False, default=b"")


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Wire:
    """Writes one HTTP/1.1 response on a connection."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def head(self, status: int, content_type: str, length: int | None = None) -> None:
        framing = (
            f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
        )
        head = (
            f"HTTP/1.1 {status} {_reason(status)}\r\n"
            f"Content-Type: {content_type}\r\n{framing}\r\n"
            "Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
        )
        await self._write(head.encode())

    async def whole(self, status: int, body: Any) -> None:
        is_text = isinstance(body, str)
        data = (body if is_text else json.dumps(body)).encode()
        await self.head(status, "text/plain" if is_text else "application/json", len(data))
        await self._write(data)

    async def event(self, data: str) -> None:
        payload = f"{data}\n\n".encode()
        await self._write(b"%x\r\n%s\r\n" % (len(payload), payload))

    async def end_chunks(self) -> None:
        await self._write(b"0\r\n\r\n")

    @property
    def closed(self) -> bool:
        return self._writer.transport.is_closing()

    def cut(self) -> None:
        self._writer.transport.abort()

    async def _write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()


class FakeOpenAIServer:
    """Scripted OpenAI-compatible server; see the module docstring."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = "fake-model",
        echo: bool = True,
        api_key: str | None = None,
        models: Sequence[str] | None = None,
        models_route: bool = True,
    ) -> None:
        self.host = host
        self.model = model
        self.echo = echo
        self.api_key = api_key
        self.models = tuple(models) if models is not None else None
        self.models_route = models_route
        self.requests: list[RecordedRequest] = []
        self._port = port
        self._replies: deque[Reply] = deque()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._completions = 0

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeOpenAIServer is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pending_replies(self) -> int:
        return len(self._replies)

    def script(self, *replies: Reply) -> None:
        """Queue replies; each chat-completions request takes the next one."""
        self._replies.extend(replies)

    async def start(self) -> FakeOpenAIServer:
        self._server = await asyncio.start_server(self._on_connection, self.host, self._port)
        return self

    async def close(self) -> None:
        """Stop listening and cancel requests still in progress (e.g. in a ``Wait``)."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> FakeOpenAIServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        wire = _Wire(writer)
        try:
            await self._serve(reader, wire)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        except Exception:
            logger.exception("fake OpenAI server failed on a request")
        finally:
            if task is not None:
                self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, wire: _Wire) -> None:
        try:
            request = await _read_request(reader)
        except _BadRequest as exc:
            await wire.whole(exc.status, _error_body(str(exc), exc.status))
            return
        self.requests.append(request)
        path = request.path.rstrip("/")
        refusal = self._refuse_key(request.headers)
        if refusal is not None and path in _ROUTES:
            await wire.whole(401, refusal)
            return
        if path in ("/v1/models", "/models") and self.models_route:
            await self._list_models(request, wire)
            return
        if path not in ("/v1/chat/completions", "/chat/completions"):
            await wire.whole(404, _error_body(f"no route for {request.path}", 404))
            return
        if request.method != "POST":
            await wire.whole(405, _error_body("use POST", 405))
            return
        body = request.body
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            await wire.whole(400, _error_body("body must be a JSON object with 'messages'", 400))
            return
        unknown = self._unknown_model(body)
        if unknown is not None:
            await wire.whole(404, unknown)
            return
        reply = self._next_reply(body)
        if reply.status != 200:
            await wire.whole(reply.status, reply.body)
        elif body.get("stream"):
            await self._stream(reply, body, wire)
        else:
            await self._complete(reply, body, wire)

    def _refuse_key(self, headers: Mapping[str, str]) -> dict[str, Any] | None:
        """OpenAI's answer to a missing or wrong key (it echoes part of the key)."""
        if self.api_key is None:
            return None
        given = headers.get("authorization", "").removeprefix("Bearer ").strip()
        if given == self.api_key:
            return None
        shown = f"{given[:3]}***{given[-2:]}" if len(given) > 6 else "***"
        message = (
            f"Incorrect API key provided: {shown}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
            if given
            else "You didn't provide an API key."
        )
        return {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        }

    def _unknown_model(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        model = body.get("model")
        if self.models is None or model in self.models:
            return None
        return {
            "error": {
                "message": f"The model `{model}` does not exist or you do not have access to it.",
                "type": "invalid_request_error",
                "param": None,
                "code": "model_not_found",
            }
        }

    async def _list_models(self, request: RecordedRequest, wire: _Wire) -> None:
        if request.method != "GET":
            await wire.whole(405, _error_body("use GET", 405))
            return
        names = self.models if self.models is not None else (self.model,)
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "fake"} for n in names]
        await wire.whole(200, {"object": "list", "data": data})

    def _next_reply(self, body: Mapping[str, Any]) -> Reply:
        if self._replies:
            return self._replies.popleft()
        if not self.echo:
            return Reply.http_error(500, "fake OpenAI server: no scripted reply left")
        words = f"You said: {_last_user_text(body['messages'])}".split(" ")
        return Reply.text(*(w if i == 0 else " " + w for i, w in enumerate(words)))

    def _chunk(
        self,
        body: Mapping[str, Any],
        delta: Mapping[str, Any],
        reason: str | None = None,
    ) -> str:
        choice = {"index": 0, "delta": dict(delta), "finish_reason": reason}
        return "data: " + json.dumps(self._envelope(body, "chat.completion.chunk", [choice]))

    def _envelope(self, body: Mapping[str, Any], kind: str, choices: list[Any]) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-fake{self._completions}",
            "object": kind,
            "created": int(time.time()),
            "model": str(body.get("model") or self.model),
            "choices": choices,
        }

    async def _stream(self, reply: Reply, body: Mapping[str, Any], wire: _Wire) -> None:
        self._completions += 1
        await wire.head(200, "text/event-stream")
        await wire.event(self._chunk(body, {"role": "assistant", "content": ""}))
        async for step in _play(reply, wire):
            if isinstance(step, Done) and _wants_usage(body):
                usage = self._envelope(body, "chat.completion.chunk", [])
                usage["usage"] = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
                await wire.event("data: " + json.dumps(usage))
            await wire.event(self._render(step, body))
        if not wire.closed:
            await wire.end_chunks()

    def _render(self, step: Step, body: Mapping[str, Any]) -> str:
        if isinstance(step, Text):
            return self._chunk(body, {"content": step.text})
        if isinstance(step, ToolCallChunk):
            return self._chunk(body, {"tool_calls": [part.to_json() for part in step.parts]})
        if isinstance(step, Finish):
            return self._chunk(body, {}, step.reason)
        if isinstance(step, RawChunk):
            return "data: " + json.dumps(dict(step.payload))
        if isinstance(step, RawLine):
            return step.line
        if isinstance(step, Done):
            return "data: [DONE]"
        raise TypeError(f"not a renderable step: {step!r}")

    async def _complete(self, reply: Reply, body: Mapping[str, Any], wire: _Wire) -> None:
        """A non-streamed answer: the reply's steps folded into one message."""
        self._completions += 1
        texts: list[str] = []
        calls: dict[Any, dict[str, Any]] = {}
        reason = "stop"
        async for step in _play(reply, wire):
            if isinstance(step, Text):
                texts.append(step.text)
            elif isinstance(step, Finish):
                reason = step.reason
            elif isinstance(step, ToolCallChunk):
                for part in step.parts:
                    _fold_part(calls, part)
        if wire.closed:
            return
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
        if calls:
            message["tool_calls"] = list(calls.values())
        choice = {"index": 0, "message": message, "finish_reason": reason}
        await wire.whole(200, self._envelope(body, "chat.completion", [choice]))


async def _play(reply: Reply, wire: _Wire) -> AsyncIterator[Step]:
    """The reply's steps to send; performs waits and cuts itself."""
    for step in reply.steps:
        if isinstance(step, Cut):
            wire.cut()
            return
        if isinstance(step, Wait):
            await (step.event.wait() if step.event else asyncio.sleep(0))
        else:
            yield step


def _fold_part(calls: dict[Any, dict[str, Any]], part: ToolCallPart) -> None:
    key = part.index if part.index is not None else (part.id or next(reversed(calls), 0))
    call = calls.setdefault(
        key,
        {
            "id": part.id or f"call_{len(calls)}",
            "type": "function",
            "function": {"name": "", "arguments": ""},
        },
    )
    if part.name:
        call["function"]["name"] = part.name
    call["function"]["arguments"] += part.arguments or ""


_ROUTES = ("/v1/models", "/models", "/v1/chat/completions", "/chat/completions")


def _wants_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, Mapping) and bool(options.get("include_usage"))


def _error_body(message: str, status: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": status}}


def _last_user_text(messages: Sequence[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    str(part.get("text", "")) for part in content if isinstance(part, Mapping)
                )
    return ""


async def _read_request(reader: asyncio.StreamReader) -> RecordedRequest:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise _BadRequest(400, "request head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ", 2)
    except ValueError:
        raise _BadRequest(400, f"bad request line: {lines[0]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise _BadRequest(411, "chunked request bodies are not supported; send Content-Length")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise _BadRequest(400, "bad Content-Length") from None
    raw = await reader.readexactly(length) if length > 0 else b""
    try:
        body = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    return RecordedRequest(method, target.split("?", 1)[0], headers, body, raw)


# --- manual runs ------------------------------------------------------------------------


async def _serve_forever(host: str, port: int, model: str) -> None:
    async with FakeOpenAIServer(host=host, port=port, model=model) as server:
        print(f"fake OpenAI server (echo) at {server.base_url}", flush=True)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake OpenAI server in echo mode.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--model", default="fake-model")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args.host, args.port, args.model))


if __name__ == "__main__":
    main()
