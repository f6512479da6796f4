"""The dashboard's "Mail traffic" card: shown to staff who may view messages (nothing for the others); messages sent
and received by outcome per hour (24 h, from the raw rows: a line ingested a second ago counts) or per day (7 and 90
days, from the daily rollups), as tables the chart script draws, adding up to what traffic_totals counts; the rates;
the top 10s, each address linking to the admin's Messages searched for it."""

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.core.exceptions import ValidationError

from accounts.authz import SYSTEM
from accounts.tests.factories import StaffFactory
from monitoring import traffic_rollups
from monitoring.tests.dashboard_pages import HOME, card, signed_in, staff_with
from monitoring.tests.traffic_logs import (
    REAL_POSTFIX,
    attempt,
    ingest_file,
    ingest_lines,
    queue_id,
    removed,
    submission,
)
from monitoring.traffic_models import TrafficDaily
from monitoring.traffic_stats import traffic_breakdown_daily, traffic_totals

pytestmark = pytest.mark.django_db

AFTER_REAL_LOG = datetime(2026, 12, 6, 23, 12, tzinfo=UTC)  # five minutes after real_postfix_3_7.log's last line
OUTCOMES = ["accepted", "delivered", "deferred", "bounced", "expired", "rejected"]


def traffic_card(query="", person=None):
    response = signed_in(person or StaffFactory()).get(HOME + query)
    assert response.status_code == 200
    return card(response.content.decode(), "Mail traffic")


def totals_rows(html):
    """{row label: {outcome: count}} of the card's totals table."""
    table = re.search(r'<table class="card-table" id="traffic-totals">(.*?)</table>', html, re.S).group(1)
    rows = {}
    for label, cells in re.findall(r'<tr[^>]*><th scope="row">([^<]*)</th>(.*?)</tr>', table, re.S):
        rows[unescape(label)] = dict(
            zip(OUTCOMES, map(int, re.findall(r'<td class="number">(\d+)</td>', cells)), strict=True)
        )
    return rows


def chart_rows(html, key):
    """[(epoch, {outcome: count})] of one chart's table."""
    figure = re.search(rf'<figure class="chart" id="chart-traffic-{key}">(.*?)</figure>', html, re.S)
    assert figure, f"no chart {key}"
    return [
        (int(epoch), dict(zip(OUTCOMES, map(int, re.findall(r'<td class="number">(\d+)</td>', row)), strict=True)))
        for epoch, row in re.findall(r'<tr data-t="(\d+)">(.*?)</tr>', figure.group(1), re.S)
    ]


def top_rows(html, key):
    """[(text, link or None)] of the first cell of each row of a top-10 table."""
    table = re.search(rf'<table class="card-table traffic-top" id="traffic-top-{key}">(.*?)</table>', html, re.S)
    assert table, f"no table {key}"
    return [
        (
            unescape(re.sub(r"<[^>]+>", "", cell)),
            unescape(link.group(1)) if (link := re.search(r'href="([^"]+)"', cell)) else None,
        )
        for cell in re.findall(r'<th scope="row">(.*?)</th>', table.group(1), re.S)
    ]


def as_columns(totals):
    """traffic_totals's figures as the card's columns."""

    def pick(values):
        return {
            "accepted": values["accepted"],
            "delivered": values["delivered_local"] + values["delivered_remote"] + values["forwarded"],
            "deferred": values["deferrals"],
            "bounced": values["bounced"],
            "expired": values["expired"],
            "rejected": values["rejected"],
        }

    return pick(totals.by_direction["out"]), pick(totals.by_direction["in"]), pick(totals.as_dict())


def sent_at(at, number, recipients_and_statuses, sender="alice@example.com"):
    """A message `sender` submitted at `at`, then one delivery attempt per recipient a second later."""
    qid = queue_id(number)
    lines = submission(at, qid, sender, [recipient for recipient, _ in recipients_and_statuses])
    lines += [attempt(at + timedelta(seconds=1), qid, r, status) for r, status in recipients_and_statuses]
    return lines + [removed(at + timedelta(seconds=2), qid)]


