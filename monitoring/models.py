"""Health probes, metrics and alerts."""

from django.db import models

# --- Alerts (rules, alerts, notification channels and log): monitoring/alert_models.py -----------------------
from monitoring.alert_models import Alert, AlertEvent, AlertRule, NotificationChannel  # noqa: F401

# --- Health of Dockspace itself (monitoring.heartbeats, /health/ready) ------------------------------------------


class Heartbeat(models.Model):
    """When a background process was last seen alive: one row per kind of process ("worker", "beat"), written by
    the process itself (monitoring.heartbeats), read by /health/ready, /metrics and the pages."""

    WORKER = "worker"
    BEAT = "beat"

    name = models.CharField(max_length=50, unique=True)
    seen_at = models.DateTimeField()

    class Meta:
        verbose_name = "heartbeat"

    def __str__(self):
        return f"{self.name} seen at {self.seen_at:%Y-%m-%d %H:%M:%S}"


class TaskRun(models.Model):
    """One run of a periodic Celery task, as the worker saw it end (monitoring.task_runs, Celery's signals): what
    the scheduler page shows as last run, outcome, duration and recent failures. One INSERT per run, kept 30 days
    (the periodic task "Prune task runs"). No arguments and no traceback: the error is one line, credentials in
    URLs masked."""

    SUCCESS = "success"
    FAILURE = "failure"
    RETRY = "retry"
    EXPIRED = "expired"
    REVOKED = "revoked"
    OUTCOMES = [
        (SUCCESS, "success"),
        (FAILURE, "failure"),
        (RETRY, "retry"),
        (EXPIRED, "expired"),
        (REVOKED, "revoked"),
    ]
    FAILED = (FAILURE, RETRY, EXPIRED, REVOKED)

    task = models.CharField(max_length=200, help_text="The Celery task's name.")
    periodic_task = models.CharField(
        max_length=200, blank=True, help_text="The name of beat's schedule row that sent it (blank: not sent by beat)."
    )
    task_id = models.CharField("task ID", max_length=255, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField()
    duration_seconds = models.FloatField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=OUTCOMES)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name = "task run"
        indexes = [models.Index(fields=["task", "-finished_at"], name="monitoring_taskrun_task_idx")]

    def __str__(self):
        return f"{self.task} {self.outcome} at {self.finished_at:%Y-%m-%d %H:%M:%S}"


# --- end of Health of Dockspace itself ---------------------------------------------------------------------------
