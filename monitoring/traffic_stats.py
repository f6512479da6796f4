"""Reads of the mail traffic for staff and scripts (issue "Mail traffic"): totals counted exactly as pflogsumm counts
its Grand Totals, breakdowns (by domain, sender, recipient, remote site, SASL user, sending IP, message state,
rejection reason), series per hour (24 h) and per day (90 d) by direction and measure, and the message search with
each message's story. Every selector takes the actor: staff holding monitoring.view_mailmessage, or the system
(commands, tasks); anyone else is refused with a ValidationError naming the permission.

Where the figures come from: within DOCKSPACE_TRAFFIC_DAYS the raw rows (exact, every figure); further back the
rollups (monitoring.traffic_rollups: sums only, so the distinct counts are None, and the range starts on a whole hour
for totals, a whole day for breakdowns). The arithmetic is in monitoring.traffic_measures."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.authz import Actor, require_perm
from monitoring import traffic_measures as m
from monitoring.durations import parse_duration
from monitoring.maillog.counting import is_local_delivery
from monitoring.traffic_models import DeliveryAttempt, MailMessage, SmtpRejection, TrafficDaily, TrafficHourly

VIEW = "monitoring.view_mailmessage"
RAW, ROLLUPS = "raw", "rollups"


def may_view_traffic(actor: Actor | None) -> bool:
    """Whether `actor` may read the traffic (the pages show nothing to anyone else)."""
    return actor is not None and actor.is_authenticated and actor.has_perm(VIEW)


def _require(actor: Actor | None) -> None:
    require_perm(actor, VIEW)


# --- time ranges ------------------------------------------------------------------------------------------------


def parse_moment(text: str, *, field: str, now: datetime | None = None) -> datetime:
    """A moment as operators type it: a duration back from now ("24h", "7d", "90m", "1h30m") or a date and time
    ("2026-12-06", "2026-12-06T10:00", with an offset or in TIME_ZONE). ValidationError({field: ...}) otherwise."""
    now = now or timezone.now()
    value = (text or "").strip()
    try:
        return _within_years(now - timedelta(seconds=parse_duration(value)), text, field)
    except ValueError:
        pass
    except OverflowError:
        raise ValidationError({field: [f"{text[:40]!r} reaches back further than a date can."]}) from None
    try:
        moment = datetime.fromisoformat(value)
        moment = timezone.make_aware(moment) if timezone.is_naive(moment) else moment
    except (ValueError, OverflowError):
        raise ValidationError(
            {
                field: [
                    f"{text[:40]!r} is neither a duration back from now (24h, 7d, 90m) nor a date and time "
                    "(2026-12-06 or 2026-12-06T10:00:00+00:00)."
                ]
            }
        ) from None
    return _within_years(moment, text, field)


def _within_years(moment: datetime, text: str, field: str) -> datetime:
    """Years 1900 to 9000 only: the database and time zone conversions overflow at the ends of datetime's range."""
    if not 1900 <= moment.year <= 9000:
        raise ValidationError({field: [f"{text[:40]!r} is outside the years 1900 to 9000."]})
    return moment


def _range(since: datetime, until: datetime | None, now: datetime | None) -> tuple[datetime, datetime, datetime]:
    if not isinstance(since, datetime):
        raise ValidationError({"since": ["a start of the range is required (e.g. 24h, 7d, 2026-12-01)."]})
    now = now or timezone.now()
    until = until or now
    if since >= until:
        raise ValidationError({"since": [f"must be before until ({until.isoformat(timespec='seconds')})."]})
    return since, until, now


def _reads_raw(since: datetime, now: datetime) -> bool:
    return since >= m.raw_horizon(now) or m.counted_until() is None


