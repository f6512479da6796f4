import sys
from pathlib import Path

from django.apps import AppConfig

from dockspace.processes import Process
from dockspace.schedule import Crontab, PeriodicTask

MANAGE_PY = Path(__file__).resolve().parent.parent / "manage.py"
POLICY_LISTEN_DEFAULT = "127.0.0.1:10040"


def policy_argv(environ):
    # Where it listens is DOCKSPACE_POLICY_LISTEN, read by the settings.
    return [sys.executable, str(MANAGE_PY), "policy_server"]


class DeliverabilityConfig(AppConfig):
    name = "deliverability"
    verbose_name = "Deliverability"

    def ready(self):
        from deliverability import checks, signals  # noqa: F401 - checks registers the system checks

        signals.connect()

    def processes(self):
        """The Postfix policy service (deliverability.policy_server), beside web, worker and beat."""
        return [
            Process(
                name="policy",
                description="the Postfix policy service: send limits and warmup routing, on DOCKSPACE_POLICY_LISTEN",
                argv=policy_argv,
                bind_setting="DOCKSPACE_POLICY_LISTEN",
                bind_default=POLICY_LISTEN_DEFAULT,
            )
        ]

    def dms_files(self):
        """The sending IP pools' Postfix plumbing in the DMS config directory (mail.dms.catalog collects it)."""
        from deliverability.dms_files import DELIVERABILITY_FILES

        return DELIVERABILITY_FILES

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
            PeriodicTask(
                name="Count the policy service's sends per IP",
                task="deliverability.carry_policy_sends",
                crontab=Crontab(minute="*/10"),
                expires_seconds=600,
                description="Adds the recipients the policy service routed to each sending IP to its warmup state "
                "(sent in the step, last sent), which the warmup evaluation and the idle restart read.",
            ),
            PeriodicTask(
                name="Evaluate IP warmup",
                task="deliverability.evaluate_ip_warmup",
                crontab=Crontab(minute="29", hour="5"),
                expires_seconds=6 * 3600,
                description="Judges each WARMING IP's last 24 h (72 h or 7 days when it sent too little) against its "
                "warmup plan: advance a step, hold, step back, pull it (RESTING and an alert) or, at the plan's "
                "target, make it ACTIVE. Every decision is audited with its figures.",
            ),
            PeriodicTask(
                name="Check the domains' DNS",
                task="deliverability.dns_check_all",
                crontab=Crontab(minute="17", hour="5"),
                expires_seconds=3 * 3600,
                description="Checks MX, SPF, DKIM, DMARC, PTR, MTA-STS, TLS-RPT and the domain blocklist of every "
                "active domain and stores the results (an alert fires on a failed check).",
            ),
            PeriodicTask(
                name="Prune the DNS check history",
                task="deliverability.prune_dns_checks",
                crontab=Crontab(minute="47", hour="4"),
                expires_seconds=3600,
                description="Deletes DNS check results older than 90 days (each domain's latest are kept).",
            ),
            PeriodicTask(
                name="Check the blocklists",
                task="deliverability.dnsbl_sweep",
                crontab=Crontab(minute="23"),
                expires_seconds=1800,
                description="Asks every enabled DNSBL about what is due: each sending IP and active domain every 4 "
                "hours, listed ones every hour. A standby listing rests the IP at once; a listing fires an alert.",
            ),
            PeriodicTask(
                name="Prune the blocklist history",
                task="deliverability.prune_dnsbl_results",
                crontab=Crontab(minute="53", hour="4"),
                expires_seconds=3600,
                description="Deletes blocklist results older than 90 days (current standings are kept).",
            ),
        ]

    def alert_kinds(self):
        """A domain's DNS check failing; an IP or domain on a blocklist; a broken blocklist; an IP pulled by its warmup
        gate (alert_kinds)."""
        from deliverability.alert_kinds import DELIVERABILITY_KINDS

        return DELIVERABILITY_KINDS

    def dashboard_cards(self, request):
        """The DNS checks and blocklists cards on the admin's home page, each for those who may view its results."""
        from deliverability.dashboard import dns_checks_card, dnsbl_card

        cards = [dns_checks_card(request.user), dnsbl_card(request.user)]
        return [card for card in cards if card is not None]

    def domain_admin_panel(self, request, domain):
        """mail's seam: the domain's DNS checks and its sending today on its admin page."""
        from deliverability.dashboard import domain_dns_panel
        from deliverability.send_panels import admin_send_panel

        return domain_dns_panel(request, domain) + admin_send_panel(request, domain.name)

    def mailbox_admin_panel(self, request, mailbox):
        """mail's seam (mail.admin.mailbox_admin_panels): the mailbox's sending today against its tier's limits."""
        from deliverability.send_panels import admin_send_panel

        return admin_send_panel(request, mailbox.address)

    def profile_panel(self, request):
        """accounts' seam (accounts.selectors.profile_panels): the person's own sending today against the limits."""
        from deliverability.send_panels import profile_send_panel

        return profile_send_panel(request)

    def domain_list_columns(self, request):
        """mail's seam: the domain list's "DNS" column (the worst level of each domain's latest checks)."""
        from deliverability.dashboard import domain_list_columns

        return domain_list_columns(request)

    def dkim_retire_objections(self, key):
        """mail's seam: `dkim retire` is refused while the active key is not yet visible in DNS."""
        from deliverability.dkim_visibility import dkim_retire_objections

        return dkim_retire_objections(key)

    def admin_pages(self):
        """The periodic duties' dry run and the pools' Postfix routing (accounts.admin_site serves them at
        /admin/deliverability/ip-duties/ and /admin/deliverability/postfix-routing/)."""
        from deliverability import admin_views, selectors, sending_ips
        from dockspace.admin_pages import AdminPage

        return [
            AdminPage(
                app_label=self.label,
                slug="ip-duties",
                title="Sending IP duties (dry run)",
                view=admin_views.ip_duties_view,
                permission=sending_ips.VIEW,
            ),
            AdminPage(
                app_label=self.label,
                slug="send-limits",
                title="Send limits today",
                view=admin_views.send_limits_view,
                permission="mail.view_mailbox",
            ),
            AdminPage(
                app_label=self.label,
                slug="postfix-routing",
                title="Postfix routing (sending IP pools)",
                view=admin_views.postfix_routing_view,
                permission=selectors.VIEW_POOL,
            ),
        ]
