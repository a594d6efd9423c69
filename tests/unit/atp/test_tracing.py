"""Tracing's pieces without servers: the sampler (no trace begins with a Redis call), and a
span carried through Kafka headers."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from atp import tracing


def provider(env: dict[str, str]) -> tuple[trace.Tracer, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    p = TracerProvider(sampler=tracing.sampler(env))
    p.add_span_processor(SimpleSpanProcessor(memory))
    return p.get_tracer("t"), memory


def test_no_trace_begins_with_a_client_call_but_one_inside_a_trace_is_kept():
    tracer, memory = provider({})
    with tracer.start_as_current_span("EVALSHA", kind=SpanKind.CLIENT):
        pass
    with (
        tracer.start_as_current_span("GET /x", kind=SpanKind.SERVER),
        tracer.start_as_current_span("EVALSHA", kind=SpanKind.CLIENT),
    ):
        pass
    assert [s.name for s in memory.get_finished_spans()] == ["EVALSHA", "GET /x"]
    redis, request = memory.get_finished_spans()
    assert redis.parent.span_id == request.context.span_id


def test_the_root_sampler_setting_is_honoured():
    tracer, memory = provider({"OTEL_TRACES_SAMPLER": "always_off"})
    with tracer.start_as_current_span("GET /x", kind=SpanKind.SERVER):
        pass
    assert memory.get_finished_spans() == ()
    tracer, memory = provider(
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}
    )
    with tracer.start_as_current_span("GET /x", kind=SpanKind.SERVER):
        pass
    assert memory.get_finished_spans() == ()


def test_a_span_goes_through_kafka_headers():
    tracer, _ = provider({})
    with tracer.start_as_current_span("normalise", kind=SpanKind.CONSUMER) as span:
        headers = tracing.headers_of(span)
    assert [k for k, _ in headers] == ["traceparent"]
    carried = trace.get_current_span(tracing.context_from([("x", b"1"), *headers]))
    assert carried.get_span_context().trace_id == span.get_span_context().trace_id
    assert carried.get_span_context().span_id == span.get_span_context().span_id
    assert tracing.context_from([("x", b"1")]) is None
