"""Selectors: what each sending IP's mail came to in a window, for the warmup gates (MonitoringConfig's hook
ip_sending_results, read by deliverability): the recipients it tried and their synchronous hard bounces from the mail
traffic (each delivery attempt's out-* transport names its IP), and the hard bounces and complaints that came back
later by mail (FeedbackEvent)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import datetime

from django.db.models import Count, Exists, OuterRef

from monitoring.feedback_models import FeedbackEvent
from monitoring.feedback_reports import MAILBOX_FULL
from monitoring.traffic_models import DeliveryAttempt


def ip_sending_results(addresses: Iterable[str], since: datetime, until: datetime) -> dict[str, dict[str, int]]:
    """{address: {"attempts", "hard_bounces", "complaints"}} for each address asked (zeros when it sent nothing),
    over since <= time < until.

    attempts: recipients the IP tried (a delivery attempt's time in the window; a recipient retried after a deferral
    counts once). hard_bounces: those refused with a 5.x.x other than a full mailbox (5.2.2, soft as in
    monitoring.feedback_reports), plus the hard bounces that came back by mail in the window (by when they were
    read) for a recipient the log did not already show bounced, so a DSN our own Postfix wrote for a refusal the
    log told of is not counted twice. complaints: abuse, fraud and virus reports read in the window.
    ValueError names an address that is not one."""
    asked = {}
    for address in addresses:
        try:
            asked[address] = str(ipaddress.ip_address(str(address).strip()))
        except ValueError:
            raise ValueError(f"addresses: {address!r} is not an IP address") from None
    results = {address: {"attempts": 0, "hard_bounces": 0, "complaints": 0} for address in asked}
    if not asked:
        return results
    normal = set(asked.values())
    counts: dict[str, dict[str, int]] = {ip: {"attempts": 0, "hard_bounces": 0, "complaints": 0} for ip in normal}

    for ip in normal:
        tried = DeliveryAttempt.objects.filter(sending_ip=ip, at__gte=since, at__lt=until)
        counts[ip]["attempts"] = _recipients(tried)
        hard = tried.filter(status=DeliveryAttempt.BOUNCED, dsn__startswith="5.").exclude(dsn=MAILBOX_FULL)
        counts[ip]["hard_bounces"] = _recipients(hard)

    came_back = FeedbackEvent.objects.filter(sending_ip__in=normal, received_at__gte=since, received_at__lt=until)
    logged_bounce = DeliveryAttempt.objects.filter(
        message=OuterRef("message"), recipient__iexact=OuterRef("recipient"), status=DeliveryAttempt.BOUNCED
    )
    late_hard = came_back.filter(kind=FeedbackEvent.HARD).filter(~Exists(logged_bounce))
    for ip, bounces in _rows_by_ip(late_hard):
        counts[ip]["hard_bounces"] += bounces
    for ip, complaints in _rows_by_ip(came_back.filter(kind=FeedbackEvent.COMPLAINT)):
        counts[ip]["complaints"] += complaints

    return {address: dict(counts[normal_address]) for address, normal_address in asked.items()}


def _recipients(attempts) -> int:
    """Distinct message-and-recipient pairs of delivery attempts (one indexed range scan by IP and time)."""
    return attempts.order_by().values("message_id", "recipient").distinct().count()


def _rows_by_ip(events) -> list[tuple[str, int]]:
    return list(events.values("sending_ip").annotate(n=Count("id")).values_list("sending_ip", "n").order_by())
