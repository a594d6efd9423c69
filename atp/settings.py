"""One settings object, from `ATP_*` environment variables; built by entry points, passed down."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from atp.core.errors import ATPError
from atp.core.ledger import Policy
from atp.core.webhooks import parse_networks

ENV_PREFIX = "ATP_"
HOUR_MS = 3600 * 1000
_HOSTPORT = re.compile(r"[A-Za-z0-9.\-\[\]:]+:\d{1,5}")


class SettingsError(ATPError):
    code = "settings"


# The secrets, each of which may also come from a file: ATP_<NAME>_FILE (as container
# platforms mount them), never both.
SECRETS = ("api_keys", "kafka_sasl_password", "kafka_ssl_key_password", "redis_password")
_KAFKA_TLS = ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
_REDIS_TLS = ("redis_ssl_cafile", "redis_ssl_certfile", "redis_ssl_keyfile")


def _env(name: str) -> str:
    return ENV_PREFIX + name.upper()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    # How every Kafka client of the service connects (atp/kafka/security.py), named as the
    # clients name them; docs/operations.md, "Managed Kafka and Redis".
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] = (
        "PLAIN"
    )
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    # OAUTHBEARER: a file holding the current token, read again for every new token (the
    # platform that mounts it also renews it).
    kafka_sasl_oauth_token_file: Path | None = None
    kafka_ssl_cafile: Path | None = None  # None: the system's trusted CAs
    kafka_ssl_certfile: Path | None = None  # mutual TLS: the client's certificate ...
    kafka_ssl_keyfile: Path | None = None  # ... and its key
    kafka_ssl_key_password: SecretStr = SecretStr("")
    kafka_ssl_check_hostname: bool = True
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Redis ACL user and TLS (with a rediss:// URL); a user or password here wins over one in
    # the URL. The worker and the API may run as different users (docs/operations.md).
    redis_username: str = ""
    redis_password: SecretStr = SecretStr("")
    redis_ssl_cafile: Path | None = None
    redis_ssl_certfile: Path | None = None
    redis_ssl_keyfile: Path | None = None
    redis_ssl_check_hostname: bool = True
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
    # Kits and their components (atp.core.kits); no file: no kits. Reloaded like the network.
    catalog_file: Path = Path("config/catalog.yaml")

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
    # Movements the ledger keeps per (SKU, location) for GET /v1/availability/{sku}/movements
    # (atp.core.journal); 0: none. Memory: docs/operations.md, "Sizing Redis".
    journal_entries: int = Field(20, ge=0, le=1000)
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
    # GET /demo/: a product page that shows the live stream, delivery promises and pickup
    # (api/demo/). Off unless asked for; `atp up` turns it on.
    demo_page: bool = False

    # Live availability (GET /v1/stream/availability): SKUs per stream (413 above), open streams
    # per API process (429 above), and a comment sent on a quiet stream this often (proxies
    # close idle connections).
    stream_max_skus: int = Field(50, ge=1, le=1000)
    stream_max_connections: int = Field(5000, ge=1, le=100_000)
    stream_heartbeat_s: float = Field(15.0, gt=0, le=300)

    # Reservations and API keys
    api_keys: SecretStr = SecretStr("")  # key_id:scope+scope:secret,...; see api/auth.py
    public_reads: bool = True  # availability reads without a key
    reservation_replay_hours: float = Field(24.0, ge=0, le=24 * 30)
    # A reservation whose attempt got no answer (Redis stalled, a reply lost) is pending: the
    # same request again answers 409 reservation_in_progress for this long after that attempt
    # began, then takes it over and gets the definite answer. A pending transfer or change of a
    # reservation makes another one 409 reservation_busy as long, then that one finishes it.
    reservation_takeover_s: float = Field(3.0, ge=0.1, le=60)
    max_reservation_ttl_s: int = Field(7 * 24 * 3600, ge=1)
    sweep_interval_s: float = Field(0.5, ge=0.05, le=60)

    # Webhooks (POST /v1/webhooks; the worker sends them, docs/api.md). Targets must be public
    # addresses over https, except inside these networks (CIDRs; http allowed there too).
    webhook_allowed_networks: str = ""
    # Seconds to wait after each failed attempt (Svix's schedule: about 27 h in all), then the
    # delivery is kept as failed.
    webhook_retry_s: str = "5,300,1800,7200,18000,36000,36000"
    webhook_timeout_s: float = Field(10.0, gt=0, le=60)  # per attempt, connect to last byte
    webhook_concurrency: int = Field(4, ge=1, le=64)  # attempts in flight per subscription
    webhook_max_pending: int = Field(100_000, ge=1)  # per subscription; more are dropped
    # CloudEvents `source` of webhooks (and of the topics' records in the cloudevents format);
    # the format of stock.availability and stock.reservations records.
    event_source: str = Field("/inventory-availability", min_length=1)
    event_format: Literal["plain", "cloudevents"] = "plain"

    # The memory limit of the Redis `atp up` starts (docs/operations.md: sizing Redis); full,
    # it refuses holds and stock updates and goes on serving reads.
    up_redis_maxmemory_mb: int = Field(1024, ge=16, le=1_048_576)
    # The memory the embedded broker may hold (Tansu's memory storage never deletes a record):
    # at 80 % `atp up` stops the simulator, at 100 % the whole stack, each with a message.
    up_broker_max_mb: int = Field(2048, ge=32, le=1_048_576)

    data_dir: Path = Path(".atp")
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # secret -> the file it was read from (load_settings), so to_env passes the file on
    _secret_files: dict[str, Path] = PrivateAttr(default_factory=dict)

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap(cls, value: str) -> str:
        parts = [p.strip() for p in value.split(",")]
        if not parts or not all(_HOSTPORT.fullmatch(p) for p in parts):
            raise ValueError("expected host:port[,host:port...], for example 127.0.0.1:9092")
        return ",".join(parts)

    @field_validator("webhook_retry_s")
    @classmethod
    def _retry_schedule(cls, value: str) -> str:
        try:
            waits = [float(w) for w in value.split(",") if w.strip()]
        except ValueError:
            waits = [-1.0]
        if not all(0 <= w <= 7 * 86400 for w in waits):
            raise ValueError("expected seconds to wait, comma-separated, e.g. 5,300,1800")
        return value

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)  # its error names the setting
        return value

    @property
    def webhook_retry_schedule(self) -> tuple[float, ...]:
        return tuple(float(w) for w in self.webhook_retry_s.split(",") if w.strip())

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

    @model_validator(mode="after")
    def _connections(self) -> Settings:
        kafka_tls = self.kafka_security_protocol in ("SSL", "SASL_SSL")
        kafka_sasl = self.kafka_security_protocol.startswith("SASL_")
        problems = []
        if not kafka_tls:
            given = [n for n in _KAFKA_TLS if getattr(self, n) is not None]
            problems += [
                f"{_env(n)} is set but ATP_KAFKA_SECURITY_PROTOCOL is not SSL or SASL_SSL"
                for n in given
            ]
        if kafka_sasl and self.kafka_sasl_mechanism == "OAUTHBEARER":
            if self.kafka_sasl_oauth_token_file is None:
                problems.append("OAUTHBEARER needs ATP_KAFKA_SASL_OAUTH_TOKEN_FILE")
        elif kafka_sasl and not (
            self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()
        ):
            problems.append(
                f"{self.kafka_security_protocol} needs ATP_KAFKA_SASL_USERNAME and "
                "ATP_KAFKA_SASL_PASSWORD (or ATP_KAFKA_SASL_PASSWORD_FILE)"
            )
        redis_tls = self.redis_url.startswith(("rediss://", "rediss+cluster://"))
        if not redis_tls:
            given = [n for n in _REDIS_TLS if getattr(self, n) is not None]
            problems += [f"{_env(n)} is set but ATP_REDIS_URL is not rediss://" for n in given]
        for prefix in ("kafka", "redis"):
            cert, key = (
                getattr(self, f"{prefix}_ssl_certfile"),
                getattr(self, f"{prefix}_ssl_keyfile"),
            )
            if (cert is None) != (key is None):
                problems.append(
                    f"{_env(prefix + '_ssl_certfile')} and {_env(prefix + '_ssl_keyfile')} "
                    "go together (a client certificate and its key)"
                )
        for name in (*_KAFKA_TLS, *_REDIS_TLS, "kafka_sasl_oauth_token_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                problems.append(f"{_env(name)}: no file at {path}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def ledger_policy(self) -> Policy:
        """The ledger's windows: retention (dedupe, reordering) and inbound grace."""
        return Policy(
            retention_ms=int(self.retention_hours * HOUR_MS),
            inbound_grace_ms=int(self.inbound_grace_hours * HOUR_MS),
            journal_entries=self.journal_entries,
            journal_ttl_ms=int(self.retention_hours * HOUR_MS),
        )

    @property
    def reservation_replay_ms(self) -> int:
        """How long a closed reservation answers replays."""
        return int(self.reservation_replay_hours * HOUR_MS)

    def to_env(self) -> dict[str, str]:
        """These settings as ATP_* variables, so a child process sees exactly the same; a
        secret that came from a file is passed on as its file's path (ATP_<NAME>_FILE)."""
        out = {}
        for name, value in self.model_dump().items():
            if name in self._secret_files:
                out[_env(name) + "_FILE"] = str(self._secret_files[name])
                continue
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            text = str(value).lower() if isinstance(value, bool) else str(value)
            out[_env(name)] = text
        return out