# --- totals -----------------------------------------------------------------------------------------------------


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass(frozen=True)
class TrafficTotals:
    """The traffic of [since, until), with pflogsumm's Grand Totals among it (as_dict() names them as
    bench/pflogsumm_totals.py does). `read_from` is "raw" or "rollups"; from the rollups, the distinct counts
    (deferred messages, senders, recipients and their domains) are None. `by_direction` holds the additive
    measures per direction ("in", "out", "" when the log did not show where a message came from)."""

    since: datetime
    until: datetime
    read_from: str
    accepted: int  # every message taken in (465 and notifications' sources included: pflogsumm counts fewer)
    received: int
    delivered_local: int
    delivered_remote: int
    forwarded: int
    deferred: int | None
    deferrals: int
    bounced: int
    expired: int
    rejected: int
    reject_warnings: int
    held: int
    discarded: int
    bytes_received: int
    bytes_delivered: int
    senders: int | None
    sending_hosts_domains: int | None
    recipients: int | None
    recipient_hosts_domains: int | None
    by_direction: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def delivered(self) -> int:
        return self.delivered_local + self.delivered_remote

    @property
    def rejected_percent(self) -> int:
        """pflogsumm's "rejected (N%)": truncated share of rejected in delivered + rejected + discarded."""
        whole = self.delivered + self.rejected + self.discarded
        return int(100 * self.rejected / whole) if whole else 0

    @property
    def discarded_percent(self) -> int:
        """pflogsumm's "discarded (N%)", counted as rejected_percent."""
        whole = self.delivered + self.rejected + self.discarded
        return int(100 * self.discarded / whole) if whole else 0

    @property
    def bounce_rate(self) -> float | None:
        """Share of the recipients whose delivery ended in the range that bounced (delivered, forwarded, bounced,
        expired); None without any."""
        return _ratio(self.bounced, self.delivered + self.forwarded + self.bounced + self.expired)

    @property
    def deferral_rate(self) -> float | None:
        """Share of the delivery attempts in the range that were deferred; None without any."""
        return _ratio(self.deferrals, self.deferrals + self.delivered + self.forwarded + self.bounced)

    def as_dict(self) -> dict[str, Any]:
        """pflogsumm's keys first (received, delivered, forwarded, deferred, deferrals, bounced, rejected...), then
        the split and the additions."""
        return {
            "received": self.received,
            "delivered": self.delivered,
            "forwarded": self.forwarded,
            "deferred": self.deferred,
            "deferrals": self.deferrals,
            "bounced": self.bounced,
            "rejected": self.rejected,
            "rejected_percent": self.rejected_percent,
            "reject_warnings": self.reject_warnings,
            "held": self.held,
            "discarded": self.discarded,
            "discarded_percent": self.discarded_percent,
            "bytes_received": self.bytes_received,
            "bytes_delivered": self.bytes_delivered,
            "senders": self.senders,
            "sending_hosts_domains": self.sending_hosts_domains,
            "recipients": self.recipients,
            "recipient_hosts_domains": self.recipient_hosts_domains,
            "delivered_local": self.delivered_local,
            "delivered_remote": self.delivered_remote,
            "expired": self.expired,
            "accepted": self.accepted,
        }


def _totals_from(
    measures: Counter, since: datetime, until: datetime, read_from: str, distinct: dict[str, int] | None
) -> TrafficTotals:
    summed: Counter[str] = Counter()
    by_direction: dict[str, Counter[str]] = {direction: Counter() for direction in m.DIRECTIONS}
    for (_, direction, measure), value in measures.items():
        summed[measure] += value
        by_direction.setdefault(direction, Counter())[measure] += value
    distinct = distinct or {}
    return TrafficTotals(
        since=since,
        until=until,
        read_from=read_from,
        **{measure: summed[measure] for measure in m.ADDITIVE},
        deferred=distinct.get("deferred"),
        senders=distinct.get("senders"),
        sending_hosts_domains=distinct.get("sending_hosts_domains"),
        recipients=distinct.get("recipients"),
        recipient_hosts_domains=distinct.get("recipient_hosts_domains"),
        by_direction={direction: {k: values[k] for k in m.ADDITIVE} for direction, values in by_direction.items()},
    )


def traffic_totals(
    actor: Actor | None, *, since: datetime, until: datetime | None = None, now: datetime | None = None
) -> TrafficTotals:
    """The traffic of [since, until) (until: now), counted as pflogsumm counts its Grand Totals. From the raw rows
    when they still cover `since` (DOCKSPACE_TRAFFIC_DAYS), else from the hourly rollups (since rounded down to the
    hour) plus the raw rows after the last rollup."""
    _require(actor)
    since, until, now = _range(since, until, now)
    if _reads_raw(since, now):
        return _totals_from(m.raw_measures(since, until), since, until, RAW, m.distinct_figures(since, until))
    since = m.floor_hour(since)
    cut = min(max(m.counted_until() or since, since), until)
    measures = m.rolled_up_measures(TrafficHourly, since, cut) + m.raw_measures(cut, until)
    return _totals_from(measures, since, until, ROLLUPS, None)


