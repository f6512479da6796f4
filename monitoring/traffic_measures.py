"""What the stored mail traffic adds up to, without a person in the loop: the additive measures of a time range (per
hour, per day or in all) and the breakdowns, read from the raw rows (MailMessage, DeliveryAttempt, SmtpRejection) or
summed from the rollups (TrafficHourly, TrafficDaily); what /metrics and the alert kinds read. The selectors for
people (monitoring.traffic_stats) and the rollups (monitoring.traffic_rollups) are built on these.

Times: a range is [since, until), in UTC buckets; a message counts at the line that opened it (first_seen_at), an
attempt and a rejection at their own line."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Case, Count, IntegerField, Q, QuerySet, Sum, Value, When
from django.db.models.functions import TruncDay, TruncHour

from monitoring.maillog import counting
from monitoring.maillog.correlate import STALE_AFTER
from monitoring.models import HostProbe, MailHost
from monitoring.traffic_models import (
    ROLLUP_KEY_MAX_LENGTH,
    DeliveryAttempt,
    LogSource,
    MailMessage,
    SmtpRejection,
    TrafficDaily,
    TrafficHourly,
    TrafficRollupState,
    TrafficTally,
    rejection_outcome,
)

HOUR, DAY = "hour", "day"
ROLLUP_DAYS = 90

# Additive measures (the rollups keep them by direction).
ACCEPTED = "accepted"  # messages taken in by any smtpd or pickup (465 included)
RECEIVED = "received"  # pflogsumm's received: smtpd on 25/587 and pickup
DELIVERED_LOCAL = "delivered_local"
DELIVERED_REMOTE = "delivered_remote"
FORWARDED = "forwarded"
DEFERRALS = "deferrals"
BOUNCED = "bounced"
EXPIRED = "expired"
REJECTED = "rejected"
REJECT_WARNINGS = "reject_warnings"
HELD = "held"  # messages a hold: line kept in the hold queue (pflogsumm's "held")
DISCARDED = "discarded"
BYTES_RECEIVED = "bytes_received"
BYTES_DELIVERED = "bytes_delivered"
ADDITIVE = (
    ACCEPTED,
    RECEIVED,
    DELIVERED_LOCAL,
    DELIVERED_REMOTE,
    FORWARDED,
    DEFERRALS,
    BOUNCED,
    EXPIRED,
    REJECTED,
    REJECT_WARNINGS,
    HELD,
    DISCARDED,
    BYTES_RECEIVED,
    BYTES_DELIVERED,
)
DIRECTIONS = (MailMessage.IN, MailMessage.OUT, "")
_ATTEMPT_MEASURE = {
    DeliveryAttempt.SENT: "delivered",
    DeliveryAttempt.DEFERRED: DEFERRALS,
    DeliveryAttempt.BOUNCED: BOUNCED,
    DeliveryAttempt.EXPIRED: EXPIRED,
}

_REJECTION_MEASURE = {
    counting.REJECTED: REJECTED,
    counting.REJECT_WARNING: REJECT_WARNINGS,
    counting.HELD: HELD,
    counting.DISCARDED: DISCARDED,
}

# The delivery-delay histogram (seconds): a local delivery, a greylisting retry, Postfix's backoff, its 5 days.
DELAY_BOUNDS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 86400, 5 * 86400)
DELAY = "delay"
LOCAL, REMOTE = "local", "remote"

Key = tuple[datetime | None, str, str]  # (bucket or None, direction, measure)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def raw_horizon(now: datetime) -> datetime:
    """The oldest moment the raw rows are kept for (DOCKSPACE_TRAFFIC_DAYS)."""
    return now - timedelta(days=settings.TRAFFIC_DAYS)


def _between(queryset: QuerySet, field: str, since: datetime | None, until: datetime | None) -> QuerySet:
    if since is not None:
        queryset = queryset.filter(**{f"{field}__gte": since})
    if until is not None:
        queryset = queryset.filter(**{f"{field}__lt": until})
    return queryset.order_by()


def _bucketed(queryset: QuerySet, field: str, period: str | None) -> tuple[QuerySet, list[str]]:
    if period is None:
        return queryset, []
    trunc = TruncHour if period == HOUR else TruncDay
    return queryset.annotate(bucket=trunc(field, tzinfo=UTC)), ["bucket"]


_FORWARDED = Case(
    When(Q(status=DeliveryAttempt.SENT) & Q(reply__contains="forwarded as "), then=Value(1)),
    default=Value(0),
    output_field=IntegerField(),
)


def raw_measures(since: datetime | None, until: datetime | None, *, period: str | None = None) -> Counter[Key]:
    """The additive measures of the raw rows in [since, until) (None: unbounded), by (bucket, direction, measure);
    the bucket is the hour's or the day's start with `period`, else None. Counted as pflogsumm counts: received
    only from smtpd on 25/587 and pickup; delivered split local/remote, forwarded (local(8) "forwarded as") apart;
    bytes delivered once per delivered recipient; rejections as counting.rejection_kind says."""
    measures: Counter[Key] = Counter()
    messages, group = _bucketed(
        _between(MailMessage.objects.exclude(received_by=""), "first_seen_at", since, until), "first_seen_at", period
    )
    rows = messages.values(*group, "direction", "received_by").annotate(n=Count("id"), size=Sum("size"))
    for row in rows:
        bucket, direction = row.get("bucket"), row["direction"]
        measures[bucket, direction, ACCEPTED] += row["n"]
        if counting.is_received(row["received_by"]):
            measures[bucket, direction, RECEIVED] += row["n"]
            measures[bucket, direction, BYTES_RECEIVED] += row["size"] or 0

    attempts, group = _bucketed(_between(DeliveryAttempt.objects.all(), "at", since, until), "at", period)
    rows = (
        attempts.annotate(forwarded=_FORWARDED)
        .values(*group, "message__direction", "status", "service", "forwarded")
        .annotate(n=Count("id"), size=Sum("message__size"))
    )
    for row in rows:
        bucket, direction, status = row.get("bucket"), row["message__direction"], row["status"]
        if status == DeliveryAttempt.SENT:
            if row["forwarded"]:
                measures[bucket, direction, FORWARDED] += row["n"]
                continue
            local = counting.is_local_delivery(row["service"])
            measures[bucket, direction, DELIVERED_LOCAL if local else DELIVERED_REMOTE] += row["n"]
            measures[bucket, direction, BYTES_DELIVERED] += row["size"] or 0
        elif status in _ATTEMPT_MEASURE:
            measures[bucket, direction, _ATTEMPT_MEASURE[status]] += row["n"]

    rejections, group = _bucketed(_between(SmtpRejection.objects.all(), "at", since, until), "at", period)
    for row in rejections.values(*group, "program", "action", "stage").annotate(n=Count("id")):
        kind = counting.rejection_kind(row["program"], row["action"], row["stage"])
        if kind is None:
            continue
        measure = _REJECTION_MEASURE[kind]
        measures[row.get("bucket"), counting.rejection_direction(row["program"]), measure] += row["n"]
    return +measures


def distinct_figures(since: datetime, until: datetime) -> dict[str, int]:
    """pflogsumm's figures that are not sums (so not kept in the rollups): deferred messages (queue ids with a
    deferral), senders and sending hosts/domains of the received messages, recipients and their domains of the
    delivered ones."""
    deferred = (
        _between(DeliveryAttempt.objects.filter(status=DeliveryAttempt.DEFERRED), "at", since, until)
        .values("message__source_id", "message__queue_id")  # pflogsumm's queue ids, one log source's each
        .distinct()
        .count()
    )
    received = _between(
        MailMessage.objects.exclude(received_by="").filter(size__isnull=False), "first_seen_at", since, until
    )
    senders, sending_domains = set(), set()
    for sender, received_by, client_host, client_ip in received.values_list(
        "sender", "received_by", "client_host", "client_ip"
    ).distinct():
        if not counting.is_received(received_by):
            continue
        senders.add(counting.pflogsumm_address(sender) if sender else counting.NULL_SENDER)
        sending_domains.add(counting.sending_domain(sender, received_by, client_host, client_ip or ""))
    delivered = (
        _between(DeliveryAttempt.objects.filter(status=DeliveryAttempt.SENT), "at", since, until)
        .exclude(reply__contains="forwarded as ")
        .values_list("recipient", flat=True)
        .distinct()
    )
    recipients = {counting.pflogsumm_address(recipient) for recipient in delivered}
    return {
        "deferred": deferred,
        "senders": len(senders),
        "sending_hosts_domains": len(sending_domains),
        "recipients": len(recipients),
        "recipient_hosts_domains": len({counting.address_domain(address) for address in recipients}),
    }


def delay_histogram_rows(
    since: datetime | None, until: datetime | None, *, period: str | None = None
) -> Counter[tuple[datetime | None, str, str]]:
    """The delivery delays of the attempts delivered in [since, until): (bucket, "local"/"remote", measure) ->
    value, measure "le_<bound>" (the attempts whose delay fell in that bucket, not cumulative), "le_inf", "count"
    and "sum_ms"."""
    attempts, group = _bucketed(
        _between(DeliveryAttempt.objects.filter(status=DeliveryAttempt.SENT, delay__isnull=False), "at", since, until),
        "at",
        period,
    )
    le = Case(
        *[When(delay__lte=bound, then=Value(f"le_{bound}")) for bound in DELAY_BOUNDS],
        default=Value("le_inf"),
    )
    destination = Case(
        When(service__in=sorted(counting.LOCAL_SERVICES), then=Value(LOCAL)),
        default=Value(REMOTE),
    )
    rows = (
        attempts.annotate(le=le, destination=destination)
        .values(*group, "destination", "le")
        .annotate(n=Count("id"), total=Sum("delay"))
    )
    histogram: Counter[tuple[datetime | None, str, str]] = Counter()
    for row in rows:
        bucket, where = row.get("bucket"), row["destination"]
        histogram[bucket, where, row["le"]] += row["n"]
        histogram[bucket, where, "count"] += row["n"]
        total = row["total"] or 0
        histogram[bucket, where, "sum_ms"] += round(total * 1000) if math.isfinite(total) else 0
    return +histogram


# --- breakdowns ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dimension:
    """A way to break the traffic down: its name, what a row's key is, its columns, and whether the daily rollups
    keep it (those that name people's addresses, or a state that changes after the day, are read from the raw rows
    only)."""

    name: str
    label: str
    columns: tuple[str, ...]
    rolled_up: bool


_OUTCOMES = ("delivered", DEFERRALS, BOUNCED, EXPIRED)
DIMENSIONS = {
    d.name: d
    for d in (
        Dimension("sender_domain", "sender's domain", ("messages", "bytes", *_OUTCOMES, REJECTED), True),
        Dimension("recipient_domain", "recipient's domain", (*_OUTCOMES, REJECTED), True),
        Dimension("sender", "sender", ("messages", "bytes", *_OUTCOMES, REJECTED), False),
        Dimension("recipient", "recipient", (*_OUTCOMES, REJECTED), False),
        Dimension("remote", "remote site", _OUTCOMES, True),
        Dimension("sasl", "SASL user", ("messages", "bytes", *_OUTCOMES), True),
        Dimension("ip", "sending IP", _OUTCOMES, True),
        Dimension("status", "message state", ("messages", "in", "out", "unknown"), False),
        Dimension("reason", "rejection reason", (REJECTED, "warnings", HELD, DISCARDED), True),
    )
}
_OUTCOME_COLUMN = {"refused": REJECTED, "warned": "warnings", "held": HELD, "discarded": DISCARDED}
NULL_SENDER_KEY = "<>"
NOT_POOLED_KEY = ""  # remote attempts through a transport that names no sending IP


def _sender_key(sender: str) -> str:
    return counting.pflogsumm_address(sender) if sender else NULL_SENDER_KEY


def _sender_domain_key(sender: str) -> str:
    return counting.address_domain(counting.pflogsumm_address(sender)).lower() if sender else NULL_SENDER_KEY


def _recipient_domain_key(recipient: str) -> str:
    return counting.address_domain(counting.pflogsumm_address(recipient)).lower()


def _add(table: dict[str, Counter[str]], key: str, measure: str, value: int) -> None:
    if value:
        table[key[:ROLLUP_KEY_MAX_LENGTH]][measure] += value


def _outcomes(
    table: dict[str, Counter[str]], attempts: QuerySet, fields: Iterable[str], keyed: Callable[[dict], str]
) -> None:
    for row in attempts.values(*fields, "status").annotate(n=Count("id")):
        measure = _ATTEMPT_MEASURE.get(row["status"])
        if measure:
            _add(table, keyed(row), measure, row["n"])


def raw_breakdown(dimension: str, since: datetime | None, until: datetime | None) -> dict[str, Counter[str]]:
    """{key: {column: value}} of one dimension over the raw rows in [since, until)."""
    table: dict[str, Counter[str]] = defaultdict(Counter)
    messages = _between(MailMessage.objects.all(), "first_seen_at", since, until)
    attempts = _between(DeliveryAttempt.objects.all(), "at", since, until)
    refusals = _between(SmtpRejection.objects.filter(is_warning=False), "at", since, until)
    remote = attempts.exclude(service__in=sorted(counting.LOCAL_SERVICES))
    if dimension in ("sender", "sender_domain"):
        key: Callable[[str], str] = _sender_key if dimension == "sender" else _sender_domain_key
        for row in messages.values("sender").annotate(n=Count("id"), size=Sum("size")):
            _add(table, key(row["sender"]), "messages", row["n"])
            _add(table, key(row["sender"]), "bytes", row["size"] or 0)
        _outcomes(table, attempts, ["message__sender"], lambda row: key(row["message__sender"]))
        for row in refusals.values("sender").annotate(n=Count("id")):
            _add(table, key(row["sender"]), REJECTED, row["n"])
    elif dimension in ("recipient", "recipient_domain"):
        key = counting.pflogsumm_address if dimension == "recipient" else _recipient_domain_key
        _outcomes(table, attempts, ["recipient"], lambda row: key(row["recipient"]))
        for row in refusals.exclude(recipient="").values("recipient").annotate(n=Count("id")):
            _add(table, key(row["recipient"]), REJECTED, row["n"])
    elif dimension == "remote":
        _outcomes(
            table, remote, ["relay", "recipient"], lambda row: counting.remote_domain(row["relay"], row["recipient"])
        )
    elif dimension == "sasl":
        for row in messages.exclude(sasl_username="").values("sasl_username").annotate(n=Count("id"), size=Sum("size")):
            _add(table, row["sasl_username"], "messages", row["n"])
            _add(table, row["sasl_username"], "bytes", row["size"] or 0)
        _outcomes(
            table,
            attempts.exclude(message__sasl_username=""),
            ["message__sasl_username"],
            lambda row: row["message__sasl_username"],
        )
    elif dimension == "ip":
        _outcomes(table, remote, ["sending_ip"], lambda row: row["sending_ip"] or NOT_POOLED_KEY)
    elif dimension == "status":
        for row in messages.values("state", "direction").annotate(n=Count("id")):
            _add(table, row["state"], "messages", row["n"])
            _add(table, row["state"], row["direction"] or "unknown", row["n"])
    elif dimension == "reason":
        rows = _between(SmtpRejection.objects.all(), "at", since, until).values("code", "dsn", "reply", "action")
        for row in rows.annotate(n=Count("id")):
            reason = counting.rejection_reason(row["code"], row["dsn"], row["reply"])
            _add(table, reason, _OUTCOME_COLUMN[rejection_outcome(row["action"])], row["n"])
    else:
        raise ValueError(f"unknown dimension {dimension!r}")
    return table


# --- the rollups ------------------------------------------------------------------------------------------------


def counted_until() -> datetime | None:
    """The start of the hour the last rollup ran in: the rollups before it are complete (None: never ran)."""
    return TrafficRollupState.objects.filter(pk=1).values_list("counted_until", flat=True).first()


def rolled_up_measures(
    model: type[TrafficHourly] | type[TrafficDaily],
    since: datetime | None,
    until: datetime | None,
    *,
    dimension: str = "",
    by_bucket: bool = False,
) -> Counter:
    """Sums of the rollup rows of `dimension` with buckets in [since, until): (bucket or None, direction, measure)
    -> value for the totals ("") and "delay" (keyed by destination then), (key, measure) for a breakdown."""
    rows = _between(model.objects.filter(dimension=dimension), "bucket", since, until)
    sums: Counter = Counter()
    if dimension in ("", DELAY):
        side = "direction" if dimension == "" else "key"
        fields = ["bucket", side, "measure"] if by_bucket else [side, "measure"]
        for row in rows.values(*fields).annotate(total=Sum("value")):
            sums[row.get("bucket"), row[side], row["measure"]] += row["total"]
    else:
        for row in rows.values("key", "measure").annotate(total=Sum("value")):
            sums[row["key"], row["measure"]] += row["total"]
    return sums


def _tallies(dimension: str) -> Counter:
    side = "direction" if dimension == "" else "key"
    return Counter(
        {
            (None, getattr(tally, side), tally.measure): tally.value
            for tally in TrafficTally.objects.filter(dimension=dimension)
        }
    )


def lifetime_measures() -> Counter[Key]:
    """Everything ever counted, by (None, direction, measure): what was pruned from the hourly rollups (the
    tallies), the hourly rollups before `counted_until`, and the raw rows since (so never less than a moment ago)."""
    cut = counted_until()
    total = (_tallies("") + rolled_up_measures(TrafficHourly, None, cut, dimension="")) if cut else Counter()
    return total + raw_measures(cut, None)


def lifetime_delays() -> Counter:
    """The delivery-delay histogram of every delivered attempt ever counted, by (None, destination, measure)."""
    cut = counted_until()
    total = (_tallies(DELAY) + rolled_up_measures(TrafficHourly, None, cut, dimension=DELAY)) if cut else Counter()
    return total + delay_histogram_rows(cut, None)


# --- what the alert kinds read ------------------------------------------------------------------------------------


def outbound_outcomes_by_sender_domain(since: datetime, until: datetime) -> dict[str, Counter[str]]:
    """Mail our people sent to other servers in [since, until), by the sender's domain: recipients delivered and
    bounced."""
    attempts = (
        _between(DeliveryAttempt.objects.filter(message__direction=MailMessage.OUT), "at", since, until)
        .exclude(service__in=sorted(counting.LOCAL_SERVICES))
        .filter(status__in=(DeliveryAttempt.SENT, DeliveryAttempt.BOUNCED))
    )
    table: dict[str, Counter[str]] = defaultdict(Counter)
    _outcomes(table, attempts, ["message__sender"], lambda row: _sender_domain_key(row["message__sender"]))
    return table


@dataclass(frozen=True)
class Refusal:
    """The same permanent refusal from one remote site, repeated: how often, the reply (particulars left out) and
    the sending IPs it was given to."""

    remote: str
    pattern: str
    count: int
    sending_ips: tuple[str, ...]


def remote_refusals(since: datetime, until: datetime) -> list[Refusal]:
    """Bounces in [since, until) whose DSN says the remote server refused the sender or its server (5.x.x but not
    5.1.x / 5.2.x), grouped by remote site and reply; most repeated first."""
    rows = (
        _between(
            DeliveryAttempt.objects.filter(status=DeliveryAttempt.BOUNCED, dsn__startswith="5."), "at", since, until
        )
        .exclude(service__in=sorted(counting.LOCAL_SERVICES))
        .values_list("relay", "recipient", "dsn", "reply", "sending_ip")
    )
    counts: Counter[tuple[str, str]] = Counter()
    ips: dict[tuple[str, str], set[str]] = defaultdict(set)
    for relay, recipient, dsn, reply, ip in rows.iterator():
        if not counting.is_refusal_of_us(dsn):
            continue
        group = (counting.remote_domain(relay, recipient), counting.reply_pattern(reply))
        counts[group] += 1
        if ip:
            ips[group].add(ip)
    return [
        Refusal(remote, pattern, count, tuple(sorted(ips[remote, pattern])))
        for (remote, pattern), count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]


def deferred_in_log(at: datetime) -> dict[int, int]:
    """How many messages of each log source were waiting in the deferred queue at `at`, as the mail log tells it:
    deferred at least once by then and not yet removed (nor silent for longer than a message can wait)."""
    waiting = (
        MailMessage.objects.filter(
            attempts__status=DeliveryAttempt.DEFERRED,
            attempts__at__lte=at,
            first_seen_at__lte=at,
            last_seen_at__gte=at - STALE_AFTER,
        )
        .filter(Q(removed_at__isnull=True) | Q(removed_at__gt=at))
        .order_by()
        .values("source")
        .annotate(n=Count("id", distinct=True))
    )
    return {row["source"]: row["n"] for row in waiting}


def log_sources_without_probed_host() -> list[LogSource]:
    """The log sources whose deferred queue is read from the log: those of no mail host whose probes read its queue."""
    probed = set(HostProbe.objects.filter(queue_deferred__isnull=False).values_list("host_id", flat=True).distinct())
    return [source for source in LogSource.objects.order_by("name") if source.mail_host_id not in probed]


def deferred_at_probes(now: datetime, before: datetime) -> list[tuple[MailHost, int, int]]:
    """(host, deferred now, deferred then) for each mail host whose probes read its queue now (the latest probe,
    within 15 minutes) and around `before` (the latest probe at or before it, within 15 minutes)."""
    found = []
    window = timedelta(minutes=15)
    for host in MailHost.objects.order_by("name"):
        probes = HostProbe.objects.filter(host=host, queue_deferred__isnull=False).order_by("-started_at")
        latest = (
            probes.filter(started_at__gt=now - window, started_at__lte=now)
            .values_list("queue_deferred", flat=True)
            .first()
        )
        earlier = (
            probes.filter(started_at__gt=before - window, started_at__lte=before)
            .values_list("queue_deferred", flat=True)
            .first()
        )
        if latest is not None and earlier is not None:
            found.append((host, latest, earlier))
    return found
