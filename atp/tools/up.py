"""`atp up`: the whole stack on one machine, supervised, stopped cleanly by Ctrl-C/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlparse

from pydantic import SecretStr

from atp.api_keys import digest_entry, new_token
from atp.kafka import topics
from atp.settings import Settings, load_settings
from atp.tools import embedded
from atp.tools.embedded import EmbeddedError, ManagedProcess
from atp.tools.pki import make_pki
from atp.tools.redis_users import REDIS_USERS, acl_with_passwords

log = logging.getLogger(__name__)


@dataclass
class Child:
    """A supervised child: restarted with backoff when it dies on its own."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # over the stack's settings
    proc: ManagedProcess | None = None
    restarts: int = 0
    next_start: float = 0.0
    retired: bool = False  # stopped on purpose: not restarted


# What `BrokerGuard.check` asks for.
GO_ON, STOP_SIMULATOR, STOP_STACK = "go on", "stop the simulator", "stop the stack"


@dataclass
class BrokerGuard:
    """Keeps the embedded broker from running the machine out of memory.

    Tansu's memory storage keeps every record of every topic and never deletes one (retention
    settings are ignored; DeleteRecords is not implemented), so it grows with the traffic: about
    10 MB a minute with the simulator at 50 messages/s. At `pause_at` of the limit the
    simulator, which makes nearly all of that traffic, is stopped and the rest of the stack
    goes on, bounded; at the limit (API traffic alone can still get there) the stack stops."""

    limit_mb: int
    pause_at: float = 0.8

    def check(self, rss_mb: float, simulating: bool) -> str:
        if rss_mb >= self.limit_mb:
            return STOP_STACK
        if simulating and rss_mb >= self.pause_at * self.limit_mb:
            return STOP_SIMULATOR
        return GO_ON