# --- breakdowns -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BreakdownRow:
    """One key of a breakdown (a domain, an address, a site, an IP, a state, a reason) and its columns."""

    key: str
    values: dict[str, int]

    @property
    def bounce_rate(self) -> float | None:
        """Bounced among delivered, bounced and expired; None where the breakdown has no deliveries."""
        if "bounced" not in self.values:
            return None
        done = self.values.get("delivered", 0) + self.values["bounced"] + self.values.get(m.EXPIRED, 0)
        return _ratio(self.values["bounced"], done)


@dataclass(frozen=True)
class Breakdown:
    """The traffic of [since, until) broken down by `dimension` (traffic_measures.DIMENSIONS): the `limit` keys with
    the most traffic first, and how many keys there were in all."""

    dimension: str
    label: str
    since: datetime
    until: datetime
    read_from: str
    columns: tuple[str, ...]
    rows: list[BreakdownRow]
    keys_total: int


def traffic_breakdown(
    actor: Actor | None,
    *,
    by: str,
    since: datetime,
    until: datetime | None = None,
    limit: int = 20,
    now: datetime | None = None,
) -> Breakdown:
    """The traffic of [since, until) by `by` (sender_domain, recipient_domain, sender, recipient, remote, sasl, ip,
    status, reason). Before DOCKSPACE_TRAFFIC_DAYS only the dimensions the daily rollups keep (no addresses, no
    message states) can be read: asking for another is refused, naming "by"."""
    _require(actor)
    dimension = m.DIMENSIONS.get(by)
    if dimension is None:
        raise ValidationError({"by": [f"{by!r} is not one of {', '.join(m.DIMENSIONS)}."]})
    since, until, now = _range(since, until, now)
    if _reads_raw(since, now):
        table, read_from = m.raw_breakdown(by, since, until), RAW
    elif not dimension.rolled_up:
        raise ValidationError(
            {
                "by": [
                    f"figures by {dimension.label} are kept only for DOCKSPACE_TRAFFIC_DAYS "
                    f"({m.raw_horizon(now):%Y-%m-%d %H:%M} on): start later."
                ]
            }
        )
    else:
        since = m.floor_day(since)
        cut = min(max(m.floor_day(m.counted_until() or since), since), until)
        table = {}
        for (key, measure), value in m.rolled_up_measures(TrafficDaily, since, cut, dimension=by).items():
            table.setdefault(key, Counter())[measure] += value
        for key, values in m.raw_breakdown(by, cut, until).items():
            table.setdefault(key, Counter()).update(values)
        read_from = ROLLUPS
    weight = [column for column in dimension.columns if column not in ("bytes", "messages")] or ["messages"]
    ordered = sorted(table.items(), key=lambda item: (-sum(item[1][c] for c in weight), item[0]))
    rows = [
        BreakdownRow(key, {column: values.get(column, 0) for column in dimension.columns})
        for key, values in ordered[: max(limit, 0)]
    ]
    return Breakdown(by, dimension.label, since, until, read_from, dimension.columns, rows, len(table))


# --- series -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesPoint:
    """One bucket (its start, UTC): {direction: {measure: value}} with every direction and additive measure."""

    start: datetime
    values: dict[str, dict[str, int]]

    def total(self, measure: str) -> int:
        return sum(by_measure.get(measure, 0) for by_measure in self.values.values())


@dataclass(frozen=True)
class TrafficSeries:
    """Messages in and out per hour over 24 h, or per day over 90 d, by direction and measure (accepted, received,
    delivered_local, delivered_remote, forwarded, deferrals, bounced, expired, rejected, ...): one point per bucket,
    zeros included, oldest first."""

    span: str
    period: str
    read_from: str
    points: list[SeriesPoint]


