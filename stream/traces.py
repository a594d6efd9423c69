"""The stream hops' spans (atp/tracing.py): a hop continues the trace a consumed record carries
in its headers, and a record it publishes carries the hop's span on. Records without a trace
get no span; with tracing off nothing here is called (each hop checks once per batch)."""

from __future__ import annotations

from aiokafka import ConsumerRecord
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import AttributeValue

from atp import tracing


def hop_span(name: str, record: ConsumerRecord[bytes, bytes]) -> Span | None:
    """A consumer span for `record`'s part in a hop, child of the trace it carries; None when
    it carries none."""
    parent = tracing.context_from(record.headers)
    if parent is None:
        return None
    return tracing.tracer().start_span(
        name,
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
        },
    )


def end(span: Span | None, name: str, value: AttributeValue) -> None:
    """End a hop's span (when there is one) with one last attribute."""
    if span is not None:
        span.set_attribute(name, value)
        span.end()
