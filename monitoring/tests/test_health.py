"""/health (liveness) and /health/ready (readiness) as application/health+json, as a probe or an operator meets
them: what passes, each way readiness fails (503), the round of checks kept a few seconds, the detail only for
callers /metrics admits, the first start before any account, the HTTPS redirect."""

import json
import socket
from datetime import timedelta

import pytest
import time_machine
from celery.signals import beat_init, worker_ready
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client, override_settings
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from accounts.models import User
from accounts.tests.factories import UserFactory
from dockspace.celery import app as celery_app
from monitoring import health, heartbeats
from monitoring.models import Heartbeat
from monitoring.tasks import heartbeat

HEALTH_JSON = "application/health+json"
CHECKS = {
    "database:responseTime",
    "database:migrations",
    "cache:responseTime",
    "broker:responseTime",
    "dms:writable",
    "worker:heartbeat",
    "beat:lastTick",
}


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture(autouse=True)
def fresh_rounds(settings):
    """Every answer runs the checks (the tests that keep a round set DOCKSPACE_HEALTH_CACHE_SECONDS themselves)."""
    settings.HEALTH_CACHE_SECONDS = 0
    health.forget_last_round()
    yield
    health.forget_last_round()


@pytest.fixture
def ready(settings):
    """Everything readiness looks at is in order: the DMS directories exist, a worker and beat were just seen."""
    settings.DMS_DIR.mkdir(parents=True)
    settings.DMS_HISTORY_DIR.mkdir(parents=True)
    heartbeats.heartbeat_record(Heartbeat.WORKER)
    heartbeats.heartbeat_record(Heartbeat.BEAT)


def ready_answer(client=None):
    response = (client or Client()).get("/health/ready")
    assert response["Content-Type"] == HEALTH_JSON
    assert response["Cache-Control"].startswith("max-age=0")
    return response, json.loads(response.content)


def check(document, key):
    [entry] = document["checks"][key]
    return entry


def failing(document):
    return {key for key, entries in document["checks"].items() if any(e["status"] == "fail" for e in entries)}


# --- liveness -------------------------------------------------------------------------------------------------


def test_liveness_answers_pass_without_touching_the_database_or_the_cache(client):
    # No django_db mark: any query would raise. The cache points at a port where nothing listens.
    unreachable = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": ""}}
    unreachable["default"]["LOCATION"] = f"redis://127.0.0.1:{closed_port()}/0"
    with override_settings(CACHES=unreachable):
        response = client.get("/health")
        head = client.head("/health")
    assert response.status_code == 200 and head.status_code == 200
    assert response["Content-Type"] == HEALTH_JSON
    assert json.loads(response.content) == {
        "status": "pass",
        "description": "Dockspace liveness: the web process answers",
    }
    assert client.post("/health").status_code == 405


@pytest.mark.django_db
def test_readiness_with_the_same_unreachable_cache_fails_and_says_so(client, ready):
    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://:s3cret-pass@127.0.0.1:{closed_port()}/0",
        }
    }
    with override_settings(CACHES=unreachable):
        response, document = ready_answer(client)
    assert response.status_code == 503
    assert document["status"] == "fail"
    assert failing(document) == {"cache:responseTime"}
    assert check(document, "cache:responseTime")["output"] == "the cache does not answer (ConnectionError)"
    assert "s3cret" not in response.content.decode() and "127.0.0.1" not in response.content.decode()


# --- readiness ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_readiness_passes_when_everything_answers_with_a_check_per_component(ready):
    response, document = ready_answer()
    assert response.status_code == 200
    assert document["status"] == "pass" and document["description"] == "Dockspace readiness"
    assert set(document["checks"]) == CHECKS
    for key, entries in document["checks"].items():
        assert len(entries) == 1, key
        entry = entries[0]
        assert entry["status"] == "pass", (key, entry)
        assert entry["componentType"] in ("datastore", "component")
        assert timezone.datetime.fromisoformat(entry["time"]).tzinfo is not None
        assert "output" not in entry  # only failures explain themselves
    assert check(document, "database:responseTime")["observedUnit"] == "ms"
    assert check(document, "database:migrations")["observedValue"] == 0
    assert check(document, "worker:heartbeat")["observedUnit"] == "s"
    assert check(document, "worker:heartbeat")["observedValue"] <= 1


