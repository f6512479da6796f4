"""Health probes, metrics and alerts."""

# --- Alerts (rules, alerts, notification channels and log): monitoring/alert_models.py -----------------------
from monitoring.alert_models import Alert, AlertEvent, AlertRule, NotificationChannel  # noqa: F401
