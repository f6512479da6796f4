"""In headless Chromium: the dashboard's "Mail traffic" card on a day of generated DMS mail log (bench/
maillog_generate.py, re-dated to the last 30 hours): the history charts' script draws each direction's table as a
chart, one line per outcome in its colour, over 24 h and over 90 d; lines ingested while the page is open are counted
on reload; a long address wraps inside the card; no console error, no Content-Security-Policy violation. Saves
docs/images/29-admin-dashboard-traffic.png (the card)."""

import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from accounts.tests.factories import StaffFactory
from dockspace.tests.chromium import IMAGES, click_and_wait
from monitoring import traffic_rollups
from monitoring.tests.traffic_logs import BENCH, attempt, ingest_file, ingest_lines, queue_id, removed, submission

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DELIVERED_GREEN = "rgb(42, 122, 42)"  # traffic_dashboard.OUTCOMES' colour for "delivered"
LONG_SENDER = "averylonglocalpartwithoutanyplacetobreak" * 2 + "@" + "longsubdomainname." * 4 + "example"


def last_day_of_mail(directory):
    """A generated DMS log of about a day and a half (20,000 lines a day) that started 30 hours ago, cut at now."""
    now = timezone.now()
    start = (now - timedelta(hours=30)).isoformat(timespec="seconds")
    generated = subprocess.run(
        [sys.executable, str(BENCH / "maillog_generate.py"), "--lines", "30000", "--lines-per-day", "20000"]
        + ["--start", start],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = directory / "mail.log"
    lines = generated.splitlines(keepends=True)
    path.write_text("".join(line for line in lines if datetime.fromisoformat(line.split(" ", 1)[0]) <= now))
    return path


def busy_long_address(count=200):
    """`count` messages from an address far wider than its column, within the last hour: the top sender (the
    generated day's busiest, the bounce notices' null sender, sends 50 to 100 depending on where the day is cut)."""
    now = timezone.now()
    lines = []
    for number in range(count):
        at, qid = now - timedelta(minutes=50) + timedelta(seconds=10 * number), queue_id(number)
        lines += submission(at, qid, LONG_SENDER, ["friend@example.org"])
        lines += [
            attempt(at + timedelta(seconds=1), qid, "friend@example.org", "sent"),
            removed(at + timedelta(seconds=2), qid),
        ]
    ingest_lines(lines, source="submission-host")


def card_width_holds(page):
    return page.evaluate(
        "(card => card.scrollWidth <= card.clientWidth + 1)",
        page.locator("section.dashboard-card:has(#traffic)").element_handle(),
    ) and page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def sent_accepted(page):
    return int(page.locator("#traffic-totals tbody tr").first.locator("td").first.inner_text())


def test_an_operator_sees_the_mail_traffic_drawn_over_24_hours_and_90_days(page, tmp_path):
    ingest_file(last_day_of_mail(tmp_path))
    traffic_rollups.traffic_rollup()
    StaffFactory(email="admin@example.com")
    problems = []  # console errors include the Content-Security-Policy violations
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.set_viewport_size({"width": 1300, "height": 900})

    page.goto(page.base + "/login/")
    page.fill("#id_email", "admin@example.com")
    page.fill("#id_password", "correct horse battery staple")
    click_and_wait(page, "main button[type=submit]")
    page.goto(page.base + "/admin/")

    for key in ("out", "in"):  # each table drawn by uPlot, its data folded below
        chart = page.locator(f"#chart-traffic-{key}")
        assert chart.locator(".chart-plot canvas").count() == 1
        assert chart.locator("details table.chart-data tbody tr").count() == 24
    delivered = page.locator("#chart-traffic-out .u-legend .u-series", has_text="delivered").locator(".u-marker")
    assert delivered.evaluate("marker => getComputedStyle(marker).borderColor") == DELIVERED_GREEN
    assert int(page.locator("#traffic-totals tr.traffic-all td").nth(1).inner_text()) > 100
    assert page.locator("#traffic-top-sender tbody a").count() == 10
    assert "%" in page.locator("#traffic-bounce-rate").inner_text()
    assert card_width_holds(page)
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.locator("section.dashboard-card:has(#traffic)").screenshot(path=str(IMAGES / "29-admin-dashboard-traffic.png"))

    click_and_wait(page, "#traffic .chart-ranges a[href='?range=90d#traffic']")
    chart = page.locator("#chart-traffic-out")
    assert chart.locator(".chart-plot canvas").count() == 1
    assert chart.locator("details table.chart-data tbody tr").count() == 90
    assert page.locator("#traffic .chart-ranges a.selected").inner_text() == "90 d"

    # New lines are on the page as soon as they are read; a long address wraps inside the card.
    click_and_wait(page, "#traffic .chart-ranges a[href='?range=24h#traffic']")
    before = sent_accepted(page)
    busy_long_address(200)
    page.reload(wait_until="load")
    assert sent_accepted(page) == before + 200
    assert page.locator("#traffic-top-sender tbody a").first.inner_text().replace("\n", "") == LONG_SENDER
    assert card_width_holds(page)
    assert problems == []