SPANS = {"24h": (m.HOUR, 24), "7d": (m.DAY, 7), "90d": (m.DAY, 90)}


def traffic_series(actor: Actor | None, *, span: str = "24h", now: datetime | None = None) -> TrafficSeries:
    """The series of `span` ("24h": per hour from the raw rows; "7d", "90d": per day from the daily rollups, the days
    since the last rollup from the raw rows), ending with the bucket holding now."""
    _require(actor)
    if span not in SPANS:
        raise ValidationError({"span": [f"{span!r} is not one of {', '.join(SPANS)}."]})
    now = now or timezone.now()
    period, count = SPANS[span]
    if period == m.HOUR:
        step, first = timedelta(hours=1), m.floor_hour(now) - timedelta(hours=count - 1)
        measures, read_from = m.raw_measures(first, None, period=m.HOUR), RAW
    else:
        step, first = timedelta(days=1), m.floor_day(now) - timedelta(days=count - 1)
        cut = min(max(m.floor_day(m.counted_until() or first), first), m.floor_day(now) + step)
        measures = m.rolled_up_measures(TrafficDaily, first, cut, by_bucket=True) + m.raw_measures(
            cut, None, period=m.DAY
        )
        read_from = ROLLUPS
    points = []
    for index in range(count):
        start = first + index * step
        values: dict[str, dict[str, int]] = {d: dict.fromkeys(m.ADDITIVE, 0) for d in m.DIRECTIONS}
        points.append(SeriesPoint(start, values))
    slots = {point.start: point for point in points}
    for (bucket, direction, measure), value in measures.items():
        point = slots.get(bucket) if bucket is not None else None
        if point is not None:
            point.values.setdefault(direction, dict.fromkeys(m.ADDITIVE, 0))[measure] += value
    return TrafficSeries(span, period, read_from, points)


# --- the message search -------------------------------------------------------------------------------------------

SEARCH_LIMIT_MAX = 1000
_QUEUE_ID = re.compile(r"[0-9A-Za-z]{5,20}\Z")


@dataclass(frozen=True)
class MessageSummary:
    """A message as a search lists it."""

    id: int
    source: str
    queue_id: str
    first_seen_at: datetime
    last_seen_at: datetime
    removed_at: datetime | None
    direction: str  # "in", "out", "" (unknown)
    state: str  # MailMessage.STATES
    sender: str  # "" for the null sender (a bounce)
    recipients: tuple[str, ...]  # every recipient an attempt was made for, in the order first tried
    message_id: str
    sasl_username: str
    client: str  # "host[ip]", "" when not logged
    size: int | None


@dataclass(frozen=True)
class RejectionSummary:
    """A refusal at SMTP (no message was queued, or a queued one was refused at DATA/content), or a line that only
    warned, held or discarded (`outcome`: refused, warned, held, discarded)."""

    id: int
    source: str
    at: datetime
    queue_id: str
    stage: str
    code: int | None
    dsn: str
    reply: str
    client: str
    sender: str
    recipient: str
    is_warning: bool
    action: str
    outcome: str


@dataclass(frozen=True)
class MessageSearchResult:
    """Messages newest first (at most `limit`; `truncated` when more matched), and the SMTP refusals that match the
    same addresses and range (only when searching by --to/--from, and not by a message's ids or state)."""

    messages: list[MessageSummary]
    rejections: list[RejectionSummary]
    truncated: bool


def _client(host: str, ip: str | None) -> str:
    return f"{host or 'unknown'}[{ip}]" if ip else host


def _address_filter(value: str, field: str, *, null_allowed: bool = False) -> str:
    text = (value or "").strip()
    if null_allowed and text == "<>":
        return ""
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    local, sep, domain = text.rpartition("@")
    if (
        not sep
        or not local
        or not domain
        or len(text) > 320
        or any(c.isspace() or not c.isprintable() or c in "<>," for c in text)
    ):
        hint = " (or <> for the null sender)" if null_allowed else ""
        raise ValidationError({field: [f"{value!r} is not an email address: write it as user@example.com{hint}."]})
    return text


