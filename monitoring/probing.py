"""Probing mail hosts: one probe (over SSH, plus the TLS certificates of the mail ports) stored as a HostProbe, its
hour rolled up into HostProbeHourly, the mailboxes' quota use replaced; and the history pruned (7 days raw, 90 days
hourly). `mailhost check`, the admin's "Check now" and the periodic task all probe through here."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Avg, Count, Max, Min, Q
from django.utils import timezone

from accounts import authz
from monitoring import hosts, ssh
from monitoring.models import HostProbe, HostProbeHourly, MailboxQuotaUsage, MailHost
from monitoring.probes import tls
from monitoring.probes.assess import Assessment, assess
from monitoring.probes.collect import HostReading, collect
from monitoring.probes.parse import QuotaUsage

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.http import HttpRequest

# The mail ports whose certificates each probe reads (tests point this at their own listener).
TLS_PORTS = tls.MAIL_TLS_PORTS
RAW_DAYS = 7
HOURLY_DAYS = 90
PRUNE_BATCH = 5000


def _certificate_data(reading: tls.CertificateReading) -> dict[str, Any]:
    data = asdict(reading)
    data["not_after"] = reading.not_after.isoformat() if reading.not_after else None
    return data


def mailhost_probe(*, host: MailHost, now: datetime | None = None) -> HostProbe:
    """Probe `host` once and store the result (a HostProbe row; never raises for the host's trouble: an
    unreachable host, or a changed host key, is a probe that found it down, with the reason)."""
    started_at = now or timezone.now()
    started = time.monotonic()
    reading: HostReading | None = None
    reachable, reach_error, errors = False, "", {}
    try:
        with ssh.session(host) as session:
            reachable = True
            reading = collect(session.run, host.container, host.mail_volume)
    except ssh.SshError as e:
        reach_error = e.message
        errors = {"ssh": e.message}
    except ValueError as e:  # a container name or mail volume the probe refuses (the services refuse them too)
        errors = {"probe": str(e)}
    certificates = (
        tls.certificates(host.tls_hostname, TLS_PORTS, timeout=settings.MAILHOST_SSH_TIMEOUT) if reachable else []
    )
    assessment = assess(
        reading, certificates, reachable=reachable, reach_error=reach_error, now=started_at + _elapsed(started)
    )
    probe = _probe_row(host, started_at, started, reachable, reading, certificates, assessment, errors)
    with transaction.atomic():
        probe.save()
        if reading is not None and reading.quota is not None:
            _replace_quota_usage(host, reading.quota, started_at)
        hourly_rollup(host=host, hour=started_at)
    return probe


def _elapsed(started: float) -> timedelta:
    return timedelta(seconds=time.monotonic() - started)


def _probe_row(
    host: MailHost,
    started_at: datetime,
    started: float,
    reachable: bool,
    reading: HostReading | None,
    certificates: Sequence[tls.CertificateReading],
    assessment: Assessment,
    errors: dict[str, str],
) -> HostProbe:
    probe = HostProbe(
        host=host,
        started_at=started_at,
        duration_ms=int((time.monotonic() - started) * 1000),
        reachable=reachable,
        status=assessment.status,
        reasons=list(assessment.reasons),
        certificates=[_certificate_data(c) for c in certificates],
        errors=errors,
    )
    if reading is None:
        return probe
    probe.errors = dict(reading.errors)
    probe.services = dict(reading.services or {})
    probe.expected_services = sorted(reading.expected_services or ())
    probe.dms_version = reading.version or ""
    probe.cpus = reading.cpus
    if reading.queue is not None:
        probe.queue_count = reading.queue.count
        probe.queue_deferred = reading.queue.deferred
        probe.queue_oldest_age_seconds = reading.queue.oldest_age_seconds
    if reading.disk is not None:
        probe.disk_percent = reading.disk.percent_used
        probe.disk_used_bytes = reading.disk.used_bytes
        probe.disk_total_bytes = reading.disk.total_bytes
    if reading.load is not None:
        probe.load1, probe.load5, probe.load15 = reading.load.load1, reading.load.load5, reading.load.load15
    if reading.memory is not None:
        probe.memory_total_bytes = reading.memory.total_bytes
        probe.memory_available_bytes = reading.memory.available_bytes
    return probe


def _replace_quota_usage(host: MailHost, usages: Sequence[QuotaUsage], measured_at: datetime) -> None:
    """The host's quota rows become exactly what Dovecot reported now (a mailbox gone from it goes here too)."""
    seen: dict[str, QuotaUsage] = {}
    for usage in usages:
        seen[usage.user.strip().lower()] = usage
    MailboxQuotaUsage.objects.filter(host=host).exclude(address__in=list(seen)).delete()
    for address, usage in seen.items():
        MailboxQuotaUsage.objects.update_or_create(
            host=host,
            address=address,
            defaults={"used_bytes": usage.used_bytes, "limit_bytes": usage.limit_bytes, "measured_at": measured_at},
        )