@pytest.mark.django_db
def test_an_unapplied_migration_makes_it_not_ready_until_migrate_runs(ready):
    assert ready_answer()[0].status_code == 200
    app, name = MigrationLoader(connection).graph.leaf_nodes("monitoring")[0]
    MigrationRecorder(connection).migration_qs.filter(app=app, name=name).delete()  # as if never applied

    response, document = ready_answer()
    assert response.status_code == 503
    assert failing(document) == {"database:migrations"}
    entry = check(document, "database:migrations")
    assert entry["observedValue"] == 1 and entry["observedUnit"] == "migrations"
    assert entry["output"] == "1 migration(s) not applied: run `manage.py migrate`"

    MigrationRecorder(connection).record_applied(app, name)
    assert ready_answer()[0].status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "break_it, output",
    [
        (lambda s: s.DMS_DIR.rmdir(), "the DMS directory does not take a file (No such file or directory)"),
        (
            lambda s: (s.DMS_DIR.rmdir(), s.DMS_DIR.write_text("a file where the directory should be")),
            "the DMS directory does not take a file (Not a directory)",
        ),
        (
            lambda s: s.DMS_HISTORY_DIR.rmdir(),
            "the DMS history directory does not take a file (No such file or directory)",
        ),
    ],
)
def test_a_dms_directory_that_takes_no_file_makes_it_not_ready(settings, ready, break_it, output):
    break_it(settings)
    response, document = ready_answer()
    assert response.status_code == 503
    assert failing(document) == {"dms:writable"}
    assert check(document, "dms:writable")["output"] == output
    assert str(settings.DMS_DIR.parent) not in response.content.decode()  # no path for whoever asks


@pytest.mark.django_db
def test_a_silent_worker_makes_it_not_ready_after_two_minutes(ready):
    start = timezone.now()
    with time_machine.travel(start + timedelta(seconds=119), tick=False):
        heartbeats.heartbeat_record(Heartbeat.BEAT)  # beat goes on ticking
        response, document = ready_answer()
        assert response.status_code == 200
        assert check(document, "worker:heartbeat")["observedValue"] == 119
    with time_machine.travel(start + timedelta(seconds=121), tick=False):
        response, document = ready_answer()
    assert response.status_code == 503
    assert failing(document) == {"worker:heartbeat"}
    entry = check(document, "worker:heartbeat")
    assert entry["observedValue"] == 121
    assert entry["output"] == "no Celery worker seen for 121 s: is the worker running?"


@pytest.mark.django_db
def test_beat_counts_as_ticking_while_it_sends_tasks(ready):
    """Beat's heartbeat row is from its start; what it sent since (PeriodicTask.last_run_at) keeps it ready."""
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.MINUTES)
    task = PeriodicTask.objects.create(name="Worker heartbeat", task="monitoring.heartbeat", interval=every_minute)
    start = timezone.now()
    with time_machine.travel(start + timedelta(minutes=10), tick=False):
        heartbeats.heartbeat_record(Heartbeat.WORKER)
        response, document = ready_answer()
        assert response.status_code == 503
        assert failing(document) == {"beat:lastTick"}
        assert check(document, "beat:lastTick")["output"] == "Celery beat sent nothing for 600 s: is beat running?"

        task.last_run_at = timezone.now() - timedelta(seconds=30)  # what beat writes as it sends the task
        task.save()
        response, document = ready_answer()
    assert response.status_code == 200
    assert check(document, "beat:lastTick")["observedValue"] == 30


@pytest.mark.django_db
def test_before_any_worker_or_beat_ran_readiness_says_so():
    response, document = ready_answer()
    assert response.status_code == 503
    assert {"worker:heartbeat", "beat:lastTick"} <= failing(document)
    assert check(document, "worker:heartbeat")["output"] == "no Celery worker has been seen yet"
    assert check(document, "beat:lastTick")["output"] == "Celery beat has not run yet"
    assert "observedValue" not in check(document, "worker:heartbeat")


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_task_a_worker_start_and_a_beat_start_record_themselves():
    assert heartbeat() == "worker heartbeat recorded"
    first = Heartbeat.objects.get(name="worker").seen_at
    with time_machine.travel(timezone.now() + timedelta(seconds=5)):
        worker_ready.send(sender=None)  # Celery's own signal, as a starting worker sends it
        beat_init.send(sender=None)
    assert Heartbeat.objects.get(name="worker").seen_at > first
    assert Heartbeat.objects.get(name="beat").seen_at > first
    assert Heartbeat.objects.count() == 2  # updated, never duplicated


@pytest.mark.django_db
def test_an_unreachable_broker_fails_without_revealing_its_address(ready):
    port = closed_port()
    saved = celery_app.conf.broker_url
    celery_app.conf.broker_url = f"redis://:s3cret-pass@127.0.0.1:{port}/0"
    try:
        response, document = ready_answer()
    finally:
        celery_app.conf.broker_url = saved
    assert response.status_code == 503
    assert failing(document) == {"broker:responseTime"}
    assert check(document, "broker:responseTime")["output"].startswith("the Celery broker does not answer (")
    body = response.content.decode()
    assert "s3cret" not in body and str(port) not in body and "Traceback" not in body
    assert ready_answer()[0].status_code == 200  # positive control: the configured broker answers


