"""Issue 14's peer: the worker's fold written as a Quix Streams application, on the same broker.

    make quix-venv
    .venv-quix/bin/python benchmarks/quix_peer.py --bootstrap HOST:PORT --topic T
        --messages N --out FILE [--hops 1|2] [--no-changelog]

Usually started by `apply_rate.py --quix-python .venv-quix/bin/python`, which pre-produces
the WMS messages and reads FILE. Each message is normalised by this project's adapter
(atp.core.sources.wms) and folded by its ledger (atp.core.ledger.fold) into the (SKU, location)
state kept in Quix's own store (RocksDB, with its changelog topic unless --no-changelog):

  --hops 1  one stateful step on stock.wms as it is keyed (by warehouse)
  --hops 2  normalise, `group_by` SKU through Quix's repartition topic, then fold: the shape
            of the worker's two hops (stock.movements is keyed by SKU)

It writes FILE once N movements are folded: seconds from the first message in hand to the
N-th (group join excluded, as for the other paths), and the sum of every pair's on-hand, which
the caller checks against what was sent.

quixstreams needs an environment of its own: 3.28 requires pydantic<2.14 and
pydantic-settings<2.16, the project pins 2.14.4 and requires >=2.16 (and with constraints.txt,
pip falls back to quixstreams 0.5.7, an unrelated older library). `make quix-venv` installs
benchmarks/quix-requirements.txt (exact pins) into .venv-quix. This file imports from this tree
only atp.core, atp.network_file and atp.tools.embedded, and quixstreams only in the child.

On Tansu the source topic must be created with `retention.ms` and `retention.bytes` (apply_rate
does): its DescribeConfigs returns only what a topic was created with, and Quix derives its
changelog and repartition topics from them (`KeyError: 'retention.ms'` otherwise).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from atp.core import ledger  # noqa: E402
from atp.core.errors import InvalidMovement  # noqa: E402
from atp.core.movements import Movement  # noqa: E402
from atp.core.network import Network  # noqa: E402
from atp.core.sources import wms  # noqa: E402
from atp.tools import embedded  # noqa: E402
from atp.tools.embedded import ManagedProcess  # noqa: E402

POLICY = ledger.Policy()  # the worker's default windows (48 h retention)


# --------------------------------------------------------------------------------------------
# The application (runs under the quixstreams interpreter)


@dataclass
class Tally:
    """What has been folded and when; writes the result file at the N-th movement."""

    expected: int
    out: Path
    folded: int = 0
    applied: int = 0
    rejected: int = 0
    on_hand: dict[str, int] = field(default_factory=dict)  # pair -> on-hand after its last fold
    marks: dict[str, float] = field(default_factory=dict)  # perf_counter times

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, time.perf_counter())

    def count(self, pair: str, state: ledger.LedgerState, outcome: ledger.Outcome) -> bool:
        """One movement folded; True once all are."""
        self.mark("fold_first")
        self.folded += 1
        self.applied += outcome is ledger.Outcome.APPLIED
        self.on_hand[pair] = state.on_hand
        if self.folded < self.expected:
            return False
        self.mark("done")
        return True

    def write(self) -> None:
        """The result, once the app has stopped ("closed": its last checkpoint taken)."""
        self.mark("closed")
        first = self.marks["first"]
        result = {
            "seconds": self.marks["done"] - first,
            "marks": {k: round(v - first, 4) for k, v in self.marks.items()},
            "count": self.folded,
            "applied": self.applied,
            "rejected": self.rejected,
            "on_hand": sum(self.on_hand.values()),
            "pairs": len(self.on_hand),
        }
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result))
        tmp.replace(self.out)  # atomic: the parent never reads half a file


def normalise(raw: bytes, network: Network, tally: Tally) -> list[Movement]:
    """The source message's movements; an unusable message is counted and dropped."""
    tally.mark("first")
    try:
        return wms.parse(raw, network)
    except InvalidMovement:
        tally.rejected += 1
        return []


def fold_into(state: Any, movement: Movement, tally: Tally) -> bool:
    """Fold one movement into its pair's state in the Quix store (keys are scoped to the
    message key: a warehouse in one hop, a SKU in two). True once all are folded."""
    pair = f"{movement.sku}|{movement.location_id}"
    stored = state.get(pair)
    before = ledger.LedgerState() if stored is None else ledger.LedgerState.from_list(stored)
    now_ms = time.time_ns() // 1_000_000  # the app's entry point reads the clock, not the fold
    after, (outcome,) = ledger.fold(before, [movement], now_ms, POLICY)
    state.set(pair, after.to_list())
    return tally.count(pair, after, outcome)


