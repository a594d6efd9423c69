"""The `atp` command line: up, worker, api, simulate, rebuild, migrate, rejected,
compose-secrets."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from atp.core.errors import ATPError
from atp.startup import load_or_exit

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


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
    secure: Annotated[
        bool,
        typer.Option(
            help="Broker and Redis behind TLS with client certificates, Redis with ACL users "
            "(needs openssl and stunnel)."
        ),
    ] = False,
) -> None:
    """Start the whole stack on 127.0.0.1 (broker, Redis, worker, API, simulator)."""
    from atp.tools.up import Stack

    settings, _ = load_or_exit()
    stack: Stack | None = None
    try:
        stack = Stack(settings, external=external, simulate=simulate, rate=rate, secure=secure)
        code = stack.run()
    except ATPError as exc:
        typer.echo(f"atp up: {exc.message}", err=True)
        if stack is not None:
            stack.stop()
        raise typer.Exit(1) from None
    raise typer.Exit(code)


@app.command()
def worker() -> None:
    """Run a stream worker until SIGINT/SIGTERM (`python -m stream`)."""
    load_or_exit()  # refuse bad settings here, with this command's message
    os.execv(sys.executable, [sys.executable, "-m", "stream"])


@app.command()
def api() -> None:
    """Serve the availability API with uvicorn, ATP_API_WORKERS processes (`python -m api`)."""
    load_or_exit()
    os.execv(sys.executable, [sys.executable, "-m", "api"])


@app.command("simulate")
def simulate_cmd(
    rate: Annotated[float, typer.Option(min=0.1, help="Source messages per second.")] = 50.0,
    duration: Annotated[float, typer.Option(help="Seconds to run; 0 runs until stopped.")] = 0.0,
    skus: Annotated[int, typer.Option(min=1, help="Number of SKUs.")] = 50,
    locations: Annotated[
        int, typer.Option(min=0, help="Use at most this many locations of each type (0: all).")
    ] = 0,
    seed: Annotated[int | None, typer.Option(help="Random seed for a repeatable run.")] = None,
    duplicate_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.01,
    late_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of messages delivered out of order.")
    ] = 0.02,
    malformed_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.001,
    truth: Annotated[
        Path | None,
        typer.Option(help="Write the expected on-hand per (SKU, location) here at the end."),
    ] = None,
) -> None:
    """Play warehouses, stores and 3PLs: produce their messages, with disorder."""
    from atp.tools import simulator

    settings, network = load_or_exit()
    config = simulator.SimConfig(
        rate=rate,
        duration_s=duration,
        skus=skus,
        locations=locations,
        seed=seed,
        duplicate_rate=duplicate_rate,
        late_rate=late_rate,
        malformed_rate=malformed_rate,
    )
    try:
        sent = asyncio.run(simulator.run(settings, network, config, str(truth) if truth else None))
    except KeyboardInterrupt:
        return
    typer.echo(f"sent {sent} messages")


@app.command("rebuild")
def rebuild_cmd() -> None:
    """Restore a wiped Redis from Kafka: reservations from stock.reservations, then the ledger
    and counts from stock.movements (README, Faults and recovery).

    Safe to run again and on a Redis that is not empty: it only adds what is missing. Keep
    the API stopped while it runs: until it ends, counts are incomplete.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from atp.tools import rebuild

    settings, network = load_or_exit()
    columns = (
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        tasks: dict[str, Any] = {}

        class Bars:
            def begin(self, topic: str, total: int) -> None:
                tasks[topic] = bar.add_task(topic, total=total)

            def advance(self, topic: str, n: int) -> None:
                bar.advance(tasks[topic], n)

        try:
            report = asyncio.run(rebuild.rebuild(settings, network, Bars()))
        except ATPError as exc:
            typer.echo(f"atp rebuild: {exc.message}", err=True)
            raise typer.Exit(1) from None
    typer.echo(report.summary())


@app.command("migrate")
def migrate_cmd() -> None:
    """Convert a v2 ledger in Redis to the v3 layout (docs/operations.md, Upgrades).

    Stop every worker first (a worker refuses to start on a v2 ledger); the API may keep
    serving. Each SKU is converted atomically; running it again converts what is left.
    """
    from atp.store.client import client_for
    from atp.store.migrate import migrate_ledger

    settings, _ = load_or_exit()

    async def run() -> str:
        client = client_for(settings, timeout_s=30.0)
        try:
            return (await migrate_ledger(client)).summary()
        finally:
            await client.aclose()

    try:
        typer.echo(asyncio.run(run()))
    except ATPError as exc:
        typer.echo(f"atp migrate: {exc.message}", err=True)
        raise typer.Exit(1) from None


@app.command("compose-secrets")
def compose_secrets_cmd(
    directory: Annotated[
        Path, typer.Argument(help="Where docker-compose.secure.yml expects them.")
    ] = Path(".atp/compose"),  # compose_secrets.DIRECTORY
    replace: Annotated[
        bool, typer.Option(help="Make new ones over those of an earlier run.")
    ] = False,
) -> None:
    """Make the certificates, passwords and ACL file docker-compose.secure.yml mounts; run it
    in the repository (docs/operations.md, Managed Kafka and Redis)."""
    from atp.tools.compose_secrets import make_compose_secrets

    try:
        paths = make_compose_secrets(directory, replace=replace)
    except ATPError as exc:
        typer.echo(f"atp compose-secrets: {exc.message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"wrote {len(paths)} files to {directory}/ (keep them out of version control); start with\n"
        "  docker compose -f docker-compose.yml -f docker-compose.secure.yml up -d --build"
    )


rejected_app = typer.Typer(no_args_is_help=True, help="Inspect and replay rejected input.")
app.add_typer(rejected_app, name="rejected")

ReasonOpt = Annotated[str | None, typer.Option(help="Only this reason, e.g. unknown_location.")]
SourceOpt = Annotated[str | None, typer.Option(help="Only this source topic, e.g. stock.pos.")]
SinceOpt = Annotated[
    str | None, typer.Option(help="Rejected at or after this ISO 8601 time (with offset).")
]
UntilOpt = Annotated[
    str | None, typer.Option(help="Rejected at or before this ISO 8601 time (with offset).")
]


def _filter(reason: str | None, source: str | None, since: str | None, until: str | None) -> Any:
    from atp.core.movements import parse_timestamp_ms
    from atp.tools.rejected import Filter

    try:
        return Filter(
            reason=reason,
            source=source,
            since_ms=parse_timestamp_ms(since) if since else None,
            until_ms=parse_timestamp_ms(until) if until else None,
        )
    except ValueError as exc:
        typer.echo(f"atp rejected: {exc}", err=True)
        raise typer.Exit(2) from None


@rejected_app.command("list")
def rejected_list(
    reason: ReasonOpt = None,
    source: SourceOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show rejected messages with their reason and where they came from."""
    import orjson

    from atp.tools import rejected

    settings, _ = load_or_exit()
    records = asyncio.run(rejected.read(settings, _filter(reason, source, since, until)))
    for r in records:
        if as_json:
            typer.echo(orjson.dumps(r).decode())
        else:
            at = iso_ms(r.get("rejected_at_ms"))
            where = f"{r['source_topic']}:{r['partition']}:{r['offset']}"
            typer.echo(f"{at}  {r['reason']:<22} {where:<28} {r['message']}")
    typer.echo(f"{len(records)} rejected", err=True)


@rejected_app.command("replay")
def rejected_replay(
    reason: ReasonOpt = None,
    source: SourceOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    dry_run: Annotated[bool, typer.Option(help="Only say what would be replayed.")] = False,
) -> None:
    """Send the selected rejected messages, byte for byte, back to their source topic.

    Use it after fixing the cause (for example adding a location to the network file and
    restarting the worker). Replays are safe: the ledger skips event ids it already applied,
    and a message that is still unusable is rejected again.
    """
    from atp.tools import rejected

    settings, _ = load_or_exit()
    records = asyncio.run(rejected.read(settings, _filter(reason, source, since, until)))
    if dry_run:
        typer.echo(f"would replay {len(records)} messages")
        return
    sent = asyncio.run(rejected.replay(settings, records))
    typer.echo(f"replayed {sent} messages")


def iso_ms(ms: int | None) -> str:
    from datetime import UTC, datetime

    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except ATPError as exc:  # e.g. Kafka or Redis refused the connection settings
        print(f"atp: {exc.message}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