@pytest.mark.django_db
def test_an_embedded_broker_whose_queue_folder_is_gone_is_not_ready(ready, tmp_path):
    # The embedded broker, also in the run on Redis (as `make run` uses it).
    url, options = celery_app.conf.broker_url, dict(celery_app.conf.broker_transport_options or {})
    queue = tmp_path / "queue"
    queue.mkdir()
    embedded = {"data_folder_in": str(queue), "data_folder_out": str(queue), "control_folder": str(queue)}
    celery_app.conf.broker_url = "filesystem://"
    try:
        celery_app.conf.broker_transport_options = embedded
        assert ready_answer()[0].status_code == 200  # positive control: the folders take a file
        celery_app.conf.broker_transport_options = {**embedded, "data_folder_out": str(tmp_path / "gone")}
        response, document = ready_answer()
    finally:
        celery_app.conf.broker_url, celery_app.conf.broker_transport_options = url, options
    assert response.status_code == 503
    assert check(document, "broker:responseTime")["output"] == (
        "the Celery broker does not answer (No such file or directory)"
    )


# --- one round kept a few seconds ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_within_the_cache_window_the_last_round_answers_and_after_it_the_checks_run_again(settings, ready):
    settings.HEALTH_CACHE_SECONDS = 5
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        first, first_document = ready_answer()
        settings.DMS_DIR.rmdir()  # broken after the first round
        kept, kept_document = ready_answer()
    with time_machine.travel(start + timedelta(seconds=4), tick=False):
        still, _ = ready_answer()
    assert first.status_code == kept.status_code == still.status_code == 200  # the checks did not run again
    assert kept_document == first_document  # the same round, down to its time
    with time_machine.travel(start + timedelta(seconds=5), tick=False):
        response, document = ready_answer()
    assert response.status_code == 503
    assert failing(document) == {"dms:writable"}


@pytest.mark.django_db
def test_with_a_cache_of_0_seconds_every_request_runs_the_checks(settings, ready):
    assert settings.HEALTH_CACHE_SECONDS == 0
    assert ready_answer()[0].status_code == 200
    settings.DMS_DIR.rmdir()
    response, document = ready_answer()
    assert response.status_code == 503 and failing(document) == {"dms:writable"}


# --- who sees the detail ----------------------------------------------------------------------------------------

ELSEWHERE = {"REMOTE_ADDR": "203.0.113.9"}


@pytest.mark.django_db
def test_a_caller_metrics_would_refuse_sees_status_and_a_generic_reason_only(settings, ready):
    settings.DMS_DIR.rmdir()
    for headers in (ELSEWHERE, {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}):
        response = Client().get("/health/ready", **headers)
        document = json.loads(response.content)
        assert response.status_code == 503 and failing(document) == {"dms:writable"}
        assert check(document, "dms:writable")["output"] == "the DMS directory does not take a file"
        assert "No such file or directory" not in response.content.decode()
        assert set(check(document, "database:responseTime")) == {"componentType", "status", "time"}
        assert set(document["checks"]) == CHECKS
    # positive control: straight from this machine, the error and the observed values
    document = ready_answer()[1]
    assert (
        check(document, "dms:writable")["output"]
        == "the DMS directory does not take a file (No such file or directory)"
    )
    assert check(document, "database:responseTime")["observedUnit"] == "ms"


@pytest.mark.django_db
def test_with_the_metrics_token_its_bearer_sees_the_detail_from_anywhere(settings, ready):
    settings.METRICS_TOKEN = "health-detail-token-0123456789"
    settings.DMS_HISTORY_DIR.rmdir()
    admitted = Client().get("/health/ready", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}", **ELSEWHERE)
    refused = Client().get("/health/ready", HTTP_AUTHORIZATION="Bearer wrong-token-0123456789", **ELSEWHERE)
    loopback = Client().get("/health/ready")  # with a token set, loopback alone no longer admits
    assert admitted.status_code == refused.status_code == loopback.status_code == 503  # readiness answers everyone
    detail = "the DMS history directory does not take a file (No such file or directory)"
    assert check(json.loads(admitted.content), "dms:writable")["output"] == detail
    for response in (refused, loopback):
        assert (
            check(json.loads(response.content), "dms:writable")["output"]
            == "the DMS history directory does not take a file"
        )


# --- first start, HTTPS redirect --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_before_the_first_account_the_machine_endpoints_answer_instead_of_redirecting(client):
    assert not User.objects.exists()
    assert client.get("/login/")["Location"] == "/setup/"  # positive control: pages lead to the setup page
    assert client.get("/health").status_code == 200
    assert ready_answer(client)[0].status_code == 503  # no worker yet: an answer, not a redirect
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and b"dockspace_mailboxes" in metrics.content
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_the_health_and_metrics_endpoints_are_exempt_from_the_https_redirect(settings, ready):
    UserFactory()
    settings.SECURE_SSL_REDIRECT = True
    client = Client()  # SecurityMiddleware reads the settings when the client builds its handler
    assert client.get("/login/").status_code == 301  # positive control: pages go to https
    assert client.get("/health").status_code == 200
    assert client.get("/health/ready").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/healthz").status_code == 200
