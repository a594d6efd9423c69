"""Traces with real parts: a worker and an API (processes) export by OTLP/HTTP to a collector in
the test, and one trace shows a movement's way: the sender's span (made with the SDK and its
in-memory exporter, as a warehouse system would), the normaliser, the ledger hop and its Redis
write, and a product page's request for the served count with its Redis read. Off by default."""

from __future__ import annotations

import asyncio
import threading
import urllib.request
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry import propagate, trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from atp import tracing
from atp.kafka import topics
from tests.integration.conftest import wait_http_ok
from tests.integration.test_fulfilment import wms
from tests.integration.test_prometheus import wait_for

pytestmark = pytest.mark.integration


class Collector:
    """An OTLP/HTTP trace receiver on 127.0.0.1: every span it is sent, with its service."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Any]] = []  # (service.name, span)
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                request = ExportTraceServiceRequest.FromString(body)
                with collector.lock:
                    for rs in request.resource_spans:
                        attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
                        for ss in rs.scope_spans:
                            collector.spans += [
                                (attrs.get("service.name", ""), s) for s in ss.spans
                            ]
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def trace(self, trace_id: int) -> list[tuple[str, Any]]:
        wanted = trace_id.to_bytes(16, "big")
        with self.lock:
            return [(svc, s) for svc, s in self.spans if s.trace_id == wanted]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def send(bootstrap: str, topic: str, key: bytes, value: bytes, headers: list) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


def test_one_trace_from_the_source_message_to_the_served_count(settings, processes):
    collector = Collector()
    try:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        processes.start("worker", env=env)
        api = processes.start("api", env=env)
        base = f"http://127.0.0.1:{settings.api_port}"
        wait_http_ok(f"{base}/readyz", api)

        provider = TracerProvider()
        memory = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        sender = provider.get_tracer("test-wms")
        sku = f"TR-{uuid.uuid4().hex[:8]}"
        key, value = wms(f"{sku}-r", sku, "RECEIVED", 7)
        wms_topic = settings.topic(topics.WMS)
        with sender.start_as_current_span("send stock.wms", kind=SpanKind.PRODUCER) as sent:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            headers = [(k, v.encode()) for k, v in carrier.items()]
            asyncio.run(send(settings.kafka_bootstrap, wms_topic, key, value, headers))
        trace_id = sent.get_span_context().trace_id

        def served() -> bool:
            with urllib.request.urlopen(f"{base}/v1/availability/{sku}") as r:
                return b'"atp":7' in r.read()

        wait_for(served, "the count served")
        # A product page in the same trace asks for it.
        with sender.start_as_current_span("page view", trace.set_span_in_context(sent)) as page:
            carrier = {}
            propagate.inject(carrier)
            request = urllib.request.Request(f"{base}/v1/availability/{sku}", headers=carrier)
            with urllib.request.urlopen(request) as r:
                assert r.status == 200

        def complete() -> list[tuple[str, Any]]:
            got = collector.trace(trace_id)
            names = {s.name for _, s in got}
            want = {f"normalise {wms_topic}", "apply movement", "GET /v1/availability/{sku}"}
            return got if want <= names and len(got) >= 5 else []

        spans = wait_for(complete, "the trace at the collector")
    finally:
        collector.close()

    by_name = defaultdict(list)
    for service, s in spans:
        by_name[s.name].append((service, s))
    children: dict[bytes, list[tuple[str, Any]]] = defaultdict(list)
    for service, s in spans:
        children[s.parent_span_id].append((service, s))
    ((svc_n, normalise),) = by_name[f"normalise {wms_topic}"]
    ((svc_a, apply),) = by_name["apply movement"]
    ((svc_g, get),) = by_name["GET /v1/availability/{sku}"]
    assert (svc_n, svc_a, svc_g) == ("atp-worker", "atp-worker", "atp-api")
    assert memory.get_finished_spans()[0].name == "send stock.wms"
    assert normalise.parent_span_id == sent.get_span_context().span_id.to_bytes(8, "big")
    assert apply.parent_span_id == normalise.span_id  # carried in the movement's headers
    attributes = {a.key: a.value for a in apply.attributes}
    assert attributes["atp.sku"].string_value == sku
    assert attributes["atp.outcome"].string_value == "applied"
    assert get.parent_span_id == page.get_span_context().span_id.to_bytes(8, "big")
    # The Redis write under the ledger hop's span, the read under the request's.
    assert [s for _, s in children[apply.span_id] if is_redis(s)], children[apply.span_id]
    assert [s for s in descendants(children, get.span_id) if is_redis(s)]


def descendants(children: dict[bytes, list[tuple[str, Any]]], span_id: bytes) -> list[Any]:
    out = []
    for _, s in children[span_id]:
        out += [s, *descendants(children, s.span_id)]
    return out


def is_redis(span: Any) -> bool:
    return any(a.key == "db.system" and a.value.string_value == "redis" for a in span.attributes)


def test_off_unless_the_settings_ask():
    assert not tracing.wanted({})
    assert not tracing.wanted(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}
    )
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x"})
    assert not tracing.enabled()  # in this process nothing asked for it
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
