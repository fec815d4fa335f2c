"""The relay's Prometheus metrics (names shared with the dashboard and alerts)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

TURN_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
STAGES = ("asr", "llm_first_sentence", "tts_first_audio", "face", "motion", "first_reply")
# Service calls last from milliseconds (face, asr) to a whole reply (llm, tts streams).
CALL_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class RelayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.turns_total = Counter(
            "solami_relay_turns_total",
            "Turns finished, by method and outcome.",
            ("method", "outcome"),
            registry=r,
        )
        self.turn_stage_seconds = Histogram(
            "solami_relay_turn_stage_seconds",
            "Time from the WAV's arrival until a stage of the turn was done.",
            ("stage",),
            buckets=TURN_BUCKETS_S,
            registry=r,
        )
        self.time_to_first_audio_seconds = Histogram(
            "solami_relay_time_to_first_audio_seconds",
            "Time from the WAV's arrival to the first reply WAV sent to the headset.",
            buckets=TURN_BUCKETS_S,
            registry=r,
        )
        self.active_sessions = Gauge(
            "solami_relay_active_sessions", "Headsets with a live session.", registry=r
        )
        self.inflight_turns = Gauge(
            "solami_relay_inflight_turns", "Turns being answered now.", registry=r
        )
        self.barge_ins_total = Counter(
            "solami_relay_barge_ins_total", "Answers interrupted by a new utterance.", registry=r
        )
        self.cut_to_silence_seconds = Histogram(
            "solami_relay_cut_to_silence_seconds",
            "From a new utterance's arrival (or a character change) to the silence that stops "
            "the reply still playing on the headset.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.errors_total = Counter(
            "solami_relay_errors_total",
            "Problems handled without stopping, by kind.",
            ("kind",),
            registry=r,
        )
        self.redis_up = Gauge(
            "solami_relay_redis_up", "1 while Redis answers the relay, else 0.", registry=r
        )
        self.session_redis_up = Gauge(
            "solami_relay_session_redis_up",
            "1 while the sessions' Redis answers the relay's PING (every 5 s), else 0.",
            registry=r,
        )
        self.frames_total = Counter(
            "solami_relay_frames_total", "aiStream frames published.", registry=r
        )
        self.service_call_seconds = Histogram(
            "solami_relay_service_call_seconds",
            "Duration of the relay's calls to the services, by service and RPC.",
            ("service", "rpc"),
            buckets=CALL_BUCKETS_S,
            registry=r,
        )
        self.service_calls_total = Counter(
            "solami_relay_service_calls_total",
            "The relay's calls to the services, by service, RPC and gRPC status code.",
            ("service", "rpc", "code"),
            registry=r,
        )
        for stage in STAGES:
            self.turn_stage_seconds.labels(stage)

    def observe_call(self, service: str, rpc: str, code: str, seconds: float) -> None:
        """Counts one finished service call (``code``: a gRPC status name, or CANCELLED when
        the relay dropped it)."""
        self.service_call_seconds.labels(service, rpc).observe(seconds)
        self.service_calls_total.labels(service, rpc, code).inc()
