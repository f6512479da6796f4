import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from dockspace.schedule import PERIODIC_TASKS

pytestmark = pytest.mark.django_db


def test_it_installs_every_declared_task_once_however_often_it_runs(capsys):
    call_command("install_periodic_tasks")
    assert f"{len(PERIODIC_TASKS)} created" in capsys.readouterr().out
    call_command("install_periodic_tasks")
    assert f"0 created, 0 updated, {len(PERIODIC_TASKS)} unchanged" in capsys.readouterr().out
    assert set(PeriodicTask.objects.values_list("name", flat=True)) == {spec["name"] for spec in PERIODIC_TASKS}


def test_it_repairs_a_task_changed_by_hand():
    call_command("install_periodic_tasks")
    task = PeriodicTask.objects.get(task="accounts.purge_audit_log")
    task.task = "something.else"
    task.enabled = False
    task.save()
    call_command("install_periodic_tasks")
    task.refresh_from_db()
    assert task.task == "accounts.purge_audit_log" and task.enabled
    assert task.crontab.hour == "3" and task.interval is None
