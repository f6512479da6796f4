"""A periodic task added by an app of its own (the test extension app), without editing any other app."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from dockspace.tests.extension_app.tasks import count_people

pytestmark = pytest.mark.django_db


def test_install_periodic_tasks_installs_the_extension_apps_task(capsys):
    call_command("install_periodic_tasks")
    row = PeriodicTask.objects.get(name="Count the people (test extension)")
    assert row.task == "extension_app.count_people" and row.enabled
    assert (row.interval.every, row.interval.period) == (10, IntervalSchedule.MINUTES)
    assert row.expire_seconds == 60


def test_the_extension_apps_task_runs():
    for email in ("ann@example.com", "bob@example.com"):
        get_user_model().objects.create_user(email)
    assert count_people() == "2 people"
    assert count_people.apply().get() == "2 people"  # through Celery, as the worker runs it
