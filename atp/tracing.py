"""OpenTelemetry traces: off unless the standard OTEL_* settings ask for them.

On when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set and
`OTEL_SDK_DISABLED` is not `true`: spans go to that collector by OTLP over HTTP (protobuf), in
batches (`OTEL_BSP_*`), sampled by `OTEL_TRACES_SAMPLER` (default: follow the caller, else all);
`OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` name the process. Off, nothing is
instrumented: no middleware, no wrapped Redis client, no header read or written, so the cost
is nil (benchmarks/README.md, Tracing).

What is traced: API requests (FastAPI's own telemetry, which traces once a tracer provider is
set: a server span per request, named by the route, with spans for its dependencies and its
endpoint) and the Redis calls made under them; the stream
hops continue a trace that a source message carries in its Kafka headers (W3C `traceparent`,
`OTEL_PROPAGATORS`): the normaliser's span, the movement it publishes carrying that span on,
the ledger hop's span and the Redis write under it. A message without a trace starts none.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Tracer

_tracer: Tracer | None = None
_provider: Any = None


def enabled() -> bool:
    return _tracer is not None


def tracer() -> Tracer:
    assert _tracer is not None, "tracing is off: check tracing.enabled() first"
    return _tracer


def wanted(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the OTEL_* settings ask for traces."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def setup(service: str, env: Mapping[str, str] = os.environ) -> bool:
    """Turn tracing on for this process if the settings ask for it (once); True when on."""
    if enabled() or not wanted(env):
        return enabled()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: env.get("OTEL_SERVICE_NAME") or service})
    provider = TracerProvider(resource=resource, sampler=sampler(env))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    install(provider)
    return True


def sampler(env: Mapping[str, str] = os.environ) -> Any:
    """Follow the caller's decision; a new trace per OTEL_TRACES_SAMPLER (`always_on` default,
    `always_off`, `traceidratio` or `parentbased_traceidratio` with OTEL_TRACES_SAMPLER_ARG);
    but never a trace that would begin with a Redis call: outside a request or a traced
    movement those are the worker's and the API's background polling (the outbox relay, the
    sweeper, leases), dozens a second, and would bury the traces that matter."""
    from opentelemetry.sdk.trace.sampling import (
        ALWAYS_OFF,
        ALWAYS_ON,
        ParentBased,
        TraceIdRatioBased,
    )

    name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    root: Any = ALWAYS_ON
    if name.endswith("always_off"):
        root = ALWAYS_OFF
    elif name.endswith("traceidratio"):
        root = TraceIdRatioBased(float(env.get("OTEL_TRACES_SAMPLER_ARG") or 1.0))
    return ParentBased(root=_NoClientRoots(root))


class _NoClientRoots:
    """A root sampler that drops client spans (Redis calls) and asks `inner` about the rest."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def should_sample(
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        from opentelemetry.sdk.trace.sampling import Decision, SamplingResult

        if kind == trace.SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return self._inner.should_sample(parent_context, trace_id, name, kind, *args, **kwargs)

    def get_description(self) -> str:
        return f"NoClientRoots{{{self._inner.get_description()}}}"


def install(provider: Any) -> None:
    """Trace with `provider` from now on (setup's, or a test's with an in-memory exporter):
    its tracer for our spans, and redis-py's calls instrumented."""
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    global _tracer, _provider
    _tracer = provider.get_tracer("atp")
    _provider = provider
    RedisInstrumentor().instrument(tracer_provider=provider)


def uninstall() -> None:
    """Tracing off again (tests)."""
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    global _tracer, _provider
    RedisInstrumentor().uninstrument()
    _tracer = _provider = None


def shutdown() -> None:
    """Export what is still queued (at a process's end)."""
    if _provider is not None:
        _provider.shutdown()


def context_from(headers: Iterable[tuple[str, bytes]]) -> Context | None:
    """The trace a Kafka record's headers carry on, or None."""
    carrier = {k: v.decode("latin-1") for k, v in headers if k in ("traceparent", "tracestate")}
    if "traceparent" not in carrier:
        return None
    return propagate.extract(carrier)


def headers_of(span: Span) -> tuple[tuple[str, bytes], ...]:
    """Kafka record headers that carry `span` on to the next hop."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return tuple((k, v.encode("latin-1")) for k, v in carrier.items())
