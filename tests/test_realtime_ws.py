"""``/v1/realtime`` over a real socket, driven by the official ``openai`` SDK's realtime
client pointed at Parley with ``base_url``: text turns, bad events, credentials."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from parley.app import create_app
from parley.audio.g711 import decode_alaw, decode_ulaw, encode_alaw, encode_ulaw
from parley.channels.services import Services
from parley.clock import Clock
from parley.config import Settings
from parley.testing.fake_openai import FakeOpenAIServer, Reply, Text, Wait
from parley.testing.servers import serve_app
from parley.testing.speech import pad_silence, speak_pcm

openai = pytest.importorskip("openai")

KEY = "pk-realtime-test"
PHRASE = "I would like to book a table for two tonight"


@asynccontextmanager
async def realtime_server(
    tmp_path: Path, clock: Clock | None = None, **overrides: Any
) -> AsyncIterator[tuple[str, list[dict[str, Any]], Services]]:
    """The app (``create_app`` mounts the Realtime channel); yields its URL and the WebSocket scopes
    it saw (to check what the SDK sends on connect)."""
    settings = Settings(
        data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'p.db'}", **overrides
    )
    app = create_app(settings, clock=clock)
    services = app.state.services
    scopes: list[dict[str, Any]] = []

    async def recorder(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            scopes.append(scope)
        await app(scope, receive, send)

    async with serve_app(recorder) as base_url:
        yield base_url, scopes, services


async def next_raw(conn: Any) -> dict[str, Any]:
    """The next server event; a test that waits for one in vain fails, never hangs."""
    async with asyncio.timeout(60):
        event: dict[str, Any] = json.loads(await conn.recv_bytes())
    return event


async def until_ended(services: Services, session_id: str) -> None:
    """Wait until the server has finished a closed socket: the session ends last
    (``USER_ENDED``), after the voice session stopped and stored what it keeps."""
    events = await services.lifecycle.subscribe(session_id)
    try:
        async with asyncio.timeout(30):
            session = await services.store.get_session(session_id)
            if session is not None and session.status == "active":
                async for message in events:
                    if message.get("type") == "session_ended":
                        return
    finally:
        await events.close()


async def until(conn: Any, kind: str) -> list[dict[str, Any]]:
    """Events up to and including the first of type ``kind``."""
    seen = []
    while True:
        event = await next_raw(conn)
        seen.append(event)
        if event["type"] == kind:
            return seen


async def test_the_openai_sdk_runs_a_text_turn_and_survives_bad_events(tmp_path: Path) -> None:
    async with realtime_server(tmp_path, api_keys=KEY) as (base_url, scopes, services):
        client = openai.AsyncOpenAI(api_key=KEY, base_url=f"{base_url}/v1")
        async with client.realtime.connect(model="demo") as conn:
            created = await conn.recv()  # parsed by the SDK's own models
            assert created.type == "session.created"
            assert created.session.model == "demo"
            session_id = created.session.id

            await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
            updated = await next_raw(conn)
            assert updated["type"] == "session.updated"
            assert updated["session"]["output_modalities"] == ["text"]

            # bad events: each gets an error, the session goes on
            await conn.send_raw("{not json")
            assert (await next_raw(conn))["error"]["code"] == "invalid_json"
            await conn.send_raw(json.dumps({"type": "response.explode", "event_id": "e1"}))
            err = await next_raw(conn)
            assert err["type"] == "error"
            assert (err["error"]["code"], err["error"]["param"], err["error"]["event_id"]) == (
                "invalid_value",
                "type",
                "e1",
            )
            await conn.send_raw(json.dumps({"type": "input_audio_buffer.append", "audio": "@@"}))
            assert (await next_raw(conn))["error"]["param"] == "audio"

            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "When are you open?"}],
                }
            )
            added = await until(conn, "conversation.item.done")
            assert added[0]["item"]["content"][0]["text"] == "When are you open?"
            await conn.response.create()
            events = await until(conn, "response.done")
            kinds = [e["type"] for e in events]
            assert kinds[0] == "response.created"
            assert "response.output_text.delta" in kinds
            text_done = next(e for e in events if e["type"] == "response.output_text.done")
            assert "noon" in text_done["text"] or "Tuesday" in text_done["text"]
            done = events[-1]["response"]
            assert done["status"] == "completed"
            assert done["output"][0]["content"][0]["text"] == text_done["text"]

            await conn.response.create()  # nothing new to answer: a failed response
            failed = await until(conn, "response.done")
            assert failed[-1]["response"]["status"] == "failed"
            assert any(e.get("error", {}).get("code") == "no_user_input" for e in failed)

        (scope,) = scopes
        assert scope["path"] == "/v1/realtime"
        assert scope["query_string"] == b"model=demo"
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        assert headers["authorization"] == f"Bearer {KEY}"
        assert scope.get("subprotocols", []) == []

        # the turn is in the session's history like any other channel's
        stored = await services.store.list_messages(session_id)
        assert [(m.role, m.channel) for m in stored][-2:] == [
            ("user", "realtime"),
            ("assistant", "realtime"),
        ]
        assert stored[-1].text == text_done["text"]
        await client.close()


async def test_credentials_on_the_upgrade(tmp_path: Path) -> None:
    async with realtime_server(tmp_path, api_keys=KEY) as (base_url, _, _services):
        ws_url = base_url.replace("http", "ws") + "/v1/realtime?model=demo"
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(
                ws_url, additional_headers={"Authorization": "Bearer no"}
            ):
                pass
        assert refused.value.response.status_code == 403
        # the browser form: the key in a subprotocol; the server picks "realtime"
        protocols = ["realtime", f"openai-insecure-api-key.{KEY}"]
        async with websockets.connect(ws_url, subprotocols=protocols) as ws:  # type: ignore[arg-type]
            assert ws.subprotocol == "realtime"
            assert json.loads(await ws.recv())["type"] == "session.created"
        # a client secret opens one session
        client = openai.AsyncOpenAI(api_key=KEY, base_url=f"{base_url}/v1")
        secret = await client.realtime.client_secrets.create(
            session={"type": "realtime", "model": "demo", "instructions": "Be terse."}
        )
        assert secret.value.startswith("ek_")
        secret_client = openai.AsyncOpenAI(api_key=secret.value, base_url=f"{base_url}/v1")
        async with secret_client.realtime.connect(model="ignored") as conn:
            created = await next_raw(conn)
            assert created["session"]["instructions"] == "Be terse."
            assert created["session"]["model"] == "demo"
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(
                ws_url, additional_headers={"Authorization": f"Bearer {secret.value}"}
            ):
                pass
        # an unknown agent is said in an error event, then the socket closes
        async with websockets.connect(
            ws_url.replace("model=demo", "model=nobody"),
            additional_headers={"Authorization": f"Bearer {KEY}"},
        ) as ws:
            err = json.loads(await ws.recv())
            assert err["error"]["code"] == "agent_not_found"
        await client.close()
        await secret_client.close()


async def test_ending_the_session_over_http_ends_the_socket(tmp_path: Path) -> None:
    async with realtime_server(tmp_path, operator_key="op-key") as (base_url, _, services):
        ws_base = base_url.replace("http", "ws") + "/v1"
        client = openai.AsyncOpenAI(api_key="anything", websocket_base_url=ws_base)
        async with client.realtime.connect(model="demo") as conn:
            session_id = (await next_raw(conn))["session"]["id"]
            async with httpx.AsyncClient(base_url=base_url) as http:
                ended = await http.post(
                    f"/v1/sessions/{session_id}/end", headers={"Authorization": "Bearer op-key"}
                )
                assert ended.status_code == 200
            event = await next_raw(conn)
            assert event["type"] == "parley.session_ended"
            assert event["reason"] == "OPERATOR_ENDED"
            with pytest.raises(websockets.ConnectionClosedOK):
                await conn.recv_bytes()  # the server closed the socket
        session = await services.store.get_session(session_id)
        assert session is not None and session.status == "ended"
        await client.close()


async def say(conn: Any, text: str) -> list[dict[str, Any]]:
    """One user text item and a response; the events up to ``response.done``."""
    await conn.conversation.item.create(
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )
    await until(conn, "conversation.item.done")
    await conn.response.create()
    return await until(conn, "response.done")


async def test_an_agent_tool_approval_is_decided_over_the_socket(tmp_path: Path) -> None:
    async with realtime_server(tmp_path) as (base_url, _, services):
        client = openai.AsyncOpenAI(api_key="anything", base_url=f"{base_url}/v1")
        async with client.realtime.connect(model="demo") as conn:
            session_id = (await next_raw(conn))["session"]["id"]
            await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
            await until(conn, "session.updated")
            events = await say(conn, "I'd like a table for 2 tomorrow at 7pm")
            checked = [e for e in events if e["type"] == "parley.tool_call_completed"]
            assert [e["name"] for e in checked] == ["check_availability"]
            assert checked[0]["response_id"] == events[0]["response"]["id"]
            events = await say(conn, "My name is Ann Lee")
            (request,) = [e for e in events if e["type"] == "parley.approval_requested"]
            assert request["name"] == "book_table" and request["arguments"]["party_size"] == 2
            done = events[-1]["response"]
            assert done["status"] == "incomplete"
            assert done["status_details"]["parley_reason"] == "awaiting_approval"

            await conn.send_raw(
                json.dumps(
                    {
                        "type": "parley.approval",
                        "tool_call_id": request["tool_call_id"],
                        "approved": True,
                    }
                )
            )
            events = await until(conn, "response.done")
            kinds = [e["type"] for e in events]
            assert kinds[:3] == [
                "parley.approval_resolved",
                "response.created",
                "rate_limits.updated",
            ]
            booked = next(e for e in events if e["type"] == "parley.tool_call_completed")
            assert (booked["name"], booked["status"]) == ("book_table", "ok")
            reply = next(e for e in events if e["type"] == "response.output_text.done")["text"]
            assert booked["result"]["confirmation"] in reply
            assert events[-1]["response"]["status"] == "completed"
        approvals = await services.store.list_approvals(session_id, "approved")
        assert [a.tool_call_id for a in approvals] == [request["tool_call_id"]]
        await client.close()


async def test_response_cancel_stops_the_llm_turn_and_keeps_what_was_said(
    tmp_path: Path, fake_openai: FakeOpenAIServer
) -> None:
    gate = asyncio.Event()  # never set: the model stalls after two deltas
    fake_openai.script(
        Reply.of(Text("Once upon "), Text("a time"), Wait(gate)), Reply.text("Where was I?")
    )
    async with realtime_server(
        tmp_path, llm_base_url=fake_openai.base_url, llm_model="fake-model"
    ) as (base_url, _, services):
        client = openai.AsyncOpenAI(api_key="anything", base_url=f"{base_url}/v1")
        async with client.realtime.connect(model="demo") as conn:
            session_id = (await next_raw(conn))["session"]["id"]
            await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
            await until(conn, "session.updated")
            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "A story"}],
                }
            )
            await until(conn, "conversation.item.done")
            await conn.response.create()
            seen = ""
            while seen != "Once upon a time":
                event = await next_raw(conn)
                if event["type"] == "response.output_text.delta":
                    seen += event["delta"]
            await conn.response.cancel()
            events = await until(conn, "response.done")
            done = events[-1]["response"]
            assert done["status"] == "cancelled"
            assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
            assert done["output"][0]["content"][0]["text"] == "Once upon a time"
            assert done["output"][0]["status"] == "incomplete"

            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Go on"}],
                }
            )
            await until(conn, "conversation.item.done")
            await conn.response.create()
            events = await until(conn, "response.done")
            assert events[-1]["response"]["status"] == "completed"
            text = next(e for e in events if e["type"] == "response.output_text.done")["text"]
            assert text == "Where was I?"
        stored = await services.store.list_messages(session_id)
        said = [(m.role, m.text, m.interrupted) for m in stored if m.role in ("user", "assistant")]
        assert said[-4:] == [
            ("user", "A story", False),
            ("assistant", "Once upon a time", True),
            ("user", "Go on", False),
            ("assistant", "Where was I?", False),
        ]
        await client.close()


async def test_binary_frames_are_refused_with_an_error_and_the_session_goes_on(
    tmp_path: Path,
) -> None:
    async with realtime_server(tmp_path) as (base_url, _, _services):
        ws_url = base_url.replace("http", "ws") + "/v1/realtime?model=demo"
        async with websockets.connect(ws_url) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            await ws.send(b"\x00\x01")
            err = json.loads(await ws.recv())
            assert (err["type"], err["error"]["code"]) == ("error", "invalid_type")
            await ws.send(json.dumps({"type": "input_audio_buffer.clear", "event_id": "c1"}))
            assert json.loads(await ws.recv())["type"] == "input_audio_buffer.cleared"


async def stream_audio(conn: Any, audio: bytes, chunk: int) -> None:
    for i in range(0, len(audio), chunk):
        await conn.input_audio_buffer.append(audio=base64.b64encode(audio[i : i + chunk]).decode())


@pytest.mark.parametrize(
    ("fmt", "rate", "encode", "decode"),
    [
        ("audio/pcm", 24000, bytes, bytes),
        ("audio/pcmu", 8000, encode_ulaw, decode_ulaw),
        ("audio/pcma", 8000, encode_alaw, decode_alaw),
    ],
)
async def test_a_spoken_turn_with_server_vad(
    tmp_path: Path, fmt: str, rate: int, encode: Any, decode: Any
) -> None:
    """espeak speech in (PCM16 24 kHz, μ-law or A-law 8 kHz), Parley's VAD and STT, a spoken
    answer and its transcript out, in the same format."""
    speech = pad_silence(speak_pcm(PHRASE, "en-us", 175, rate), 0.3, 1.2, rate)
    audio_format = {"type": fmt, "rate": 24000} if fmt == "audio/pcm" else {"type": fmt}
    async with realtime_server(tmp_path) as (base_url, _, services):
        client = openai.AsyncOpenAI(api_key="anything", base_url=f"{base_url}/v1")
        async with client.realtime.connect(model="demo") as conn:
            session_id = (await next_raw(conn))["session"]["id"]
            await conn.session.update(
                session={
                    "type": "realtime",
                    "audio": {
                        "input": {
                            "format": audio_format,
                            "transcription": {"model": "whisper-1"},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
                        },
                        "output": {"format": audio_format},
                    },
                }
            )
            await until(conn, "session.updated")
            await stream_audio(conn, encode(speech), rate // 50 * (2 if fmt == "audio/pcm" else 1))
            events = await until(conn, "response.done")
        kinds = [e["type"] for e in events]
        order = [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.input_audio_transcription.completed",
            "response.created",
            "response.output_audio.delta",
            "response.output_audio_transcript.done",
            "response.done",
        ]
        firsts = [kinds.index(k) for k in order]  # each one is there, in this order
        assert firsts == sorted(firsts), kinds
        heard = next(e for e in events if e["type"].endswith("transcription.completed"))
        assert "table" in heard["transcript"] and "two" in heard["transcript"]
        out = b"".join(
            decode(base64.b64decode(e["delta"]))
            for e in events
            if e["type"] == "response.output_audio.delta"
        )
        assert len(out) > 2 * rate  # more than a second of spoken answer
        transcript = next(e for e in events if e["type"] == "response.output_audio_transcript.done")
        done = events[-1]["response"]
        assert done["status"] == "completed"
        assert done["output"][0]["content"][0]["transcript"] == transcript["transcript"]
        assert transcript["transcript"].strip()
        stored = await services.store.list_messages(session_id)
        user = [m for m in stored if m.role == "user"]
        assert user and "table" in user[-1].text and user[-1].channel == "realtime"
        await client.close()


async def test_barge_in_cancels_the_response_and_truncate_cuts_the_item(tmp_path: Path) -> None:
    rate = 24000
    speech = pad_silence(speak_pcm(PHRASE, "en-us", 175, rate), 0.3, 1.2, rate)
    barge = pad_silence(speak_pcm("no wait, stop please", "en-us", 175, rate), 0.0, 1.2, rate)
    async with realtime_server(tmp_path) as (base_url, _, services):
        client = openai.AsyncOpenAI(api_key="anything", base_url=f"{base_url}/v1")
        async with client.realtime.connect(model="demo") as conn:
            session_id = (await next_raw(conn))["session"]["id"]
            await stream_audio(conn, speech, rate // 50 * 2)
            first = (await until(conn, "response.output_audio.delta"))[-1]
            await stream_audio(conn, barge, rate // 50 * 2)  # the user talks over the answer
            events = [first, *await until(conn, "response.done")]
            played_ms = sum(
                len(base64.b64decode(e["delta"])) // 48
                for e in events
                if e["type"] == "response.output_audio.delta" and e["item_id"] == first["item_id"]
            )
            assert played_ms > 0
            done = events[-1]["response"]
            assert done["id"] == first["response_id"]
            assert done["status"] == "cancelled"
            assert done["status_details"]["reason"] == "turn_detected"
            assert "input_audio_buffer.speech_started" in [e["type"] for e in events]
            heard_ms = played_ms // 2  # the client played half of what it got
            await conn.conversation.item.truncate(
                item_id=first["item_id"], content_index=0, audio_end_ms=heard_ms
            )
            truncated = (await until(conn, "conversation.item.truncated"))[-1]
            assert (truncated["item_id"], truncated["audio_end_ms"]) == (first["item_id"], heard_ms)
            await conn.conversation.item.retrieve(item_id=first["item_id"])
            item = (await until(conn, "conversation.item.retrieved"))[-1]["item"]
            await conn.conversation.item.truncate(
                item_id=first["item_id"], content_index=0, audio_end_ms=10**6
            )
            err = (await until(conn, "error"))[-1]
            assert (err["error"]["code"], err["error"]["param"]) == (
                "invalid_value",
                "audio_end_ms",
            )
        await until_ended(services, session_id)
        stored = await services.store.list_messages(session_id)
        cut = [m for m in stored if m.role == "assistant" and m.interrupted]
        heard = item["content"][0]["transcript"]
        assert heard and heard in [m.text for m in cut]  # cut to what was heard
        await client.close()


async def test_push_to_talk_commit_then_response_create(tmp_path: Path) -> None:
    rate = 24000
    speech = pad_silence(speak_pcm(PHRASE, "en-us", 175, rate), 0.2, 0.3, rate)
    async with realtime_server(tmp_path) as (base_url, _, _services):
        client = openai.AsyncOpenAI(api_key="anything", base_url=f"{base_url}/v1")
        async with client.realtime.connect(model="demo") as conn:
            await next_raw(conn)
            await conn.session.update(
                session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
            )
            await until(conn, "session.updated")
            await conn.input_audio_buffer.commit()  # nothing buffered yet
            assert (await until(conn, "error"))[-1]["error"][
                "code"
            ] == "input_audio_buffer_commit_empty"
            await stream_audio(conn, speech, rate // 50 * 2)
            await conn.input_audio_buffer.commit()
            committed = (await until(conn, "input_audio_buffer.committed"))[-1]
            await conn.response.create()
            events = await until(conn, "response.done")
        item = next(
            e["item"]
            for e in events
            if e["type"] == "conversation.item.done" and e["item"]["id"] == committed["item_id"]
        )
        assert "table" in item["content"][0]["transcript"]
        assert events[-1]["response"]["status"] == "completed"
        assert any(e["type"] == "response.output_audio.delta" for e in events)
        await client.close()
