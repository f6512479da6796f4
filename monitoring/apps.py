from django.apps import AppConfig

from dockspace.schedule import Crontab, PeriodicTask


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self):
        from mail.dms import sync

        # mail's declared seam: a sync wrote files DMS reads only at start (OpenDKIM's keys).
        sync.restart_needed.connect(_mailhosts_need_restart, dispatch_uid="monitoring.mailhosts.restart_needed")

    def periodic_tasks(self):
        return [
            PeriodicTask(
                name="Probe the mail hosts",
                task="monitoring.probe_mail_hosts",
                interval_minutes=5,
                expires_seconds=4 * 60,
                description="Probes every mail host over SSH (services, queue, disk, load, quotas, certificates) and "
                "stores the result; one task per host.",
            ),
            PeriodicTask(
                name="Prune the probe history",
                task="monitoring.prune_probe_history",
                crontab=Crontab(minute="37", hour="3"),
                expires_seconds=3600,
                description="Deletes host probes older than 7 days and hourly rollups older than 90 days.",
            ),
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


def _mailhosts_need_restart(sender, reason, **kwargs):
    from monitoring.hosts import mailhosts_need_restart

    mailhosts_need_restart(reason=reason)
