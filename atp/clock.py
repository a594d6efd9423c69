"""The wall clock, read by entry points only; everything below them takes the time as an
argument."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000
