"""manage.py feedback rates: each sending IP's, domain's or sender's figures and rates over 24 h and 7 d, worst
first and flagged as on the dashboard, as text or JSON; refused without the permission, naming it."""

import json
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command

from monitoring.tests.dashboard_pages import staff_with
from monitoring.tests.feedback_traffic import IP_A, IP_B, NOW
from monitoring.tests.sending_scenario import IP_C, a_day_of_sending

pytestmark = pytest.mark.django_db


def rates(*args):
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("feedback", "rates", *args, stdout=out)
    return out.getvalue()


def test_it_prints_each_ip_worst_first_for_24_hours_then_7_days():
    a_day_of_sending()
    lines = rates().splitlines()
    assert lines[:4] == [
        "Last 24 h, by ip, worst first:",
        f"  {IP_B}: 250 recipient(s), 31 hard (12.4 %), 0 soft, 0 complaint(s) (0.00 %): standby",
        f"  {IP_A}: 1300 recipient(s), 9 hard (0.7 %), 3 soft, 2 complaint(s) (0.15 %): bad",
        f"  {IP_C}: 40 recipient(s), 20 hard (50.0 %), 0 soft, 0 complaint(s) (0.00 %): not judged",
    ]
    assert lines[4] == "Last 7 d, by ip, worst first:"
    assert f"  {IP_A}: 1800 recipient(s)" in lines[6]


def test_json_by_domain_gives_the_figures_of_both_windows():
    a_day_of_sending()
    data = json.loads(rates("--by", "domain", "--json"))
    assert data["by"] == "domain"
    assert [(row["key"], row["attempts"], row["complaints"], row["level"]) for row in data["24h"]] == [
        ("example.com", 590, 0, "standby"),
        ("example.org", 1000, 2, "bad"),
    ]
    assert data["7d"][0]["hard_bounce_percent"] == pytest.approx(100 * 60 / 1090)


def test_nothing_sent_says_so():
    assert rates("--by", "sender").splitlines() == ["Last 24 h: nothing sent.", "Last 7 d: nothing sent."]


def test_it_is_refused_without_the_permission_naming_it():
    staff_with("monitoring.view_feedbackevent", email="fbl@example.com")
    with pytest.raises(CommandError, match="monitoring.view_mailmessage"):
        rates("--as", "fbl@example.com")


def test_an_unknown_dimension_is_refused_naming_the_choices():
    with pytest.raises(CommandError, match="invalid choice: 'host'"):
        rates("--by", "host")
