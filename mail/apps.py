from django.apps import AppConfig

from dockspace.schedule import PeriodicTask


class MailConfig(AppConfig):
    name = "mail"
    verbose_name = "Mail"

    def dms_files(self):
        """The files mail writes into the DMS config directory (mail.dms.catalog collects every app's)."""
        from mail.dms.mail_files import MAIL_FILES

        return MAIL_FILES

    def ready(self):
        from mail import signals, tasks
        from mail.dms import sync

        sync.use_sync_task(tasks.sync_dms_files)
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

    def profile_context(self, person):
        """The person's mailbox, aliases and lists on their profile page (accounts.selectors.profile_context)."""
        from mail.selectors import mail_overview

        return {"mail": mail_overview(person)}

    def worker_started(self):
        """Run by every Celery worker as it starts (dockspace.celery). The DMS files: a worker killed mid-write
        left a journal to roll forward, and one killed while it held a queued sync lost that task (the embedded
        broker drops a message when a worker fetches it); the pending changes recorded in the database say what
        is behind, and this writes it now."""
        from mail.dms.sync import worker_started

        worker_started()
