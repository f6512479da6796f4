"""Optional tracing (dockspace.tracing): off and unloaded without an endpoint, never fatal with a bad one, and what a
request span may carry. Spans through real processes to a collector: accounts/tests/test_tracing.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.urls import reverse

from dockspace.tests.tracing_stand_ins import OtlpCollector, record_spans
from dockspace.tracing import endpoint, endpoint_problem, span
from dockspace.tracing_sdk import MASK, scrub_attribute

ROOT = Path(settings.BASE_DIR)
TOKEN = "cn0abc-0123456789abcdef0123456789abcdef"


# --- what a request span may carry -------------------------------------------------------------------------


def test_the_token_of_the_real_reset_and_registration_urls_is_masked_in_every_url_attribute():
    reset = reverse("accounts:password_reset_confirm", kwargs={"uidb64": "MQ", "token": TOKEN})
    register = reverse("accounts:register_confirm", kwargs={"uidb64": "MQ", "token": TOKEN})
    assert scrub_attribute("http.target", reset) == "/password/reset/MQ/***/"
    assert scrub_attribute("url.path", register) == "/register/confirm/MQ/***/"
    assert (
        scrub_attribute("http.url", f"https://dockspace.test{reset}") == "https://dockspace.test/password/reset/MQ/***/"
    )
    assert scrub_attribute("url.full", f"http://h{register}?next=/x") == "http://h/register/confirm/MQ/***/?next=***"
    # A captured Referer header is a list of values.
    assert scrub_attribute("http.request.header.referer", (f"https://dockspace.test{reset}",)) == (
        "https://dockspace.test/password/reset/MQ/***/",
    )


@pytest.mark.parametrize(
    "key, value, exported",
    [
        ("http.target", "/o/authorize/?client_id=app&state=s3cret", "/o/authorize/?client_id=***&state=***"),
        ("url.query", "id_token_hint=eyJhbGciOi.x.y&next=https://a", "id_token_hint=***&next=***"),
        ("http.request.header.authorization", ("Bearer abc.def",), (MASK,)),
        ("http.request.header.cookie", ("sessionid=abc; csrftoken=def",), (MASK,)),
        ("http.request.header.proxy_authorization", ("Basic eDp5",), (MASK,)),
        ("http.response.header.set_cookie", ("sessionid=abc; HttpOnly",), (MASK,)),
        ("http.response.header.location", ("https://app.test/cb?code=AUTHCODE",), ("https://app.test/cb?code=***",)),
    ],
)
def test_query_values_and_credential_headers_are_masked(key, value, exported):
    assert scrub_attribute(key, value) == exported


@pytest.mark.parametrize(
    "key, value",
    [
        ("http.target", "/password/reset/"),
        ("http.target", "/password/reset/MQ/set-password/"),  # Django's own step holds no token
        ("http.target", "/profile/"),
        ("http.route", "password/reset/<uidb64>/<token>/"),
        ("http.request.header.user_agent", ("Mozilla/5.0 (X11; Linux x86_64)",)),
        ("http.status_code", 302),
        ("net.host.port", 8000),
    ],
)
def test_everything_else_is_exported_as_it_is(key, value):
    assert scrub_attribute(key, value) == value


# --- the endpoint ------------------------------------------------------------------------------------------


def test_the_traces_endpoint_wins_over_the_base_url_and_the_sdk_switch_turns_both_off():
    assert endpoint({}) == ""
    assert endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": " http://c:4318 "}) == "http://c:4318"
    both = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/v1/traces"}
    assert endpoint(both) == "http://t/v1/traces"
    assert endpoint({**both, "OTEL_SDK_DISABLED": "true"}) == ""


@pytest.mark.parametrize("url", ["collector:4318", "grpc://collector:4317", "http://", "http://collector:port"])
def test_an_endpoint_that_is_no_http_url_is_named_as_such(url):
    assert "OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL" in endpoint_problem(url)


@pytest.mark.parametrize("url", ["http://otel-collector:4318", "https://user@traces.example.com/v1/traces"])
def test_an_http_endpoint_is_accepted(url):
    assert endpoint_problem(url) == ""


def test_a_span_of_dockspaces_own_is_a_no_op_while_tracing_is_off():
    with span("ssh docker", **{"dockspace.host": "mx1", "ssh.exit_status": None}) as current:
        current.set_attribute("ssh.exit_status", 0)
        assert not current.is_recording()
    with pytest.raises(ValueError), span("ssh docker"):
        raise ValueError("the block's own error goes through")


# --- processes ---------------------------------------------------------------------------------------------


def _database_url():
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


# What a web worker and a Celery pool process do at start (the hooks), then a request through the whole
# middleware stack and the database; prints the request's status and the opentelemetry modules loaded.
PROCESS_START = """
import json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockspace.settings")
from dockspace.gunicorn_config import post_fork
post_fork(None, None)
from dockspace.wsgi import application
from dockspace.celery import _trace_beat, _trace_pool_process
_trace_pool_process()
_trace_beat()
from django.test import Client
from dockspace.tracing import is_configured, span
with span("ssh uptime", host="mx1"):
    status = Client().get("/login/", HTTP_HOST="127.0.0.1").status_code
