"""One-shot voice for clients without WebSockets (PROTOCOL.md "One-shot voice").

``POST /v1/sessions/{id}/voice-turn`` takes a WAV file — a raw ``audio/wav`` body or
a multipart form with the field ``file`` — and answers JSON::

    {"transcript", "turn": bool, "text", "audio_url" | "audio", "sample_rate",
     "turn_status", "events": [...turn events...]}

The audio (PCM16 WAV, any rate and channel count, at most 60 s) is resampled for the
agent's STT and transcribed; the transcript runs as one user turn of the same brain
chat uses (channel ``voice``); the reply — every ``assistant_message`` of the turn,
plus the approval prompt when the turn ends awaiting approval — is synthesised with
the agent's TTS. While an approval is pending, the audio is recognised with the
yes/no grammar and a clear "yes"/"no" decides the approval, as on the voice
WebSocket. An empty transcript runs no turn (``"turn": false``, empty text).

Reply audio. ``audio_url`` is the path (on this server) of
``GET /v1/sessions/{id}/voice-turn/{audio_id}.wav``.
The WAV is kept base64-encoded in the coordinator's key-value store for
``AUDIO_TTL_S`` seconds, so any worker can serve it when Redis is configured. The
URL needs no ``Authorization`` header (an ``<audio src>`` cannot send one): its
``audio_id`` is a random 128-bit secret, like a pre-signed URL, and it expires.
With ``?inline=1`` the WAV comes base64-encoded in ``audio`` instead.

Errors (``{"code", "message"}``): 401/404 as for every session call; 403
``operator_not_allowed`` for the operator key (it never speaks as the user);
410 ``session_ended``; 409 ``wrong_channel`` while another channel (e.g. a voice
WebSocket) holds the session, 409 ``session_busy`` while a turn runs;
415 ``unsupported_media_type`` (body is neither WAV nor multipart),
415 ``unsupported_audio`` (not a PCM16 WAV); 422 ``invalid_audio`` (truncated or
empty), 422 ``audio_too_long``, 422 ``invalid_request`` (multipart without ``file``);
503 ``engine_unavailable``/502 (the STT failed; no turn ran). A TTS failure after the
turn still answers 200, with no audio and an ``error`` in ``events``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from parley.audio.resample import resample
from parley.audio.wav import WavAudio, WavFormatError, WavStreamDecoder, encode_wav
from parley.brain import errors
from parley.brain.answers import yes_or_no
from parley.brain.core import UserInput
from parley.brain.turn_stream import TurnStream
from parley.channels.actors import refuse_operator
from parley.channels.chat import ServicesDep, TokenDep
from parley.channels.http_errors import ApiError
from parley.channels.http_models import error_responses
from parley.channels.services import Services
from parley.channels.strict_route import StrictRoute
from parley.channels.transcript_policy import hide_words
from parley.engines.base import STT, TTS, EngineError, EngineSet, EngineUnavailable
from parley.events import ApprovalRequested, AssistantMessage, Error, Event, TurnEnd
from parley.logs import bind_session
from parley.sessions.records import Session
from parley.sessions.stats import SessionStats
from parley.voice.chunker import speakable
from parley.voice.response import APOLOGY

log = logging.getLogger(__name__)

MAX_AUDIO_S = 60.0
RATES = range(8000, 192001)  # sample rates accepted in uploads
OUTPUT_RATES = range(8000, 48001)
WAV_TYPES = frozenset(
    {"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "application/octet-stream"}
)


async def _engines(services: Services, agent: str) -> EngineSet:
    try:
        engines: EngineSet = await services.engine_hub.engines_for(agent)
    except EngineError as exc:
        raise ApiError(503, exc.code, f"the speech engines are not available: {exc}") from None
    return engines


async def _stt_for(services: Services, agent: str, sample_rate: int) -> STT:
    """The agent's recogniser for this input rate (8 kHz WAVs get the phone-grade one)."""
    hub = services.engine_hub
    try:
        return await hub.stt_for_rate(agent, sample_rate)
    except EngineError as exc:
        raise ApiError(503, exc.code, f"the speech engines are not available: {exc}") from None


# --- the uploaded audio ---------------------------------------------------------------------


