"""The `atp` command line: up, worker, api, simulate."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from atp.config_file import load_network
from atp.errors import ATPError
from atp.network import Network
from atp.settings import Settings, load_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


def _setup(settings_overrides: dict[str, object] | None = None) -> tuple[Settings, Network]:
    """Settings and network, or a clear message and exit code 2."""
    try:
        settings = load_settings(**(settings_overrides or {}))
        network = load_network(settings.network_file)
    except ATPError as exc:
        typer.echo(f"atp: {exc.message}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return settings, network


@app.command()
def up(
    external: Annotated[
        bool,
        typer.Option(
            help="Use the running broker and Redis at ATP_KAFKA_BOOTSTRAP and ATP_REDIS_URL."
        ),
    ] = False,
    simulate: Annotated[bool, typer.Option(help="Run the traffic simulator.")] = True,
    rate: Annotated[float, typer.Option(help="Simulator messages per second.")] = 50.0,
) -> None:
    """Start the whole stack on 127.0.0.1 (broker, Redis, worker, API, simulator)."""
    from atp.stack import Stack

    settings, _ = _setup()
    stack = Stack(settings, external=external, simulate=simulate, rate=rate)
    try:
        code = stack.run()
    except ATPError as exc:
        typer.echo(f"atp up: {exc.message}", err=True)
        stack.stop()
        raise typer.Exit(1) from None
    raise typer.Exit(code)


@app.command()
def worker() -> None:
    """Run a stream worker (faust) until SIGINT/SIGTERM."""
    from stream.app import run_worker

    settings, network = _setup()
    run_worker(settings, network)


@app.command()
def api() -> None:
    """Serve the availability API with uvicorn."""
    import uvicorn

    from api.app import create_app

    settings, network = _setup()
    uvicorn.run(
        create_app(settings, network),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level,
        access_log=False,
    )


@app.command("simulate")
def simulate_cmd(
    rate: Annotated[float, typer.Option(min=0.1, help="Messages per second.")] = 50.0,
    duration: Annotated[float, typer.Option(help="Seconds to run; 0 runs until stopped.")] = 0.0,
    skus: Annotated[int, typer.Option(min=1, help="Number of SKUs.")] = 50,
    locations: Annotated[int, typer.Option(min=1, help="Number of warehouses used.")] = 3,
    seed: Annotated[int | None, typer.Option(help="Random seed for a repeatable run.")] = None,
    duplicate_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.01,
    malformed_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.001,
    truth: Annotated[
        Path | None,
        typer.Option(help="Write the expected on-hand per (SKU, location) here at the end."),
    ] = None,
) -> None:
    """Produce warehouse movements to the broker."""
    from atp import simulator

    settings, network = _setup()
    config = simulator.SimConfig(
        rate=rate,
        duration_s=duration,
        skus=skus,
        locations=locations,
        seed=seed,
        duplicate_rate=duplicate_rate,
        malformed_rate=malformed_rate,
    )
    try:
        sent = asyncio.run(simulator.run(settings, network, config, str(truth) if truth else None))
    except KeyboardInterrupt:
        return
    typer.echo(f"sent {sent} messages")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
