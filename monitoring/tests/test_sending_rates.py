"""Hard-bounce and complaint rates per sending IP, sender's domain and sender (monitoring.sending_rates), from real
rows: a day of sending in volume (monitoring.tests.sending_scenario), and the fixtures' traffic and reports. The
counts agree with the warmup gates' hook; only staff who may view the mail traffic (or the system) read them."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError

from accounts.authz import SYSTEM
from monitoring import feedback
from monitoring import sending_levels as levels
from monitoring.sending_rates import daily_sending_rates, sending_rates
from monitoring.sending_results import ip_sending_results, sending_results
from monitoring.tests.dashboard_pages import staff_with
from monitoring.tests.feedback_traffic import IP_A, IP_B, NOW, fixture, the_fixtures_traffic
from monitoring.tests.sending_scenario import IP_C, a_day_of_sending
from monitoring.tests.test_ip_sending_results import EVERY_REPORT

pytestmark = pytest.mark.django_db


def figures(rate):
    return (rate.attempts, rate.hard_bounces, rate.soft_bounces, rate.complaints)


def table(by, window="24h", **kwargs):
    return {rate.key: rate for rate in sending_rates(SYSTEM, by=by, window=window, now=NOW, **kwargs)}


@pytest.fixture
def day():
    a_day_of_sending()


def test_each_ip_gets_its_recipients_bounces_and_complaints_and_the_worst_comes_first(day):
    rates = sending_rates(SYSTEM, by="ip", now=NOW)
    assert [(rate.key, figures(rate)) for rate in rates] == [
        (IP_B, (250, 31, 0, 0)),  # 30 refused at SMTP, one bounced later by mail
        (IP_A, (1300, 9, 3, 2)),  # alice's and the newsletter's; two complaints about the newsletter
        (IP_C, (40, 20, 0, 0)),  # half bounced, but too few to judge: last
    ]
    b, a, c = rates
    assert (round(b.hard_bounce_percent, 2), b.bounce_level, b.complaint_level, b.level) == (
        12.4,
        levels.STANDBY,
        levels.OK,
        levels.STANDBY,
    )
    assert (round(a.hard_bounce_percent, 2), a.bounce_level) == (0.69, levels.OK)
    assert (round(a.complaint_percent, 3), a.complaint_level, a.level) == (0.154, levels.BAD, levels.BAD)
    assert (c.is_judged, c.hard_bounce_percent, c.level) == (False, 50.0, levels.NOT_JUDGED)


def test_domains_and_senders_add_up_their_peoples_mail_whatever_ip_it_left_from(day):
    domains = table("domain")
    assert {key: figures(rate) for key, rate in domains.items()} == {
        "example.com": (590, 60, 3, 0),  # alice, bob and carol
        "example.org": (1000, 0, 0, 2),
    }
    assert (domains["example.com"].level, domains["example.org"].level) == (levels.STANDBY, levels.BAD)
    senders = sending_rates(SYSTEM, by="sender", now=NOW)
    assert [(rate.key, rate.level) for rate in senders] == [
        ("bob@example.com", levels.STANDBY),
        ("news@example.org", levels.BAD),
        ("alice@example.com", levels.WATCH),  # 3 %
        ("carol@example.com", levels.NOT_JUDGED),
    ]


def test_seven_days_count_the_older_mail_and_24_hours_do_not(day):
    assert figures(table("ip", "7d")[IP_A]) == (1800, 9, 3, 2)
    assert table("ip", "7d")[IP_A].complaint_level == levels.BAD  # 0.11 %
    assert figures(table("sender", "7d")["alice@example.com"]) == (800, 9, 3, 0)
    assert table("sender", "7d")["alice@example.com"].bounce_level == levels.OK  # 1.1 %
    later = {rate.key: rate for rate in sending_rates(SYSTEM, by="ip", window="24h", now=NOW + timedelta(days=1))}
    assert later == {}  # a day on, nothing was sent nor read


def test_the_minimum_sample_decides_what_is_judged(day):
    assert table("ip", minimum=40)[IP_C].level == levels.STANDBY
    assert table("ip", minimum=1301)[IP_A].level == levels.NOT_JUDGED


def test_the_ips_figures_are_the_warmup_gates(day):
    window = (NOW - timedelta(days=1), NOW)
    gates = ip_sending_results([IP_A, IP_B, IP_C, "192.0.2.99"], *window)
    for ip, rate in table("ip").items():
        assert gates[ip] == {
            "attempts": rate.attempts,
            "hard_bounces": rate.hard_bounces,
            "complaints": rate.complaints,
        }
    assert gates["192.0.2.99"] == {"attempts": 0, "hard_bounces": 0, "complaints": 0}


def test_the_fixtures_reports_count_for_their_ip_domain_and_list_sender():
    with time_machine.travel(NOW, tick=False):
        the_fixtures_traffic()
        for name in EVERY_REPORT:
            feedback.feedback_ingest(raw=fixture(name), source="test")
    week = (NOW - timedelta(days=7), NOW + timedelta(seconds=1))
    assert sending_results("ip", *week) == {
        # bob (5.1.1 at SMTP, its DSN not counted again), carol's full mailbox, kate's complaint.
        IP_A: {"attempts": 3, "hard_bounces": 1, "soft_bounces": 1, "complaints": 1},
        IP_B: {"attempts": 3, "hard_bounces": 2, "soft_bounces": 0, "complaints": 1},
    }
    # By sender: Microsoft's NDR (henry), Gmail's over-quota (grace), dave's delay and AOL's complaint are tied to no
    # message in the log: anyone can write a report quoting a sender, so they count for none. The VERP return path
    # bounces+kate=yahoo.com@ is the list bounces@example.com.
    assert sending_results("sender", *week) == {
        "alice@example.com": {"attempts": 4, "hard_bounces": 3, "soft_bounces": 1, "complaints": 0},
        "bounces@example.com": {"attempts": 1, "hard_bounces": 0, "soft_bounces": 0, "complaints": 1},
        "marketing@example.com": {"attempts": 1, "hard_bounces": 0, "soft_bounces": 0, "complaints": 1},
    }
    assert sending_results("domain", *week) == {
        "example.com": {"attempts": 6, "hard_bounces": 3, "soft_bounces": 1, "complaints": 2},
    }


def test_the_daily_rates_give_each_utc_day_for_all_our_mail_and_each_ip(day):
    daily = daily_sending_rates(SYSTEM, days=4, now=NOW)
    assert daily.days == [datetime(2026, 12, d, tzinfo=UTC) for d in (5, 6, 7, 8)]
    assert [figures(rate) for rate in daily.total] == [
        (500, 0, 0, 0),  # alice's older mail, Dec 5 at noon
        (0, 0, 0, 0),
        (0, 0, 0, 0),
        (1590, 60, 3, 2),  # everything else was sent and read on Dec 8
    ]
    assert sorted(daily.by_ip) == [IP_A, IP_B, IP_C]
    assert [figures(rate) for rate in daily.by_ip[IP_B]] == [(0, 0, 0, 0)] * 3 + [(250, 31, 0, 0)]
    assert daily.total[1].hard_bounce_percent is None


def test_only_staff_who_may_view_the_mail_traffic_read_the_rates():
    with pytest.raises(ValidationError, match="monitoring.view_mailmessage"):
        sending_rates(staff_with("monitoring.view_feedbackevent", email="fbl@example.com"), by="ip", now=NOW)
    with pytest.raises(ValidationError, match="monitoring.view_mailmessage"):
        daily_sending_rates(None, now=NOW)
    allowed = staff_with("monitoring.view_mailmessage", email="ops@example.com")
    assert sending_rates(allowed, by="ip", now=NOW) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"by": "host"}, "by: 'host' is not one of ip, domain, sender"), ({"by": "ip", "window": "1y"}, "window: '1y'")],
)
def test_a_bad_dimension_or_window_is_refused_naming_it(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sending_rates(SYSTEM, now=NOW, **kwargs)
