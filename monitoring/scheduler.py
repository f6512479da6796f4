"""Reads for the scheduler page: every periodic task in beat's schedule (django-celery-beat's PeriodicTask rows)
with its schedule in words, next run, and what TaskRun recorded of its runs; whether the worker, beat and the
watchdog are alive.

A task's runs are matched by its Celery task name (two schedule rows of the same task share them)."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Max, Q
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from monitoring import heartbeats
from monitoring.models import Heartbeat, TaskRun

FAILURES_SHOWN = 20
FAILURE_WINDOW = timedelta(days=7)


@dataclass
class ScheduledTask:
    name: str
    task: str
    schedule: str
    is_enabled: bool
    expires: str
    last_sent_at: datetime | None
    next_run_at: datetime | None
    last_run: TaskRun | None
    failures_7d: int
    description: str


@dataclass
class ProcessLiveness:
    name: str
    label: str
    seen_at: datetime | None
    is_alive: bool


@dataclass
class SchedulerState:
    tasks: list[ScheduledTask]
    failures: list[TaskRun]
    processes: list[ProcessLiveness] = field(default_factory=list)


def schedule_in_words(periodic_task) -> str:
    if periodic_task.interval_id:
        return str(periodic_task.interval)
    if periodic_task.crontab_id:
        crontab = periodic_task.crontab
        return crontab.human_readable
    if periodic_task.clocked_id:
        return f"once at {periodic_task.clocked}"
    if periodic_task.solar_id:
        return str(periodic_task.solar)
    return "no schedule"


def next_run(periodic_task, now: datetime) -> datetime | None:
    """When beat sends it next: the schedule's remaining time after its last run (now when it never ran or is
    overdue); None when disabled, a one-off already sent, or past its expiry date."""
    if not periodic_task.enabled or (periodic_task.one_off and periodic_task.total_run_count):
        return None
    if periodic_task.expires and periodic_task.expires <= now:
        return None
    last = periodic_task.last_run_at or now
    if periodic_task.start_time and periodic_task.start_time > last:
        last = periodic_task.start_time
    remaining = periodic_task.schedule.remaining_estimate(last)
    # Rounded to the second: the schedule's own clock read a few microseconds after `now`.
    return max(now + timedelta(seconds=round(remaining.total_seconds())), now)


def _expiry_in_words(periodic_task) -> str:
    if periodic_task.expires:
        return f"not after {timezone.localtime(periodic_task.expires):%Y-%m-%d %H:%M}"
    if periodic_task.expire_seconds:
        return f"a run not started within {periodic_task.expire_seconds} s is dropped"
    return ""


def scheduler_state(*, now: datetime | None = None) -> SchedulerState:
    """The page's data in six queries, whatever the number of tasks or runs."""
    now = now or timezone.now()
    periodic = list(PeriodicTask.objects.select_related("interval", "crontab", "clocked", "solar").order_by("name"))
    names = {row.task for row in periodic}
    since = now - FAILURE_WINDOW
    latest_ids = TaskRun.objects.filter(task__in=names).values("task").annotate(last=Max("id")).values_list("last")
    latest = {run.task: run for run in TaskRun.objects.filter(id__in=latest_ids)}
    failure_counts = dict(
        TaskRun.objects.filter(task__in=names, finished_at__gte=since)
        .values("task")
        .annotate(failed=Count("id", filter=Q(outcome__in=TaskRun.FAILED)))
        .values_list("task", "failed")
    )
    failures = list(
        TaskRun.objects.filter(task__in=names, finished_at__gte=since, outcome__in=TaskRun.FAILED).order_by(
            "-finished_at", "-id"
        )[:FAILURES_SHOWN]
    )
    tasks = [
        ScheduledTask(
            name=row.name,
            task=row.task,
            schedule=schedule_in_words(row),
            is_enabled=row.enabled,
            expires=_expiry_in_words(row),
            last_sent_at=row.last_run_at,
            next_run_at=next_run(row, now),
            last_run=latest.get(row.task),
            failures_7d=failure_counts.get(row.task, 0),
            description=row.description,
        )
        for row in periodic
    ]
    seen = heartbeats.last_seen()
    watched = [
        (Heartbeat.WORKER, "Celery worker", heartbeats.WORKER_SILENT_SECONDS),
        (Heartbeat.BEAT, "Celery beat", heartbeats.BEAT_SILENT_SECONDS),
        (Heartbeat.WATCHDOG, "Watchdog", heartbeats.watchdog_silent_seconds()),
    ]
    processes = [
        ProcessLiveness(
            name=name,
            label=label,
            seen_at=seen[name],
            is_alive=seen[name] is not None and (now - seen[name]).total_seconds() <= limit,
        )
        for name, label, limit in watched
    ]
    return SchedulerState(tasks=tasks, failures=failures, processes=processes)
