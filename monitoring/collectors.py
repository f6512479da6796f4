"""What /metrics reads from the database at scrape time (MonitoringConfig.metrics_collectors): counts of people,
mailboxes, aliases and domains, the DMS sync state, when the worker, beat and watchdog were last seen, each mail host's
latest probe, the alerts firing, and the mail traffic read from the mail log (messages by direction and status, the
delivery delays).

Read at each scrape rather than counted in a process: the database is the one place every process agrees on, and
prometheus_client's custom collectors are not added up across processes. A few aggregate queries, whatever the
number of rows (bench/health_metrics.py)."""

from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from dockspace.alert_kinds import declared_alert_kinds
from mail.models import Alias, DmsPendingChange, DmsSyncState, Domain, Mailbox
from monitoring import heartbeats, traffic_measures
from monitoring.alert_models import Alert
from monitoring.models import Heartbeat
from monitoring.selectors import latest_probes


def _timestamp(moment):
    """Seconds since the epoch; 0 for "never" (so `time() - x` is large and an age alert fires)."""
    return moment.timestamp() if moment is not None else 0


def _on_off(model):
    return model.objects.aggregate(
        active=Count("pk", filter=Q(is_active=True)), inactive=Count("pk", filter=Q(is_active=False))
    )


class DirectoryCollector:
    """People, mailboxes by state, aliases and domains."""

    def collect(self):
        people = GaugeMetricFamily("dockspace_people", "People (accounts), by state.", labels=["state"])
        for state, count in _on_off(get_user_model()).items():
            people.add_metric([state], count)
        yield people

        by_state = dict.fromkeys((Mailbox.ACTIVE, Mailbox.SUSPENDED, Mailbox.DISABLED), 0)
        for row in Mailbox.objects.order_by().values("state").annotate(count=Count("pk")):
            by_state[row["state"]] = row["count"]
        mailboxes = GaugeMetricFamily(
            "dockspace_mailboxes", "Mailboxes, by state (active, suspended, disabled).", labels=["state"]
        )
        for state, count in by_state.items():
            mailboxes.add_metric([state], count)
        yield mailboxes

        for name, model, what in (
            ("dockspace_aliases", Alias, "Aliases (catch-alls included)"),
            ("dockspace_domains", Domain, "Mail domains"),
        ):
            family = GaugeMetricFamily(name, f"{what}, by state (active, inactive).", labels=["state"])
            for state, count in _on_off(model).items():
                family.add_metric([state], count)
            yield family


class DmsSyncCollector:
    """How the DMS files stand (mail's DmsSyncState and pending changes)."""

    def collect(self):
        state = DmsSyncState.objects.filter(pk=1).first() or DmsSyncState()
        yield GaugeMetricFamily(
            "dockspace_dms_sync_last_success_timestamp_seconds",
            "When the DMS files were last written successfully (0: never).",
            value=_timestamp(state.last_success_at),
        )
        yield GaugeMetricFamily(
            "dockspace_dms_sync_last_attempt_timestamp_seconds",
            "When a DMS sync was last attempted (0: never).",
            value=_timestamp(state.last_attempt_at),
        )
        yield GaugeMetricFamily(
            "dockspace_dms_sync_failing", "1 while the last DMS sync failed, else 0.", value=int(bool(state.last_error))
        )
        yield GaugeMetricFamily(
            "dockspace_dms_drift_unrepaired",
            "1 while a scan found DMS files differing from the database that no sync has rewritten yet, else 0.",
            value=int(bool(state.drift_report)),
        )
        yield GaugeMetricFamily(
            "dockspace_dms_restart_needed",
            "1 while a change written to the DMS files takes effect only after the mail server restarts, else 0.",
            value=int(state.restart_needed),
        )
        yield GaugeMetricFamily(
            "dockspace_dms_pending_changes",
            "Committed changes not yet written to the DMS files.",
            value=DmsPendingChange.objects.count(),
        )
        yield CounterMetricFamily(
            "dockspace_dms_file_writes", "DMS files written or removed by syncs, ever.", value=state.write_count
        )


class HeartbeatCollector:
    """When the Celery worker, beat and the watchdog were last seen (monitoring.heartbeats)."""

    def collect(self):
        seen = heartbeats.last_seen()
        yield GaugeMetricFamily(
            "dockspace_worker_last_seen_timestamp_seconds",
            "When a Celery worker last ran the heartbeat task or started (0: never).",
            value=_timestamp(seen[Heartbeat.WORKER]),
        )
        yield GaugeMetricFamily(
            "dockspace_beat_last_tick_timestamp_seconds",
            "When Celery beat last sent a task or started (0: never).",
            value=_timestamp(seen[Heartbeat.BEAT]),
        )
        yield GaugeMetricFamily(
            "dockspace_watchdog_last_seen_timestamp_seconds",
            "When the watchdog (manage.py watchdog) last ran a round (0: never).",
            value=_timestamp(seen[Heartbeat.WATCHDOG]),
        )


