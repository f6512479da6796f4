"""/metrics adds up what several real processes counted: Python processes sharing one counter directory and
another process's directory; gunicorn workers that each serve one request and exit; a Celery worker's pool
children, beside the web process that serves /metrics (with readiness passing once worker and beat started)."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from accounts.tests.factories import UserFactory
from dockspace.celery import app as celery_app
from dockspace.tests.ports import free_port
from mail.models import DmsPendingChange
from monitoring.metrics import SIGN_INS
from monitoring.tests.processes import Web, process_env, running, sample_value

# Run in a separate Python with PROMETHEUS_MULTIPROC_DIR set: sends the real signals our receivers hear.
COUNTING_PROCESS = """
import sys
import django
django.setup()
from celery.signals import task_postrun
from django.contrib.auth.signals import user_login_failed
from mail.dms.sync import sync_finished
from monitoring.tasks import heartbeat
failures, tasks, syncs = map(int, sys.argv[1:4])
for _ in range(failures):
    user_login_failed.send(sender=None, credentials={}, request=None)
for n in range(tasks):
    task_postrun.send(sender=heartbeat, task_id=f"t{n}", task=heartbeat, state="SUCCESS")
for _ in range(syncs):
    sync_finished.send(sender=None, outcome="success", duration_seconds=0.3)
"""


def count_in_process(directory, failures=0, tasks=0, syncs=0):
    directory.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-c", COUNTING_PROCESS, str(failures), str(tasks), str(syncs)],
        cwd=settings.BASE_DIR,
        env=process_env(PROMETHEUS_MULTIPROC_DIR=str(directory)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def scrape():
    response = Client().get("/metrics")
    assert response.status_code == 200
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


@pytest.mark.django_db
def test_metrics_add_up_the_counts_of_every_process_in_every_process_directory(settings, tmp_path, monkeypatch):
    root = tmp_path / "metrics"
    count_in_process(root / "web", failures=2)
    count_in_process(root / "web", failures=3)  # another process (pid) in the same directory
    count_in_process(root / "worker", tasks=4, syncs=1)
    assert len(list((root / "web").glob("counter_*.db"))) == 2

    SIGN_INS.labels(result="failure").inc(100)  # this test process counts in memory: not a process that serves
    settings.METRICS_DIR = root
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(root / "web"))  # as the web process started
    families = scrape()
    assert sample_value(families, "dockspace_sign_ins", result="failure") == 5
    assert sample_value(families, "dockspace_celery_task_runs", task="monitoring.heartbeat", outcome="success") == 4
    assert sample_value(families, "dockspace_dms_syncs", outcome="success") == 1
    count = "dockspace_dms_sync_duration_seconds_count"
    assert sample_value(families, "dockspace_dms_sync_duration_seconds", count) == 1
    assert "dockspace_mailboxes" in families  # and the database's figures beside them

    # A directory set by other means, outside METRICS_DIR, is read alone.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "elsewhere"))
    count_in_process(tmp_path / "elsewhere", failures=7)
    families = scrape()
    assert sample_value(families, "dockspace_sign_ins", result="failure") == 7
    assert sample_value(families, "dockspace_celery_task_runs", task="monitoring.heartbeat", outcome="success") == 0

    # Without the variable, the serving process's own counts (tests, a single process).
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    assert sample_value(scrape(), "dockspace_sign_ins", result="failure") >= 100


@pytest.mark.django_db(transaction=True)
def test_gunicorn_workers_that_each_serve_one_request_add_up(tmp_path):
    UserFactory(email="ada@example.com")  # past the first-run page
    port = free_port()
    env = process_env(
        DOCKSPACE_DATA_DIR=str(tmp_path / "data"),
        DOCKSPACE_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="2",
    )
    # Every worker exits after one request: each request below is served by a new process.
    with running(tmp_path, ("web", env, ["--max-requests", "1"])) as logs:
        web = Web(port)
        web.wait_for("/health", logs=logs)
        for n in range(3):
            status, page = web.post_form("/login/", {"email": "ada@example.com", "password": f"wrong {n}"})
            assert status == 200 and b"The email address or password is wrong." in page
        families = web.metrics()
        assert sample_value(families, "dockspace_sign_ins", result="failure") == 3
        assert sample_value(families, "dockspace_sign_ins", result="success") == 0
        assert sample_value(web.metrics(), "dockspace_sign_ins", result="failure") == 3  # yet another process
    counter_files = list((tmp_path / "data" / "metrics" / "web").glob("counter_*.db"))
    assert len(counter_files) >= 8  # /health, 3 x (GET, POST), 2 scrapes: one process each


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_celery_workers_pool_counts_for_the_web_process_and_readiness_follows_worker_and_beat(tmp_path):
    UserFactory(email="ada@example.com")
    dms = tmp_path / "dms"
    (dms / "config").mkdir(parents=True)
    (dms / "history").mkdir()
    port = free_port()
    # One data directory for all, as the compose file's shared volume: the queue, the cache and METRICS_DIR.
    env = process_env(
        DOCKSPACE_DATA_DIR=str(settings.DATA_DIR),
        DOCKSPACE_DMS_DIR=str(dms / "config"),
        DOCKSPACE_DMS_HISTORY_DIR=str(dms / "history"),
        DOCKSPACE_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="2",
        WORKER_CONCURRENCY="2",
    )
    web = Web(port)
    with running(tmp_path, ("web", env, [])) as logs:
        web.wait_for("/health", logs=logs)
        status, body = web.get("/health/ready")
        assert status == 503 and b"no Celery worker has been seen yet" in body

    with running(tmp_path, ("web", env, []), ("worker", env, []), ("beat", env, [])) as logs:
        web.wait_for("/health/ready", seconds=180, logs=logs)  # worker_ready and beat_init recorded themselves

        celery_app.conf.task_always_eager = False
        DmsPendingChange.objects.create()  # the files are behind: the sync task writes them
        try:
            for _ in range(3):
                celery_app.send_task("monitoring.heartbeat")
            celery_app.send_task("mail.sync_dms_files")
            celery_app.send_task("monitoring.heartbeat", expires=timezone.now() - timezone.timedelta(seconds=5))
        finally:
            celery_app.conf.task_always_eager = True

        runs = "dockspace_celery_task_runs"
        deadline = time.monotonic() + 120
        while True:
            families = web.metrics()
            done = (
                sample_value(families, runs, task="monitoring.heartbeat", outcome="success") >= 3
                and sample_value(families, runs, task="mail.sync_dms_files", outcome="success") == 1
                and sample_value(families, runs, task="monitoring.heartbeat", outcome="expired") == 1
            )
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        worker_log = logs["worker"].read_text()
        assert done, worker_log[-4000:]
        assert sample_value(families, "dockspace_dms_syncs", outcome="success") == 1
        assert (dms / "config" / "postfix-accounts.cf").exists()
    # The pool children counted in the worker's own directory, which the web process read.
    worker_files = list(Path(settings.METRICS_DIR, "worker").glob("counter_*.db"))
    assert len(worker_files) >= 2  # the main process and at least one pool child
