"""Tracing through real processes (README "Tracing"): a gunicorn worker, a Celery prefork worker and beat send their
spans to an OTLP/HTTP collector the test runs, and no reset token, password, address or credential reaches it."""

import http.client
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.db import connection
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from accounts.tests.factories import PASSWORD, UserFactory
from accounts.tests.smtp_server import SmtpServer, free_port
from dockspace.processes import web_argv
from dockspace.tests.otlp_collector import OtlpCollector

pytestmark = pytest.mark.django_db(transaction=True)

CELERY = str(Path(sys.executable).with_name("celery"))
SERVER, CONSUMER = 2, 5  # OTLP span kinds
EMAIL = "ann.tracing@example.com"
BEARER = "bearer-0123456789abcdefghij"


def _database_url():
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def traced_env(tmp_path, collector, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    env.update(
        DATABASE_URL=_database_url(),
        DOCKSPACE_DATA_DIR=str(data),  # the embedded broker's folders: the web and the worker share them
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",  # milliseconds between exports (default 5 s)
        **extra,
    )
    return env


class Processes:
    """Processes started by a test, each logging to a file; stopped (and their logs closed) on the way out."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.procs = {}
        self.logs = {}

    def start(self, name, argv, env):
        self.logs[name] = open(self.tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed in __exit__
        self.procs[name] = subprocess.Popen(argv, env=env, stdout=self.logs[name], stderr=subprocess.STDOUT)
        return self.procs[name]

    def log(self, name):
        return (self.tmp_path / f"{name}.log").read_text()[-3000:]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for handle in self.logs.values():
            handle.close()


def start_web(processes, env):
    port = free_port()
    env = {**env, "DOCKSPACE_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"}
    proc = processes.start("web", web_argv(env), env)  # the declared command line, with its gunicorn config
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, processes.log("web")
            time.sleep(0.2)  # waiting for another process to listen


class Browser:
    """Just enough of a browser over plain HTTP: cookies kept by hand (Dockspace marks them Secure)."""

    def __init__(self, port):
        self.port = port
        self.cookies = {}

    def request(self, method, path, form=None, headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"User-Agent": "tracing-test/1.0", **(headers or {})}
        if self.cookies and "Cookie" not in headers:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            form = {**form, "csrfmiddlewaretoken": self.cookies.get("csrftoken", "")}
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, value = header.split(";", 1)[0].split("=", 1)
            self.cookies[name.strip()] = value.strip()
        response.body = response.read().decode()
        connection.close()
        return response


def parent_pid(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^PPid:\s+(\d+)", status, re.M).group(1))


def exported(collector):
    return b"".join(collector.raw)


def test_a_request_in_a_gunicorn_worker_is_traced_with_its_queries_and_no_secret(tmp_path):
    user = UserFactory(email=EMAIL)
    header_capture = {
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "authorization,cookie,referer,user-agent",
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE": "set-cookie,location",
    }
    with OtlpCollector() as collector, Processes(tmp_path) as processes:
        web, port = start_web(processes, traced_env(tmp_path, collector, **header_capture))
        browser = Browser(port)
        assert browser.request("GET", "/login/").status == 200
        signed_in = browser.request("POST", "/login/", {"email": EMAIL, "password": PASSWORD})
        assert signed_in.status == 302, signed_in.body[-2000:]
        session = browser.cookies["dockspace_session"]

        user.refresh_from_db()
        uid, token = urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user)
        other_token = "cn0abc-fedcba9876543210fedcba98"
        link = browser.request(
            "GET",
            f"/password/reset/{uid}/{token}/",
            headers={
                "Authorization": f"Bearer {BEARER}",
                "Referer": f"https://dockspace.test/register/confirm/{uid}/{other_token}/",
            },
        )
        assert link.status == 302 and link.getheader("Location").endswith("/set-password/")

        names = {"GET login/", "POST login/", "GET password/reset/<uidb64>/<token>/"}
        spans = collector.wait_for(lambda spans: names <= {span.name for span in spans})
        assert names <= {span.name for span in spans}, processes.log("web")
        requests = {span.name: span for span in spans if span.kind == SERVER}
        # From the forked worker, not the gunicorn master: tracing started after the fork.
        worker_pid = requests["POST login/"].pid
        assert worker_pid != web.pid and parent_pid(worker_pid) == web.pid
        assert {span.service for span in spans} == {"dockspace-web"}

    # The queries of the sign-in are children of its request span, recorded with placeholders.
    sign_in = requests["POST login/"]
    assert sign_in.attributes["http.status_code"] == 302
    queries = [s for s in spans if s.parent_span_id == sign_in.span_id and "db.statement" in s.attributes]
    assert queries and all(query.trace_id == sign_in.trace_id for query in queries)
    user_lookup = [
        q.attributes["db.statement"] for q in queries if 'FROM "accounts_user"' in q.attributes["db.statement"]
    ]
    assert user_lookup and all("%s" in statement for statement in user_lookup)

    # The reset link's span is named by its route; its URL and headers keep no token, bearer or cookie.
    reset = requests["GET password/reset/<uidb64>/<token>/"]
    assert reset.attributes["http.target"] == f"/password/reset/{uid}/***/"
    assert reset.attributes["http.route"] == "password/reset/<uidb64>/<token>/"
    assert reset.attributes["http.request.header.authorization"] == ("***",)
    assert reset.attributes["http.request.header.cookie"] == ("***",)
    assert reset.attributes["http.request.header.referer"] == (f"https://dockspace.test/register/confirm/{uid}/***/",)
    assert reset.attributes["http.request.header.user_agent"] == ("tracing-test/1.0",)  # headers are captured
    assert sign_in.attributes["http.response.header.location"] == ("/profile/",)

    everything = exported(collector)
    for secret in [token, other_token, BEARER, session, PASSWORD, user.password, EMAIL]:
        assert secret.encode() not in everything, secret
    assert f"/password/reset/{uid}/***/".encode() in everything  # positive control: the masked path was sent


@pytest.mark.celery
def test_a_task_is_traced_from_the_request_that_queued_it_into_a_pool_process_and_from_beat(tmp_path):
    UserFactory(email=EMAIL)
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="purge audit log", task="accounts.purge_audit_log", interval=every_second)
    smtp = SmtpServer().start()
    try:
        with OtlpCollector() as collector, Processes(tmp_path) as processes:
            env = traced_env(tmp_path, collector, EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(smtp.port), EMAIL_USE_TLS="0")
            worker = processes.start(
                "worker",
                [CELERY, "-A", "dockspace", "worker", "--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO"],
                env,
            )
            beat = processes.start(
                "beat",
                [CELERY, "-A", "dockspace", "beat", "--loglevel", "INFO", "--pidfile", str(tmp_path / "beat.pid")],
                env,
            )
            web, port = start_web(processes, env)
            browser = Browser(port)
            assert browser.request("GET", "/password/reset/").status == 200
            assert browser.request("POST", "/password/reset/", {"email": EMAIL}).status == 302

            deadline = time.monotonic() + 30
            while not smtp.received and time.monotonic() < deadline:
                time.sleep(0.2)  # waiting for the worker
            assert smtp.received, processes.log("worker")
            token = smtp.received[0].link("/password/reset/").rstrip("/").rsplit("/", 1)[1]

            wanted = {"run/accounts.send_password_reset", "run/accounts.outbox_send", "run/accounts.purge_audit_log"}
            spans = collector.wait_for(lambda spans: wanted <= {span.name for span in spans})
            assert wanted <= {span.name for span in spans}, processes.log("worker") + processes.log("beat")
            task_pid = next(span.pid for span in spans if span.name == "run/accounts.send_password_reset")
            assert task_pid != worker.pid and parent_pid(task_pid) == worker.pid  # a prefork child of the worker
            beat_pid = beat.pid
    finally:
        smtp.stop()

    by_id = {span.span_id: span for span in spans}

    def chain(span):
        """The span's ancestors' names, nearest first."""
        names = []
        while span.parent_span_id in by_id:
            span = by_id[span.parent_span_id]
            names.append(span.name)
        return names

    # One trace from the request to the mail: web -> worker -> the outbox task the worker queued.
    sent = next(span for span in spans if span.name == "run/accounts.outbox_send")
    assert chain(sent) == [
        "apply_async/accounts.outbox_send",
        "run/accounts.send_password_reset",
        "apply_async/accounts.send_password_reset",
        "POST password/reset/",
    ]
    request = next(span for span in spans if span.name == "POST password/reset/")
    assert sent.trace_id == request.trace_id
    assert request.service == "dockspace-web" and sent.service == "dockspace-worker" and sent.kind == CONSUMER
    run = next(span for span in spans if span.name == "run/accounts.send_password_reset")
    statements = [
        s.attributes["db.statement"]
        for s in spans
        if s.parent_span_id == run.span_id and "db.statement" in s.attributes
    ]
    assert any(statement.startswith('INSERT INTO "accounts_outboundmessage"') for statement in statements)

    # Beat's sends are traced too, and the worker's run of them is their child.
    purge = next(span for span in spans if span.name == "run/accounts.purge_audit_log")
    sent_by_beat = by_id[purge.parent_span_id]
    assert sent_by_beat.name == "apply_async/accounts.purge_audit_log"
    assert sent_by_beat.service == "dockspace-beat" and sent_by_beat.pid == beat_pid

    everything = exported(collector)
    for secret in [token, EMAIL]:
        assert secret.encode() not in everything, secret
    assert b"accounts_outboundmessage" in everything  # positive control: the query carrying the link was traced
