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


# --- end of Health of Dockspace itself ---------------------------------------------------------------------------
