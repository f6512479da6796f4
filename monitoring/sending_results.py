"""Selectors: what our mail came to in a window, per sending IP, per sender's domain or per sender: the recipients
tried and their synchronous bounces from the mail traffic (each delivery attempt's out-* transport names its IP), and
the bounces and complaints that came back later by mail (FeedbackEvent). The counting rules live here once: the
warmup gates' hook (MonitoringConfig.ip_sending_results, read by deliverability), the dashboard's rates and the alert
rules (monitoring.sending_rates) all read them."""

from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

from django.db.models import CharField, Count, Exists, OuterRef, Q, Value
from django.db.models.functions import Cast, Concat, Lower, TruncDay

from monitoring.feedback_models import FeedbackEvent
from monitoring.feedback_reports import MAILBOX_FULL, verp_recipient
from monitoring.maillog import counting
from monitoring.traffic_models import DeliveryAttempt, MailMessage

IP, DOMAIN, SENDER = "ip", "domain", "sender"
DIMENSIONS = (IP, DOMAIN, SENDER)
FIGURES = ("attempts", "hard_bounces", "soft_bounces", "complaints")

# A delivery attempt's outcome, as the gates count it: a 5.x.x refusal is hard except a full mailbox (5.2.2, soft as
# in monitoring.feedback_reports); a recipient given up on after temporary errors is soft.
_HARD = Q(status=DeliveryAttempt.BOUNCED, dsn__startswith="5.") & ~Q(dsn=MAILBOX_FULL)
_SOFT = (Q(status=DeliveryAttempt.BOUNCED) & ~_HARD) | Q(status=DeliveryAttempt.EXPIRED)
# A recipient counted once however often it was retried: its message and address.
_RECIPIENT = Concat(Cast("message_id", CharField()), Value(" "), "recipient", output_field=CharField())
# Likewise a recipient that came back by mail, however many reports told of it (a report's bytes are not its identity).
_REPORTED = Concat(Cast("message_id", CharField()), Value(" "), Lower("recipient"), output_field=CharField())


def ip_sending_results(addresses: Iterable[str], since: datetime, until: datetime) -> dict[str, dict[str, int]]:
    """{address: {"attempts", "hard_bounces", "complaints"}} for each address asked (zeros when it sent nothing),
    over since <= time < until, counted as sending_results(IP, ...) counts them. ValueError names an address that
    is not one."""
    asked = {}
    for address in addresses:
        try:
            asked[address] = str(ipaddress.ip_address(str(address).strip()))
        except ValueError:
            raise ValueError(f"addresses: {address!r} is not an IP address") from None
    if not asked:
        return {}
    counts = sending_results(IP, since, until, ips=set(asked.values()))
    return {
        address: {figure: counts.get(ip, {}).get(figure, 0) for figure in ("attempts", "hard_bounces", "complaints")}
        for address, ip in asked.items()
    }


def sending_results(
    by: str, since: datetime, until: datetime, *, ips: Iterable[str] | None = None
) -> dict[str, Counter[str]]:
    """{key: {"attempts", "hard_bounces", "soft_bounces", "complaints"}} over since <= time < until, `by` IP (the
    normalised address), DOMAIN (the sender's, lower-cased) or SENDER (its domain lower-cased, as pflogsumm counts;
    a VERP return path as its list's address). Only keys with some figure appear; `ips` limits IP to those
    addresses (normalised).

    attempts: recipients tried (a delivery attempt's time in the window; a recipient retried after a deferral counts
    once). By IP: through a pooled IP's transport (its out-* name). By domain and sender: mail our people sent
    (direction out, not the null sender) to other servers, through any transport.
    hard_bounces: those refused with a 5.x.x other than a full mailbox (5.2.2), plus the hard bounces that came back
    by mail in the window (by when they were read) for a recipient the log did not already show bounced, so a DSN
    our own Postfix wrote for a refusal the log told of is not counted twice.
    soft_bounces: those refused otherwise (a full mailbox) or given up on after temporary errors (expired), plus the
    soft ones that came back by mail for a recipient the log did not show bounced or expired.
    complaints: abuse, fraud and virus reports read in the window.
    What came back by mail counts once per message and recipient (however many reports told of it), and only when
    it is tied to a message we sent and to one of that message's recipients (monitoring.feedback): anyone can write
    a report, quote a Message-ID or name a Source-IP. By IP it counts for the IP the recipient's attempt left from;
    by domain and sender for its message's sender."""
    return {key: figures for (_, key), figures in _results(by, since, until, ips=ips, by_day=False).items()}


