"""One settings object, from `ATP_*` environment variables; built by entry points, passed down."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from atp.core.errors import ATPError
from atp.core.ledger import Policy

ENV_PREFIX = "ATP_"
HOUR_MS = 3600 * 1000
_HOSTPORT = re.compile(r"[A-Za-z0-9.\-\[\]:]+:\d{1,5}")


class SettingsError(ATPError):
    code = "settings"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    # uvicorn worker processes for `atp api`; above 1 the metrics of all of them are summed
    # through prometheus_client's multiprocess mode (README, Metrics).
    api_workers: int = Field(1, ge=1, le=64)
    # uvicorn's HTTP parser: "auto" takes httptools (installed with the service), "h11" the
    # pure-Python one (benchmarks/api.md compares them).
    api_http: Literal["auto", "h11", "httptools"] = "auto"
    # Admission control, per API process (api/admission.py): at most this many requests at
    # once, then up to ATP_API_MAX_QUEUED waiting at most ATP_API_QUEUE_WAIT_S; the rest get
    # 503 overloaded at once. /healthz, /readyz and /metrics are never held back.
    api_max_in_flight: int = Field(128, ge=1, le=100_000)
    api_max_queued: int = Field(512, ge=0, le=1_000_000)
    api_queue_wait_s: float = Field(1.0, ge=0, le=60)
    # A request body larger than this is refused with 413 before it is read (api/body_limit.py).
    api_max_body_bytes: int = Field(1_048_576, ge=1024, le=1_073_741_824)
    network_file: Path = Path("config/network.yaml")

    # Topic names are `<topic_prefix>stock.wms` and so on; a prefix lets tests share a broker.
    topic_prefix: str = ""
    partitions: int = Field(4, ge=1, le=1024)
    group_id: str = "atp-worker"
    # Tansu joins a group in about half the session timeout: keep it short (DESIGN.md).
    session_timeout_s: float = Field(10.0, ge=3.0, le=300.0)
    # 2: source topics -> normaliser -> stock.movements (keyed by SKU) -> ledger hop -> Redis.
    # 1: each batch of source messages applied straight to the ledger, its movements still
    # published to stock.movements (stream/direct.py; benchmarks/README.md, One hop or two).
    hops: int = Field(2, ge=1, le=2)
    worker_web_host: str = "127.0.0.1"
    worker_web_port: int = Field(6066, ge=1, le=65535)
    batch_max: int = Field(1000, ge=1, le=100_000)
    batch_wait_s: float = Field(0.02, ge=0.001, le=5.0)
    # How long a consumer fetch may wait at the broker for new records: Tansu answers such a
    # fetch late even when records arrive (benchmarks/README.md).
    fetch_max_wait_ms: int = Field(100, ge=1, le=1500)
    # Largest batch, in bytes, the worker produces per partition in one go (stream/forward.py).
    forward_batch_bytes: int = Field(262_144, ge=16_384, le=1_048_576)
    # Records the worker's consumer hands over per poll (faust: unlimited), and bytes it fetches
    # per partition at a time (faust: 1 MiB). Smaller amounts let stock.movements in between a
    # backlog of source records, so the ledger starts sooner (benchmarks/README.md). A record
    # larger than the fetch size is still delivered (Kafka KIP-74; Tansu does the same).
    max_poll_records: int = Field(1000, ge=1, le=100_000)
    max_partition_fetch_bytes: int = Field(262_144, ge=16_384, le=16_777_216)
    retention_hours: float = Field(48.0, gt=0, le=24 * 30)
    inbound_grace_hours: float = Field(24.0, ge=0, le=24 * 90)
    # Acknowledge (and so commit) a batch only after Redis has fsynced it to its AOF.
    durable_acks: bool = True
    # How often a worker reads the ledger's counters (size, SKUs per stock status) into its
    # gauges: one HGETALL of one small hash, whatever the size of the ledger.
    gauge_refresh_s: float = Field(5.0, ge=0.1, le=3600)

    # API answers
    cache_max_age_s: int = Field(1, ge=0, le=3600)
    config_poll_s: float = Field(2.0, ge=0.1, le=3600)
    max_batch_skus: int = Field(500, ge=1, le=10_000)
    # Delivery options and sourcing plans: a split plan has at most this many locations, and
    # requests may set `now` (order time) only when this is on: for tests and what-if tools.
    max_plan_parts: int = Field(3, ge=1, le=5)
    allow_now_override: bool = False
    default_radius_km: float = Field(50.0, gt=0, le=500)
    stale_after_s: float = Field(60.0, gt=0)  # answers older than this count as stale
    # GET /_bench/bare: a constant answer through the same app and server, the baseline that
    # benchmarks compare against. Off unless asked for.
    bench_endpoints: bool = False

    # Reservations and API keys
    api_keys: SecretStr = SecretStr("")  # key_id:scope+scope:secret,...; see api/auth.py
    public_reads: bool = True  # availability reads without a key
    reservation_replay_hours: float = Field(24.0, ge=0, le=24 * 30)
    # A reservation whose attempt got no answer (Redis stalled, a reply lost) is pending: the
    # same request again answers 409 reservation_in_progress for this long after that attempt
    # began, then takes it over and gets the definite answer.
    reservation_takeover_s: float = Field(3.0, ge=0.1, le=60)
    max_reservation_ttl_s: int = Field(7 * 24 * 3600, ge=1)
    sweep_interval_s: float = Field(0.5, ge=0.05, le=60)

    # The memory limit of the Redis `atp up` starts (docs/operations.md: sizing Redis); full,
    # it refuses holds and stock updates and goes on serving reads.
    up_redis_maxmemory_mb: int = Field(1024, ge=16, le=1_048_576)
    # The memory the embedded broker may hold (Tansu's memory storage never deletes a record):
    # at 80 % `atp up` stops the simulator, at 100 % the whole stack, each with a message.
    up_broker_max_mb: int = Field(2048, ge=32, le=1_048_576)

    data_dir: Path = Path(".atp")
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap(cls, value: str) -> str:
        parts = [p.strip() for p in value.split(",")]
        if not parts or not all(_HOSTPORT.fullmatch(p) for p in parts):
            raise ValueError("expected host:port[,host:port...], for example 127.0.0.1:9092")
        return ",".join(parts)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        schemes = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
        if not value.startswith(schemes):
            raise ValueError(
                "expected a redis://, rediss://, unix:// URL, or redis+cluster:// (or "
                "rediss+cluster://) naming a node of a Redis Cluster"
            )
        return value

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def ledger_policy(self) -> Policy:
        """The ledger's windows: retention (dedupe, reordering) and inbound grace."""
        return Policy(
            retention_ms=int(self.retention_hours * HOUR_MS),
            inbound_grace_ms=int(self.inbound_grace_hours * HOUR_MS),
        )

    @property
    def reservation_replay_ms(self) -> int:
        """How long a closed reservation answers replays."""
        return int(self.reservation_replay_hours * HOUR_MS)

    def to_env(self) -> dict[str, str]:
        """These settings as ATP_* variables, so a child process sees exactly the same."""
        out = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            text = str(value).lower() if isinstance(value, bool) else str(value)
            out[f"{ENV_PREFIX}{name.upper()}"] = text
        return out


def load_settings(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from `env` (default: the process environment); errors name the variable."""
    try:
        if env is None:
            return Settings(**overrides)  # type: ignore[arg-type]
        values = {
            k[len(ENV_PREFIX) :].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)
        }
        values.update(overrides)
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ENV_PREFIX + "_".join(str(p) for p in err["loc"]).upper()
            problems.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
