from django.apps import AppConfig

from dockspace.schedule import Crontab, PeriodicTask


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def periodic_tasks(self):
        return [
            PeriodicTask(
                name="Evaluate alert rules",
                task="monitoring.evaluate_alerts",
                interval_minutes=1,
                expires_seconds=55,  # a minute's evaluation that cannot start in time gives way to the next one
                description="Evaluates every alert rule and queues the notifications (fired, repeat, resolved).",
            ),
            PeriodicTask(
                name="Purge old alert notifications",
                task="monitoring.purge_alert_events",
                crontab=Crontab(minute="23", hour="4"),
                expires_seconds=3600,
                description="Deletes alert notifications older than 93 days and alerts resolved before that.",
            ),
        ]

    def alert_kinds(self):
        """DMS sync failing, drift found (monitoring.alert_kinds; the host kinds join there)."""
        from monitoring.alert_kinds import BUILT_IN

        return BUILT_IN