def _summaries(messages: QuerySet[MailMessage]) -> list[MessageSummary]:
    rows = list(messages.select_related("source"))
    recipients: dict[int, list[str]] = {row.pk: [] for row in rows}
    for message_id, recipient in (
        DeliveryAttempt.objects.filter(message_id__in=list(recipients))
        .order_by("at", "id")
        .values_list("message_id", "recipient")
    ):
        if recipient not in recipients[message_id]:
            recipients[message_id].append(recipient)
    return [
        MessageSummary(
            id=row.pk,
            source=row.source.name,
            queue_id=row.queue_id,
            first_seen_at=row.first_seen_at,
            last_seen_at=row.last_seen_at,
            removed_at=row.removed_at,
            direction=row.direction,
            state=row.state,
            sender=row.sender,
            recipients=tuple(recipients[row.pk]),
            message_id=row.message_id,
            sasl_username=row.sasl_username,
            client=_client(row.client_host, row.client_ip),
            size=row.size,
        )
        for row in rows
    ]


def _rejection_summary(row: SmtpRejection) -> RejectionSummary:
    return RejectionSummary(
        id=row.pk,
        source=row.source.name,
        at=row.at,
        queue_id=row.queue_id,
        stage=row.stage,
        code=row.code,
        dsn=row.dsn,
        reply=row.reply,
        client=_client(row.client_host, row.client_ip),
        sender=row.sender,
        recipient=row.recipient,
        is_warning=row.is_warning,
        action=row.action,
        outcome=row.outcome,
    )


NAMED_BY_REFUSALS_MAX = 500


def messages_named_by(refusals: QuerySet[SmtpRejection]) -> Q:
    """The messages (by source and queue id) of the `refusals` logged with a queue id: a message held, discarded
    or refused before any delivery has no attempt, its refusal names the recipient. Their pairs are read first
    (few: most refusals have no queue id), so the query is index lookups, not a scan of every message; Q() when
    there are none."""
    named = Q()
    pairs = refusals.exclude(queue_id="").values_list("source_id", "queue_id").distinct()
    for source_id, queue_id in pairs[:NAMED_BY_REFUSALS_MAX]:
        named |= Q(source_id=source_id, queue_id=queue_id)
    return named


def message_search(
    actor: Actor | None,
    *,
    to: str = "",
    sender: str = "",
    message_id: str = "",
    queue_id: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    status: str = "",
    limit: int = 50,
) -> MessageSearchResult:
    """Messages matching every filter given: `to` (a recipient, also as the original recipient before an alias),
    `sender` (the envelope sender; "<>" the null sender), `message_id` (with or without <>), `queue_id`, a range
    (messages seen in [since, until)), `status` (a message state: delivered, deferred, bounced, expired, mixed,
    rejected, queued, held, discarded). Addresses match without regard to case. Bad input raises ValidationError
    naming the filter (to, from, message_id, queue_id, since, status, limit)."""
    _require(actor)
    if not 1 <= limit <= SEARCH_LIMIT_MAX:
        raise ValidationError({"limit": [f"must be 1 to {SEARCH_LIMIT_MAX}."]})
    messages = MailMessage.objects.all()
    refusals = SmtpRejection.objects.select_related("source")
    by_address = False
    if to:
        address = _address_filter(to, "to")
        refusals = refusals.filter(recipient__iexact=address)
        attempted = DeliveryAttempt.objects.filter(
            Q(recipient__iexact=address) | Q(orig_recipient__iexact=address)
        ).values("message_id")
        named = messages_named_by(refusals)
        messages = messages.filter(Q(pk__in=attempted) | named) if named else messages.filter(pk__in=attempted)
        by_address = True
    if sender:
        address = _address_filter(sender, "from", null_allowed=True)
        messages = messages.filter(sender__iexact=address) if address else messages.filter(sender="")
        refusals = refusals.filter(sender__iexact=address) if address else refusals.filter(sender="")
        by_address = True
    if message_id:
        text = message_id.strip().removeprefix("<").removesuffix(">")
        if not text or len(text) > 255 or any(c.isspace() or not c.isprintable() for c in text):
            raise ValidationError({"message_id": [f"{message_id!r} is not a Message-ID (e.g. <abc@example.com>)."]})
        messages = messages.filter(message_id=text)
        by_address = False
    if queue_id:
        if not _QUEUE_ID.match(queue_id.strip()):
            raise ValidationError({"queue_id": [f"{queue_id!r} is not a Postfix queue ID (5 to 20 letters/digits)."]})
        messages = messages.filter(queue_id=queue_id.strip())
        by_address = False
    if status:
        states = dict(MailMessage.STATES)
        if status not in states:
            raise ValidationError({"status": [f"{status!r} is not one of {', '.join(states)}."]})
        messages = messages.filter(state=status)
        by_address = False
    if since is not None and until is not None and since >= until:
        raise ValidationError({"since": [f"must be before until ({until.isoformat(timespec='seconds')})."]})
    if since is not None:
        messages = messages.filter(last_seen_at__gte=since)
        refusals = refusals.filter(at__gte=since)
    if until is not None:
        messages = messages.filter(first_seen_at__lt=until)
        refusals = refusals.filter(at__lt=until)
    found = _summaries(messages.order_by("-first_seen_at", "-id")[: limit + 1])
    rejections = [_rejection_summary(r) for r in refusals.order_by("-at", "-id")[:limit]] if by_address else []
    return MessageSearchResult(found[:limit], rejections, len(found) > limit)