def hourly_rollup(*, host: MailHost, hour: datetime) -> HostProbeHourly | None:
    """Upsert the rollup of `host`'s probes in the hour holding `hour` (idempotent: recomputed from the raw rows)."""
    start = hour.replace(minute=0, second=0, microsecond=0)
    rows = HostProbe.objects.filter(host=host, started_at__gte=start, started_at__lt=start + timedelta(hours=1))
    figures = rows.aggregate(
        probes=Count("pk"),
        down=Count("pk", filter=Q(status=HostProbe.DOWN)),
        degraded=Count("pk", filter=Q(status=HostProbe.DEGRADED)),
        queue_count_avg=Avg("queue_count"),
        queue_count_max=Max("queue_count"),
        queue_oldest_age_seconds_max=Max("queue_oldest_age_seconds"),
        disk_percent_avg=Avg("disk_percent"),
        disk_percent_max=Max("disk_percent"),
        load1_avg=Avg("load1"),
        load1_max=Max("load1"),
        memory_available_bytes_min=Min("memory_available_bytes"),
    )
    if not figures["probes"]:
        HostProbeHourly.objects.filter(host=host, hour=start).delete()
        return None
    row, _ = HostProbeHourly.objects.update_or_create(host=host, hour=start, defaults=figures)
    return row


def probe_history_prune(*, now: datetime | None = None) -> tuple[int, int]:
    """Delete raw probes older than RAW_DAYS and hourly rollups older than HOURLY_DAYS, in batches of ids.
    Returns (raw rows deleted, hourly rows deleted)."""
    now = now or timezone.now()
    return (
        _delete_in_batches(HostProbe.objects.filter(started_at__lt=now - timedelta(days=RAW_DAYS))),
        _delete_in_batches(HostProbeHourly.objects.filter(hour__lt=now - timedelta(days=HOURLY_DAYS))),
    )


def _delete_in_batches(queryset: QuerySet[Any]) -> int:
    deleted = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:PRUNE_BATCH])
        if not ids:
            return deleted
        deleted += queryset.model.objects.filter(pk__in=ids).delete()[0]


def mailhost_check(
    *, host: MailHost, request: HttpRequest | None = None, actor: authz.Actor | None = None
) -> HostProbe:
    """`mailhost check` and the admin's "Check now": a probe on demand, for whoever may view mail hosts."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, hosts.VIEW, "name")
    return mailhost_probe(host=host)


# --- reading ---------------------------------------------------------------------------------------------


def latest_probe(host: MailHost) -> HostProbe | None:
    return HostProbe.objects.filter(host=host).order_by("-started_at").first()


def probe_data(probe: HostProbe) -> dict[str, Any]:
    """A probe as plain data (the command's --json, and what it prints)."""
    return {
        "host": probe.host.name,
        "started_at": probe.started_at.isoformat(),
        "duration_ms": probe.duration_ms,
        "reachable": probe.reachable,
        "status": probe.status,
        "reasons": probe.reasons,
        "services": probe.services,
        "expected_services": probe.expected_services,
        "queue": {
            "count": probe.queue_count,
            "deferred": probe.queue_deferred,
            "oldest_age_seconds": probe.queue_oldest_age_seconds,
        },
        "disk": {
            "path": probe.host.mail_volume,
            "percent": probe.disk_percent,
            "used_bytes": probe.disk_used_bytes,
            "total_bytes": probe.disk_total_bytes,
        },
        "load": {"load1": probe.load1, "load5": probe.load5, "load15": probe.load15},
        "memory": {"total_bytes": probe.memory_total_bytes, "available_bytes": probe.memory_available_bytes},
        "cpus": probe.cpus,
        "dms_version": probe.dms_version,
        "certificates": probe.certificates,
        "errors": probe.errors,
    }


def mailhost_ids() -> list[int]:
    return list(MailHost.objects.order_by("pk").values_list("pk", flat=True))
