"""Optional OpenTelemetry tracing (README "Tracing"). With OTEL_EXPORTER_OTLP_ENDPOINT set, each process calls
configure() once it is the process that does the work (a gunicorn worker after the fork, a Celery pool child, beat):
web requests, Celery tasks, database queries and `span()` blocks (SSH commands) are sent over OTLP/HTTP. Unset,
configure() returns at once and no opentelemetry module is ever imported; `span()` is then a no-op.

Never exported: the token in password-reset and registration links, query-string values, the Authorization and
Cookie headers, SQL parameters (statements keep their placeholders), an error's message and traceback (its type is
kept; the process's log has the rest)."""

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
MASK = "***"
# Header attributes (http.request.header.<name>, lower case, '-' as '_') whose values are credentials.
SECRET_HEADERS = frozenset({"authorization", "proxy_authorization", "cookie", "set_cookie", "x_csrftoken"})
_HEADER_ATTRIBUTE = re.compile(r"http\.(?:request|response)\.header\.(.+)\Z")
# Attributes holding an error's text ("Retry in 60s: SMTPRecipientsRefused({'ann@...': ...})").
ERROR_TEXT_ATTRIBUTES = frozenset({"celery.retry.reason"})
_QUERY_VALUE = re.compile(r"([?&][^=&#\s]*=)[^&#\s]*")

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


# --- what an exported span may carry (dockspace.tracing_sdk applies it to every span) --------------------------


def scrub_text(text: str) -> str:
    """TEXT with reset/registration tokens and query-string values replaced by ***."""
    from dockspace.access_log import mask_secret_paths

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
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
