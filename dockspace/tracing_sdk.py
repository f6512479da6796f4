"""The part of dockspace.tracing that loads OpenTelemetry's SDK and instrumentation: imported by configure() only,
when an endpoint is set. Every span leaves the process through ScrubbingExporter."""

import os
import re
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from dockspace.access_log import mask_secret_paths

MASK = "***"
# Header attributes (http.request.header.<name>, lower case, '-' as '_') whose values are credentials.
SECRET_HEADERS = frozenset({"authorization", "proxy_authorization", "cookie", "set_cookie", "x_csrftoken"})
_HEADER_ATTRIBUTE = re.compile(r"http\.(?:request|response)\.header\.(.+)\Z")
# Attributes holding an error's text ("Retry in 60s: SMTPRecipientsRefused({'ann@...': ...})").
ERROR_TEXT_ATTRIBUTES = frozenset({"celery.retry.reason"})
_QUERY_VALUE = re.compile(r"([?&][^=&#\s]*=)[^&#\s]*")
# What an exception event keeps: its type. The message and the traceback (whose last line is the message) may quote
# a value (PostgreSQL's "Key (email)=(ann@example.com) already exists", an SMTP refusal naming the address).
EXCEPTION_EVENT_KEEPS = ("exception.type", "exception.escaped")


def start(service_name: str) -> Any:
    """Install the tracer provider and the instrumentation in this process; returns Dockspace's own tracer."""
    # process.pid tells a trace's gunicorn worker or Celery pool child from its siblings.
    resource = Resource.create({"service.name": service_name, "process.pid": os.getpid()})
    provider = TracerProvider(resource=resource)  # the sampler: OTEL_TRACES_SAMPLER, default every trace
    provider.add_span_processor(BatchSpanProcessor(ScrubbingExporter(OTLPSpanExporter())))  # OTEL_EXPORTER_OTLP_*
    trace.set_tracer_provider(provider)
    # Django's middleware is added to settings.MIDDLEWARE: in a web process, before the WSGI handler loads it.
    DjangoInstrumentor().instrument(tracer_provider=provider)
    CeleryInstrumentor().instrument(tracer_provider=provider)
    # Statements are recorded with their placeholders; parameters (addresses, hashes, tokens) never.
    PsycopgInstrumentor().instrument(tracer_provider=provider, capture_parameters=False, enable_commenter=False)
    SQLite3Instrumentor().instrument(tracer_provider=provider)  # never records parameters
    return provider.get_tracer("dockspace")


# --- what an exported span may carry ---------------------------------------------------------------------------


def scrub_text(text: str) -> str:
    """TEXT with reset/registration tokens and query-string values replaced by ***."""
    return _QUERY_VALUE.sub(lambda m: m.group(1) + MASK, mask_secret_paths(text))


def scrub_attribute(key: str, value: Any) -> Any:
    """The value attribute KEY may be exported with: credential headers masked whole, an error's text cut to what
    comes before its first ':', tokens and query values masked in any other text. SQL (db.*) is kept as it is: its
    values are placeholders."""
    header = _HEADER_ATTRIBUTE.match(key)
    if header and header.group(1) in SECRET_HEADERS:
        return (MASK,) if isinstance(value, list | tuple) else MASK
    if key.startswith("db."):
        return value
    if key in ERROR_TEXT_ATTRIBUTES and isinstance(value, str):
        return value.split(":", 1)[0]
    if isinstance(value, str):
        if key == "url.query":  # the query without its '?'
            return scrub_text("?" + value)[1:]
        return scrub_text(value)
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(scrub_text(item) for item in value)
    return value


def scrubbed(span: ReadableSpan) -> ReadableSpan:
    """SPAN as it may leave the process: attributes through scrub_attribute, exception events cut to their type,
    the error status without its description (the exception's text)."""
    events = []
    for event in span.events:
        attributes = dict(event.attributes or {})
        if event.name == "exception":
            attributes = {key: attributes[key] for key in EXCEPTION_EVENT_KEEPS if key in attributes}
        events.append(
            Event(event.name, {key: scrub_attribute(key, value) for key, value in attributes.items()}, event.timestamp)
        )
    return ReadableSpan(
        name=scrub_text(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes={key: scrub_attribute(key, value) for key, value in (span.attributes or {}).items()},
        events=events,
        links=span.links,
        kind=span.kind,
        status=Status(span.status.status_code),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class ScrubbingExporter(SpanExporter):
    """Exports through INNER what `scrubbed` leaves of each span."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([scrubbed(span) for span in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)