# --- one message's story ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reception:
    """How the message came in: the program (postfix/smtpd is port 25, postfix/submission/smtpd 587,
    postfix/submissions/smtpd 465, postfix/pickup the host itself; "" when its first line is not in the log), the
    client, the SASL user, size, recipients count and Message-ID."""

    at: datetime
    received_by: str
    client: str
    sasl_username: str
    sender: str
    size: int | None
    nrcpt: int | None
    message_id: str


@dataclass(frozen=True)
class AttemptStep:
    """One delivery attempt for one recipient: when, where to (relay), through which transport and sending IP, the
    delay, the DSN, the status and what the other side (or Postfix) said."""

    at: datetime
    recipient: str
    orig_recipient: str
    relay: str
    service: str
    is_local: bool
    sending_ip: str | None
    delay: float | None
    delays: str
    dsn: str
    status: str  # sent, deferred, bounced, expired
    reply: str


@dataclass(frozen=True)
class FinalState:
    """Where the message stands: its state, when it left the queue (None while in it) and each recipient's last
    status, with a sentence saying it."""

    state: str
    removed_at: datetime | None
    recipients: dict[str, str]
    summary: str


@dataclass(frozen=True)
class MessageStory:
    """A message's whole story: the message, how it came in, each attempt in time order, the refusals logged
    with its queue ID while it lived, and where it stands."""

    message: MessageSummary
    reception: Reception
    attempts: list[AttemptStep]
    rejections: list[RejectionSummary]
    final: FinalState


def _final_summary(state: str, removed_at: datetime | None, latest: dict[str, str], queue_id: str = "") -> str:
    counts = Counter(latest.values())
    done = ", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
    recipients = f" (recipients: {done})" if done else ""
    if state == MailMessage.REJECTED:
        return "Refused before it was queued to the end (see the refusals)."
    if state == MailMessage.DISCARDED:
        return "Discarded by a DISCARD action: the client was told it was queued; nobody got it."
    if state == MailMessage.HELD:
        qid = queue_id or "QUEUE_ID"
        return (
            f"Held in the hold queue by a HOLD action: `postsuper -H {qid}` on the mail host releases it, "
            f"`postsuper -d {qid}` deletes it."
        )
    if removed_at is None:
        if state == MailMessage.DEFERRED:
            return f"Waiting in the queue for another try{recipients}."
        return f"Still in the queue{recipients}."
    return {
        MailMessage.DELIVERED: f"Delivered{recipients}.",
        MailMessage.BOUNCED: f"Bounced{recipients}: the sender was sent a non-delivery notice.",
        MailMessage.EXPIRED: f"Expired{recipients}: given up after waiting too long; returned to the sender.",
        MailMessage.MIXED: f"Partly delivered{recipients}.",
    }.get(state, f"Left the queue{recipients}.")


