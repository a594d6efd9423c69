"""A helper for the shells' Prometheus metrics."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)


def with_labels(metric: M, values: Iterable[str | tuple[str, ...]]) -> M:
    """The labelled metric with its known series created (at 0): a dashboard shows 0 and a rate
    from the first scrape, where a series that appears with its first event shows no data."""
    for value in values:
        metric.labels(*((value,) if isinstance(value, str) else value))
    return metric
