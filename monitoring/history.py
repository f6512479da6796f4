"""The dashboard's history charts: queue size, load and disk use per mail host over 24 hours, 7 days or 90 days.

Each chart is a table (time x host) that reads without JavaScript; static/js/dashboard-charts.js draws it with
uPlot. The raw probes (kept 7 days) feed 24 h and 7 d, the hourly rollups 90 d. Every series is cut into at most
a few hundred buckets, each showing the highest reading in it (a queue's peak matters more than its mean)."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from monitoring.models import HostProbe, HostProbeHourly, MailHost

# Hard ceiling on the rows one chart reads (10 hosts probed every 5 minutes for 7 days: about 20 000).
ROWS_READ_MAX = 100_000


@dataclass(frozen=True)
class HistoryRange:
    key: str
    label: str
    span: timedelta
    bucket: timedelta
    model: type  # HostProbe or HostProbeHourly
    time_field: str

    @property
    def bucket_text(self) -> str:
        minutes = int(self.bucket.total_seconds() // 60)
        return f"{minutes} minutes" if minutes < 60 else f"{minutes // 60} hours"


RANGES = {
    "24h": HistoryRange("24h", "24 h", timedelta(hours=24), timedelta(minutes=5), HostProbe, "started_at"),
    "7d": HistoryRange("7d", "7 d", timedelta(days=7), timedelta(minutes=30), HostProbe, "started_at"),
    "90d": HistoryRange("90d", "90 d", timedelta(days=90), timedelta(hours=6), HostProbeHourly, "hour"),
}
DEFAULT_RANGE = "24h"


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    unit: str
    probe_field: str  # on HostProbe
    hourly_field: str  # on HostProbeHourly: the hour's highest reading
    decimals: int

    def field_for(self, model) -> str:
        return self.hourly_field if model is HostProbeHourly else self.probe_field


METRICS = [
    Metric("queue", "Mail queue", "messages", "queue_count", "queue_count_max", 0),
    Metric("load", "Load (1 minute)", "load", "load1", "load1_max", 2),
    Metric("disk", "Disk use of the mail volume", "%", "disk_percent", "disk_percent_max", 1),
]


@dataclass(frozen=True)
class ChartRow:
    at: datetime
    epoch: int
    values: list[str]  # one per host, "" where the host has no reading in this bucket


@dataclass(frozen=True)
class Chart:
    metric: Metric
    hosts: list[str]
    rows: list[ChartRow]


def history_range(key: str) -> HistoryRange:
    return RANGES.get(key) or RANGES[DEFAULT_RANGE]


def history_charts(history: HistoryRange, *, now: datetime | None = None) -> list[Chart]:
    """One chart per metric for every mail host, over `history`'s span ending now."""
    now = now or timezone.now()
    since = now - history.span
    hosts = list(MailHost.objects.order_by("name").values_list("pk", "name"))
    column = {pk: index for index, (pk, _) in enumerate(hosts)}
    fields = [metric.field_for(history.model) for metric in METRICS]
    rows = (
        history.model.objects.filter(**{f"{history.time_field}__gte": since, f"{history.time_field}__lte": now})
        .order_by(f"-{history.time_field}")
        .values_list("host_id", history.time_field, *fields)[:ROWS_READ_MAX]
    )
    width = history.bucket.total_seconds()
    start = since.timestamp()
    # {bucket: [[highest of host 0, host 1...] per metric]}
    buckets: dict[int, list[list[float | None]]] = {}
    for host_id, at, *readings in rows.iterator():
        bucket = int((at.timestamp() - start) // width)
        cells = buckets.setdefault(bucket, [[None] * len(hosts) for _ in METRICS])
        for metric_index, reading in enumerate(readings):
            if reading is None:
                continue
            previous = cells[metric_index][column[host_id]]
            if previous is None or reading > previous:
                cells[metric_index][column[host_id]] = reading
    charts = []
    names = [name for _, name in hosts]
    for metric_index, metric in enumerate(METRICS):
        chart_rows = []
        for bucket in sorted(buckets):
            values = buckets[bucket][metric_index]
            if all(value is None for value in values):
                continue
            epoch = int(start + bucket * width)
            chart_rows.append(
                ChartRow(
                    at=datetime.fromtimestamp(epoch, tz=now.tzinfo),
                    epoch=epoch,
                    values=["" if value is None else f"{value:.{metric.decimals}f}" for value in values],
                )
            )
        charts.append(Chart(metric=metric, hosts=names, rows=chart_rows))
    return charts