class MailHostCollector:
    """Each mail host's latest probe (monitoring.probing): labelled by the host's name, never an address or id."""

    def collect(self):
        up = GaugeMetricFamily(
            "dockspace_mail_host_up", "1 when the latest probe reached the host over SSH, else 0.", labels=["host"]
        )
        healthy = GaugeMetricFamily(
            "dockspace_mail_host_healthy",
            "1 when the latest probe found the host healthy, 0 when degraded or down.",
            labels=["host"],
        )
        probed = GaugeMetricFamily(
            "dockspace_mail_host_probe_timestamp_seconds", "When the host was last probed.", labels=["host"]
        )
        restart = GaugeMetricFamily(
            "dockspace_mail_host_restart_needed",
            "1 while a DMS change waits for a restart of the host's container, else 0.",
            labels=["host"],
        )
        queue = GaugeMetricFamily("dockspace_mail_queue_messages", "Messages in the mail queue.", labels=["host"])
        deferred = GaugeMetricFamily(
            "dockspace_mail_queue_deferred_messages", "Deferred messages in the mail queue.", labels=["host"]
        )
        oldest = GaugeMetricFamily(
            "dockspace_mail_queue_oldest_age_seconds", "Age of the oldest queued message (0: none).", labels=["host"]
        )
        disk = GaugeMetricFamily(
            "dockspace_mail_volume_used_ratio", "Used share of the disk holding the mail volume.", labels=["host"]
        )
        service = GaugeMetricFamily(
            "dockspace_mail_service_up",
            "1 while a DMS service the host's settings turn on is RUNNING, else 0.",
            labels=["host", "service"],
        )
        certificate = GaugeMetricFamily(
            "dockspace_mail_certificate_expiry_timestamp_seconds",
            "When the TLS certificate of a mail port expires (host name:port).",
            labels=["host", "endpoint"],
        )
        for host, probe in latest_probes():
            restart.add_metric([host.name], int(host.restart_needed))
            if probe is None:
                continue
            up.add_metric([host.name], int(probe.reachable))
            healthy.add_metric([host.name], int(probe.status == "healthy"))
            probed.add_metric([host.name], _timestamp(probe.started_at))
            if probe.queue_count is not None:
                queue.add_metric([host.name], probe.queue_count)
                deferred.add_metric([host.name], probe.queue_deferred or 0)
                oldest.add_metric([host.name], probe.queue_oldest_age_seconds or 0)
            if probe.disk_percent is not None:
                disk.add_metric([host.name], round(probe.disk_percent / 100, 4))
            if probe.reachable and probe.services:
                for name in probe.expected_services:
                    service.add_metric([host.name, name], int(probe.services.get(name) == "RUNNING"))
            for cert in probe.certificates:
                if cert.get("not_after"):
                    expires = datetime.fromisoformat(cert["not_after"])
                    certificate.add_metric([host.name, f"{host.tls_hostname}:{cert['port']}"], expires.timestamp())
        yield from (up, healthy, probed, restart, queue, deferred, oldest, disk, service, certificate)


class AlertCollector:
    """How many alerts fire now, by kind (every declared kind, 0 included, so a rule on it always has a series)."""

    def collect(self):
        firing = dict.fromkeys((kind.name for kind in declared_alert_kinds()), 0)
        rows = Alert.objects.filter(state=Alert.FIRING).order_by().values("rule__kind").annotate(count=Count("pk"))
        for row in rows:
            firing[row["rule__kind"]] = row["count"]
        family = GaugeMetricFamily(
            "dockspace_alerts_firing",
            "Dockspace's own alerts firing now, by kind (Admin -> Monitoring -> Alerts).",
            labels=["kind"],
        )
        for kind, count in sorted(firing.items()):
            family.add_metric([kind], count)
        yield family


# The statuses of dockspace_mail_messages_total and the traffic measures they add up.
MESSAGE_STATUSES = {
    "accepted": (traffic_measures.ACCEPTED,),
    "sent": (traffic_measures.DELIVERED_LOCAL, traffic_measures.DELIVERED_REMOTE, traffic_measures.FORWARDED),
    "deferred": (traffic_measures.DEFERRALS,),
    "bounced": (traffic_measures.BOUNCED,),
    "expired": (traffic_measures.EXPIRED,),
    "rejected": (traffic_measures.REJECTED,),
}


class MailTrafficCollector:
    """The mail traffic read from the mail log, since the first line stored: what was pruned (the tallies), the
    hourly rollups and the raw rows since the last rollup (monitoring.traffic_measures.lifetime_measures), so the
    counters never go down when old rows are pruned."""

    def collect(self):
        measures = traffic_measures.lifetime_measures()
        messages = CounterMetricFamily(
            "dockspace_mail_messages",
            "Mail traffic read from the mail log, by direction (in: from other servers, out: sent by our people or "
            "Postfix, unknown) and status: accepted (taken into the queue), sent, deferred, bounced, expired "
            "(delivery attempts, one per recipient and try), rejected (refused at SMTP, as pflogsumm counts).",
            labels=["direction", "status"],
        )
        for direction in traffic_measures.DIRECTIONS:
            for status, parts in MESSAGE_STATUSES.items():
                value = sum(measures[None, direction, part] for part in parts)
                messages.add_metric([direction or "unknown", status], value)
        yield messages

        delays = traffic_measures.lifetime_delays()
        histogram = HistogramMetricFamily(
            "dockspace_mail_delivery_delay_seconds",
            "Time from a message's arrival to its delivery to one recipient (Postfix's delay=), by destination: "
            "local (LMTP to Dovecot, local, virtual) or remote (other servers).",
            labels=["destination"],
        )
        for destination in (traffic_measures.LOCAL, traffic_measures.REMOTE):
            buckets, running = [], 0
            for bound in traffic_measures.DELAY_BOUNDS:
                running += delays[None, destination, f"le_{bound}"]
                buckets.append((floatToGoString(bound), running))
            count = delays[None, destination, "count"]
            buckets.append(("+Inf", count))
            histogram.add_metric([destination], buckets, delays[None, destination, "sum_ms"] / 1000)
        yield histogram
