"""The scheduler page (/admin/monitoring/scheduler/): each periodic task with its schedule, last run, outcome,
duration, next run and recent failures, runs recorded through Celery's signals; who may see it."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from celery.app.task import Context
from celery.signals import task_revoked
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from django_celery_beat.models import PeriodicTask

from accounts.tests.factories import StaffFactory, UserFactory
from dockspace.celery import app as celery_app
from monitoring import alert_services, heartbeats, task_runs, tasks
from monitoring.models import Heartbeat, TaskRun

pytestmark = pytest.mark.django_db

PAGE = "/admin/monitoring/scheduler/"
NOON = datetime(2025, 3, 10, 12, 0, 0, tzinfo=UTC)


def signed_in(person):
    client = Client()
    client.force_login(person)
    return client


def staff_with_schedule_view(email="watcher@example.com"):
    person = UserFactory(email=email, is_staff=True)
    person.user_permissions.add(
        Permission.objects.get(content_type__app_label="django_celery_beat", codename="view_periodictask")
    )
    return person


@pytest.fixture
def installed():
    call_command("install_periodic_tasks", verbosity=0)


def row_of(html, name):
    start = html.index(f'<th scope="row">{name}<br>')
    return html[start : html.index("</tr>", start)]


def test_a_periodic_task_run_is_recorded_with_its_outcome_and_duration_and_shown(installed):
    result = tasks.prune_task_runs.apply()

    assert result.successful()
    run = TaskRun.objects.get()
    assert (run.task, run.outcome, run.error) == ("monitoring.prune_task_runs", "success", "")
    assert run.duration_seconds is not None and 0 <= run.duration_seconds < 5
    assert run.started_at <= run.finished_at
    row = row_of(signed_in(StaffFactory()).get(PAGE).content.decode(), "Prune task runs")
    assert "success" in row and " s</td>" in row and "never" not in row


def test_a_failed_run_is_listed_with_one_line_of_error_and_no_credentials(installed, monkeypatch):
    def broken():
        raise RuntimeError("cannot reach redis://dockspace:hunter2@cache:6379/0\nsecond line of detail")

    monkeypatch.setattr(alert_services, "alerts_evaluate", broken)
    result = tasks.evaluate_alerts.apply()

    assert result.failed()
    run = TaskRun.objects.get()
    assert run.outcome == "failure"
    assert run.error.startswith("RuntimeError: cannot reach redis://dockspace:")
    assert "hunter2" not in run.error and "second line" not in run.error
    html = signed_in(StaffFactory()).get(PAGE).content.decode()
    failures = html[html.index('id="task-failures"') :]
    assert "monitoring.evaluate_alerts" in failures and "RuntimeError: cannot reach" in failures
    assert "hunter2" not in html
    row = row_of(html, "Evaluate alert rules")
    assert "failure" in row and "<td>1</td>" in row


def test_a_run_dropped_as_expired_is_a_failure_on_the_page(installed):
    task_revoked.send(
        sender=tasks.heartbeat,
        request=Context(id="abc", periodic_task_name="Worker heartbeat"),
        expired=True,
        terminated=False,
        signum=None,
    )

    run = TaskRun.objects.get()
    assert (run.outcome, run.periodic_task, run.task_id) == ("expired", "Worker heartbeat", "abc")
    html = signed_in(StaffFactory()).get(PAGE).content.decode()
    assert "expired before a worker took it" in html[html.index('id="task-failures"') :]


def test_tasks_that_are_not_periodic_are_not_recorded():
    @celery_app.task(name="tests.not_periodic")
    def not_periodic():
        return "done"

    assert not_periodic.apply().successful()
    assert not TaskRun.objects.exists()
    assert tasks.heartbeat.apply().successful()  # positive control: a periodic task is
    assert TaskRun.objects.filter(task="monitoring.heartbeat").count() == 1


def test_a_run_that_cannot_be_recorded_does_not_fail_the_task(monkeypatch):
    def no_database(**fields):
        raise RuntimeError("database gone")

    monkeypatch.setattr(task_runs, "_insert", no_database)
    result = tasks.heartbeat.apply()

    assert result.successful() and result.get() == "worker heartbeat recorded"
    assert Heartbeat.objects.filter(name="worker").exists()


def test_next_run_is_computed_from_the_schedule_and_the_last_run(installed):
    PeriodicTask.objects.filter(name="Worker heartbeat").update(last_run_at=NOON - timedelta(seconds=20))
    PeriodicTask.objects.filter(name="Prune task runs").update(last_run_at=NOON - timedelta(hours=2))
    PeriodicTask.objects.filter(name="Evaluate alert rules").update(enabled=False)

    with time_machine.travel(NOON, tick=False):
        html = signed_in(StaffFactory()).get(PAGE).content.decode()

    heartbeat = row_of(html, "Worker heartbeat")
    assert "every minute" in heartbeat and "2025-03-10 12:00:40" in heartbeat  # 60 s after the last one
    prune = row_of(html, "Prune task runs")
    assert "At 04:37 AM" in prune and "2025-03-11 04:37:00" in prune  # tomorrow's, today's has passed
    disabled = row_of(html, "Evaluate alert rules")
    assert "<td>no</td>" in disabled and "<td>—</td>\n      <td>0</td>" in disabled


def process_rows():
    """{label: its row} of the page's process table."""
    html = signed_in(StaffFactory()).get(PAGE).content.decode()
    table = html[html.index('id="processes"') : html.index("</table>", html.index('id="processes"'))]
    rows = table.split('<tr><th scope="row">')[1:]
    return {row[: row.index("</th>")]: row for row in rows}