def rss_mb(pid: int) -> float | None:
    """A process's resident memory in MiB (None where /proc is not there)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Stack:
    def __init__(
        self,
        settings: Settings,
        *,
        external: bool,
        simulate: bool,
        rate: float,
        secure: bool = False,
    ) -> None:
        if secure and external:
            raise EmbeddedError(
                "--secure starts its own broker and Redis behind TLS; for a running one, "
                "set its ATP_KAFKA_SECURITY_PROTOCOL, ATP_KAFKA_SSL_* and ATP_REDIS_* settings "
                "(docs/operations.md) and use --external alone"
            )
        self.token: str | None = None
        if not settings.api_keys.get_secret_value():
            # No keys configured: make one for this run; only its digest goes to the children.
            self.token = new_token()
            spec = SecretStr(digest_entry("local", "read+reserve+admin", self.token))
            settings = settings.model_copy(update={"api_keys": spec})
        if "ATP_DEMO_PAGE" not in os.environ:  # the demo page is on here unless said otherwise
            settings = settings.model_copy(update={"demo_page": True})
        if "ATP_WEBHOOK_ALLOWED_NETWORKS" not in os.environ:
            # A development stack: webhooks may go to a receiver on this machine.
            settings = settings.model_copy(
                update={"webhook_allowed_networks": "127.0.0.0/8,::1/128"}
            )
        self.settings = settings
        self.external = external
        self.secure = secure
        self.api_env: dict[str, str] = {}
        self.simulate = simulate
        self.rate = rate
        self.run_dir = settings.data_dir / "up"
        self.log_dir = self.run_dir / "logs"
        self.infra: list[ManagedProcess] = []
        self.children: list[Child] = []
        self._stopping = False
        self.guard = BrokerGuard(settings.up_broker_max_mb)
        self._next_guard = 0.0

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        try:
            self._start()
            self._banner()
            self._supervise()
        finally:
            self.stop()
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True

    def _start(self) -> None:
        if not self.external:
            # The embedded broker keeps everything in memory, so Redis starts empty too.
            shutil.rmtree(self.run_dir, ignore_errors=True)
            broker_port = int(self.settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1])
            redis_port = urlparse(self.settings.redis_url).port or 6379
            for name, port, env in (
                ("broker", broker_port, "ATP_KAFKA_BOOTSTRAP"),
                ("redis", redis_port, "ATP_REDIS_URL"),
            ):
                if not _port_free(port):
                    raise EmbeddedError(
                        f"port {port} for the {name} is in use; stop what uses it or set {env} "
                        f"to another 127.0.0.1 port (or use --external to use that {name})"
                    )
            if self.secure:
                self._start_behind_tls(broker_port, redis_port)
            else:
                self.infra.append(embedded.start_broker(broker_port, self.log_dir))
                self.infra.append(self._start_redis(redis_port))
        asyncio.run(topics.ensure_topics(self.settings))
        py = sys.executable
        self.children = [
            Child("worker", [py, "-m", "stream"]),
            Child("api", [py, "-m", "api"], env=self.api_env),
        ]
        if self.simulate:
            simulate = [py, "-m", "atp", "simulate", "--rate", str(self.rate)]
            self.children.append(Child("simulator", simulate))
        for child in self.children:
            self._spawn(child)
        self._wait_ready()

    def _start_redis(self, port: int, extra: list[str] | None = None) -> ManagedProcess:
        return embedded.start_redis(
            port,
            self.run_dir / "redis",
            self.log_dir,
            maxmemory_mb=self.settings.up_redis_maxmemory_mb,
            extra=extra or [],
        )

    def _start_behind_tls(self, broker_port: int, redis_port: int) -> None:
        """`--secure`: the broker and Redis on internal loopback ports, each behind a TLS
        terminator on the configured port that wants a client certificate (mutual TLS); Redis
        with the documented ACL users (new passwords each run, in files), no default user."""
        pki = make_pki(self.run_dir / "pki")
        secret_dir = self.run_dir / "secrets"
        secret_dir.mkdir(mode=0o700, parents=True)
        passwords = {role: secrets.token_urlsafe(24) for role in REDIS_USERS}
        password_files = {}
        for role, user in REDIS_USERS.items():
            path = secret_dir / user
            path.touch(mode=0o600)
            path.write_text(passwords[role] + "\n", encoding="utf-8")
            password_files[role] = path
        acl_file = secret_dir / "users.acl"
        acl_file.touch(mode=0o600)
        acl_file.write_text(acl_with_passwords(passwords), encoding="utf-8")

        inner_broker, inner_redis = embedded.free_port(), embedded.free_port()
        tls = {"cert": pki.server_cert, "key": pki.server_key, "log_dir": self.log_dir}
        self.infra.append(
            embedded.start_broker(inner_broker, self.log_dir, advertised_port=broker_port)
        )
        self.infra.append(
            embedded.start_tls_terminator(
                "broker-tls", broker_port, inner_broker, **tls, client_ca=pki.ca
            )
        )
        self.infra.append(self._start_redis(inner_redis, ["--aclfile", str(acl_file)]))
        self.infra.append(
            embedded.start_tls_terminator(
                "redis-tls", redis_port, inner_redis, **tls, client_ca=pki.ca
            )
        )
        db = urlparse(self.settings.redis_url).path.lstrip("/") or "0"
        client = {"CAFILE": pki.ca, "CERTFILE": pki.client_cert, "KEYFILE": pki.client_key}
        env = {
            **self.settings.to_env(),
            "ATP_KAFKA_SECURITY_PROTOCOL": "SSL",
            **{f"ATP_KAFKA_SSL_{k}": str(v) for k, v in client.items()},
            "ATP_REDIS_URL": f"rediss://127.0.0.1:{redis_port}/{db}",
            **{f"ATP_REDIS_SSL_{k}": str(v) for k, v in client.items()},
            "ATP_REDIS_USERNAME": REDIS_USERS["worker"],
            "ATP_REDIS_PASSWORD_FILE": str(password_files["worker"]),
        }
        env.pop("ATP_REDIS_PASSWORD", None)
        self.settings = load_settings(env)
        self.api_env = {
            "ATP_REDIS_USERNAME": REDIS_USERS["api"],
            "ATP_REDIS_PASSWORD_FILE": str(password_files["api"]),
        }

    def _spawn(self, child: Child) -> None:
        env = {**os.environ, **self.settings.to_env(), **child.env}
        child.proc = embedded.spawn(child.name, child.argv, self.log_dir, env=env)
        log.info("started %s (pid %d)", child.name, child.proc.pid)

    def _wait_ready(self, timeout_s: float = 60.0) -> None:
        url = f"http://{self.settings.api_host}:{self.settings.api_port}/readyz"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._stopping:
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
            for child in self.children:
                if child.proc is not None and not child.proc.alive():
                    raise EmbeddedError(f"{child.name} exited at start:\n{child.proc.log_tail()}")
            time.sleep(0.2)
        if not self._stopping:
            raise EmbeddedError(f"the API did not become ready at {url} within {timeout_s:.0f}s")

    def _banner(self) -> None:
        s = self.settings
        base = f"http://{s.api_host}:{s.api_port}"
        topic_names = ", ".join(map(s.topic, topics.ALL))
        pids = " ".join(f"{p.name}={p.pid}" for p in self.infra)
        pids += " " + " ".join(f"{c.name}={c.proc.pid}" for c in self.children if c.proc)
        print(
            "\n".join(
                [
                    "",
                    "inventory availability is up",
                    f"  API        {base}   e.g. {base}/v1/availability/SKU-000001",
                    f"  delivery   curl -s {base}/v1/delivery-options -H 'content-type: "
                    'application/json\' -d \'{"lines": [{"sku": "SKU-000001", '
                    '"quantity": 1}], "destination": {"postal_code": "10003"}}\'',
                    f"  API docs   {base}/docs",
                    f"  console    {base}/console/?sku=SKU-000001   (for service agents)",
                    *(
                        [f"  demo page  {base}/demo/?sku=SKU-000001&postal_code=10003"]
                        if s.demo_page
                        else []
                    ),
                    f"  broker     {s.kafka_bootstrap}  topics: {topic_names}",
                    f"  redis      {s.redis_url}",
                    *self._security_lines(),
                    f"  worker     http://{s.worker_web_host}:{s.worker_web_port}/metrics",
                    f"  logs       {self.log_dir}/",
                    f"  processes  {pids.strip()}",
                    f"  API key    {self.token or '(from ATP_API_KEYS)'}"
                    + ("   send as: Authorization: Bearer <key>" if self.token else ""),
                    "  stop       Ctrl-C (stops every process started here)",
                    "",
                ]
            ),
            flush=True,
        )

    def _security_lines(self) -> list[str]:
        s = self.settings
        if not self.secure:
            return []
        users = " and ".join(REDIS_USERS.values())
        return [
            f"  TLS        broker and redis want a client certificate; CA, certificate and key "
            f"in {s.kafka_ssl_cafile.parent if s.kafka_ssl_cafile else '?'}/",
            f"  users      redis ACL users {users}, passwords in {self.run_dir / 'secrets'}/",
        ]

    def _supervise(self) -> None:
        while not self._stopping:
            now = time.monotonic()
            for proc in self.infra:
                if not proc.alive():
                    raise EmbeddedError(f"the {proc.name} died:\n{proc.log_tail()}")
            if now >= self._next_guard:
                self._next_guard = now + 5.0
                self._guard_broker()
            for child in self.children:
                if child.retired:
                    continue
                proc = child.proc
                if proc is not None and not proc.alive():
                    delay = min(30.0, 2.0 ** min(child.restarts, 5))
                    log.warning(
                        "%s (pid %d) exited with %s; restarting in %.0fs",
                        child.name,
                        proc.pid,
                        proc.popen.returncode,
                        delay,
                    )
                    child.proc = None
                    child.restarts += 1
                    child.next_start = now + delay
                elif proc is None and now >= child.next_start:
                    self._spawn(child)
            time.sleep(0.2)

    def _guard_broker(self) -> None:
        broker = next((p for p in self.infra if p.name == "broker"), None)
        used = None if broker is None else rss_mb(broker.pid)
        if used is None:
            return
        simulator = next((c for c in self.children if c.name == "simulator"), None)
        simulating = simulator is not None and not simulator.retired
        action = self.guard.check(used, simulating)
        held = (
            f"the embedded broker holds {used:,.0f} MB, its limit is {self.guard.limit_mb:,} MB "
            "(ATP_UP_BROKER_MAX_MB): Tansu keeps every record in memory and never deletes one"
        )
        if action == STOP_STACK:
            raise EmbeddedError(
                f"{held}; stopping the stack before the machine runs out of memory. "
                "Start it again for an empty broker, or raise ATP_UP_BROKER_MAX_MB"
            )
        if action == STOP_SIMULATOR and simulator is not None:
            simulator.retired = True
            if simulator.proc is not None:
                simulator.proc.stop(grace_s=15)
            message = (
                f"{held}; the simulator is stopped (the API and the worker go on). "
                "Start the stack again for an empty broker, or raise ATP_UP_BROKER_MAX_MB"
            )
            log.warning("%s", message)
            print(message, flush=True)

    def stop(self) -> None:
        """Stop everything started here, by PID, in reverse order of start."""
        for child in reversed(self.children):
            if child.proc is not None:
                child.proc.stop(grace_s=15)
        for proc in reversed(self.infra):
            proc.stop(grace_s=10)
        self.children, self.infra = [], []


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
