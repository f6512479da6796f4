from django.apps import AppConfig

from dockspace.schedule import Crontab, PeriodicTask


class DeliverabilityConfig(AppConfig):
    name = "deliverability"
    verbose_name = "Deliverability"

    def periodic_tasks(self):
        return [
            PeriodicTask(
                name="Rotate sending IP pools",
                task="deliverability.rotate_ip_pools",
                crontab=Crontab(minute="7", hour="6", day_of_month="1"),
                expires_seconds=6 * 3600,
                description="On the 1st of each month, in each pool with monthly rotation on and more than one ACTIVE "
                "IP, moves the longest-ACTIVE IP to RETIRING when a replacement is ready.",
            ),
            PeriodicTask(
                name="Drain retiring sending IPs",
                task="deliverability.drain_retiring_ips",
                crontab=Crontab(minute="13"),
                expires_seconds=1800,
                description="Moves RETIRING IPs that have drained for DOCKSPACE_IP_DRAIN_DAYS to RESTING.",
            ),
            PeriodicTask(
                name="Release rested sending IPs",
                task="deliverability.release_resting_ips",
                crontab=Crontab(minute="19"),
                expires_seconds=1800,
                description="Moves RESTING IPs whose listings have been clear for DOCKSPACE_IP_QUARANTINE_DAYS to "
                "WARMING (quarantine release).",
            ),
        ]

    def admin_pages(self):
        """The periodic duties' dry run (accounts.admin_site serves it at /admin/deliverability/ip-duties/)."""
        from deliverability import admin_views, sending_ips
        from dockspace.admin_pages import AdminPage

        return [
            AdminPage(
                app_label=self.label,
                slug="ip-duties",
                title="Sending IP duties (dry run)",
                view=admin_views.ip_duties_view,
                permission=sending_ips.VIEW,
            )
        ]
