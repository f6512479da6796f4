"""A real Celery worker and beat (Redis when REDIS_URL is set, else the embedded broker) run a periodic task."""

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from accounts.models import AuditEvent
from dockspace.tests.celery_processes import celery_running, wait_for

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]


def test_beat_schedules_and_a_worker_runs_the_audit_purge(tmp_path):
    call_command("install_periodic_tasks")
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.get(task="accounts.purge_audit_log")
    task.crontab, task.interval = None, every_second
    task.save()
    old = AuditEvent.objects.create(action="ancient", at=timezone.now() - timezone.timedelta(days=4000))
    kept = AuditEvent.objects.create(action="recent")

    with celery_running(tmp_path, "worker", "beat"):
        wait_for(lambda: not AuditEvent.objects.filter(pk=old.pk).exists())
    worker_log = (tmp_path / "worker.log").read_text()
    assert not AuditEvent.objects.filter(pk=old.pk).exists(), worker_log[-3000:]
    assert AuditEvent.objects.filter(pk=kept.pk).exists()
    assert "deleted 1 audit events past retention" in worker_log
    expected = "redis://" if settings.CELERY_BROKER_URL.startswith("redis") else "filesystem://"
    assert expected in worker_log