def test_staff_who_may_view_messages_see_the_card_and_the_others_see_nothing():
    viewer = staff_with("monitoring.view_mailmessage", email="viewer@example.com")
    other = staff_with("monitoring.view_hostprobe", email="other@example.com")

    shown = signed_in(viewer).get(HOME).content.decode()
    assert card(shown, "Mail traffic") is not None and card(shown, "History") is None
    assert shown.count('<script src="/static/js/dashboard-charts.js" defer></script>') == 1  # the card asks for it
    response = signed_in(other).get(HOME)
    assert response.status_code == 200
    assert card(response.content.decode(), "Mail traffic") is None
    assert card(response.content.decode(), "History") is not None


def test_a_fresh_install_says_where_the_traffic_comes_from():
    html = traffic_card()

    assert "No mail logged in this range." in html and "DOCKSPACE_MAIL_LOG" in html
    assert 'id="chart-traffic-out"' not in html


def test_a_log_of_older_mail_says_what_was_read_and_how_old_it_is():
    ingest_file(REAL_POSTFIX)  # mail of 2026-12-06; the card's range ends now, months later (or earlier)
    with time_machine.travel(AFTER_REAL_LOG + timedelta(days=60), tick=False):
        html = traffic_card()
    lines = len(REAL_POSTFIX.read_text().splitlines())
    assert "No mail logged in this range." in html
    assert f"{lines} lines of mail log have been read; the newest mail in them is from 2026-12-06 23:" in html
    assert "mail older than DOCKSPACE_TRAFFIC_DAYS is pruned" in html


@time_machine.travel(AFTER_REAL_LOG, tick=False)
def test_the_card_counts_a_real_postfix_log_as_traffic_totals_does():
    ingest_file(REAL_POSTFIX)

    html = traffic_card()

    first_hour = AFTER_REAL_LOG.replace(minute=0) - timedelta(hours=23)
    totals = traffic_totals(SYSTEM, since=first_hour)
    sent, received, everything = as_columns(totals)
    rows = totals_rows(html)
    assert rows["All"] == everything
    assert rows["Sent"] == sent
    assert rows["Received"] == received
    assert everything["delivered"] > 0 and everything["bounced"] > 0 and everything["deferred"] > 0
    # Each chart is the hours of its row: 24 of them, the log's lines in the last one.
    out = chart_rows(html, "out")
    assert len(out) == 24 and out[0][0] == int(first_hour.timestamp())
    assert out[-1][1] == sent and all(not any(values.values()) for _, values in out[:-1])
    assert chart_rows(html, "in")[-1][1] == received
    assert f'id="traffic-bounce-rate">{100 * totals.bounce_rate:.1f} %<' in html
    assert f'id="traffic-deferral-rate">{100 * totals.deferral_rate:.1f} %<' in html
    # The top 10s: the real log's sender, its remote site, the rejection it logged.
    assert ("alice@example.com", "/admin/monitoring/mailmessage/?q=alice%40example.com&seen=24h") in top_rows(
        html, "sender"
    )
    assert "example.net" in [text for text, _ in top_rows(html, "recipient_domain")]
    assert top_rows(html, "reason")


@time_machine.travel(AFTER_REAL_LOG, tick=False)
def test_a_top_address_links_to_the_messages_from_or_to_it_in_the_range():
    ingest_file(REAL_POSTFIX)
    admin = StaffFactory()
    html = traffic_card(person=admin)

    (text, link), *_ = top_rows(html, "sender")
    listing = signed_in(admin).get(link).content.decode()

    assert parse_qs(urlsplit(link).query) == {"q": [text], "seen": ["24h"]}
    rows = [row for row in re.findall(r"<tr[^>]*>(.*?)</tr>", listing, re.S) if "field-sender_display" in row]
    senders = [unescape(re.search(r'class="field-sender_display">([^<]*)<', row).group(1)) for row in rows]
    sent = re.search(r'id="traffic-top-sender">.*?<td class="number">(\d+)</td>', html, re.S).group(1)
    assert senders.count(text) == int(sent) > 0
    # The others were sent to it: delivered (it is among their recipients), or refused before any delivery.
    assert all(text in row or "state-bad" in row for row in rows)


