"""The dashboard's "Bounces and complaints" card, read through the admin's home page as a browser gets it: shown to
staff who may view the mail traffic (nothing for the others); per sending IP, sender's domain and sender the worst
first with their figures for 24 h and 7 d and each rate flagged against the reference's thresholds; the daily rates
as tables the chart script draws; a sentence when there is nothing yet."""

import re
from html import unescape

import pytest
import time_machine

from accounts.tests.factories import StaffFactory
from monitoring.tests.dashboard_pages import HOME, card, signed_in, staff_with
from monitoring.tests.feedback_traffic import IP_A, IP_B, NOW
from monitoring.tests.sending_scenario import IP_C, a_day_of_sending

pytestmark = pytest.mark.django_db

TITLE = "Bounces and complaints"


def page(person=None):
    with time_machine.travel(NOW, tick=False):
        response = signed_in(person or StaffFactory()).get(HOME)
    assert response.status_code == 200
    return response.content.decode()


def cells(html):
    return [unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", html)]


def rate_rows(html, by):
    """[[key, 24 h: recipients, hard, soft, complaints, hard %, complaint %, 7 d: the same, level]] of one table."""
    table = re.search(rf'<table class="card-table sending-rates" id="rates-{by}">(.*?)</table>', html, re.S)
    assert table, f"no table {by}"
    body = re.search(r"<tbody>(.*?)</tbody>", table.group(1), re.S).group(1)
    return [cells(row) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def rate_classes(html, by, key):
    """The CSS classes of the rate cells (hard %, complaint % for 24 h then 7 d) and of the level of one row."""
    table = re.search(rf'id="rates-{by}">(.*?)</table>', html, re.S).group(1)
    row = re.search(rf'<tr><th scope="row">{re.escape(key)}</th>(.*?)</tr>', table, re.S).group(1)
    classes = re.findall(r'<td class="([^"]*)"', row)
    return [classes[4], classes[5], classes[10], classes[11], classes[12]]


def chart(html, key):
    """(series labels, [(day, values)]) of one chart's table."""
    figure = re.search(rf'<figure class="chart" id="chart-rates-{key}">(.*?)</figure>', html, re.S)
    assert figure, f"no chart {key}"
    labels = re.findall(r'<th scope="col" data-color="[^"]+">([^<]*)</th>', figure.group(1))
    rows = [
        (day, re.findall(r'<td class="number">([^<]*)</td>', row))
        for day, row in re.findall(r'<tr data-t="\d+"><th scope="row"><time[^>]*>([^<]*)</time></th>(.*?)</tr>',
                                   figure.group(1), re.S)
    ]  # fmt: skip
    return labels, rows


def test_the_card_ranks_ips_by_their_worst_rate_with_24_hour_and_7_day_figures():
    a_day_of_sending()
    html = card(page(), TITLE)
    assert rate_rows(html, "ip") == [
        [IP_B, "250", "31", "0", "0", "12.4 %", "0.00 %", "250", "31", "0", "0", "12.4 %", "0.00 %", "standby"],
        [IP_A, "1300", "9", "3", "2", "0.7 %", "0.15 %", "1800", "9", "3", "2", "0.5 %", "0.11 %", "bad"],
        [IP_C, "40", "20", "0", "0", "50.0 %", "0.00 %", "40", "20", "0", "0", "50.0 %", "0.00 %", "not judged"],
    ]
    assert rate_classes(html, "ip", IP_B) == ["number state-bad", "number state-ok"] * 2 + ["rate-level state-bad"]
    assert rate_classes(html, "ip", IP_A) == ["number state-ok", "number state-bad"] * 2 + ["rate-level state-bad"]
    # Under the minimum sample nothing is flagged, however high the rate.
    assert rate_classes(html, "ip", IP_C) == ["number ", "number "] * 2 + ["rate-level "]
    note = " ".join(html.split())
    assert "Rates from fewer than 200 recipients are not judged." in note
    assert "Hard bounces: under 2 % ok, watch from 2 %, bad from 5 %, standby from 10 %." in note
    assert "Complaints: under 0.08 % ok, watch from 0.08 %, bad from 0.1 %, standby from 0.3 %." in note


def test_the_card_ranks_domains_and_senders_too():
    a_day_of_sending()
    html = card(page(), TITLE)
    assert [(row[0], row[1], row[-1]) for row in rate_rows(html, "domain")] == [
        ("example.com", "590", "standby"),
        ("example.org", "1000", "bad"),
    ]
    assert [(row[0], row[5], row[-1]) for row in rate_rows(html, "sender")] == [
        ("bob@example.com", "12.4 %", "standby"),
        ("news@example.org", "0.0 %", "bad"),
        ("alice@example.com", "3.0 %", "watch"),
        ("carol@example.com", "50.0 %", "not judged"),
    ]
    assert rate_classes(html, "sender", "alice@example.com")[0] == "number state-warn"


def test_the_charts_give_each_days_rates_for_all_our_mail_and_each_ip():
    a_day_of_sending()
    html = card(page(), TITLE)
    labels, rows = chart(html, "hard")
    assert labels == ["all our mail", IP_A, IP_B, IP_C]
    assert len(rows) == 14 and rows[0][0] == "2026-11-25" and rows[-1][0] == "2026-12-08"
    assert rows[-4] == ("2026-12-05", ["0.00", "0.00", "", ""])  # alice's older mail; B and C sent nothing
    assert rows[-3] == ("2026-12-06", ["", "", "", ""])  # a day of no mail is a gap, not a zero
    assert rows[-1] == ("2026-12-08", ["3.77", "0.69", "12.40", "50.00"])
    labels, rows = chart(html, "complaints")
    assert rows[-1] == ("2026-12-08", ["0.126", "0.154", "0.000", "0.000"])
    assert 'data-unit="% per day"' in html
    assert "uPlot.iife.min.js" in page()  # the chart script is on the page (loaded once with the traffic card's)


def test_the_card_says_where_the_figures_come_from_when_there_are_none():
    html = card(page(), TITLE)
    assert "No mail sent to other servers, and no bounce or complaint read, in the last 14 days." in html
    assert "manage.py feedback ingest" in html
    assert "rates-ip" not in html


def test_only_staff_who_may_view_the_mail_traffic_see_the_card():
    a_day_of_sending()
    assert card(page(staff_with("monitoring.view_feedbackevent", email="fbl@example.com")), TITLE) is None
    allowed = staff_with("monitoring.view_mailmessage", email="ops@example.com")
    assert IP_A in card(page(allowed), TITLE)
