"""``parley serve | chat | say | transcribe | doctor`` — the command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from parley import cli_voice
from parley.config import ConfigError, load_settings


def _serve(args: argparse.Namespace) -> int:
    from parley.serve_command import serve

    return serve(args.host, args.port)


# --- chat ---------------------------------------------------------------------------


def _describe_args(arguments: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in arguments.items())


async def _render(events: AsyncIterator[Any], out: Callable[[str], None]) -> list[dict[str, Any]]:
    """Print one streamed turn; return the approvals it asked for."""
    approvals: list[dict[str, Any]] = []
    speaking = False
    async for ev in events:
        data, name = ev.data, ev.event
        if name == "assistant_delta":
            if not speaking:
                out("bot> ")
                speaking = True
            out(data["text"])
            continue
        if speaking:
            out("\n")
            speaking = False
        if name == "tool_call_started":
            out(f"  · {data['name']}({_describe_args(data['arguments'])})\n")
        elif name == "tool_call_completed":
            out(f"  · {data['name']} → {data['status']}\n")
        elif name == "approval_requested":
            approvals.append(data)
        elif name == "approval_resolved":
            out(f"  · approval {data['status']}\n")
        elif name == "ui_op":
            for item in data["op"].get("items", []):
                out(f"  [{item.get('title')}] {item.get('subtitle', '')}  → say: {item['msg']}\n")
        elif name == "error":
            out(f"  ! {data['code']}: {data['message']}\n")
    if speaking:
        out("\n")
    return approvals


async def _chat_loop(base_url: str, agent: str, read: Callable[[str], str]) -> int:
    from parley.client import ApiFailure, ParleyClient

    def out(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    client = ParleyClient(base_url)
    try:
        session = await client.create_session(agent)
        if session.get("greeting"):
            out(f"bot> {session['greeting']}\n")
        elif session.get("greeting_mode") == "llm":
            await _render(_events(client.initial_turn()), out)
        while True:
            try:
                line = (await asyncio.to_thread(read, "you> ")).strip()
            except EOFError:
                break
            if line in ("/quit", "/exit"):
                break
            if not line:
                continue
            try:
                approvals = await _render(_events(client.send(line)), out)
                while approvals:
                    ask = approvals.pop(0)
                    ok = await _ask_approval(ask, read, out)
                    approvals += await _render(_events(client.decide(ask["tool_call_id"], ok)), out)
            except ApiFailure as exc:
                out(f"  ! {exc.code}: {exc.message}\n")
        with contextlib.suppress(ApiFailure):
            await client.end()
    finally:
        await client.aclose()
    return 0


async def _ask_approval(
    ask: dict[str, Any], read: Callable[[str], str], out: Callable[[str], None]
) -> bool:
    """The y/n prompt, read like a typed answer ("sure", "go ahead", "nope"); it asks
    again until the answer is one. End of input denies."""
    from parley.brain.answers import action_words, classify

    words = action_words(str(ask.get("name", "")))
    while True:
        try:
            answer = await asyncio.to_thread(read, f"  ? {ask['prompt']} [y/n] ")
        except EOFError:
            return False
        verdict = classify(answer, words)
        if verdict != "other":
            return verdict == "approve"
        out("  · please answer yes or no\n")


async def _events(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for ev in stream:
        yield ev


async def _chat_local(agent: str, read: Callable[[str], str]) -> int:
    from parley.app import create_app
    from parley.server import serve_app
    from parley.startup_checks import StartupError, check_data_dir

    settings = load_settings()
    if problem := check_data_dir(settings):
        raise StartupError(problem)
    app = create_app(settings)
    async with serve_app(app) as base_url:
        return await _chat_loop(base_url, agent, read)


def _chat(args: argparse.Namespace) -> int:
    import httpx

    from parley.client import ApiFailure
    from parley.startup_checks import StartupError

    try:
        if args.local:
            return asyncio.run(_chat_local(args.agent, input))
        return asyncio.run(_chat_loop(args.url, args.agent, input))
    except (ConfigError, StartupError) as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return 2
    except ApiFailure as exc:  # e.g. an unknown agent
        known = exc.body.get("agents")
        hint = f" (agents: {', '.join(known)})" if isinstance(known, list) else ""
        print(f"parley: {exc.code}: {exc.message}{hint}", file=sys.stderr)
        return 1
    except (OSError, httpx.TransportError) as exc:
        print(f"parley: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# --- doctor ---------------------------------------------------------------------------


def _doctor(_: argparse.Namespace) -> int:
    from parley.doctor import doctor

    return doctor()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.set_defaults(fn=_serve)
    chat = sub.add_parser("chat", help="talk to an agent in the terminal")
    chat.add_argument("--url", default="http://127.0.0.1:8080")
    chat.add_argument("--agent", default="demo")
    chat.add_argument("--local", action="store_true", help="run a server in this process")
    chat.set_defaults(fn=_chat)
    doctor = sub.add_parser("doctor", help="check settings, agents and engines")
    doctor.set_defaults(fn=_doctor)
    cli_voice.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.fn(args)
    return code


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["build_parser", "main"]
