"""The dashboard's mail traffic (issue "Mail traffic"): messages sent and received per hour over 24 hours or per day
over 7 or 90 days, by outcome, each chart a table that reads without JavaScript (static/js/dashboard-charts.js draws
it, as it draws the history charts); the totals with the bounce and deferral rates; the top 10 senders, recipients,
remote sites, SASL users, domains, sending IPs and rejection reasons, each address linking to the admin's Messages
searched for it.

Everything is read through monitoring.traffic_stats: 24 h from the raw rows (a line ingested a second ago counts),
7 and 90 days from the daily rollups plus the raw rows since the last rollup (fast however long the history). The
tables by address (senders, recipients) are read from the raw rows only: over 90 days they show the last ADDRESS_DAYS
days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.db.models import Max, Sum
from django.urls import reverse
from django.utils import timezone

from accounts.authz import Actor
from dockspace.canonical import unicode_address
from monitoring import traffic_measures as m
from monitoring.traffic_models import LogSource, MailMessage, SmtpRejection
from monitoring.traffic_stats import (
    TrafficTotals,
    series_totals,
    traffic_breakdown,
    traffic_breakdown_daily,
    traffic_series,
)

TOP = 10
# Senders and recipients are not kept in the rollups: beyond this many days the raw rows would be read in full.
ADDRESS_DAYS = 7


@dataclass(frozen=True)
class TrafficRange:
    key: str  # the dashboard's ?range= (shared with the history charts)
    label: str
    span: str  # traffic_stats.SPANS
    period: str  # its buckets: traffic_measures.HOUR or DAY
    bucket_text: str
    seen: str  # the Messages admin's time filter covering about the same range ("": any time)


RANGES = {
    "24h": TrafficRange("24h", "24 h", "24h", m.HOUR, "hour", "24h"),
    "7d": TrafficRange("7d", "7 d", "7d", m.DAY, "day", "7d"),
    "90d": TrafficRange("90d", "90 d", "90d", m.DAY, "day", ""),
}
DEFAULT_RANGE = "24h"


@dataclass(frozen=True)
class Outcome:
    """One line of a chart: what happened to the mail, as the sum of some traffic_measures."""

    key: str
    label: str
    measures: tuple[str, ...]
    color: str


OUTCOMES = [
    Outcome("accepted", "accepted", (m.ACCEPTED,), "#417690"),
    Outcome("delivered", "delivered", (m.DELIVERED_LOCAL, m.DELIVERED_REMOTE, m.FORWARDED), "#2a7a2a"),
    Outcome("deferred", "deferred", (m.DEFERRALS,), "#a86400"),
    Outcome("bounced", "bounced", (m.BOUNCED,), "#ba2121"),
    Outcome("expired", "expired", (m.EXPIRED,), "#6f42c1"),
    Outcome("rejected", "rejected", (m.REJECTED,), "#495057"),
]


@dataclass(frozen=True)
class Direction:
    key: str  # MailMessage.direction
    slug: str
    title: str


DIRECTIONS = [
    Direction(MailMessage.OUT, "out", "Sent"),
    Direction(MailMessage.IN, "in", "Received"),
    Direction("", "unknown", "Unknown origin"),
]


@dataclass(frozen=True)
class ChartRow:
    at: datetime
    epoch: int
    values: list[int]  # one per outcome


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    rows: list[ChartRow]


@dataclass(frozen=True)
class TotalsRow:
    label: str
    values: list[int]  # one per outcome


@dataclass(frozen=True)
class TopRow:
    key: str  # as people read it (an international domain in its own letters)
    url: str  # the admin's Messages searched for this address; "" for what the search cannot find
    values: list[int]

    @property
    def parts(self) -> list[str]:
        """The key cut before its "@": a narrow column breaks an address there rather than inside a word."""
        local, at, domain = self.key.rpartition("@")
        return [local, at + domain] if at and local else [self.key]


@dataclass(frozen=True)
class TopTable:
    key: str
    title: str
    key_label: str
    columns: list[str]
    rows: list[TopRow]
    keys_total: int
    note: str  # the range the table covers when it is not the card's


@dataclass(frozen=True)
class TrafficCard:
    range: TrafficRange
    ranges: list[TrafficRange]
    outcomes: list[Outcome]
    charts: list[Chart]
    totals: list[TotalsRow]
    rates: TrafficTotals
    bounce_rate: str
    deferral_rate: str
    tops: list[TopTable]
    is_empty: bool
    lines_read: int = 0  # when empty: the lines read so far, and the newest mail among them
    newest_mail: datetime | None = None


@dataclass(frozen=True)
class Top:
    """A breakdown shown: its traffic_measures.DIMENSIONS name, title, what a row is, whether its keys are
    addresses (linked to the Messages search)."""

    name: str
    title: str
    key_label: str
    is_address: bool


TOPS = [
    Top("sender", "Top senders", "Sender", True),
    Top("recipient", "Top recipients", "Recipient", True),
    Top("remote", "Top remote sites", "Remote site", False),
    Top("sasl", "Top SASL users", "SASL user", True),
    Top("sender_domain", "By sender's domain", "Domain", False),
    Top("recipient_domain", "By recipient's domain", "Domain", False),
    Top("ip", "By sending IP", "Sending IP", False),
    Top("reason", "Rejection reasons", "Reason", False),
]
COLUMN_LABELS = {m.DEFERRALS: "deferred", "warnings": "warned"}
HIDDEN_COLUMNS = {"bytes"}
SHOWN_KEYS = {m.NULL_SENDER_KEY: "<> (bounce notices)"}
SHOWN_IP_KEYS = {m.NOT_POOLED_KEY: "(the host's own address)"}


def traffic_range(key: str) -> TrafficRange:
    return RANGES.get(key) or RANGES[DEFAULT_RANGE]


def _sum(values: dict[str, int], outcome: Outcome) -> int:
    return sum(values.get(measure, 0) for measure in outcome.measures)


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{100 * ratio:.1f} %"


def _messages_url(address: str, chosen: TrafficRange) -> str:
    query = {"q": address}
    if chosen.seen:
        query["seen"] = chosen.seen
    return f"{reverse('admin:monitoring_mailmessage_changelist')}?{urlencode(query)}"


def _top_table(actor: Actor, top: Top, chosen: TrafficRange, since: datetime, now: datetime) -> TopTable:
    note = ""
    rolled_up = m.DIMENSIONS[top.name].rolled_up
    if rolled_up and chosen.period == m.DAY:
        breakdown = traffic_breakdown_daily(actor, by=top.name, since=since, limit=TOP, now=now)
    else:
        if not rolled_up and since < now - timedelta(days=ADDRESS_DAYS):
            since, note = now - timedelta(days=ADDRESS_DAYS), f"last {ADDRESS_DAYS} days"
        breakdown = traffic_breakdown(actor, by=top.name, since=since, limit=TOP, now=now)
    columns = [column for column in breakdown.columns if column not in HIDDEN_COLUMNS]
    shown = SHOWN_IP_KEYS if top.name == "ip" else SHOWN_KEYS
    rows = []
    for row in breakdown.rows:
        # The Messages search finds an address whole (the null sender as "<>"); a SASL user is usually one too.
        linked = top.is_address and (row.key == m.NULL_SENDER_KEY or "@" in row.key)
        rows.append(
            TopRow(
                key=shown.get(row.key) or unicode_address(row.key),
                url=_messages_url(row.key, chosen if not note else RANGES["7d"]) if linked else "",
                values=[row.values[column] for column in columns],
            )
        )
    return TopTable(
        key=top.name,
        title=top.title,
        key_label=top.key_label,
        columns=[COLUMN_LABELS.get(column, column) for column in columns],
        rows=rows,
        keys_total=breakdown.keys_total,
        note=note,
    )


def traffic_card_data(actor: Actor, chosen: TrafficRange, *, now: datetime | None = None) -> TrafficCard:
    """What the card shows over `chosen` ending now. For an actor who may view the traffic (the card checks)."""
    now = now or timezone.now()
    series = traffic_series(actor, span=chosen.span, now=now)
    totals = series_totals(series)
    charts = []
    for direction in DIRECTIONS:
        rows = [
            ChartRow(
                at=point.start,
                epoch=int(point.start.timestamp()),
                values=[_sum(point.values.get(direction.key, {}), outcome) for outcome in OUTCOMES],
            )
            for point in series.points
        ]
        # Mail whose arrival the log did not show is charted only when there is some.
        if direction.key or any(any(row.values) for row in rows):
            charts.append(Chart(key=direction.slug, title=direction.title, rows=rows))
    totals_rows = [
        TotalsRow(label=chart.title, values=[sum(row.values[i] for row in chart.rows) for i in range(len(OUTCOMES))])
        for chart in charts
    ]
    totals_rows.append(
        TotalsRow(label="All", values=[sum(row.values[i] for row in totals_rows) for i in range(len(OUTCOMES))])
    )
    tops = [_top_table(actor, top, chosen, totals.since, now) for top in TOPS]
    is_empty = not any(totals_rows[-1].values) and not any(table.rows for table in tops)
    return TrafficCard(
        range=chosen,
        ranges=list(RANGES.values()),
        outcomes=OUTCOMES,
        charts=charts,
        totals=totals_rows,
        rates=totals,
        bounce_rate=_percent(totals.bounce_rate),
        deferral_rate=_percent(totals.deferral_rate),
        tops=tops,
        is_empty=is_empty,
        **(_what_was_read() if is_empty else {}),
    )


def _what_was_read() -> dict[str, Any]:
    """For an empty card: how many lines the mail logs gave so far, and the newest mail in them (a log of older
    mail than the range, or none at all, reads differently)."""
    lines = LogSource.objects.aggregate(n=Sum("lines_read"))["n"] or 0
    newest = max(
        (
            moment
            for moment in (
                MailMessage.objects.aggregate(at=Max("last_seen_at"))["at"],
                SmtpRejection.objects.aggregate(at=Max("at"))["at"],
            )
            if moment is not None
        ),
        default=None,
    )
    return {"lines_read": lines, "newest_mail": newest}