def test_lines_ingested_a_second_ago_are_on_the_dashboard_in_every_range():
    start = datetime(2026, 12, 6, 10, 30, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        ingest_lines(sent_at(start - timedelta(seconds=3), 1, [("a@example.org", "sent")]))
        assert totals_rows(traffic_card())["All"]["delivered"] == 1
        traffic_rollups.traffic_rollup()  # as beat runs it every 15 minutes: the day so far is in the rollups
    later = start + timedelta(minutes=2)
    with time_machine.travel(later, tick=False):
        ingest_lines(
            sent_at(later - timedelta(seconds=3), 2, [("b@example.org", "sent"), ("c@example.org", "bounced")])
        )

        for query in ("", "?range=7d", "?range=90d"):
            all_mail = totals_rows(traffic_card(query))["All"]
            assert (all_mail["accepted"], all_mail["delivered"], all_mail["bounced"]) == (2, 2, 1), query


@time_machine.travel(datetime(2026, 12, 6, 10, 30, tzinfo=UTC), tick=False)
def test_7_and_90_days_are_read_from_the_daily_rollups_and_addresses_from_the_last_7_days():
    now = datetime(2026, 12, 6, 10, 30, tzinfo=UTC)
    traffic_rollups.traffic_rollup()
    old_day = datetime(2026, 10, 27, tzinfo=UTC)  # 40 days ago: its raw rows are gone, its rollups kept
    TrafficDaily.objects.create(bucket=old_day, dimension="", key="", direction="out", measure="bounced", value=7)
    TrafficDaily.objects.create(
        bucket=old_day, dimension="ip", key="192.0.2.10", direction="", measure="bounced", value=7
    )
    # Three days ago, as rolled up (the rollups of a day within the week are read rather than its many raw rows).
    TrafficDaily.objects.create(
        bucket=datetime(2026, 12, 3, tzinfo=UTC),
        dimension="ip",
        key="192.0.2.11",
        direction="",
        measure="bounced",
        value=3,
    )
    ingest_lines(sent_at(now - timedelta(days=20), 1, [("x@example.org", "sent")], sender="old@example.com"))
    ingest_lines(sent_at(now - timedelta(hours=1), 2, [("y@example.org", "sent")], sender="new@example.com"))

    quarter, day = traffic_card("?range=90d"), traffic_card()

    assert (int(old_day.timestamp()), 7) in [(epoch, values["bounced"]) for epoch, values in chart_rows(quarter, "out")]
    assert len(chart_rows(quarter, "out")) == 90
    assert totals_rows(quarter)["All"]["bounced"] == 7 and totals_rows(day)["All"]["bounced"] == 0
    assert [text for text, _ in top_rows(quarter, "ip")] == ["192.0.2.10", "192.0.2.11", "(the host's own address)"]
    assert [text for text, _ in top_rows(traffic_card("?range=7d"), "ip")] == ["192.0.2.11", "(the host's own address)"]
    assert [text for text, _ in top_rows(day, "ip")] == ["(the host's own address)"]
    assert "Top senders (last 7 days)" in quarter
    assert [text for text, _ in top_rows(quarter, "sender")] == ["new@example.com"]
    assert [link for _, link in top_rows(quarter, "sender")] == [
        "/admin/monitoring/mailmessage/?q=new%40example.com&seen=7d"
    ]
    assert re.search(r'<a href="\?range=90d#traffic" aria-current="page"', quarter)


def test_only_the_dimensions_the_rollups_keep_are_read_by_day():
    with pytest.raises(ValidationError) as refused:
        traffic_breakdown_daily(SYSTEM, by="sender", since=datetime(2026, 12, 1, tzinfo=UTC))

    assert "by" in refused.value.message_dict


def test_the_charts_are_drawn_by_the_history_charts_script_loaded_once():
    html = signed_in(StaffFactory()).get(HOME).content.decode()

    assert card(html, "History") is not None and card(html, "Mail traffic") is not None
    assert html.count('<script src="/static/js/dashboard-charts.js" defer></script>') == 1
    assert html.count('<script src="/static/vendor/uplot-1.6.32/uPlot.iife.min.js" defer></script>') == 1
    assert html.count("uPlot.min.css") == 1
