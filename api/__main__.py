"""`python -m api` (what `atp api` runs): the API under uvicorn, ATP_API_WORKERS processes.

With several processes, each builds the app from the same environment (`from_environment`),
and their metrics are summed through prometheus_client's multiprocess mode (api/metrics.py):
the directory starts empty, or a previous run's counts would be added in.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from api.app import create_app
from api.listen import TCPConfig
from api.metrics import MULTIPROC_ENV
from atp.startup import load_or_exit, redis_access_or_exit

# asyncio's own loop, also where uvloop is installed: under twice the load it can answer,
# admitted requests waited 2.3-5.2 s at p99 on uvloop against 1.1-2.7 s on asyncio, and the
# single-lookup capacity was lower (benchmarks/api.md, uvloop and httptools).
LOOP = "asyncio"
# At SIGTERM uvicorn waits for open responses; what is still running after this long (a stuck
# request; live streams end at once, api/live.py) is cancelled, so the process always stops.
SHUTDOWN_GRACE_S = 10


def from_environment() -> FastAPI:
    """The app of one uvicorn worker process (ATP_API_WORKERS > 1)."""
    return create_app(*load_or_exit())


def main() -> None:
    settings, network = load_or_exit()
    redis_access_or_exit(settings)
    if settings.api_workers == 1:
        uvicorn.run(
            create_app(settings, network),
            host=settings.api_host,
            port=settings.api_port,
            log_level=settings.log_level,
            access_log=False,
            loop=LOOP,
            http=settings.api_http,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        )
        return
    metrics_dir = Path(os.environ.get(MULTIPROC_ENV) or settings.data_dir / "api-metrics")
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in metrics_dir.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(metrics_dir)
    config = TCPConfig(
        "api.__main__:from_environment",
        factory=True,
        workers=settings.api_workers,
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level,
        access_log=False,
        loop=LOOP,
        http=settings.api_http,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run: the workers have stopped
        Multiprocess(config, sockets=[config.bind_socket()]).run()


if __name__ == "__main__":
    main()
