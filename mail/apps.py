from django.apps import AppConfig

from dockspace.schedule import PeriodicTask


class MailConfig(AppConfig):
    name = "mail"
    verbose_name = "Mail"

    def ready(self):
        from mail import signals

        signals.connect()

    def periodic_tasks(self):
        return [
            PeriodicTask(
                name="Repair drift in the DMS files",
                task="mail.repair_dms_drift",
                interval_minutes=5,
                expires_seconds=4 * 60,
                description="Writes changes whose sync was lost and rewrites DMS files edited by hand.",
            ),
        ]