print(json.dumps({
    "status": status,
    "configured": is_configured(),
    # What Dockspace's tracing loads (redis-py imports the OpenTelemetry API on its own, tracing or not).
    "loaded": sorted(
        name for name in sys.modules
        if name == "dockspace.tracing_sdk"
        or name.startswith(("opentelemetry.instrumentation", "opentelemetry.exporter"))
    ),
}))
"""


def start_process(**variables):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(DATABASE_URL=_database_url(), **variables)
    result = subprocess.run(
        [sys.executable, "-c", PROCESS_START], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


@pytest.mark.django_db(transaction=True)
def test_without_an_endpoint_no_tracing_module_is_loaded():
    started, _ = start_process()
    assert started["status"] == 302  # first run: the request went through the middleware and the database
    assert not started["configured"]
    assert started["loaded"] == []
    # Positive control: the same start with an endpoint loads and configures it.
    with OtlpCollector() as collector:
        started, _ = start_process(OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint)
    assert started["configured"] and started["status"] == 302
    assert {"dockspace.tracing_sdk", "opentelemetry.instrumentation.django"} <= set(started["loaded"])
    assert any(name.startswith("opentelemetry.exporter.otlp") for name in started["loaded"])


@pytest.mark.django_db(transaction=True)
def test_a_bad_endpoint_logs_one_line_and_the_process_serves_untraced():
    started, stderr = start_process(OTEL_EXPORTER_OTLP_ENDPOINT="otel-collector:4318")
    assert started["status"] == 302 and not started["configured"]
    assert started["loaded"] == []
    lines = [line for line in stderr.splitlines() if "Tracing is off" in line]
    assert len(lines) == 1, stderr  # once, although three hooks ran
    assert "OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL" in lines[0]
    assert "Traceback" not in stderr


def test_an_exported_span_keeps_an_errors_type_but_not_its_text():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import StatusCode

    from dockspace.tracing_sdk import ScrubbingExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()  # this test's own, not the process's
    provider.add_span_processor(SimpleSpanProcessor(ScrubbingExporter(memory)))
    attributes = {
        "db.statement": 'INSERT INTO "accounts_user" ("email") VALUES (%s)',
        "http.target": f"/password/reset/MQ/{TOKEN}/",
        "celery.retry.reason": "Retry in 60s: SMTPRecipientsRefused({'ann@example.com': (550, b'No such user')})",
    }
    with pytest.raises(LookupError), provider.get_tracer("test").start_as_current_span("INSERT", attributes=attributes):
        raise LookupError("Key (email)=(ann@example.com) already exists")
    provider.shutdown()

    [exported_span] = memory.get_finished_spans()
    assert "ann@example.com" not in repr(exported_span.to_json())
    assert TOKEN not in repr(exported_span.to_json())
    [event] = exported_span.events
    assert dict(event.attributes) == {"exception.type": "LookupError", "exception.escaped": "False"}
    assert exported_span.status.status_code is StatusCode.ERROR and not exported_span.status.description
    assert exported_span.attributes == {
        "db.statement": 'INSERT INTO "accounts_user" ("email") VALUES (%s)',  # placeholders: kept as it is
        "http.target": "/password/reset/MQ/***/",
        "celery.retry.reason": "Retry in 60s",
    }


def test_a_span_of_dockspaces_own_records_its_attributes_and_an_errors_type_only(monkeypatch):
    recorded_spans = record_spans(monkeypatch)
    from opentelemetry.trace import StatusCode

    with span("ssh docker", **{"mailhost.name": "mx1", "server.port": None}) as current:
        current.set_attribute("process.exit.code", 0)
    with pytest.raises(TimeoutError), span("ssh postqueue"):
        raise TimeoutError("`postqueue -j` printed: ann@example.com")
    ok, failed = recorded_spans()
    assert ok.name == "ssh docker" and dict(ok.attributes) == {"mailhost.name": "mx1", "process.exit.code": 0}
    assert ok.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR and failed.attributes["error.type"] == "TimeoutError"
    assert not failed.events and "ann@example.com" not in failed.to_json()
