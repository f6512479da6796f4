from django.apps import AppConfig


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
