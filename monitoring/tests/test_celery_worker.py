"""A real Celery worker and beat (Redis when REDIS_URL is set, else the embedded broker) run a periodic task."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from accounts.models import AuditEvent

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]

CELERY = str(Path(sys.executable).with_name("celery"))


def _database_url():
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def test_beat_schedules_and_a_worker_runs_the_audit_purge(tmp_path):
    call_command("install_periodic_tasks")
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.get(task="accounts.purge_audit_log")
    task.crontab, task.interval = None, every_second
    task.save()
    old = AuditEvent.objects.create(action="ancient", at=timezone.now() - timezone.timedelta(days=4000))
    kept = AuditEvent.objects.create(action="recent")

    env = {**os.environ, "DATABASE_URL": _database_url()}
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("worker", "beat")}  # noqa: SIM115 - closed below
    procs = [
        subprocess.Popen(
            [CELERY, "-A", "dockspace", "worker", "--pool", "solo", "--loglevel", "INFO"],
            env=env,
            stdout=logs["worker"],
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [CELERY, "-A", "dockspace", "beat", "--loglevel", "INFO", "--pidfile", str(tmp_path / "beat.pid")],
            env=env,
            stdout=logs["beat"],
            stderr=subprocess.STDOUT,
        ),
    ]
    try:
        deadline = time.monotonic() + 90
        while AuditEvent.objects.filter(pk=old.pk).exists() and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for handle in logs.values():
            handle.close()
    worker_log = (tmp_path / "worker.log").read_text()
    assert not AuditEvent.objects.filter(pk=old.pk).exists(), worker_log[-3000:]
    assert AuditEvent.objects.filter(pk=kept.pk).exists()
    assert "deleted 1 audit events past retention" in worker_log
    expected = "redis://" if settings.CELERY_BROKER_URL.startswith("redis") else "filesystem://"
    assert expected in worker_log
