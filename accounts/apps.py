from django.apps import AppConfig

from dockspace.schedule import Crontab, PeriodicTask


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "People and sign-in"

    def ready(self):
        from accounts import signals

        signals.connect()

    def periodic_tasks(self):
        return [
            PeriodicTask(
                name="Purge audit log past retention",
                task="accounts.purge_audit_log",
                crontab=Crontab(minute="17", hour="3"),
                expires_seconds=3600,  # a night's purge that cannot start within the hour waits for the next night
                description="Deletes audit events older than the retention period (App settings).",
            ),
            PeriodicTask(
                name="Purge expired sessions and lockout counters",
                task="accounts.purge_expired_sessions",
                interval_minutes=60,
                expires_seconds=30 * 60,
                description="Deletes expired browser sessions and lockout counters past their window.",
            ),
            PeriodicTask(
                name="Send due outbound mail",
                task="accounts.outbox_drain",
                interval_minutes=1,
                expires_seconds=60,
                description="Sends outbound mail whose next attempt is due (retries with backoff, backup server) "
                "and gives up on messages past the expiry.",
            ),
            PeriodicTask(
                name="Prune outbound mail",
                task="accounts.outbox_prune",
                crontab=Crontab(minute="23", hour="3"),
                expires_seconds=3600,
                description="Deletes sent, failed and expired outbound mail older than 30 days.",
            ),
        ]
