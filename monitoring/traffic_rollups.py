"""Mail traffic's history: the raw rows rolled up into hourly and daily sums (TrafficHourly, TrafficDaily), and the
raw rows pruned after DOCKSPACE_TRAFFIC_DAYS, the rollups after 90 days. Both run as periodic tasks
(monitoring.tasks); both are idempotent.

A run rolls up again, from the raw rows, every day since the hour the last run was in (yesterday at least, for
lines that complete a message late) and every older day that got new rows since (an archive ingested late: the ids
above those the run before last saw), as long as the day's raw rows are all still kept. Each bucket's rows are
upserted on (bucket, dimension, key, direction, measure) and the ones no longer there deleted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Max, Min, QuerySet, Sum
from django.utils import timezone

from monitoring import traffic_measures as m
from monitoring.traffic_models import (
    ROLLUP_KEY_MAX_LENGTH,
    DeliveryAttempt,
    MailMessage,
    SmtpRejection,
    TrafficDaily,
    TrafficHourly,
    TrafficRollupState,
    TrafficTally,
)

PRUNE_BATCH = 5000  # ids per delete
_UNIQUE = ["bucket", "dimension", "key", "direction", "measure"]


@dataclass
class RollupResult:
    days: list[datetime] = field(default_factory=list)
    hourly_rows: int = 0
    daily_rows: int = 0

    def summary(self) -> str:
        if not self.days:
            return "nothing to roll up"
        span = f"{self.days[0]:%Y-%m-%d}" + (f" to {self.days[-1]:%Y-%m-%d}" if len(self.days) > 1 else "")
        return f"rolled up {len(self.days)} day(s) ({span}): {self.hourly_rows} hourly, {self.daily_rows} daily rows"


def _replace(model: type[TrafficHourly] | type[TrafficDaily], buckets: list[datetime], rows: dict[tuple, int]) -> int:
    """Make the rollup rows of `buckets` exactly `rows` ({(bucket, dimension, key, direction, measure): value})."""
    existing = {
        values[1:]: values[0]
        for values in model.objects.filter(bucket__in=buckets).values_list("id", *_UNIQUE).iterator()
    }
    stale = [pk for key, pk in existing.items() if key not in rows]
    for start in range(0, len(stale), PRUNE_BATCH):
        model.objects.filter(pk__in=stale[start : start + PRUNE_BATCH]).delete()
    objects: list[Any] = [
        model(bucket=bucket, dimension=dimension, key=key, direction=direction, measure=measure, value=value)
        for (bucket, dimension, key, direction, measure), value in rows.items()
    ]
    model.objects.bulk_create(
        objects, batch_size=500, update_conflicts=True, unique_fields=_UNIQUE, update_fields=["value"]
    )
    return len(objects)


def _day_rows(day: datetime) -> tuple[dict[tuple, int], dict[tuple, int]]:
    """The hourly and daily rollup rows of the UTC day starting at `day`, from the raw rows."""
    end = day + timedelta(days=1)
    hourly: dict[tuple, int] = {}
    for (bucket, direction, measure), value in m.raw_measures(day, end, period=m.HOUR).items():
        hourly[bucket, "", "", direction, measure] = value
    for (bucket, destination, measure), value in m.delay_histogram_rows(day, end, period=m.HOUR).items():
        hourly[bucket, m.DELAY, destination, "", measure] = value
    daily: dict[tuple, int] = {}
    for (_, direction, measure), value in m.raw_measures(day, end).items():
        daily[day, "", "", direction, measure] = value
    for name, dimension in m.DIMENSIONS.items():
        if not dimension.rolled_up:
            continue
        for key, values in m.raw_breakdown(name, day, end).items():
            for measure, value in values.items():
                if value:
                    daily[day, name, key[:ROLLUP_KEY_MAX_LENGTH], "", measure] = value
    return hourly, daily


def _new_row_days(
    model: type[MailMessage] | type[DeliveryAttempt] | type[SmtpRejection], time_field: str, after_id: int
) -> set[datetime]:
    return set(model.objects.filter(pk__gt=after_id).datetimes(time_field, "day", tzinfo=UTC))


def traffic_rollup(*, now: datetime | None = None) -> RollupResult:
    """Roll up the days that changed since the last run (see the module docstring), a transaction per day; record
    how far it got. Runs may overlap harmlessly: each day is recomputed from the raw rows."""
    now = now or timezone.now()
    result = RollupResult()
    state, _ = TrafficRollupState.objects.get_or_create(pk=1)
    seen = (
        MailMessage.objects.aggregate(top=Max("id"))["top"] or 0,
        DeliveryAttempt.objects.aggregate(top=Max("id"))["top"] or 0,
        SmtpRejection.objects.aggregate(top=Max("id"))["top"] or 0,
    )
    today = m.floor_day(now)
    # Every day since the last run (the first run: since yesterday; the days before with rows come next).
    start = min(m.floor_day(state.counted_until or now), today - timedelta(days=1))
    days = {start + timedelta(days=n) for n in range((today - start).days + 1)}
    # Rows above the ids the run before last saw: a transaction still open when the last run read the highest ids
    # committed lower ids after it, which reading from the run before last covers.
    days |= _new_row_days(MailMessage, "first_seen_at", state.message_id_seen_before)
    days |= _new_row_days(DeliveryAttempt, "at", state.attempt_id_seen_before)
    days |= _new_row_days(SmtpRejection, "at", state.rejection_id_seen_before)
    # A day whose oldest raw rows may be pruned already would be rolled up short: its rollups stay as they are.
    horizon = m.raw_horizon(now)
    for day in sorted(d for d in days if horizon <= d <= today):
        hourly, daily = _day_rows(day)
        with transaction.atomic():
            result.hourly_rows += _replace(TrafficHourly, [day + timedelta(hours=h) for h in range(24)], hourly)
            result.daily_rows += _replace(TrafficDaily, [day], daily)
        result.days.append(day)
    TrafficRollupState.objects.filter(pk=1).update(
        counted_until=m.floor_hour(now),
        last_run_at=now,
        message_id_seen_before=state.message_id_seen,
        attempt_id_seen_before=state.attempt_id_seen,
        rejection_id_seen_before=state.rejection_id_seen,
        message_id_seen=seen[0],
        attempt_id_seen=seen[1],
        rejection_id_seen=seen[2],
    )
    return result


# --- pruning ------------------------------------------------------------------------------------------------------


@dataclass
class PruneResult:
    messages: int = 0
    attempts: int = 0
    rejections: int = 0
    hourly: int = 0
    daily: int = 0

    def summary(self) -> str:
        return (
            f"deleted {self.messages} message(s), {self.attempts} delivery attempt(s), {self.rejections} rejection(s) "
            f"past DOCKSPACE_TRAFFIC_DAYS and {self.hourly} hourly, {self.daily} daily rollup row(s) past "
            f"{m.ROLLUP_DAYS} days"
        )


def _id_ranges(queryset: QuerySet) -> range:
    """Starts of PRUNE_BATCH-wide id ranges spanning the rows of `queryset`."""
    bounds = queryset.aggregate(low=Min("id"), high=Max("id"))
    if bounds["low"] is None:
        return range(0)
    return range(bounds["low"], bounds["high"] + 1, PRUNE_BATCH)


def _tally(rows: QuerySet) -> None:
    """Add what the hourly rollup rows about to be deleted hold to the tallies (the lifetime counters)."""
    sums = rows.filter(dimension__in=("", m.DELAY)).values("dimension", "key", "direction", "measure")
    for row in sums.annotate(total=Sum("value")).order_by():
        tally, _ = TrafficTally.objects.select_for_update().get_or_create(
            dimension=row["dimension"], key=row["key"], direction=row["direction"], measure=row["measure"]
        )
        tally.value += row["total"]
        tally.save(update_fields=["value"])


def traffic_prune(*, now: datetime | None = None) -> PruneResult:
    """Delete the messages (with their attempts) not seen for DOCKSPACE_TRAFFIC_DAYS and the rejections older than
    that, then the rollups older than 90 days (the hourly ones' sums kept in the tallies first), in id-range batches of
    PRUNE_BATCH, a transaction each. Rolls up first, so nothing is pruned before it is counted."""
    now = now or timezone.now()
    traffic_rollup(now=now)
    result = PruneResult()
    horizon = m.raw_horizon(now)
    old = MailMessage.objects.filter(last_seen_at__lt=horizon)
    for start in _id_ranges(old):
        with transaction.atomic():
            batch = old.filter(id__gte=start, id__lt=start + PRUNE_BATCH)
            result.attempts += DeliveryAttempt.objects.filter(message__in=batch.values("id")).delete()[0]
            result.messages += batch.delete()[0]
    old_rejections = SmtpRejection.objects.filter(at__lt=horizon)
    for start in _id_ranges(old_rejections):
        result.rejections += old_rejections.filter(id__gte=start, id__lt=start + PRUNE_BATCH).delete()[0]
    cutoff = m.floor_day(now) - timedelta(days=m.ROLLUP_DAYS)
    old_hourly = TrafficHourly.objects.filter(bucket__lt=cutoff)
    for start in _id_ranges(old_hourly):
        with transaction.atomic():
            hours = old_hourly.filter(id__gte=start, id__lt=start + PRUNE_BATCH)
            _tally(hours)
            result.hourly += hours.delete()[0]
    old_daily = TrafficDaily.objects.filter(bucket__lt=cutoff)
    for start in _id_ranges(old_daily):
        result.daily += old_daily.filter(id__gte=start, id__lt=start + PRUNE_BATCH).delete()[0]
    return result
