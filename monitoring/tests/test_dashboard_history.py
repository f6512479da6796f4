"""The dashboard's history charts: queue, load and disk per host, each a table (readable without JavaScript)
that a same-origin script draws with the vendored uPlot; ?range= picks 24 h or 7 d from the raw probes and 90 d
from the hourly rollups; every series is cut into a bounded number of buckets; nothing comes from another origin."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.tests.factories import StaffFactory
from monitoring import history
from monitoring.models import HostProbe, HostProbeHourly, MailHost

pytestmark = pytest.mark.django_db

HOME = "/admin/"
NOON = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def mail_host(name):
    return MailHost.objects.create(
        name=name,
        ssh_user="root",
        ssh_host="192.0.2.1",
        key_path="/k",
        host_key_type="ssh-ed25519",
        host_key_fingerprint="SHA256:x",
        host_key="AAAA",
    )


def probe(host, at, **readings):
    return HostProbe.objects.create(
        host=host, started_at=at, duration_ms=100, reachable=True, status="healthy", **readings
    )


def hourly(host, hour, **readings):
    return HostProbeHourly.objects.create(host=host, hour=hour, probes=12, down=0, degraded=0, **readings)


def dashboard(query=""):
    client = Client()
    client.force_login(StaffFactory())
    response = client.get(HOME + query)
    assert response.status_code == 200
    return response.content.decode()


def chart_table(html, key):
    match = re.search(rf'<figure class="chart" id="chart-{key}">(.*?)</figure>', html, re.S)
    assert match, f"no chart {key}"
    return match.group(1)


def cells(table):
    """[(epoch, [cell texts])] of a chart's table body."""
    return [
        (int(epoch), re.findall(r'<td class="number">([^<]*)</td>', row))
        for epoch, row in re.findall(r'<tr data-t="(\d+)">(.*?)</tr>', table, re.S)
    ]


def test_each_chart_is_a_table_of_its_readings_per_host_and_the_script_draws_it():
    now = timezone.now()
    mx1, mx2 = mail_host("mx1"), mail_host("mx2")
    probe(mx1, now - timedelta(hours=2), queue_count=7, load1=0.25, disk_percent=40.0)
    probe(mx2, now - timedelta(hours=1), queue_count=3, load1=1.5, disk_percent=80.5)

    html = dashboard()

    for key in ("queue", "load", "disk"):
        table = chart_table(html, key)
        assert re.search(r"<th scope=\"col\">Time</th><th scope=\"col\">mx1</th><th scope=\"col\">mx2</th>", table)
    assert [values for _, values in cells(chart_table(html, "queue"))] == [["7", ""], ["", "3"]]
    assert [values for _, values in cells(chart_table(html, "load"))] == [["0.25", ""], ["", "1.50"]]
    assert [values for _, values in cells(chart_table(html, "disk"))] == [["40.0", ""], ["", "80.5"]]
    assert '<script src="/static/vendor/uplot-1.6.32/uPlot.iife.min.js" defer></script>' in html
    assert '<script src="/static/js/dashboard-charts.js" defer></script>' in html
    assert '<link rel="stylesheet" href="/static/vendor/uplot-1.6.32/uPlot.min.css">' in html


def test_the_range_links_pick_raw_probes_for_7_days_and_hourly_rollups_for_90_days():
    now = timezone.now()
    host = mail_host("mx1")
    probe(host, now - timedelta(hours=3), queue_count=11)
    probe(host, now - timedelta(days=3), queue_count=33)
    hourly(host, (now - timedelta(days=30)).replace(minute=0, second=0, microsecond=0), queue_count_max=99)
    hourly(host, (now - timedelta(days=100)).replace(minute=0, second=0, microsecond=0), queue_count_max=555)

    day = cells(chart_table(dashboard("?range=24h"), "queue"))
    week = cells(chart_table(dashboard("?range=7d"), "queue"))
    quarter_html = dashboard("?range=90d")
    quarter = cells(chart_table(quarter_html, "queue"))

    assert [values for _, values in day] == [["11"]]
    assert [values for _, values in week] == [["33"], ["11"]]
    assert [values for _, values in quarter] == [["99"]]  # rollups only: the raw probes are not read for 90 days
    assert re.search(r'<a href="\?range=90d" aria-current="page"', quarter_html)
    assert "highest each 6 hours over 90 d" in quarter_html
    assert history.history_range("nonsense").key == "24h"


def test_a_bucket_keeps_its_highest_reading():
    host = mail_host("mx1")
    bucket_start = NOON - timedelta(hours=1)  # buckets are counted from NOON - 24 h, 5 minutes each
    for seconds, queue in ((0, 2), (60, 9), (240, 4)):
        probe(host, bucket_start + timedelta(seconds=seconds), queue_count=queue)

    (queue, *_) = history.history_charts(history.RANGES["24h"], now=NOON)

    assert [(row.epoch, row.values) for row in queue.rows] == [(int(bucket_start.timestamp()), ["9"])]


def test_a_series_stays_bounded_however_often_a_host_is_probed():
    host = mail_host("mx1")
    HostProbe.objects.bulk_create(
        HostProbe(
            host=host,
            started_at=NOON - timedelta(days=7) + timedelta(minutes=minutes),
            duration_ms=1,
            reachable=True,
            status="healthy",
            queue_count=1,
        )
        for minutes in range(7 * 24 * 60)  # a probe every minute for 7 days
    )

    day, week = (history.history_charts(history.RANGES[key], now=NOON)[0] for key in ("24h", "7d"))

    assert 24 * 12 <= len(day.rows) <= 24 * 12 + 1
    assert 7 * 48 <= len(week.rows) <= 7 * 48 + 1


def test_without_probes_each_chart_says_so():
    mail_host("mx1")

    html = dashboard()

    for key in ("queue", "load", "disk"):
        assert "No probes in this range." in chart_table(html, key)


def test_the_dashboard_with_charts_loads_nothing_from_another_origin():
    host = mail_host("mx1")
    probe(host, timezone.now() - timedelta(minutes=5), queue_count=1, load1=0.1, disk_percent=10.0)

    html = dashboard()

    sources = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="([^"]+)"', html)
    assert any("uPlot" in source for source in sources)
    assert all(source.startswith("/") and not source.startswith("//") for source in sources), sources
    assert "<script>" not in html and " style=" not in html
