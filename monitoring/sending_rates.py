"""Selectors: hard-bounce and complaint rates per sending IP, per sender's domain and per sender over the last 24
hours or 7 days, and per day, judged against the reference's thresholds (monitoring.sending_levels). Counted by
monitoring.sending_results (the warmup gates' rules); read by the dashboard's "Bounces and complaints" card, the
alert rules and `manage.py feedback rates`. Every selector takes the actor: staff holding
monitoring.view_mailmessage (as the mail traffic), or the system."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from accounts.authz import Actor, require_perm
from monitoring import sending_levels as levels
from monitoring.sending_results import DIMENSIONS, DOMAIN, IP, daily_sending_results, sending_results
from monitoring.traffic_measures import floor_day

VIEW = "monitoring.view_mailmessage"
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
WINDOW_LABELS = {"24h": "24 h", "7d": "7 d"}


@dataclass(frozen=True)
class SendingRate:
    """One IP's, domain's or sender's figures over a window, its rates in percent (None: it tried no recipient) and
    their levels (NOT_JUDGED below the minimum sample)."""

    key: str
    attempts: int = 0
    hard_bounces: int = 0
    soft_bounces: int = 0
    complaints: int = 0
    minimum: int = levels.MINIMUM_SAMPLE

    @property
    def hard_bounce_percent(self) -> float | None:
        return levels.percent(self.hard_bounces, self.attempts)

    @property
    def complaint_percent(self) -> float | None:
        return levels.percent(self.complaints, self.attempts)

    @property
    def is_judged(self) -> bool:
        return self.attempts >= self.minimum

    @property
    def bounce_level(self) -> str:
        return levels.HARD_BOUNCES.level(self.hard_bounce_percent) if self.is_judged else levels.NOT_JUDGED

    @property
    def complaint_level(self) -> str:
        return levels.COMPLAINTS.level(self.complaint_percent) if self.is_judged else levels.NOT_JUDGED

    @property
    def level(self) -> str:
        return levels.worst(self.bounce_level, self.complaint_level)

    def badness(self) -> tuple:
        """A sort key, worst last: judged before not, then the level, then the rates, then the sample."""
        return (
            self.is_judged,
            levels.rank(self.level),
            self.hard_bounce_percent or 0,
            self.complaint_percent or 0,
            self.attempts,
        )


def _rate(key: str, figures: Counter[str], minimum: int) -> SendingRate:
    return SendingRate(
        key=key,
        attempts=figures["attempts"],
        hard_bounces=figures["hard_bounces"],
        soft_bounces=figures["soft_bounces"],
        complaints=figures["complaints"],
        minimum=minimum,
    )


def _check(actor: Actor | None, by: str, window: str | None = None) -> None:
    require_perm(actor, VIEW)
    if by not in DIMENSIONS:
        raise ValueError(f"by: {by!r} is not one of {', '.join(DIMENSIONS)}")
    if window is not None and window not in WINDOWS:
        raise ValueError(f"window: {window!r} is not one of {', '.join(WINDOWS)}")


def sending_rates(
    actor: Actor | None,
    *,
    by: str,
    window: str = "24h",
    now: datetime | None = None,
    minimum: int = levels.MINIMUM_SAMPLE,
) -> list[SendingRate]:
    """Every IP, domain or sender (`by`: ip, domain, sender) that tried a recipient or got a report in the window
    ("24h", "7d") ending now, worst first. ValidationError for an actor without the permission; ValueError naming
    a bad `by` or `window`."""
    _check(actor, by, window)
    now = now or timezone.now()
    results = sending_results(by, now - WINDOWS[window], now)
    rates = sorted((_rate(key, figures, minimum) for key, figures in results.items()), key=lambda rate: rate.key)
    return sorted(rates, key=SendingRate.badness, reverse=True)  # stable: equals stay A to Z


@dataclass(frozen=True)
class DailyRates:
    """Per UTC day (the first is `days[0]`, the last today so far): all the mail our people sent to other servers
    (counted by sender's domain), and each sending IP."""

    days: list[datetime]
    total: list[SendingRate]
    by_ip: dict[str, list[SendingRate]]


def daily_sending_rates(actor: Actor | None, *, days: int = 14, now: datetime | None = None) -> DailyRates:
    """The last `days` UTC days, today included. ValidationError for an actor without the permission."""
    _check(actor, IP)
    if days < 1:
        raise ValueError(f"days: {days!r} must be at least 1")
    now = now or timezone.now()
    first = floor_day(now) - timedelta(days=days - 1)
    day_list = [first + timedelta(days=n) for n in range(days)]
    totals: dict[datetime, Counter[str]] = {day: Counter() for day in day_list}
    for (day, _), figures in daily_sending_results(DOMAIN, first, now).items():
        totals[day].update(figures)
    per_ip: dict[str, dict[datetime, Counter[str]]] = {}
    for (day, ip), figures in daily_sending_results(IP, first, now).items():
        per_ip.setdefault(ip, {})[day] = figures
    return DailyRates(
        days=day_list,
        total=[_rate("all", totals[day], 0) for day in day_list],
        by_ip={
            ip: [_rate(ip, figures.get(day, Counter()), 0) for day in day_list]
            for ip, figures in sorted(per_ip.items())
        },
    )