def build_app(args: argparse.Namespace, network: Network, tally: Tally) -> Any:
    from quixstreams import Application

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        use_changelog_topics=not args.no_changelog,
        commit_every=args.commit_every,  # 0: Quix's default, a checkpoint every 5 s
        # librdkafka's default (45 s) makes a Tansu group join take about 22 s (DESIGN.md).
        consumer_extra_config={
            "session.timeout.ms": int(args.session_timeout_s * 1000),
            "heartbeat.interval.ms": 1000,
        },
        loglevel="WARNING",
    )
    source = app.topic(args.topic, key_deserializer="bytes", value_deserializer="bytes")
    sdf = app.dataframe(source)

    def done() -> None:
        app.stop()

    if args.hops == 1:

        def step(raw: bytes, state: Any) -> None:
            for movement in normalise(raw, network, tally):
                if fold_into(state, movement, tally):
                    done()

        sdf.apply(step, stateful=True)
    else:

        def to_wire(raw: bytes) -> list[dict[str, object]]:
            return [m.to_wire() for m in normalise(raw, network, tally)]

        def step(wire: dict[str, object], state: Any) -> None:
            if fold_into(state, Movement.from_wire(wire), tally):
                done()

        by_sku = sdf.apply(to_wire, expand=True).group_by(lambda w: w["sku"], name="sku")
        by_sku.apply(step, stateful=True)
    return app


def run_app(args: argparse.Namespace) -> None:
    from atp.network_file import load_network

    network = load_network(ROOT / "config" / "network.yaml")
    tally = Tally(args.messages, Path(args.out))
    build_app(args, network, tally).run()
    tally.write()


# --------------------------------------------------------------------------------------------
# The driver (runs under the project's interpreter, from apply_rate.py)


def quix_available(python: str) -> str | None:
    """The quixstreams version importable by `python`, or None."""
    import subprocess

    probe = [python, "-c", "import quixstreams; print(quixstreams.__version__)"]
    done = subprocess.run(probe, capture_output=True, text=True, timeout=60, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def run_quix_peer(
    python: str,
    bootstrap: str,
    topic: str,
    n: int,
    work: Path,
    procs: list[ManagedProcess],
    *,
    hops: int,
    changelog: bool = True,
    commit_every: int = 0,
    session_timeout_s: float = 10.0,
) -> tuple[float, float, dict[str, float], dict[str, Any]]:
    """(seconds from the first message in hand to the n-th fold, seconds from start to the
    first message, timeline, the child's result: applied, rejected, on-hand sum, pairs).

    The timeline's "closed" is when the app had stopped, its last checkpoint (offsets, changelog,
    RocksDB) taken: with Quix's default interval (5 s) a short run takes none before that.
    `commit_every`: a checkpoint after that many messages instead."""
    tag = f"{hops}h{'' if changelog else '-nocl'}{commit_every or ''}-{time.monotonic_ns() % 10**6}"
    group = f"bench-quix{tag}"
    out = work / f"{group}.json"
    argv = [python, str(Path(__file__).resolve()), "--bootstrap", bootstrap, "--topic", topic]
    argv += ["--messages", str(n), "--out", str(out), "--group", group, "--hops", str(hops)]
    argv += ["--state-dir", str(work / f"{group}-state")]
    argv += ["--session-timeout-s", str(session_timeout_s), "--commit-every", str(commit_every)]
    argv += [] if changelog else ["--no-changelog"]
    spawned = time.perf_counter()
    proc = embedded.spawn(f"quix-peer-{tag}", argv, work / "logs")
    procs.append(proc)
    try:
        deadline = spawned + 90 + n / 1000
        while not out.exists():
            if not proc.alive():
                raise RuntimeError(f"the Quix peer exited early:\n{proc.log_tail()}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the Quix peer did not finish:\n{proc.log_tail()}")
            time.sleep(0.05)
        finished = time.perf_counter()
        result = json.loads(out.read_text())
        seconds = float(result["seconds"])
        return seconds, finished - spawned - seconds, result["marks"], result
    finally:
        proc.stop(grace_s=15)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True, help="HOST:PORT of the broker")
    parser.add_argument("--topic", required=True, help="the pre-produced WMS topic")
    parser.add_argument("--messages", type=int, required=True, help="N movements to fold")
    parser.add_argument("--out", required=True, help="the result file (JSON)")
    parser.add_argument("--group", default=f"bench-quix-{int(time.time())}")
    parser.add_argument("--state-dir", default=tempfile.gettempdir() + "/atp-quix-state")
    parser.add_argument("--hops", type=int, choices=(1, 2), default=1)
    parser.add_argument("--no-changelog", action="store_true", help="no changelog topic")
    parser.add_argument("--commit-every", type=int, default=0, help="messages per checkpoint")
    parser.add_argument("--session-timeout-s", type=float, default=10.0)
    return parser


if __name__ == "__main__":
    run_app(build_parser().parse_args())