def daily_sending_results(
    by: str, since: datetime, until: datetime, *, ips: Iterable[str] | None = None
) -> dict[tuple[datetime, str], Counter[str]]:
    """sending_results per UTC day: {(the day's start, key): figures}."""
    return _results(by, since, until, ips=ips, by_day=True)


def _results(by, since, until, *, ips, by_day) -> dict[tuple[datetime | None, str], Counter[str]]:
    if by not in DIMENSIONS:
        raise ValueError(f"by: {by!r} is not one of {', '.join(DIMENSIONS)}")
    attempts = DeliveryAttempt.objects.filter(at__gte=since, at__lt=until).order_by()
    events = FeedbackEvent.objects.filter(received_at__gte=since, received_at__lt=until, message__isnull=False)
    events = events.exclude(recipient="").order_by()
    if by == IP:
        attempts, events = attempts.filter(sending_ip__isnull=False), events.filter(sending_ip__isnull=False)
        if ips is not None:
            attempts, events = attempts.filter(sending_ip__in=set(ips)), events.filter(sending_ip__in=set(ips))
        attempt_key, event_key = "sending_ip", "sending_ip"
    else:
        attempts = attempts.filter(message__direction=MailMessage.OUT).exclude(message__sender="")
        attempts = attempts.exclude(service__in=sorted(counting.LOCAL_SERVICES))
        events = events.exclude(original_sender="")
        attempt_key, event_key = "message__sender", "original_sender"
    fold = _FOLDS[by]
    results: dict[tuple[datetime | None, str], Counter[str]] = defaultdict(Counter)

    if by_day:
        attempts = attempts.annotate(day=TruncDay("at", tzinfo=UTC))
        events = events.annotate(day=TruncDay("received_at", tzinfo=UTC))
    grouped = [attempt_key, "day"] if by_day else [attempt_key]
    rows = attempts.values(*grouped).annotate(
        attempts=Count(_RECIPIENT, distinct=True),
        hard_bounces=Count(_RECIPIENT, distinct=True, filter=_HARD),
        soft_bounces=Count(_RECIPIENT, distinct=True, filter=_SOFT),
    )
    # Distinct recipients are counted per raw key; keys folded together (two spellings of a domain) never share a
    # message, so their counts add up.
    for row in rows:
        figures = results[row.get("day"), fold(row[attempt_key])]
        for figure in ("attempts", "hard_bounces", "soft_bounces"):
            figures[figure] += row[figure]

    logged = DeliveryAttempt.objects.filter(message=OuterRef("message"), recipient__iexact=OuterRef("recipient"))
    logged_bounce = Exists(logged.filter(status=DeliveryAttempt.BOUNCED))
    logged_end = Exists(logged.filter(status__in=(DeliveryAttempt.BOUNCED, DeliveryAttempt.EXPIRED)))
    grouped = [event_key, "day"] if by_day else [event_key]
    rows = (
        events.filter(kind__in=(FeedbackEvent.HARD, FeedbackEvent.SOFT, FeedbackEvent.COMPLAINT))
        .values(*grouped)
        .annotate(
            hard_bounces=Count(_REPORTED, distinct=True, filter=Q(kind=FeedbackEvent.HARD) & ~logged_bounce),
            soft_bounces=Count(_REPORTED, distinct=True, filter=Q(kind=FeedbackEvent.SOFT) & ~logged_end),
            complaints=Count(_REPORTED, distinct=True, filter=Q(kind=FeedbackEvent.COMPLAINT)),
        )
    )
    for row in rows:
        if not (row["hard_bounces"] or row["soft_bounces"] or row["complaints"]):
            continue
        figures = results[row.get("day"), fold(row[event_key])]
        for figure in ("hard_bounces", "soft_bounces", "complaints"):
            figures[figure] += row[figure]
    for figures in results.values():
        for figure in FIGURES:
            figures.setdefault(figure, 0)
    return dict(results)


def _sender(address: str) -> str:
    """A VERP return path is its list's address: bounces+bob=example.org@example.com is bounces@example.com."""
    tag, recipient = verp_recipient(address)
    if recipient:
        address = address.replace("+" + tag, "", 1)
    return counting.pflogsumm_address(address)


def _domain(address: str) -> str:
    return counting.address_domain(counting.pflogsumm_address(address)).lower()


_FOLDS = {IP: str, DOMAIN: _domain, SENDER: _sender}
