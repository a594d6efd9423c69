"""The sockets `atp api` listens on with several uvicorn workers: one per worker.

uvicorn binds one socket in the supervisor and hands it to every worker. Two things go wrong
with that on Linux, both measured with `benchmarks/api_bench.py` at ATP_API_WORKERS=2 on two
cores (benchmarks/api.md):

- The socket is made with `socket.socket(family)`, so its `proto` reads 0; accepted connections
  inherit it, and asyncio turns on TCP_NODELAY only when `proto` is IPPROTO_TCP. With Nagle's
  algorithm on, every keep-alive request after the first waited for the client's delayed ACK:
  44 ms each, 724 req/s on the bare endpoint against 7,528 with one worker (uvicorn #3149).
- Whichever worker wakes first accepts every connection waiting (asyncio accepts up to the
  backlog at once), so a client's keep-alive connections mostly land on one worker: runs of
  the bare endpoint used 1.0 to 1.7 of the two cores.

So the supervisor binds its socket with SO_REUSEPORT and never listens on it (it keeps the
port), and each worker, as it unpickles its socket, binds a socket of its own to the same
address in the same reuse-port group: the kernel spreads connections over the workers' sockets,
and a worker that dies takes only its own socket (and the connections queued on it) with it.
This module is not api/__main__.py because the workers must import it.
"""

from __future__ import annotations

import logging
import socket
import sys

import uvicorn
from uvicorn.config import STARTUP_FAILURE

log = logging.getLogger("uvicorn.error")


def _bind(sock: socket.socket, address: tuple[str, int]) -> socket.socket:
    """`sock` bound to `address` in its reuse-port group (not listening yet)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock


def worker_socket(family: int, address: tuple[str, int]) -> socket.socket:
    """What a PerWorkerSocket becomes in the process that unpickles it: a TCP socket of its own
    (proto IPPROTO_TCP, so asyncio gives its connections TCP_NODELAY) on the same address."""
    return _bind(socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP), address)


class PerWorkerSocket(socket.socket):
    """The supervisor's socket: pickled to a worker, it arrives as that worker's own socket."""

    def __reduce__(self) -> tuple[object, tuple[int, tuple[str, int]]]:
        host, port = self.getsockname()[:2]
        return worker_socket, (self.family, (host, port))


class TCPConfig(uvicorn.Config):
    """uvicorn's Config; with several workers, each gets a socket of its own (see above)."""

    def bind_socket(self) -> socket.socket:
        if self.uds is not None or self.fd is not None or not hasattr(socket, "SO_REUSEPORT"):
            return super().bind_socket()
        family = socket.AF_INET6 if self.host and ":" in self.host else socket.AF_INET
        sock = PerWorkerSocket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            # First without SO_REUSEPORT: a port something listens on (another program, or an
            # `atp api` still running: its workers listen) is refused, as uvicorn refuses it,
            # not quietly shared.
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((self.host, self.port))
                port = probe.getsockname()[1]  # the port chosen, when asked for port 0
            _bind(sock, (self.host, port))
        except OSError as exc:
            sock.close()
            log.error(exc)
            sys.exit(STARTUP_FAILURE)
        host, port = sock.getsockname()[:2]
        log.info(
            "Uvicorn running on http://%s:%d, a socket per worker (Press CTRL+C to quit)",
            host,
            port,
        )
        return sock
