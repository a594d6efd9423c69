"""How far behind the stream the served counts are, from what the worker reports.

`age_ms` in an answer is the time since the worker last wrote that SKU: it says nothing when a
worker is busy catching up on a backlog (every SKU is written often, just late) or has stopped
(a quiet SKU looks the same as a stale one). So each hop of the worker reports, per partition
it consumes, how far it has got (`PartitionProgress`), and every availability answer carries
`behind_ms`: how long before now the stream was last known to be applied in full.

- A partition the hop has read to its end (its position at the high watermark of the last
  fetch response) was applied in full when that response came (`through_ms`). Fetches come
  at least every `ATP_FETCH_MAX_WAIT_MS` and reports every second, so it counts as 0 behind
  until `silent_after_ms` have passed without news; then `now - through_ms` (a stopped
  worker, or a broker that does not answer).
- A partition with records left to read is behind by `now - through_ms`, the broker time of
  the newest record the hop has handled on it: records up to then are in, the rest are not.

The stream's figure is the worst of its partitions; `None` when no worker has reported yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# The worker reports every second; three missed reports and some slack mean it has stopped.
SILENT_AFTER_MS = 5_000


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    through_ms: int  # every record of the partition up to this time (epoch ms) is handled
    caught_up: bool  # the hop had read to the partition's high watermark then

    def encode(self) -> str:
        return f"{self.through_ms}:{int(self.caught_up)}"

    @classmethod
    def decode(cls, value: str) -> PartitionProgress:
        through, caught = value.split(":")
        if caught not in ("0", "1"):
            raise ValueError(f"caught-up flag {caught!r} is not 0 or 1")
        return cls(int(through), caught == "1")

    def behind_ms(self, now_ms: int, silent_after_ms: int = SILENT_AFTER_MS) -> int:
        behind = max(0, now_ms - self.through_ms)
        if self.caught_up and behind <= silent_after_ms:
            return 0
        return behind


def behind_ms(
    progress: Iterable[PartitionProgress], now_ms: int, silent_after_ms: int = SILENT_AFTER_MS
) -> int | None:
    """The stream's lag in time: the worst partition's, or None before any report."""
    worst: int | None = None
    for p in progress:
        b = p.behind_ms(now_ms, silent_after_ms)
        if worst is None or b > worst:
            worst = b
    return worst
