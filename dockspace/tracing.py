"""Optional OpenTelemetry tracing (README "Tracing"). With OTEL_EXPORTER_OTLP_ENDPOINT set, each process calls
configure() once it is the process that does the work (a gunicorn worker after the fork, a Celery pool child, beat):
web requests, Celery tasks, database queries and `span()` blocks (SSH commands) are sent over OTLP/HTTP. Unset,
configure() returns at once and imports none of the tracing set-up (SDK, instrumentation, exporter); `span()` is
then a no-op.

Never exported: the token in password-reset and registration links, query-string values, the Authorization and
Cookie headers, SQL parameters (statements keep their placeholders), an error's message and traceback (its type is
kept; the process's log has the rest)."""

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
logger = logging.getLogger(__name__)

# The tracer of this process once configure() has started tracing; None: tracing is off.
_tracer: Any = None
# configure() decides once per process (a bad endpoint is reported once).
_decided = False


def endpoint(environ: Mapping[str, str] | None = None) -> str:
    """Where spans go (the traces endpoint, else the OTLP base URL); empty when tracing is off."""
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ""
    for name in ENDPOINT_VARIABLES:
        value = environ.get(name, "").strip()
        if value:
            return value
    return ""


def endpoint_problem(url: str) -> str:
    """Why URL cannot receive OTLP/HTTP (a sentence naming the variable), or '' when it can."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return (
            f"{' or '.join(ENDPOINT_VARIABLES)} must be an http:// or https:// URL of an OTLP/HTTP collector, "
            "e.g. http://otel-collector:4318"
        )
    return ""


def is_configured() -> bool:
    return _tracer is not None


def configure(service_name: str) -> bool:
    """Start tracing in this process as SERVICE_NAME (OTEL_SERVICE_NAME wins) when an endpoint is set; True if
    tracing is on. Call it after forking: the span processor's export thread and connection belong to one
    process. A bad endpoint or any failure logs one line and leaves tracing off; it never stops the process."""
    global _tracer, _decided
    if _decided:
        return _tracer is not None
    _decided = True
    url = endpoint()
    if not url:
        return False
    problem = endpoint_problem(url)
    if problem:
        logger.warning("Tracing is off: %s.", problem)
        return False
    try:
        from dockspace.tracing_sdk import start

        _tracer = start(os.environ.get("OTEL_SERVICE_NAME", "").strip() or service_name)
    except Exception as exc:  # tracing is optional: the process goes on without it
        logger.warning("Tracing is off: OpenTelemetry did not start (%s: %s).", type(exc).__name__, exc)
        return False
    return True


# --- spans of Dockspace's own --------------------------------------------------------------------------------


class _NotRecording:
    """What span() yields when tracing is off: the calls a span accepts, doing nothing."""

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def is_recording(self) -> bool:
        return False


_NOT_RECORDING = _NotRecording()


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span NAME around the block, a child of the current one (a task's, a request's), with ATTRIBUTES; the
    block may add more with `.set_attribute(key, value)`. An exception marks the span failed with its type only
    (an error's text may quote what a command printed). Tracing off: nothing is recorded or imported."""
    if _tracer is None:
        yield _NOT_RECORDING
        return
    from opentelemetry.trace import Status, StatusCode

    given = {key: value for key, value in attributes.items() if value is not None}
    with _tracer.start_as_current_span(
        name, attributes=given, record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_attribute("error.type", type(exc).__name__)
            current.set_status(Status(StatusCode.ERROR))
            raise
