"""One-shot voice turns (``POST /v1/sessions/{id}/voice-turn``) on a real server with the
real embedded engines: espeak-made WAVs in, pocketsphinx transcripts, espeak replies.

Every server test runs twice: SQLite + in-process coordination, PostgreSQL + Redis
(the reply audio then lives in Redis).
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import httpx
import numpy as np

from parley.audio import encode_wav, read_wav
from parley.channels.reply_audio import ReplyAudioStore
from parley.client import ParleyClient
from parley.sessions.local import LocalCoordinator
from parley.testing import FakeClock
from parley.testing.speech import pad_silence, speak_pcm
from tests.plugins.apps import RunningApp
from tests.test_chat_api import book_until_approval


def speech_wav(text: str, sample_rate: int = 16000) -> bytes:
    pcm = pad_silence(speak_pcm(text, sample_rate=sample_rate), 0.3, 0.5, sample_rate)
    return encode_wav(pcm, sample_rate)


def stereo_wav(pcm: bytes, sample_rate: int) -> bytes:
    mono = np.frombuffer(pcm, dtype="<i2")
    frames = np.stack([mono, mono], axis=1).astype("<i2").tobytes()
    header = struct.pack("<4sI4s", b"RIFF", 36 + len(frames), b"WAVE")
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 2, sample_rate, sample_rate * 4, 4, 16)
    return header + fmt + struct.pack("<4sI", b"data", len(frames)) + frames


async def post_turn(
    client: ParleyClient, *, token: str | None = None, session_id: str | None = None, **kwargs: Any
) -> httpx.Response:
    sid = session_id or client.session_id
    headers = client._auth(token)
    headers.update(kwargs.pop("headers", {}))
    return await client.http.post(
        f"{client.base_url}/v1/sessions/{sid}/voice-turn", headers=headers, **kwargs
    )


def raw(wav: bytes) -> dict[str, Any]:
    return {"content": wav, "headers": {"Content-Type": "audio/wav"}}


def error_of(resp: httpx.Response) -> tuple[int, str]:
    body = resp.json()
    assert body["message"], body
    return resp.status_code, body["code"]


async def test_spoken_question_gets_transcript_reply_and_audio_url(
    running: RunningApp, client: ParleyClient
) -> None:
    await client.create_session("demo")
    resp = await post_turn(client, **raw(speech_wav("is there parking")))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["transcript"] == "is there parking"
    assert body["turn"] is True and body["turn_status"] == "completed"
    assert "parking on Quay Road" in body["text"]
    types = [e["type"] for e in body["events"]]
    assert "assistant_message" in types and types[-1] == "turn_end"
    assert "audio" not in body and body["audio_url"].endswith(".wav")

    async with httpx.AsyncClient(base_url=running.base_url) as anonymous:  # the URL suffices
        audio = await anonymous.get(body["audio_url"])
        assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
        reply = read_wav(audio.content)
        assert reply.sample_rate == body["sample_rate"] == 22050
        assert reply.duration_s > 2.0
        missing = await anonymous.get(body["audio_url"].replace(".wav", "x.wav"))
        assert error_of(missing) == (404, "audio_not_found")

    history = await client.messages()
    user = [m for m in history if m["role"] == "user"]
    assert [(m["text"], m["channel"]) for m in user] == [("is there parking", "voice")]
    assert history[-1]["role"] == "assistant" and "Quay Road" in history[-1]["text"]
    assert (await client.get(""))["stats"]["turns"] == 1  # per-session stats count it


async def test_inline_audio_at_a_chosen_rate_from_a_multipart_stereo_upload(
    client: ParleyClient,
) -> None:
    await client.create_session("demo")
    wav = stereo_wav(
        pad_silence(speak_pcm("where are you", sample_rate=44100), 0.3, 0.5, 44100), 44100
    )
    resp = await post_turn(
        client, params={"inline": "1", "sample_rate": "16000"},
        files={"file": ("question.wav", wav, "audio/wav")},
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["transcript"] == "where are you"
    assert "Harbour Street" in body["text"] and body["audio_url"] is None
    reply = read_wav(base64.b64decode(body["audio"]))
    assert reply.sample_rate == 16000 and reply.duration_s > 2.0


async def test_silent_audio_runs_no_turn(client: ParleyClient) -> None:
    await client.create_session("demo")
    before = len(await client.messages())
    resp = await post_turn(client, **raw(encode_wav(bytes(32000), 16000)))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body == {
        "transcript": "", "turn": False, "text": "", "audio_url": None,
        "turn_status": None, "events": [],
    }  # fmt: skip
    assert len(await client.messages()) == before


def eight_bit_wav() -> bytes:
    body = bytes(800)
    header = struct.pack("<4sI4s", b"RIFF", 36 + len(body), b"WAVE")
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 8000, 8000, 1, 8)
    return header + fmt + struct.pack("<4sI", b"data", len(body)) + body


async def test_wrong_content_and_formats_get_clear_errors(client: ParleyClient) -> None:
    await client.create_session("demo")
    good = speech_wav("hello")
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("text body", {"content": b"hello", "headers": {"Content-Type": "text/plain"}},
         415, "unsupported_media_type"),
        ("json body", {"json": {"text": "hi"}}, 415, "unsupported_media_type"),
        ("no content type", {"content": good}, 415, "unsupported_media_type"),
        ("mp3 bytes", raw(b"ID3\x04\x00" + bytes(400)), 415, "unsupported_audio"),
        ("8-bit WAV", raw(eight_bit_wav()), 415, "unsupported_audio"),
        ("empty body", raw(b""), 422, "invalid_audio"),
        ("header only", raw(good[:30]), 422, "invalid_audio"),
        ("61 s", raw(encode_wav(bytes(2 * 8000 * 61), 8000)), 422, "audio_too_long"),
        ("multipart without file",
         {"files": {"audio": ("a.wav", good, "audio/wav")}}, 422, "invalid_request"),
        ("bad output rate", {**raw(good), "params": {"sample_rate": "1000"}},
         422, "invalid_request"),
    ]  # fmt: skip
    for name, kwargs, status, code in cases:
        resp = await post_turn(client, **kwargs)
        assert error_of(resp) == (status, code), f"{name}: {resp.text}"
    assert [m["role"] for m in await client.messages()] == ["assistant"]  # the greeting only


async def test_auth_and_unknown_session(client: ParleyClient) -> None:
    await client.create_session("demo")
    wav = raw(speech_wav("hello"))
    wrong = await post_turn(client, token="wrong-token", **wav)
    assert error_of(wrong) == (404, "session_not_found")
    anonymous = await client.http.post(
        f"{client.base_url}/v1/sessions/{client.session_id}/voice-turn", **wav
    )
    assert error_of(anonymous) == (401, "unauthorized")
    unknown = await post_turn(client, session_id="no-such-session", **wav)
    assert error_of(unknown) == (404, "session_not_found")


async def test_busy_wrong_channel_and_ended_sessions_are_refused(
    running: RunningApp, client: ParleyClient
) -> None:
    await client.create_session("demo")
    sid = client.session_id
    wav = raw(speech_wav("where are you"))
    coordinator, lifecycle = running.services.coordinator, running.services.lifecycle
    assert await coordinator.acquire_lock(f"turn:{sid}", "a-chat-turn", 60)
    assert error_of(await post_turn(client, **wav)) == (409, "session_busy")
    await coordinator.release_lock(f"turn:{sid}", "a-chat-turn")
    voice = await lifecycle.attach(sid, "voice")  # as a voice WebSocket does
    assert error_of(await post_turn(client, **wav)) == (409, "wrong_channel")
    await lifecycle.detach(voice)
    await client.end()
    assert error_of(await post_turn(client, **wav)) == (410, "session_ended")
    assert [m["role"] for m in await client.messages()] == ["assistant"]


async def test_spoken_yes_approves_the_pending_booking(client: ParleyClient) -> None:
    request = await book_until_approval(client)
    resp = await post_turn(client, **raw(speech_wav("yes please")))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["transcript"].startswith("yes")
    resolved = [e for e in body["events"] if e["type"] == "approval_resolved"]
    assert resolved == [
        {"type": "approval_resolved", "tool_call_id": request["tool_call_id"],
         "status": "approved", "decided_by": "voice"}
    ]  # fmt: skip
    assert "You're booked" in body["text"] and body["audio_url"]


async def test_a_turn_awaiting_approval_speaks_the_prompt(client: ParleyClient) -> None:
    await client.create_session("demo")
    async for _ in client.send("I'd like a table for 2 next Wednesday at 7pm"):
        pass
    resp = await post_turn(client, **raw(speech_wav("i'm michael")))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["transcript"] == "i'm michael", body
    assert body["turn_status"] == "awaiting_approval"
    prompt = next(e["prompt"] for e in body["events"] if e["type"] == "approval_requested")
    assert body["text"].endswith(prompt) and body["audio_url"]


# --- the reply audio store, on a fake clock ---------------------------------------------------


async def test_reply_audio_expires_and_is_swept() -> None:
    clock = FakeClock()
    coordinator = LocalCoordinator(clock)
    store = ReplyAudioStore(coordinator, clock, ttl_s=300)
    first = await store.put("s1", b"RIFF-one")
    assert await store.get("s1", first) == b"RIFF-one"
    assert await store.get("s2", first) is None  # another session's URL does not work
    assert await store.get("s1", "../etc") is None
    clock.advance(299)
    assert await store.get("s1", first) == b"RIFF-one"
    clock.advance(2)
    assert await store.get("s1", first) is None
    second = await store.put("s1", b"RIFF-two")
    assert second != first and await store.get("s1", second) == b"RIFF-two"


async def test_unfetched_reply_audio_does_not_pile_up() -> None:
    clock = FakeClock()
    coordinator = LocalCoordinator(clock)
    store = ReplyAudioStore(coordinator, clock, ttl_s=10)
    ids = [await store.put("s", b"x" * 100) for _ in range(5)]
    clock.advance(11)
    await store.put("s", b"new")
    keys = [f"voice-turn-audio:s:{i}" for i in ids]
    assert all(k not in coordinator._values for k in keys)  # deleted, not just expired
    assert len(coordinator._values) == 1
