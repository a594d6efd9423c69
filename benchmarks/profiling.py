"""py-spy helpers shared by the benchmarks: find the binary, record a running process, and
summarise the raw (collapsed) stacks as top frames by own and inclusive samples.

py-spy is not a project dependency. Pass its path (`--py-spy PATH`), or put it on the PATH, or
in `.venv/bin`; `find_py_spy()` looks in that order and also in /tmp/spyvenv/bin, where earlier
sessions installed it (`python3.11 -m venv /tmp/spyvenv && /tmp/spyvenv/bin/pip install py-spy`).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from atp.tools import embedded  # noqa: E402
from atp.tools.embedded import ManagedProcess  # noqa: E402

SPY_RATE = 100  # samples per second

# Inclusive frames worth showing for the API (api_bench) and the worker (apply_rate).
API_KEEP = (
    "(api/",
    "(atp/store/",
    "(atp/core/",
    "Pipeline.execute (",
    "Pipeline.load_scripts",
    "Pipeline.immediate_execute_command",
    "run_in_threadpool",
    "solve_dependencies",
    "gc_collect_main",
    "RequestResponseCycle.send",
)
WORKER_KEEP = (
    "(stream/",
    "(atp/",
    "Pipeline.execute (",
    "Pipeline.load_scripts",
    "_drain_messages",
    "noack_take",
    "(faust/",
    "(aiokafka/",
    "(redis/",
    "(prometheus_client/",
    "gc_collect_main",
    "orjson",
)


# Innermost frames of a thread that waits rather than works.
WAITS = ("Condition.wait", "epoll_wait", "select (", "poll (", "futex", "sem_wait", "pthread_cond")

# The worker's main-thread samples split into parts: the first part whose substrings all occur
# in a sample's stack takes it; what no part takes is faust's and aiokafka's own machinery
# (fetching, handing events to the agents' streams, acks, sensors) and the event loop.
WORKER_PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("normaliser (adapters, building and forwarding movements)", ("normalise",)),
    ("apply: availability change events (atp.core.availability)", ("_events (stream/apply",)),
    ("apply: per-channel statuses of each write (LedgerStore._status_args)", ("_status_args",)),
    (
        "apply: LedgerStore.apply, redis-py pipelines (pack, send, parse)",
        ("LedgerStore", "Pipeline"),
    ),
    ("apply: LedgerStore.apply, the fold (atp.core.ledger)", ("LedgerStore", "fold (")),
    ("apply: LedgerStore.apply, the rest (JSON, grouping, arguments)", ("LedgerStore",)),
    ("apply: decode, fulfil, forward, ack, metrics", ("handle (stream/apply",)),
)
FAUST_PART = "faust, aiokafka and the event loop outside the agents' code"


def find_py_spy(explicit: str | None = None) -> str | None:
    if explicit:
        return explicit
    for candidate in (
        shutil.which("py-spy"),
        str(ROOT / ".venv" / "bin" / "py-spy"),
        "/tmp/spyvenv/bin/py-spy",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def start_py_spy(
    binary: str, pid: int, seconds: float, work: Path, procs: list[ManagedProcess]
) -> ManagedProcess:
    """`py-spy record` of `pid` for `seconds` (raw collapsed stacks, idle samples included, native
    frames) into work/pyspy-<pid>.txt; appended to `procs` so the caller's `finally` stops it."""
    out = work / f"pyspy-{pid}.txt"
    argv = [binary, "record", "-d", str(int(seconds)), "-r", str(SPY_RATE), "--idle", "--native"]
    argv += ["-f", "raw", "-o", str(out), "--pid", str(pid)]
    proc = embedded.spawn(f"py-spy-{pid}", argv, work / "logs")
    procs.append(proc)
    return proc


def finish_py_spy(proc: ManagedProcess, seconds: float) -> Path | None:
    """Wait for a `start_py_spy` recording to end; its output file, or None (log printed)."""
    try:
        proc.popen.wait(seconds + 30)
    except Exception:
        proc.stop(grace_s=5)
    out = Path(proc.popen.args[-3])  # "-o", out, "--pid", pid
    if proc.popen.returncode != 0 or not out.exists():
        print(f"py-spy wrote nothing:\n{proc.log_tail()}", flush=True)
        return None
    return out


def summarize_profile(
    path: Path,
    seconds: float,
    rate: int = SPY_RATE,
    top: int = 12,
    keep: tuple[str, ...] = API_KEEP,
    what: str = "the API's",
    parts: tuple[tuple[str, tuple[str, ...]], ...] = (),
) -> None:
    """Top functions of the main thread in py-spy raw (collapsed) output (--idle).

    Samples whose innermost frame is the event loop's epoll wait are idle; the rest are where
    the main thread spends its time. Functions are keyed without line numbers; 'own' is time in
    the function itself, 'inclusive' also counts what it called.
    """
    strip = re.compile(r":\d+\)$")
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    by_part: Counter[str] = Counter()
    main_n = idle = other_busy = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [strip.sub(")", f) for f in stack.split(";") if f]
        py = [f for f in frames if "(" in f and ".py" in f]
        if py and py[0].startswith("Thread._bootstrap"):  # e.g. anyio worker threads
            if not any(w in f for f in frames for w in WAITS):
                other_busy += n
            continue
        if frames[-1].startswith(("epoll_wait", "EpollSelector.select", "select (selectors")):
            idle += n
            continue
        main_n += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
        if parts:
            joined = ";".join(frames)
            label = next((lb for lb, subs in parts if all(x in joined for x in subs)), FAUST_PART)
            by_part[label] += n
    if not main_n:
        print("py-spy: no busy samples of the main thread", flush=True)
        return
    taken = main_n + idle
    print(
        f"\npy-spy: {taken:,} samples of {what} main thread ({int(seconds * rate):,} asked for); "
        f"busy in {main_n / taken:.0%}, waiting in epoll in {idle / taken:.0%}; "
        f"other threads busy in {other_busy} samples",
        flush=True,
    )
    if by_part:
        print("  by part (share of the main thread's busy samples):")
        for label, n in by_part.most_common():
            print(f"    {n / main_n:6.1%}  {label}")
    print("  top functions by own samples (share of the main thread's busy samples):")
    for f, n in own.most_common(top):
        print(f"    {n / main_n:6.1%}  {f}")
    print("  selected frames by inclusive samples:")
    shown = 0
    for f, n in incl.most_common(400):
        if n >= 0.995 * main_n or not any(s in f for s in keep):
            continue  # frames in every sample (the entry point) say nothing
        print(f"    {n / main_n:6.1%}  {f}")
        shown += 1
        if shown >= top + 6:
            break
