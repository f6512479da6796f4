"""The dashboard's "Bounces and complaints" card (issue "Sending policy"): per sending IP, sender's domain and sender,
the worst by rate with their recipients, hard and soft bounces and complaints over 24 h and 7 d, each rate flagged
against the reference's thresholds (monitoring.sending_levels); and the hard-bounce and complaint rates per day over
the last CHART_DAYS days, as tables the history charts' script (static/js/dashboard-charts.js) draws."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from accounts.authz import Actor
from monitoring import sending_levels as levels
from monitoring.sending_rates import WINDOW_LABELS, WINDOWS, SendingRate, daily_sending_rates, sending_rates
from monitoring.sending_results import DOMAIN, IP, SENDER

TOP = 10
CHART_DAYS = 14
ALL_COLOR = "#495057"
LEVEL_CLASSES = {
    levels.OK: "state-ok",
    levels.WATCH: "state-warn",
    levels.BAD: "state-bad",
    levels.STANDBY: "state-bad",
}


@dataclass(frozen=True)
class RateCell:
    """A rate as shown: "6.0 %", its level ("" below the minimum sample, or with no recipient) and CSS class."""

    text: str
    level: str

    @property
    def css(self) -> str:
        return LEVEL_CLASSES.get(self.level, "")


@dataclass(frozen=True)
class WindowFigures:
    attempts: int
    hard_bounces: int
    soft_bounces: int
    complaints: int
    hard_bounce_rate: RateCell
    complaint_rate: RateCell
    is_judged: bool


@dataclass(frozen=True)
class RateRow:
    key: str
    windows: list[WindowFigures]  # one per WINDOWS, in its order
    level: str  # the worst of both windows

    @property
    def css(self) -> str:
        return LEVEL_CLASSES.get(self.level, "")


@dataclass(frozen=True)
class RateTable:
    key: str
    title: str
    key_label: str
    rows: list[RateRow]
    keys_total: int


@dataclass(frozen=True)
class Series:
    label: str
    color: str


@dataclass(frozen=True)
class ChartRow:
    at: datetime
    label: str  # the UTC day, as the chart's buckets are
    epoch: int
    values: list[str]  # one per series: a percentage, or "" for a day with no recipient


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    series: list[Series]
    rows: list[ChartRow]


@dataclass(frozen=True)
class SendingRatesCard:
    windows: list[str]
    tables: list[RateTable]
    charts: list[Chart]
    minimum: int
    bands: list[str]  # "Hard bounces: under 2 % ok, ...", one per rate
    is_empty: bool


TABLES = [
    (IP, "By sending IP", "Sending IP"),
    (DOMAIN, "By sender's domain", "Domain"),
    (SENDER, "By sender", "Sender"),
]
COLORS = ["#417690", "#ba2121", "#2a7a2a", "#a86400", "#6f42c1", "#0b7285", "#d6336c"]


def _text(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f} %"


def _figures(rate: SendingRate) -> WindowFigures:
    return WindowFigures(
        attempts=rate.attempts,
        hard_bounces=rate.hard_bounces,
        soft_bounces=rate.soft_bounces,
        complaints=rate.complaints,
        hard_bounce_rate=RateCell(_text(rate.hard_bounce_percent, 1), rate.bounce_level),
        complaint_rate=RateCell(_text(rate.complaint_percent, 2), rate.complaint_level),
        is_judged=rate.is_judged,
    )


def _table(actor: Actor, by: str, title: str, key_label: str, now: datetime) -> RateTable:
    by_window = {
        window: {rate.key: rate for rate in sending_rates(actor, by=by, window=window, now=now)} for window in WINDOWS
    }
    keys = sorted({key for rates in by_window.values() for key in rates})
    empty = {key: SendingRate(key=key) for key in keys}
    # A key's place: its worse window (a bad day hidden in a good week, or a bad week that is better today).
    ranked = sorted(
        keys, key=lambda key: max(by_window[w].get(key, empty[key]).badness() for w in WINDOWS), reverse=True
    )
    rows = []
    for key in ranked[:TOP]:
        rates = [by_window[window].get(key, empty[key]) for window in WINDOWS]
        rows.append(
            RateRow(
                key=key or "-",
                windows=[_figures(rate) for rate in rates],
                level=levels.worst(*(rate.level for rate in rates)),
            )
        )
    return RateTable(key=by, title=title, key_label=key_label, rows=rows, keys_total=len(keys))


def _bands(what: str, bands: levels.Bands) -> str:
    return (
        f"{what}: under {bands.watch:g} % ok, watch from {bands.watch:g} %, bad from {bands.bad:g} %, "
        f"standby from {bands.standby:g} %."
    )


def _chart_value(percent: float | None, digits: int) -> str:
    return "" if percent is None else f"{percent:.{digits}f}"


def _charts(actor: Actor, now: datetime) -> list[Chart]:
    daily = daily_sending_rates(actor, days=CHART_DAYS, now=now)
    lines = [("all our mail", ALL_COLOR, daily.total)] + [
        (ip, COLORS[n % len(COLORS)], rates) for n, (ip, rates) in enumerate(daily.by_ip.items())
    ]
    charts = []
    for key, title, percent, digits in (
        ("hard", "Hard bounces", lambda rate: rate.hard_bounce_percent, 2),
        ("complaints", "Complaints", lambda rate: rate.complaint_percent, 3),
    ):
        rows = [
            ChartRow(
                at=day,
                label=f"{day:%Y-%m-%d}",
                epoch=int(day.timestamp()),
                values=[_chart_value(percent(rates[n]), digits) for _, _, rates in lines],
            )
            for n, day in enumerate(daily.days)
        ]
        charts.append(
            Chart(key=key, title=title, series=[Series(label, color) for label, color, _ in lines], rows=rows)
        )
    return charts


def sending_rates_card_data(actor: Actor, *, now: datetime | None = None) -> SendingRatesCard:
    """What the card shows now. For an actor who may view the traffic (the card checks)."""
    now = now or timezone.now()
    tables = [_table(actor, by, title, key_label, now) for by, title, key_label in TABLES]
    charts = _charts(actor, now)
    is_empty = not any(table.rows for table in tables) and not any(
        value for chart in charts for row in chart.rows for value in row.values
    )
    return SendingRatesCard(
        windows=[WINDOW_LABELS[window] for window in WINDOWS],
        tables=tables,
        charts=charts,
        minimum=levels.MINIMUM_SAMPLE,
        bands=[_bands("Hard bounces", levels.HARD_BOUNCES), _bands("Complaints", levels.COMPLAINTS)],
        is_empty=is_empty,
    )
