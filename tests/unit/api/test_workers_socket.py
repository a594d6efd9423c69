"""The sockets `atp api` listens on with several uvicorn workers (api/listen.py): each worker
gets its own in one reuse-port group, so the kernel spreads connections over them, and every
connection gets TCP_NODELAY."""

from __future__ import annotations

import asyncio
import pickle
import socket
from collections import Counter
from multiprocessing.reduction import ForkingPickler

import pytest
import uvicorn

from api.listen import TCPConfig


async def _accepted(listeners: list[socket.socket], connections: int) -> list[tuple[int, int]]:
    """Open `connections` to the listeners' address, as asyncio servers accept them (as the
    workers do): per connection, (index of the listener that took it, its TCP_NODELAY)."""
    loop = asyncio.get_running_loop()
    seen: list[tuple[int, int]] = []
    done = asyncio.Event()

    def report(index: int) -> type[asyncio.Protocol]:
        class Report(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                conn = transport.get_extra_info("socket")
                seen.append((index, conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
                if len(seen) == connections:
                    done.set()

        return Report

    servers = [await loop.create_server(report(i), sock=s) for i, s in enumerate(listeners)]
    writers = []
    try:
        host, port = listeners[0].getsockname()[:2]
        for _ in range(connections):
            writers.append((await asyncio.open_connection(host, port))[1])
        await asyncio.wait_for(done.wait(), 5)
        return seen
    finally:
        for writer in writers:
            writer.close()
        for server in servers:
            server.close()
            await server.wait_closed()


def test_uvicorns_own_socket_would_leave_nagle_on() -> None:
    """The premise: uvicorn's socket for several workers leaves Nagle's algorithm on. (When an
    upgrade of uvicorn fixes that, this fails, and api/listen.py's first reason is gone.)"""
    sock = uvicorn.Config("api.app:create_app", host="127.0.0.1", port=0).bind_socket()
    assert sock.proto == 0
    assert asyncio.run(_accepted([sock], 1)) == [(0, 0)]


def test_the_supervisors_socket_keeps_the_port_and_takes_no_connection() -> None:
    sock = TCPConfig("api.app:create_app", host="127.0.0.1", port=0).bind_socket()
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        probe = socket.socket()
        with pytest.raises(ConnectionRefusedError):  # it never listens: nothing queues there
            probe.connect(sock.getsockname())
        probe.close()
    finally:
        sock.close()


def test_each_worker_gets_a_socket_of_its_own_and_connections_spread_over_them() -> None:
    parent = TCPConfig("api.app:create_app", host="127.0.0.1", port=0).bind_socket()
    # What each worker process receives: the supervisor's socket pickled, unpickled there.
    workers = [pickle.loads(ForkingPickler.dumps(parent)) for _ in range(2)]
    try:
        assert len({parent.fileno(), *(w.fileno() for w in workers)}) == 3
        assert {w.getsockname() for w in workers} == {parent.getsockname()}
        seen = asyncio.run(_accepted(workers, 64))
        # The kernel hashes each connection to a socket of the group: with 64 connections,
        # both get some unless 63 coin tosses all came up alike.
        assert set(Counter(index for index, _ in seen)) == {0, 1}
        assert all(nodelay for _, nodelay in seen)
    finally:
        for sock in (parent, *workers):
            sock.close()


def test_a_port_in_use_is_refused_not_shared() -> None:
    """A second `atp api` on the port of a running one (its workers listening) fails to start,
    as it does with one worker; so does one on a port another program listens on."""
    first = TCPConfig("api.app:create_app", host="127.0.0.1", port=0).bind_socket()
    worker = pickle.loads(ForkingPickler.dumps(first))
    busy = socket.socket()
    try:
        worker.listen()
        with pytest.raises(SystemExit):
            TCPConfig(
                "api.app:create_app", host="127.0.0.1", port=first.getsockname()[1]
            ).bind_socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(SystemExit):
            TCPConfig(
                "api.app:create_app", host="127.0.0.1", port=busy.getsockname()[1]
            ).bind_socket()
    finally:
        for sock in (first, worker, busy):
            sock.close()
