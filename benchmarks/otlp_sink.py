"""A stand-in OpenTelemetry collector for the tracing benchmarks: takes OTLP/HTTP trace exports
on 127.0.0.1, answers 200 and counts the spans; prints the count every 5 s and at SIGTERM.

    .venv/bin/python benchmarks/otlp_sink.py --port 4318 &
    .venv/bin/python benchmarks/api_bench.py --api-env OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

REPLY = ExportTraceServiceResponse().SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args()
    spans = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = ExportTraceServiceRequest.FromString(
                self.rfile.read(int(self.headers["content-length"]))
            )
            n = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
            with lock:
                spans[0] += n
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(REPLY)))
            self.end_headers()
            self.wfile.write(REPLY)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: server.shutdown())

    def report() -> None:
        while True:
            time.sleep(5)
            print(f"otlp sink: {spans[0]} spans", flush=True)

    threading.Thread(target=report, daemon=True).start()
    server.serve_forever()
    print(f"otlp sink: {spans[0]} spans in all", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