def test_worker_beat_and_watchdog_liveness_are_shown():
    with time_machine.travel(NOON, tick=False):
        heartbeats.heartbeat_record(Heartbeat.WORKER, now=NOON - timedelta(seconds=30))
        heartbeats.heartbeat_record(Heartbeat.BEAT, now=NOON - timedelta(minutes=10))
        rows = process_rows()
    assert list(rows) == ["Celery worker", "Celery beat", "Watchdog"]
    assert ">alive<" in rows["Celery worker"] and ">silent<" in rows["Celery beat"]
    assert ">never seen<" in rows["Watchdog"]

    with time_machine.travel(NOON, tick=False):
        heartbeats.heartbeat_record(Heartbeat.WATCHDOG, now=NOON - timedelta(seconds=100))
        watchdog = process_rows()["Watchdog"]
    assert ">alive<" in watchdog and "2025-03-10 11:58:20" in watchdog
    with time_machine.travel(NOON, tick=False):
        heartbeats.heartbeat_record(Heartbeat.WATCHDOG, now=NOON - timedelta(seconds=121))
        assert ">silent<" in process_rows()["Watchdog"]  # two rounds of 60 s missed


def test_a_fresh_install_shows_the_page_without_tasks_or_heartbeats():
    response = signed_in(StaffFactory()).get(PAGE)

    assert response.status_code == 200
    html = response.content.decode()
    assert "never seen" in html and "install_periodic_tasks" in html


def test_staff_without_the_schedule_permission_is_refused_and_not_offered_the_link(installed):
    plain_staff = signed_in(UserFactory(email="staff@example.com", is_staff=True))
    watcher = signed_in(staff_with_schedule_view())

    assert plain_staff.get(PAGE).status_code == 403
    assert PAGE not in plain_staff.get("/admin/").content.decode()
    # Positive control: the same kind of staff member with the view permission sees the page and the link.
    assert watcher.get(PAGE).status_code == 200
    assert "Worker heartbeat" in watcher.get(PAGE).content.decode()
    assert PAGE in watcher.get("/admin/").content.decode()


def test_people_who_are_not_staff_are_sent_to_sign_in():
    response = signed_in(UserFactory(email="user@example.com")).get(PAGE)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_runs_older_than_30_days_are_pruned():
    with time_machine.travel(NOON, tick=False):
        old = TaskRun.objects.create(task="x", finished_at=NOON - timedelta(days=31), outcome="success")
        recent = TaskRun.objects.create(task="x", finished_at=NOON - timedelta(days=29), outcome="success")
        summary = tasks.prune_task_runs.apply().get()

    assert summary.startswith("deleted 1 task run(s)")
    assert not TaskRun.objects.filter(pk=old.pk).exists() and TaskRun.objects.filter(pk=recent.pk).exists()
