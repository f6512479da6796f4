"""`manage.py install_periodic_tasks`: beat's schedule matches what the apps declare, however often it runs,
without touching the schedules an operator added by hand."""

import pytest
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks, SolarSchedule

from dockspace.schedule import declared_periodic_tasks
from monitoring.services import INSTALLED_MARK

pytestmark = pytest.mark.django_db


def rows():
    return {row["name"]: row for row in PeriodicTask.objects.values()}


def test_it_installs_every_declared_task_once_however_often_it_runs(capsys):
    declared = declared_periodic_tasks()
    call_command("install_periodic_tasks")
    assert f"{len(declared)} created, 0 updated, 0 unchanged, 0 removed" in capsys.readouterr().out
    first = rows()
    reloads = PeriodicTasks.last_change()
    call_command("install_periodic_tasks")
    assert f"0 created, 0 updated, {len(declared)} unchanged, 0 removed" in capsys.readouterr().out
    assert rows() == first  # not one field of one row changed
    assert PeriodicTasks.last_change() == reloads  # and a running beat is not told to reload
    assert set(first) == {spec.name for spec in declared}


def test_each_row_carries_its_declared_expiry_schedule_and_description():
    call_command("install_periodic_tasks")
    for spec in declared_periodic_tasks():
        row = PeriodicTask.objects.get(name=spec.name)
        assert row.task == spec.task and row.enabled
        assert row.expire_seconds == spec.expires_seconds and row.expires is None
        assert row.description == f"{spec.description}\n\n{INSTALLED_MARK}"
        if spec.crontab:
            assert (row.crontab.minute, row.crontab.hour, str(row.crontab.timezone)) == (
                spec.crontab.minute,
                spec.crontab.hour,
                "UTC",
            )
            assert row.interval is None
        else:
            assert (row.interval.every, row.interval.period) == (spec.interval_minutes, IntervalSchedule.MINUTES)
            assert row.crontab is None


def test_the_expiry_reaches_what_beat_sends():
    from django_celery_beat.schedulers import ModelEntry

    from dockspace.celery import app

    call_command("install_periodic_tasks")
    row = PeriodicTask.objects.get(task="mail.repair_dms_drift")
    assert ModelEntry(row, app=app).options["expires"] == 4 * 60


def test_it_repairs_a_task_changed_by_hand():
    call_command("install_periodic_tasks")
    task = PeriodicTask.objects.get(task="accounts.purge_audit_log")
    task.task = "something.else"
    task.enabled = False
    task.expire_seconds = None
    task.description = "mine now"
    task.save()
    call_command("install_periodic_tasks")
    task.refresh_from_db()
    assert task.task == "accounts.purge_audit_log"
    assert task.crontab.hour == "3" and task.interval is None
    assert task.expire_seconds == 3600 and task.description.endswith(INSTALLED_MARK)
    assert not task.enabled  # switching a task off is the operator's choice, kept across installs


def test_a_task_the_operator_switched_off_stays_off_and_one_left_on_stays_on():
    call_command("install_periodic_tasks")
    PeriodicTask.objects.filter(task="accounts.purge_audit_log").update(enabled=False)
    call_command("install_periodic_tasks")
    assert not PeriodicTask.objects.get(task="accounts.purge_audit_log").enabled
    assert PeriodicTask.objects.get(task="mail.repair_dms_drift").enabled


def test_it_repairs_a_task_moved_to_another_kind_of_schedule_by_hand():
    call_command("install_periodic_tasks")
    task = PeriodicTask.objects.get(task="accounts.purge_audit_log")
    task.crontab = None
    task.solar = SolarSchedule.objects.create(event="sunrise", latitude=0, longitude=0)
    task.save()
    call_command("install_periodic_tasks")
    task.refresh_from_db()
    assert task.solar is None and task.crontab.hour == "3"


def test_it_removes_a_task_no_app_declares_any_more_and_keeps_the_ones_made_by_hand(capsys):
    every_hour, _ = IntervalSchedule.objects.get_or_create(every=60, period=IntervalSchedule.MINUTES)
    retired = PeriodicTask.objects.create(
        name="A task from an older release",
        task="mail.retired_task",
        interval=every_hour,
        description=f"What it did.\n\n{INSTALLED_MARK}",
    )
    by_hand = PeriodicTask.objects.create(
        name="Extra audit purge at noon", task="accounts.purge_audit_log", interval=every_hour, enabled=False
    )
    call_command("install_periodic_tasks")
    assert "1 removed" in capsys.readouterr().out
    assert not PeriodicTask.objects.filter(pk=retired.pk).exists()
    kept = PeriodicTask.objects.get(pk=by_hand.pk)
    assert (kept.name, kept.task, kept.interval, kept.enabled, kept.expire_seconds, kept.description) == (
        "Extra audit purge at noon",
        "accounts.purge_audit_log",
        every_hour,
        False,
        None,
        "",
    )