def message_story(actor: Actor | None, message: MailMessage | int) -> MessageStory:
    """The story of `message` (a MailMessage or its id; MailMessage.DoesNotExist when there is none)."""
    _require(actor)
    row = message if isinstance(message, MailMessage) else MailMessage.objects.get(pk=message)
    summary = _summaries(MailMessage.objects.filter(pk=row.pk))[0]
    attempts = [
        AttemptStep(
            at=a.at,
            recipient=a.recipient,
            orig_recipient=a.orig_recipient,
            relay=a.relay,
            service=a.service,
            is_local=is_local_delivery(a.service),
            sending_ip=a.sending_ip,
            delay=a.delay,
            delays=a.delays,
            dsn=a.dsn,
            status=a.status,
            reply=a.reply,
        )
        for a in row.attempts.order_by("at", "id")
    ]
    end = (row.removed_at or row.last_seen_at) + timedelta(seconds=1)
    refusals = SmtpRejection.objects.select_related("source").filter(
        source_id=row.source_id, queue_id=row.queue_id, at__gte=row.first_seen_at, at__lt=end
    )
    latest = {step.recipient: step.status for step in attempts}
    return MessageStory(
        message=summary,
        reception=Reception(
            at=row.first_seen_at,
            received_by=row.received_by,
            client=summary.client,
            sasl_username=row.sasl_username,
            sender=row.sender,
            size=row.size,
            nrcpt=row.nrcpt,
            message_id=row.message_id,
        ),
        attempts=attempts,
        rejections=[_rejection_summary(r) for r in refusals.order_by("at", "id")],
        final=FinalState(
            row.state, row.removed_at, latest, _final_summary(row.state, row.removed_at, latest, row.queue_id)
        ),
    )


# --- what a series adds up to (the dashboard) ---------------------------------------------------------------------


def series_totals(series: TrafficSeries) -> TrafficTotals:
    """The totals of a series' buckets, from the series itself (no second read): what its charts add up to, with
    the same rates as traffic_totals over [first bucket, end of the last); the distinct counts are None."""
    measures: Counter[m.Key] = Counter()
    for point in series.points:
        for direction, values in point.values.items():
            for measure, value in values.items():
                measures[None, direction, measure] += value
    step = timedelta(hours=1) if series.period == m.HOUR else timedelta(days=1)
    since = series.points[0].start
    until = series.points[-1].start + step
    return _totals_from(measures, since, until, series.read_from, None)


def traffic_breakdown_daily(
    actor: Actor | None, *, by: str, since: datetime, limit: int = 20, now: datetime | None = None
) -> Breakdown:
    """The traffic from `since` (rounded down to its UTC day) to now by a dimension the daily rollups keep, read from
    them plus the raw rows since the last rollup even within DOCKSPACE_TRAFFIC_DAYS (traffic_breakdown reads the raw
    rows there): what the dashboard's 7 days show, as fast as its 90 days however many rows the days hold. Before the
    first rollup, the raw rows. A dimension the rollups do not keep is refused, naming "by"."""
    _require(actor)
    dimension = m.DIMENSIONS.get(by)
    if dimension is None or not dimension.rolled_up:
        kept = ", ".join(name for name, kept in m.DIMENSIONS.items() if kept.rolled_up)
        raise ValidationError({"by": [f"{by!r} is not one of {kept}."]})
    now = now or timezone.now()
    since = m.floor_day(since)
    counted = m.counted_until()
    if counted is None:
        return traffic_breakdown(actor, by=by, since=since, limit=limit, now=now)
    cut = min(max(m.floor_day(counted), since), now)
    table: dict[str, Counter[str]] = {}
    for (key, measure), value in m.rolled_up_measures(TrafficDaily, since, cut, dimension=by).items():
        table.setdefault(key, Counter())[measure] += value
    for key, values in m.raw_breakdown(by, cut, now).items():
        table.setdefault(key, Counter()).update(values)
    weight = [column for column in dimension.columns if column not in ("bytes", "messages")] or ["messages"]
    ordered = sorted(table.items(), key=lambda item: (-sum(item[1][c] for c in weight), item[0]))
    rows = [
        BreakdownRow(key, {column: values.get(column, 0) for column in dimension.columns})
        for key, values in ordered[: max(limit, 0)]
    ]
    return Breakdown(by, dimension.label, since, now, ROLLUPS, dimension.columns, rows, len(table))
