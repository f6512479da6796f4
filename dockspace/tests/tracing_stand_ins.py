"""Stand-ins for tracing tests. `OtlpCollector`: an OTLP/HTTP trace collector on 127.0.0.1 for processes a test
starts (POST /v1/traces, protobuf ExportTraceServiceRequest, gzip or not), keeping every span as a `ReceivedSpan`.
`record_spans(monkeypatch)`: tracing on in the test's own process, for one test, into memory."""

import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    resource: dict[str, Any] = field(default_factory=dict)
    status_code: int = 0
    status_message: str = ""

    @property
    def service(self):
        return self.resource.get("service.name")

    @property
    def pid(self):
        return self.resource.get("process.pid")


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(item) for item in any_value.array_value.values)
    if kind == "kvlist_value":
        return {item.key: _value(item.value) for item in any_value.kvlist_value.values}
    return getattr(any_value, kind) if kind else None


def _attributes(key_values):
    return {item.key: _value(item.value) for item in key_values}


def decode(body):
    """The spans of one export request's body."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        kind=span.kind,
                        attributes=_attributes(span.attributes),
                        resource=resource,
                        status_code=span.status.code,
                        status_message=span.status.message,
                    )
                )
    return spans


class OtlpCollector:
    """`with OtlpCollector() as collector:` ... `collector.endpoint` is the OTEL_EXPORTER_OTLP_ENDPOINT to give a
    process; `collector.spans` every span received; `collector.raw` every request body as received (decompressed)."""

    def __init__(self):
        self.spans: list[ReceivedSpan] = []
        self.raw: list[bytes] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                try:
                    spans = decode(body)
                except Exception:
                    self.send_error(400)
                    return
                with collector.lock:
                    collector.raw.append(body)
                    collector.spans.extend(spans)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def received(self):
        with self.lock:
            return list(self.spans)

    def wait_for(self, condition, seconds=20):
        """The spans received once CONDITION(spans) holds (or when SECONDS have passed: the caller asserts)."""
        deadline = time.monotonic() + seconds
        while True:
            spans = self.received()
            if condition(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.1)  # waiting for another process's export, not moving time


def record_spans(monkeypatch):
    """Turn dockspace.tracing on for this test only: its tracer comes from a provider of the test's own, exporting
    through the scrubbing exporter into memory (no global provider, no instrumentation: the rest of the test
    process stays untraced). Returns a function giving the spans finished so far (as they would be exported)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from dockspace import tracing
    from dockspace.tracing_sdk import ScrubbingExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ScrubbingExporter(memory)))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    return memory.get_finished_spans