def load_settings(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from `env` (default: the process environment); errors name the variable.
    A secret may come from the file that ATP_<NAME>_FILE names (SECRETS)."""
    try:
        files = _secret_files(os.environ if env is None else env)
        secrets = {name: _read_secret(name, path) for name, path in files.items()}
        if env is None:
            settings = Settings(**secrets, **overrides)  # type: ignore[arg-type]
        else:
            values = {
                k[len(ENV_PREFIX) :].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)
            }
            values.update(secrets)
            values.update(overrides)
            settings = Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            if not err["loc"]:  # a rule across settings: its message names them
                problems.append(err["msg"].removeprefix("Value error, "))
                continue
            name = ENV_PREFIX + "_".join(str(p) for p in err["loc"]).upper()
            problems.append(f"{name}: {err['msg']}" + _shown(err))
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
    settings._secret_files.update(files)
    return settings


def _shown(err: Any) -> str:
    """What was given, except for a secret."""
    if err["loc"][0] in SECRETS:
        return ""
    return f" (got {err.get('input')!r})"


def _secret_files(env: Mapping[str, str]) -> dict[str, Path]:
    files = {}
    for name in SECRETS:
        path = env.get(_env(name) + "_FILE")
        if not path:
            continue
        if env.get(_env(name)):
            raise SettingsError(f"set {_env(name)} or {_env(name)}_FILE, not both")
        files[name] = Path(path)
    return files


def _read_secret(name: str, path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SettingsError(f"{_env(name)}_FILE: cannot read {path}: {reason}") from None
