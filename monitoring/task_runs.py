"""Records each run of a periodic Celery task (TaskRun) for the scheduler page, from Celery's signals: the start is
kept in memory at task_prerun and ONE row is inserted at task_postrun (or task_revoked for a run dropped before it
started). Receivers are connected in MonitoringConfig.ready() beside monitoring.metrics'.

Only periodic tasks are recorded (marked `@shared_task(..., is_periodic=True)`, or sent by beat, whose
django-celery-beat scheduler adds the `periodic_task_name` header): the rest (notifications, mail) would fill the
table with rows no page shows. A row that cannot be written is logged; the task goes on as if nothing happened."""

import functools
import logging
import time
from datetime import timedelta

from celery import states
from django.db import connection, transaction
from django.utils import timezone

from dockspace.debug import mask_url_credentials
from monitoring.models import TaskRun

log = logging.getLogger(__name__)

KEEP_DAYS = 30
ERROR_MAX_LENGTH = TaskRun._meta.get_field("error").max_length

OUTCOMES = {
    states.SUCCESS: TaskRun.SUCCESS,
    states.FAILURE: TaskRun.FAILURE,
    states.RETRY: TaskRun.RETRY,
    states.REVOKED: TaskRun.REVOKED,
}

# task id -> (wall-clock start, monotonic start): a pool child runs one task at a time, a thread pool several.
_started: dict[str, tuple] = {}


def _never_raises(receiver):
    """Recording is a side show: whatever goes wrong (database gone, a full disk) must not fail the task."""

    @functools.wraps(receiver)
    def guarded(*args, **kwargs):
        try:
            receiver(*args, **kwargs)
        except Exception:
            log.exception("task runs: %s could not record", receiver.__name__)

    return guarded


def periodic_task_name(request) -> str:
    """The schedule row's name beat put in the message's headers ("" when the task was not sent by beat)."""
    if request is None:
        return ""
    name = getattr(request, "periodic_task_name", None) or (getattr(request, "headers", None) or {}).get(
        "periodic_task_name"
    )
    return str(name or "")[: TaskRun._meta.get_field("periodic_task").max_length]


def is_recorded(task, request) -> bool:
    return bool(getattr(task, "is_periodic", False) or periodic_task_name(request))


def error_summary(exc) -> str:
    """One line: the exception's type and the first line of its message, credentials in URLs masked. Never the
    arguments or the traceback."""
    if exc is None:
        return ""
    cause = getattr(exc, "exc", None) if type(exc).__name__ == "Retry" else None
    exc = cause or exc
    first_line = (str(exc).strip().splitlines() or [""])[0]
    text = mask_url_credentials(f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__)
    return text if len(text) <= ERROR_MAX_LENGTH else text[: ERROR_MAX_LENGTH - 1] + "…"


def _insert(**fields):
    # Inside a caller's transaction (a task applied eagerly in a request), a failed insert must not break it.
    if connection.in_atomic_block:
        with transaction.atomic():
            TaskRun.objects.create(**fields)
    else:
        TaskRun.objects.create(**fields)


@_never_raises
def on_task_prerun(sender=None, task_id=None, task=None, **kwargs):
    task = task or sender
    if task_id and is_recorded(task, getattr(task, "request", None)):
        _started[task_id] = (timezone.now(), time.monotonic())


@_never_raises
def on_task_postrun(sender=None, task_id=None, task=None, retval=None, state=None, **kwargs):
    started = _started.pop(task_id, None) if task_id else None
    if started is None:  # not a recorded task (or its start was not seen)
        return
    task = task or sender
    outcome = OUTCOMES.get(state, TaskRun.FAILURE)
    _insert(
        task=task.name,
        periodic_task=periodic_task_name(getattr(task, "request", None)),
        task_id=task_id,
        started_at=started[0],
        finished_at=timezone.now(),
        duration_seconds=round(time.monotonic() - started[1], 6),
        outcome=outcome,
        error=error_summary(retval) if outcome != TaskRun.SUCCESS and isinstance(retval, BaseException) else "",
    )


@_never_raises
def on_task_revoked(sender=None, request=None, expired=False, **kwargs):
    """A run dropped before it started: expired (waited longer than its schedule's expiry) or revoked."""
    if sender is None or not is_recorded(sender, request):
        return
    task_id = getattr(request, "id", None) or ""
    _started.pop(task_id, None)
    _insert(
        task=sender.name,
        periodic_task=periodic_task_name(request),
        task_id=task_id,
        finished_at=timezone.now(),
        outcome=TaskRun.EXPIRED if expired else TaskRun.REVOKED,
        error="expired before a worker took it" if expired else "revoked",
    )


def task_runs_prune(*, now=None) -> int:
    """Delete the runs older than KEEP_DAYS; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(days=KEEP_DAYS)
    deleted, _ = TaskRun.objects.filter(finished_at__lt=cutoff).delete()
    return deleted
