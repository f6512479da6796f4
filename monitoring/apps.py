from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self):
        from mail.dms import sync

        # mail's declared seam: a sync wrote files DMS reads only at start (OpenDKIM's keys).
        sync.restart_needed.connect(_mailhosts_need_restart, dispatch_uid="monitoring.mailhosts.restart_needed")


def _mailhosts_need_restart(sender, reason, **kwargs):
    from monitoring.hosts import mailhosts_need_restart

    mailhosts_need_restart(reason=reason)
