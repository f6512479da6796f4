import sys
from pathlib import Path

from django.apps import AppConfig

from dockspace.processes import Process
from dockspace.schedule import Crontab, PeriodicTask

MANAGE_PY = Path(__file__).resolve().parent.parent / "manage.py"


def watchdog_argv(environ):
    # Its interval is read from DOCKSPACE_WATCHDOG_INTERVAL by the settings.
    return [sys.executable, str(MANAGE_PY), "watchdog"]


def maillog_argv(environ):
    # The file is DOCKSPACE_MAIL_LOG and the poll interval DOCKSPACE_MAIL_LOG_POLL, read by the settings.
    return [sys.executable, str(MANAGE_PY), "maillog", "follow"]


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self):
        from monitoring import checks  # noqa: F401 - registers the system checks

        self._connect_metrics()
        self._connect_task_runs()
        from celery.signals import beat_init, worker_ready

        from mail.dms import sync
        from monitoring import heartbeats

        worker_ready.connect(heartbeats.on_worker_ready, dispatch_uid="monitoring.heartbeat.worker_ready")
        beat_init.connect(heartbeats.on_beat_init, dispatch_uid="monitoring.heartbeat.beat_init")
        # mail's seam: a sync wrote files DMS reads only at start (OpenDKIM's keys): every mail host needs a restart.
        sync.restart_needed.connect(_mailhosts_need_restart, dispatch_uid="monitoring.mailhosts.restart_needed")
        # ... and an operator recreated it by hand (mail.services.dms_restart_done): no mail host needs one any more.
        sync.restart_done.connect(_mailhosts_restarted, dispatch_uid="monitoring.mailhosts.restart_done")

    def _connect_metrics(self):
        """The in-process counters (monitoring.metrics) hear the events through the seams below and above."""
        from celery.signals import task_postrun, task_prerun, task_revoked
        from django.contrib.auth.signals import user_logged_in, user_login_failed
        from oauth2_provider.signals import app_authorized

        from accounts.signals import sign_in_refused
        from mail.dms.sync import drift_found, sync_finished
        from monitoring import metrics

        user_logged_in.connect(metrics.on_logged_in, dispatch_uid="monitoring.metrics.logged_in")
        user_login_failed.connect(metrics.on_login_failed, dispatch_uid="monitoring.metrics.login_failed")
        sign_in_refused.connect(metrics.on_sign_in_refused, dispatch_uid="monitoring.metrics.sign_in_refused")
        app_authorized.connect(metrics.on_token_issued, dispatch_uid="monitoring.metrics.token_issued")
        sync_finished.connect(metrics.on_dms_sync_finished, dispatch_uid="monitoring.metrics.dms_sync")
        drift_found.connect(metrics.on_dms_drift_found, dispatch_uid="monitoring.metrics.dms_drift")
        task_prerun.connect(metrics.on_task_prerun, dispatch_uid="monitoring.metrics.task_prerun")
        task_postrun.connect(metrics.on_task_postrun, dispatch_uid="monitoring.metrics.task_postrun")
        task_revoked.connect(metrics.on_task_revoked, dispatch_uid="monitoring.metrics.task_revoked")

    def _connect_task_runs(self):
        """The scheduler page's task runs (monitoring.task_runs): one row per periodic task run, beside the counters."""
        from celery.signals import task_postrun, task_prerun, task_revoked

        from monitoring import task_runs

        task_prerun.connect(task_runs.on_task_prerun, dispatch_uid="monitoring.task_runs.task_prerun")
        task_postrun.connect(task_runs.on_task_postrun, dispatch_uid="monitoring.task_runs.task_postrun")
        task_revoked.connect(task_runs.on_task_revoked, dispatch_uid="monitoring.task_runs.task_revoked")

    def processes(self):
        """The watchdog (monitoring.watchdog) and the mail-log follower (monitoring.traffic_follow), beside web,
        worker and beat (dockspace.processes)."""
        return [
            Process(
                name="watchdog",
                description="reports a stopped Celery worker or beat, sending those alerts itself (no Celery)",
                argv=watchdog_argv,
            ),
            Process(
                name="maillog",
                description="the mail-log follower: reads DOCKSPACE_MAIL_LOG into mail traffic as it is written",
                argv=maillog_argv,
                needs_setting="DOCKSPACE_MAIL_LOG",
            ),
        ]

    def admin_pages(self):
        """Pages of the admin site beyond the model lists (accounts.admin_site reads every app's)."""
        from dockspace.admin_pages import AdminPage
        from monitoring import admin_views

        return [
            AdminPage(
                app_label=self.label,
                slug="scheduler",
                title="Scheduled tasks",
                view=admin_views.scheduler_view,
                permission=admin_views.SCHEDULER_PERMISSION,
            )
        ]

    def dashboard_cards(self, request):
        """The admin home page's cards (monitoring.dashboard), limited to what request.user may view; ?range=
        picks the history charts' span (24h, 7d, 90d)."""
        from monitoring import dashboard

        return dashboard.dashboard_cards(request.user, history_range=request.GET.get("range", ""))

    def mailbox_usage(self, addresses):
        """mail's seam (mail.quota_usage): what the mail hosts' Dovecot last reported for these mailboxes."""
        from monitoring.selectors import quota_usage_of

        return quota_usage_of(addresses)

    def mailbox_admin_panel(self, request, mailbox):
        """mail's seam (mail.admin.mailbox_admin_panels): the mailbox's mail in the last 30 days on its admin page."""
        from monitoring.traffic_pages import mailbox_admin_panel

        return mailbox_admin_panel(request, mailbox)

    def profile_panel(self, request):
        """accounts' seam (accounts.selectors.profile_panels): the person's own mail in the last 30 days."""
        from monitoring.traffic_pages import profile_panel

        return profile_panel(request)

    def ip_sending_results(self, addresses, since, until):
        """deliverability's warmup gates: per sending IP, the recipients tried, the hard bounces (at SMTP and come
        back by mail) and the complaints in since <= time < until (monitoring.sending_results)."""
        from monitoring.sending_results import ip_sending_results

        return ip_sending_results(addresses, since, until)

    def periodic_tasks(self):
        return [
            PeriodicTask(
                name="Worker heartbeat",
                task="monitoring.heartbeat",
                interval_minutes=1,
                expires_seconds=50,  # a late one is not worth running: the next comes within the minute
                description="Records that a Celery worker takes tasks; /health/ready fails after 2 minutes without.",
            ),
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
            PeriodicTask(
                name="Prune task runs",
                task="monitoring.prune_task_runs",
                crontab=Crontab(minute="37", hour="4"),
                expires_seconds=3600,
                description="Deletes the scheduler page's task runs older than 30 days.",
            ),
            # --- mail traffic (monitoring.traffic_rollups) ---
            PeriodicTask(
                name="Roll up mail traffic",
                task="monitoring.roll_up_traffic",
                interval_minutes=15,
                expires_seconds=14 * 60,
                description="Sums the mail traffic per hour and per day (the 90-day charts, the Prometheus counters), "
                "from the days that changed since the last run.",
            ),
            PeriodicTask(
                name="Prune mail traffic",
                task="monitoring.prune_traffic",
                crontab=Crontab(minute="43", hour="3"),
                expires_seconds=3600,
                description="Deletes messages, delivery attempts and SMTP rejections older than "
                "DOCKSPACE_TRAFFIC_DAYS (30 by default) and traffic rollups older than 90 days, after rolling them up.",
            ),
            # --- bounces and complaints (monitoring.feedback_mailbox, monitoring.feedback_webhooks) ---
            PeriodicTask(
                name="Read the feedback mailbox",
                task="monitoring.fetch_feedback",
                interval_minutes=5,
                expires_seconds=4 * 60,
                description="Reads the new messages of DOCKSPACE_FEEDBACK_MAILBOX over IMAP into bounces and "
                "complaints, then deletes, keeps or moves them (DOCKSPACE_FEEDBACK_AFTER_READ). Does nothing while "
                "the variable is unset.",
            ),
            PeriodicTask(
                name="Send bounce and complaint webhooks",
                task="monitoring.drain_feedback_webhooks",
                interval_minutes=1,
                expires_seconds=55,
                description="Sends the bounce and complaint webhook deliveries due for an attempt (a failed one is "
                "tried again after 60 s, 120 s, 240 s..., as outbound mail is).",
            ),
            PeriodicTask(
                name="Prune bounces and complaints",
                task="monitoring.prune_feedback",
                crontab=Crontab(minute="47", hour="3"),
                expires_seconds=3600,
                description="Deletes bounces and complaints older than DOCKSPACE_TRAFFIC_DAYS (30 by default) and "
                "the webhook deliveries of that age that are sent or failed.",
            ),
        ]

    def alert_kinds(self):
        """DMS sync failing, drift found, the mail hosts' kinds, worker and beat silent, the mail traffic's and the
        sending rates' kinds (monitoring.alert_kinds)."""
        from monitoring.alert_kinds import BUILT_IN
        from monitoring.policy_unreachable import ALERT_KINDS as POLICY_KINDS

        return [*BUILT_IN, *POLICY_KINDS]

    def metrics_collectors(self):
        """What /metrics reads from the database at each scrape (monitoring.exposition reads every app's)."""
        from monitoring.collectors import (
            AlertCollector,
            DirectoryCollector,
            DmsSyncCollector,
            HeartbeatCollector,
            MailHostCollector,
            MailTrafficCollector,
        )
        from monitoring.policy_unreachable import PolicyUnreachableCollector

        return [
            DirectoryCollector(),
            DmsSyncCollector(),
            HeartbeatCollector(),
            MailHostCollector(),
            AlertCollector(),
            MailTrafficCollector(),
            PolicyUnreachableCollector(),
        ]


def _mailhosts_need_restart(sender, reason, **kwargs):
    from monitoring.hosts import mailhosts_need_restart

    mailhosts_need_restart(reason=reason)


def _mailhosts_restarted(sender, **kwargs):
    from monitoring.hosts import mailhosts_restarted

    mailhosts_restarted()