def decode_wav_upload(body: bytes, max_seconds: float = MAX_AUDIO_S) -> WavAudio:
    """The PCM16 mono audio of an uploaded WAV file, or an ``ApiError`` (415/422)."""
    if not body:
        raise ApiError(422, "invalid_audio", "the audio is empty: send a WAV file")
    decoder = WavStreamDecoder()
    try:
        pcm = decoder.feed(body)
    except WavFormatError as exc:
        raise ApiError(
            415, "unsupported_audio", f"only PCM16 WAV audio is supported: {exc}"
        ) from None
    try:
        decoder.finish()
    except WavFormatError as exc:
        raise ApiError(
            422, "invalid_audio", f"the WAV file is truncated or damaged: {exc}"
        ) from None
    rate = decoder.sample_rate or 0
    if rate not in RATES:
        raise ApiError(415, "unsupported_audio", f"sample rate {rate} Hz is not supported")
    audio = WavAudio(pcm, rate)
    if audio.duration_s > max_seconds:
        raise ApiError(
            422,
            "audio_too_long",
            f"the audio is {audio.duration_s:.1f} s long; at most {max_seconds:g} s is accepted",
        )
    return audio


async def read_upload(request: Request) -> bytes:
    """The WAV bytes of a raw ``audio/wav`` body or of a multipart ``file`` field."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in WAV_TYPES:
        return await request.body()
    if content_type != "multipart/form-data":
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the audio as an audio/wav body or as multipart/form-data with a 'file' field",
        )
    try:
        form = await request.form(max_files=1, max_fields=16)
    except HTTPException as exc:
        raise ApiError(422, "invalid_request", f"malformed multipart body: {exc.detail}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(
                422,
                "invalid_request",
                "file: a WAV file is required in the multipart field 'file'",
                fields=[{"field": "file", "message": "a WAV file is required"}],
            )
        return await upload.read()
    finally:
        await form.close()


# --- recognition, the turn, synthesis ---------------------------------------------------------


async def transcribe(stt: STT, pcm: bytes, *, yes_no: bool = False) -> str:
    """The transcript of one utterance (16 kHz or whatever the STT takes)."""
    if not yes_no:
        return (await stt.transcribe(pcm)).strip()
    stream = stt.open_stream()
    try:
        stream.set_mode("yes_no")
        await stream.push(pcm)
        return (await stream.finish()).strip()
    finally:
        await stream.close()


@dataclass(frozen=True)
class TurnOutcome:
    events: list[Event]
    text: str
    status: str | None


def reply_text(events: list[Event]) -> str:
    """What the agent says: its messages, then approval prompts if it is waiting for one."""
    parts = [ev.text for ev in events if isinstance(ev, AssistantMessage)]
    status = next((ev.status for ev in reversed(events) if isinstance(ev, TurnEnd)), None)
    if status == "awaiting_approval":
        parts += [ev.prompt for ev in events if isinstance(ev, ApprovalRequested)]
    parts = [p.strip() for p in parts if p.strip()]
    if not parts and any(isinstance(ev, Error) for ev in events):
        parts = [APOLOGY]
    return " ".join(parts)


async def run_turn(turn: TurnStream) -> TurnOutcome:
    """Start the turn (``TurnRejected`` becomes 409/410 before anything ran) and collect it."""
    await turn.start()
    events = [event async for event in turn]
    status = next((ev.status for ev in reversed(events) if isinstance(ev, TurnEnd)), None)
    return TurnOutcome(events, reply_text(events), status)


async def synthesize(tts: TTS, text: str, sample_rate: int | None) -> tuple[bytes, int]:
    """``text`` spoken as PCM16 at ``sample_rate`` (default: the engine's own rate)."""
    chunks = [chunk async for chunk in tts.synthesize(speakable(text))]
    rate = tts.capabilities.sample_rate
    pcm = b"".join(chunks)
    if sample_rate is not None and sample_rate != rate:
        pcm = await asyncio.to_thread(resample, pcm, rate, sample_rate)
        rate = sample_rate
    return pcm, rate


# --- routes -------------------------------------------------------------------------------------

router = APIRouter(
    prefix="/v1",
    tags=["voice"],
    route_class=StrictRoute,
    responses=error_responses(400, 401, 403, 404, 409, 410, 413, 415, 422, 429, 502, 503),
)


async def _check_session(services: Services, session: Session) -> None:
    if session.status != "active":
        raise errors.session_ended()
    current = await services.lifecycle.current_channel(session.id)
    if current != "chat":  # e.g. a voice WebSocket holds the session
        raise errors.wrong_channel(current)


async def _heard(
    services: Services, session: Session, stt: STT, audio: WavAudio
) -> tuple[str, str | None]:
    """(transcript, the pending approval it may answer)."""
    rate = stt.capabilities.sample_rate
    pcm = await asyncio.to_thread(resample, audio.pcm, audio.sample_rate, rate)
    pending = await services.store.list_approvals(session.id, "pending")
    try:
        text = await transcribe(stt, pcm, yes_no=bool(pending))
    except EngineUnavailable as exc:
        raise ApiError(503, exc.code, f"speech recognition is not available: {exc}") from None
    except EngineError as exc:
        raise ApiError(502, exc.code, f"speech recognition failed: {exc}") from None
    return text, (pending[0].tool_call_id if pending else None)


def _turn_for(services: Services, session: Session, text: str, pending: str | None) -> TurnStream:
    decision = yes_or_no(text) if pending is not None else None
    if pending is not None and decision is not None:
        return services.brain.decide(
            session.id, pending, decision, decided_by="voice", channel="voice"
        )
    return services.brain.user_turn(session.id, UserInput(text, "voice"))


# The body is read by ``read_upload``, not by a model: the OpenAPI document says what it is.
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "a PCM16 WAV file (any rate and channel count, at most 60 s)",
        "content": {
            "audio/wav": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}


@router.post("/sessions/{session_id}/voice-turn", openapi_extra=UPLOAD_BODY)
async def voice_turn(
    session_id: str,
    request: Request,
    services: ServicesDep,
    token: TokenDep,
    inline: bool = False,
    sample_rate: Annotated[int | None, Query(ge=8000, le=48000)] = None,
) -> dict[str, Any]:
    """One spoken user turn: WAV in; transcript, reply text and reply audio out."""
    session = await services.lifecycle.authorize(session_id, token)
    bind_session(session.id)
    refuse_operator(services, token, "speak in a session")
    await _check_session(services, session)
    audio = await asyncio.to_thread(decode_wav_upload, await read_upload(request))
    engines = await _engines(services, session.agent)
    stt = await _stt_for(services, session.agent, audio.sample_rate)
    transcript, pending = await _heard(services, session, stt, audio)
    answer: dict[str, Any] = {"transcript": transcript, "turn": False, "text": ""}
    if not transcript:
        return _shown(
            services, session, {**answer, "audio_url": None, "turn_status": None, "events": []}
        )
    outcome = await run_turn(_turn_for(services, session, transcript, pending))
    wire = [ev.to_wire() for ev in outcome.events]
    stats = SessionStats(turns=1)
    for event in outcome.events:
        if isinstance(event, Error):
            stats.error(event.code)
    await services.lifecycle.add_stats(session.id, stats.take())
    answer.update(turn=True, text=outcome.text, turn_status=outcome.status, audio_url=None)
    if not speakable(outcome.text).strip():
        return _shown(services, session, {**answer, "events": wire})
    try:
        pcm, rate = await synthesize(engines.tts, outcome.text, sample_rate)
    except EngineError as exc:
        log.warning("voice-turn of %s: speech synthesis failed: %s", session.id, exc)
        wire.append(Error(exc.code, f"speech synthesis failed: {exc}").to_wire())
        return _shown(services, session, {**answer, "events": wire})
    wav = encode_wav(pcm, rate)
    answer["sample_rate"] = rate
    if inline:
        answer["audio"] = base64.b64encode(wav).decode("ascii")
    else:
        audio_id = await services.reply_audio.put(session.id, wav)
        answer["audio_url"] = f"/v1/sessions/{session.id}/voice-turn/{audio_id}.wav"
    return _shown(services, session, {**answer, "events": wire})


def _shown(services: Services, session: Session, answer: dict[str, Any]) -> dict[str, Any]:
    """The answer as the agent's ``transcripts_to_client`` lets the client see it."""
    agent = services.agents.get(session.agent)
    if agent is None or agent.transcripts_to_client:
        return answer
    return hide_words(answer)


WAV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the reply audio",
        "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.get(
    "/sessions/{session_id}/voice-turn/{audio_id}.wav",
    response_class=Response,
    responses=WAV_RESPONSE,
)
async def voice_turn_audio(session_id: str, audio_id: str, services: ServicesDep) -> Response:
    """The reply audio of a voice turn (the URL is the credential; it expires)."""
    wav = await services.reply_audio.get(session_id, audio_id)
    if wav is None:
        raise ApiError(404, "audio_not_found", "no such reply audio (it may have expired)")
    ttl = int(services.reply_audio.ttl_s)
    headers = {"Cache-Control": f"private, max-age={ttl}"}
    return Response(wav, media_type="audio/wav", headers=headers)
