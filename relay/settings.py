"""Settings of the relay (``SOLAMI_RELAY_*``, plus the shared ``SOLAMI_REDIS_URL`` and
``SOLAMI_RIG_DATA``)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from solami.methods import METHODS, unknown_method
from solami.redis_local import redacted
from solami.registry import RELAY, redis_url
from solami.settings import SettingsError, check_port, load_settings


@dataclasses.dataclass(frozen=True)
class HeadsetConfig:
    """Where one headset connects and where its Redis keys live."""

    name: str
    # WebSocket port the headset connects to.
    ws_port: int
    # Redis database of its keys (the Unity client uses fixed key names).
    redis_db: int
    # Prefix of its keys inside that database ("" = plain keys, as the client expects).
    key_prefix: str = ""

    def key(self, name: str) -> str:
        """The Redis key of protocol key ``name`` for this headset."""
        return f"{self.key_prefix}{name}"


@dataclasses.dataclass(frozen=True)
class RelaySettings:
    """How the relay serves headsets."""

    # Interface for the WebSocket, HTTP and metrics servers.
    host: str = "0.0.0.0"
    # WebSocket port of the default headset.
    port: int = RELAY.port
    # HTTP port of the compatibility API and /healthz.
    http_port: int = 8080
    # Prometheus /metrics port (-1 = off).
    metrics_port: int = RELAY.metrics_port
    # Headsets as "name:ws_port:redis_db[:key_prefix]" separated by commas; empty = one
    # headset "main" on `port` using the database of SOLAMI_REDIS_URL with plain keys.
    headsets: str = ""
    # Redis database of the sessions (apart from the headsets' databases, which the headset
    # client flushes when it starts).
    session_db: int = 1
    # Conversation method of new sessions: "dlp+retrieval", "dlp+motiongpt",
    # "dlp+motiongpt+retrieval", "llm+speech" or "solami".
    method: str = "dlp+retrieval"
    # llm+speech replies play a talking gesture from the motion library; False plays none (the
    # idle body), as the original server and the paper's llm+speech baseline.
    speech_gesture: bool = True
    # Seconds a session may stay idle before it expires from Redis.
    session_idle_s: float = 3600.0
    # Directory with bone_data/ and retargetmap/ (the public SOLAMI repository's data).
    rig_data: Path | None = None
    # Seconds each stage may take before the turn falls back to an apology.
    asr_deadline_s: float = 10.0
    llm_deadline_s: float = 30.0
    tts_deadline_s: float = 20.0
    face_deadline_s: float = 10.0
    motion_deadline_s: float = 10.0
    # A session's turns go to one llm replica (where its prompt prefix is cached) while that
    # replica lives; False spreads turns over the llm replicas like every other service's calls.
    llm_affinity: bool = True
    # Seconds of cross-fade between idle and answer animation.
    blend_s: float = 0.3
    # A reply WAV is sent this many seconds before the previous one ends (network + decode).
    send_ahead_s: float = 0.12
    # Entries kept in aiStream and userStream (XADD MAXLEN / XTRIM, approximate).
    stream_maxlen: int = 600
    # When set, every turn's reply (WAV, SMPL-X npz, face npz) is also written here.
    record_dir: Path | None = None
    # Folder for the compatibility API's reply files.
    files_dir: Path = Path("/tmp/solami-relay-files")
    log_format: str = "json"
    log_level: str = "INFO"
    # Seconds a compatibility API reply file is kept when nobody fetches it (each file is
    # deleted once fetched; the original relay fetches each exactly once).
    files_ttl_s: float = 600.0
    # Megabytes all reply files may take together; past it the oldest are deleted first.
    files_max_mb: float = 256.0
    # Redis server of the headsets' keys (each headset's database on it), when that is not the
    # server of SOLAMI_REDIS_URL, which keeps the sessions: a Redis beside the relay serving
    # only its headsets. Empty = SOLAMI_REDIS_URL's server.
    headset_redis_url: str = ""

    def validate(self, prefix: str = "") -> None:
        for name in ("port", "http_port"):
            check_port(f"{prefix}{name.upper()}", getattr(self, name))
        if self.metrics_port != -1:
            check_port(f"{prefix}METRICS_PORT", self.metrics_port)
        if self.method not in METHODS:
            raise SettingsError(f"{prefix}METHOD: {unknown_method(self.method)}")
        if self.rig_data is not None and not (self.rig_data / "bone_data").is_dir():
            raise SettingsError(
                f"SOLAMI_RIG_DATA must be a directory with bone_data/ and retargetmap/, "
                f"got {self.rig_data}"
            )
        self.headset_configs(0)
        if self.files_ttl_s <= 0 or self.files_max_mb <= 0:
            raise SettingsError(f"{prefix}FILES_TTL_S and {prefix}FILES_MAX_MB must be > 0")
        if self.headset_redis_url and (
            not self.headset_redis_url.startswith(("redis://", "rediss://"))
            or not (urlparse(self.headset_redis_url).path.strip("/") or "0").isdigit()
        ):
            raise SettingsError(
                f"{prefix}HEADSET_REDIS_URL must be a redis:// or rediss:// URL ending in a "
                f"database number, got {redacted(self.headset_redis_url)!r}"
            )

    def headset_configs(self, default_db: int) -> tuple[HeadsetConfig, ...]:
        """The configured headsets (the default one when none are listed)."""
        if not self.headsets.strip():
            return (HeadsetConfig("main", self.port, default_db),)
        configs = []
        for spec in self.headsets.split(","):
            parts = spec.strip().split(":", 3)
            if len(parts) not in (3, 4) or not parts[1].isdigit() or not parts[2].isdigit():
                raise SettingsError(
                    f"SOLAMI_RELAY_HEADSETS entry {spec!r} must be name:ws_port:redis_db[:prefix]"
                )
            configs.append(HeadsetConfig(parts[0], int(parts[1]), int(parts[2]), *parts[3:]))
        ports = [c.ws_port for c in configs]
        if len(set(ports)) != len(ports):
            raise SettingsError("SOLAMI_RELAY_HEADSETS gives two headsets the same port")
        return tuple(configs)


def load_relay_settings(environ: Mapping[str, str] | None = None) -> tuple[RelaySettings, str]:
    """The relay's settings and the Redis URL, from the environment."""
    env = os.environ if environ is None else environ
    settings = load_settings(RelaySettings, RELAY.env_prefix, env)
    rig = env.get("SOLAMI_RIG_DATA")
    if rig and settings.rig_data is None:
        settings = dataclasses.replace(settings, rig_data=Path(rig))
        settings.validate(RELAY.env_prefix)
    url = redis_url(env)
    database = urlparse(url).path.strip("/") or "0"
    if not database.isdigit():
        raise SettingsError(f"SOLAMI_REDIS_URL must end in a database number, got {url!r}")
    default_db = int(database)
    for config in settings.headset_configs(default_db):
        # Headsets on a Redis of their own never share a database with the sessions.
        if config.redis_db == settings.session_db and not settings.headset_redis_url:
            raise SettingsError(
                f"{RELAY.env_prefix}SESSION_DB ({settings.session_db}) is headset "
                f"{config.name!r}'s Redis database, which the headset empties (FLUSHDB) when it "
                "starts: give the sessions another database"
            )
    return settings, url
