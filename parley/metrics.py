"""Prometheus metrics of one app (``/metrics``; names start with ``parley_``).

One ``Metrics`` object per app with its own registry (no process-global state, so
several apps in one test process do not collide). The channels and the session
lifecycle report into it; ``render()`` is the text exposition format.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)
STAGES = ("stt", "llm_first_token", "tts_first_audio", "voice_to_voice", "chat_turn")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.live_sessions = Gauge(
            "parley_live_sessions",
            "Sessions with a live channel on this worker",
            ["channel"],
            registry=r,
        )
        self.turn_latency = Histogram(
            "parley_turn_latency_seconds",
            "Turn latency per stage",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.terminations = Counter(
            "parley_sessions_ended", "Sessions ended, by reason", ["reason"], registry=r
        )
        self.errors = Counter(
            "parley_errors", "Errors sent to clients, by code", ["code"], registry=r
        )
        self.bad_messages = Counter(
            "parley_bad_messages",
            "Malformed client messages, by channel",
            ["channel"],
            registry=r,
        )
        self.audio_frames = Counter(
            "parley_audio_frames", "Audio frames (20 ms) in and out", ["direction"], registry=r
        )
        self.turns = Counter("parley_turns", "Turns run, by channel", ["channel"], registry=r)

    def observe_latency(self, stage: str, seconds: float) -> None:
        if seconds >= 0:
            self.turn_latency.labels(stage).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


# ``done.latency_ms`` keys (ms after the end of the user's speech) → histogram stages
VOICE_STAGES = {
    "stt_final": "stt",
    "first_token": "llm_first_token",
    "first_audio": "voice_to_voice",
}


def observe_turn_latency(metrics: Metrics, latency_ms: dict[str, float]) -> None:
    """One voice turn's latencies (``Done.latency_ms``) into the per-stage histogram."""
    for key, stage in VOICE_STAGES.items():
        value = latency_ms.get(key)
        if value is not None:
            metrics.observe_latency(stage, value / 1000)
