"""Tracing through Dockspace's real processes (README "Tracing"), started as the image starts them: the web process's
gunicorn workers, a Celery worker's prefork pool and beat send their spans to an OTLP/HTTP collector the test runs;
no reset token, password, address or credential reaches it."""

import re
from pathlib import Path

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from accounts.tests.factories import PASSWORD, UserFactory
from accounts.tests.smtp_server import SmtpServer
from dockspace.tests.celery_processes import wait_for
from dockspace.tests.ports import free_port
from dockspace.tests.tracing_stand_ins import OtlpCollector
from monitoring.tests.processes import Web, process_env, running

pytestmark = pytest.mark.django_db(transaction=True)

SERVER, CONSUMER = 2, 5  # OTLP span kinds
EMAIL = "ann.tracing@example.com"
BEARER = "bearer-0123456789abcdefghij"
OTHER_TOKEN = "cn0abc-fedcba9876543210fedcba98"


def traced_env(tmp_path, collector, **extra):
    return process_env(
        DOCKSPACE_DATA_DIR=str(tmp_path / "data"),  # the embedded broker's folders: web and worker share them
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",  # milliseconds between exports (default 5 s)
        **extra,
    )


def command_line(pid):
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def parent_pid(pid):
    return int(re.search(r"^PPid:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M).group(1))


def exported(collector):
    """Every byte the collector received: names, attributes, events, resources."""
    return b"".join(collector.raw)


def test_a_request_in_a_gunicorn_worker_is_traced_with_its_queries_and_no_secret(tmp_path):
    user = UserFactory(email=EMAIL)
    port = free_port()
    with OtlpCollector() as collector:
        env = traced_env(
            tmp_path,
            collector,
            DOCKSPACE_BIND=f"127.0.0.1:{port}",
            WEB_CONCURRENCY="1",
            # An operator who records headers: credentials among them are still never exported.
            OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST="authorization,cookie,referer,user-agent",
            OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE="set-cookie,location",
        )
        with running(tmp_path, ("web", env, [])) as logs:
            web = Web(port)
            web.wait_for("/health", logs=logs)
            web.post_form("/login/", {"email": EMAIL, "password": PASSWORD})  # signed in: its span says /profile/
            csrf_cookie = web.cookies["csrftoken"]  # sent back with every request below

            user.refresh_from_db()
            uid, token = urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user)
            headers = {
                "Authorization": f"Bearer {BEARER}",
                "Referer": f"https://dockspace.test/register/confirm/{uid}/{OTHER_TOKEN}/",
            }
            status, _ = web.get(f"/password/reset/{uid}/{token}/", headers=headers)
            assert status == 200  # the link worked: on to the new-password form

            names = {"GET login/", "POST login/", "GET password/reset/<uidb64>/<token>/"}
            spans = collector.wait_for(lambda spans: names <= {span.name for span in spans})
            assert names <= {span.name for span in spans}, logs["web"].read_text()[-3000:]
            requests = {span.name: span for span in spans if span.kind == SERVER}
            # From a forked worker, whose parent is the gunicorn master: tracing started after the fork.
            worker_pid = requests["POST login/"].pid
            assert "gunicorn" in command_line(worker_pid)
            assert "gunicorn" in command_line(parent_pid(worker_pid)) and parent_pid(worker_pid) != worker_pid
    assert {span.service for span in spans} == {"dockspace-web"}

    # The sign-in's queries are children of its request span, recorded with placeholders.
    sign_in = requests["POST login/"]
    assert sign_in.attributes["http.status_code"] == 302
    assert sign_in.attributes["http.response.header.location"] == ("/profile/",)
    queries = [s for s in spans if s.parent_span_id == sign_in.span_id and "db.statement" in s.attributes]
    assert queries and all(query.trace_id == sign_in.trace_id for query in queries)
    lookups = [q.attributes["db.statement"] for q in queries if 'FROM "accounts_user"' in q.attributes["db.statement"]]
    assert lookups and all("%s" in statement for statement in lookups)

    # The reset link's span is named by its route; its path and headers keep no token, bearer or cookie.
    # (The redirect to Django's next step has the same route: /password/reset/<uid>/set-password/, a 200.)
    [reset] = [
        s for s in spans if s.name == "GET password/reset/<uidb64>/<token>/" and s.attributes["http.status_code"] == 302
    ]
    assert reset.attributes["http.route"] == "password/reset/<uidb64>/<token>/"
    assert reset.attributes["http.target"] == f"/password/reset/{uid}/***/"
    assert reset.attributes["http.request.header.authorization"] == ("***",)
    assert reset.attributes["http.request.header.cookie"] == ("***",)
    assert reset.attributes["http.request.header.referer"] == (f"https://dockspace.test/register/confirm/{uid}/***/",)
    assert reset.attributes["http.request.header.user_agent"][0].startswith("Python-urllib/")  # headers recorded

    everything = exported(collector)
    for secret in [token, OTHER_TOKEN, BEARER, csrf_cookie, PASSWORD, user.password, EMAIL]:
        assert secret.encode() not in everything, f"{secret!r} was exported"
    assert f"/password/reset/{uid}/***/".encode() in everything  # positive control: the masked path was sent


@pytest.mark.celery
def test_a_task_is_traced_from_the_request_that_queued_it_into_a_pool_process_and_from_beat(tmp_path):
    UserFactory(email=EMAIL)
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="purge audit log", task="accounts.purge_audit_log", interval=every_second)
    port = free_port()
    smtp = SmtpServer().start()
    try:
        with OtlpCollector() as collector:
            env = traced_env(
                tmp_path,
                collector,
                DOCKSPACE_BIND=f"127.0.0.1:{port}",
                WEB_CONCURRENCY="1",
                WORKER_CONCURRENCY="1",  # a prefork pool of one child
                EMAIL_HOST="127.0.0.1",
                EMAIL_PORT=str(smtp.port),
                EMAIL_USE_TLS="0",
            )
            beat_args = ["--pidfile", str(tmp_path / "beat.pid")]
            with running(tmp_path, ("worker", env, []), ("beat", env, beat_args), ("web", env, [])) as logs:
                web = Web(port)
                web.wait_for("/health", logs=logs)
                status, _ = web.post_form("/password/reset/", {"email": EMAIL})
                assert status == 200  # "check your mail"

                assert wait_for(lambda: smtp.received, seconds=30), logs["worker"].read_text()[-3000:]
                token = smtp.received[0].link("/password/reset/").rstrip("/").rsplit("/", 1)[1]

                wanted = {
                    "run/accounts.send_password_reset",
                    "run/accounts.outbox_send",
                    "run/accounts.purge_audit_log",
                }
                spans = collector.wait_for(lambda spans: wanted <= {span.name for span in spans})
                assert wanted <= {span.name for span in spans}, logs["worker"].read_text()[-3000:]
                task_pid = next(span.pid for span in spans if span.name == "run/accounts.send_password_reset")
                beat_pid = next(span.pid for span in spans if span.name == "apply_async/accounts.purge_audit_log")
                # The task ran in a child of the worker (the prefork pool), which started tracing after the fork.
                assert "celery" in command_line(task_pid) and " worker" in command_line(parent_pid(task_pid))
                assert " beat" in command_line(beat_pid)
    finally:
        smtp.stop()

    by_id = {span.span_id: span for span in spans}

    def ancestors(span):
        names = []
        while span.parent_span_id in by_id:
            span = by_id[span.parent_span_id]
            names.append(span.name)
        return names

    # One trace from the request to the mail: web -> worker -> the outbox task the worker queued.
    sent = next(span for span in spans if span.name == "run/accounts.outbox_send")
    assert ancestors(sent) == [
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

    # Beat's sends are traced too, and the worker's run of each is its child.
    purge = next(span for span in spans if span.name == "run/accounts.purge_audit_log")
    sent_by_beat = by_id[purge.parent_span_id]
    assert sent_by_beat.name == "apply_async/accounts.purge_audit_log" and sent_by_beat.service == "dockspace-beat"

    everything = exported(collector)
    for secret in [token, EMAIL]:
        assert secret.encode() not in everything, f"{secret!r} was exported"
    assert b"accounts_outboundmessage" in everything  # positive control: the query carrying the link was traced
