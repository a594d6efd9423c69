"""`behind_ms`: how long before now the stream was last applied in full."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from atp.core.freshness import SILENT_AFTER_MS, PartitionProgress, behind_ms

NOW = 1_790_000_000_000


def test_caught_up_with_recent_news_is_zero_behind():
    assert behind_ms([PartitionProgress(NOW - 800, caught_up=True)], NOW) == 0
    assert behind_ms([PartitionProgress(NOW - SILENT_AFTER_MS, caught_up=True)], NOW) == 0


def test_caught_up_but_silent_for_too_long_is_behind_by_the_silence():
    quiet = NOW - SILENT_AFTER_MS - 1
    assert behind_ms([PartitionProgress(quiet, caught_up=True)], NOW) == SILENT_AFTER_MS + 1


def test_a_partition_with_records_left_is_behind_by_its_newest_handled_record():
    progress = [
        PartitionProgress(NOW - 300, caught_up=True),
        PartitionProgress(NOW - 42_000, caught_up=False),
        PartitionProgress(NOW - 9_000, caught_up=False),
    ]
    assert behind_ms(progress, NOW) == 42_000


def test_nothing_reported_is_unknown_and_clocks_ahead_are_not_negative():
    assert behind_ms([], NOW) is None
    assert behind_ms([PartitionProgress(NOW + 5_000, caught_up=False)], NOW) == 0


@given(st.integers(0, 2**53), st.booleans())
def test_progress_round_trips_through_its_encoding(through, caught_up):
    p = PartitionProgress(through, caught_up)
    assert PartitionProgress.decode(p.encode()) == p


@given(st.lists(st.tuples(st.integers(-(10**6), 10**6), st.booleans()), min_size=1))
def test_the_stream_is_as_far_behind_as_its_worst_partition(entries):
    progress = [PartitionProgress(NOW + d, c) for d, c in entries]
    worst = behind_ms(progress, NOW)
    assert worst == max(p.behind_ms(NOW) for p in progress)
    assert worst is not None and worst >= 0
