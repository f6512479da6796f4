"""The sending rates' alert kinds, evaluated as the periodic task does (alert_services.alerts_evaluate) on a day of
sending stored from log lines and reports: a sending IP whose hard bounces, and a sending IP or sender's domain whose
complaints, reach the threshold over 24 hours fire once the minimum of recipients was tried and the condition held
its 10 minutes; they resolve when the rate falls or the day passes, and fire again on the same alert row."""

from datetime import timedelta

import pytest

from monitoring import alert_services
from monitoring.alert_models import Alert, AlertRule
from monitoring.tests.feedback_traffic import IP_A, IP_B, NOW
from monitoring.tests.sending_scenario import IP_C, a_day_of_sending
from monitoring.tests.sending_volume import complaint, mail_from, read_at, recipients, send
from monitoring.tests.traffic_logs import queue_id

pytestmark = pytest.mark.django_db

HELD = timedelta(minutes=11)  # both kinds wait 10 minutes before firing


def evaluate(at):
    alert_services.alerts_evaluate(now=at)


def alerts(kind):
    return {a.subject: a for a in Alert.objects.filter(rule__kind=f"monitoring.{kind}")}


def firing(kind):
    return {subject for subject, alert in alerts(kind).items() if alert.state == Alert.FIRING}


def test_an_ip_bouncing_over_5_percent_of_enough_recipients_fires_and_the_others_do_not():
    a_day_of_sending()
    evaluate(NOW)
    assert firing("ip_bounce_rate_high") == set()  # pending for its 10 minutes
    evaluate(NOW + HELD)
    found = alerts("ip_bounce_rate_high")
    assert firing("ip_bounce_rate_high") == {IP_B}
    assert found[IP_B].value == 12.4
    assert found[IP_B].summary == (
        "192.0.2.11: 31 hard bounce(s) of 250 recipient(s) tried in the last 24 hours (12.4 %, standby: the warmup "
        "gate pulls the IP)."
    )
    # A at 0.69 % is fine; C's 50 % of 40 recipients is below the minimum of 200: it says so and pages no one.
    assert IP_A not in found
    assert firing("ip_bounce_rate_high") == {IP_B}


def test_complaints_fire_for_the_ip_and_the_domain_that_reach_0_1_percent():
    a_day_of_sending()
    evaluate(NOW)
    evaluate(NOW + HELD)
    assert firing("complaint_rate_high") == {IP_A, "example.org"}
    found = alerts("complaint_rate_high")
    assert (found[IP_A].value, found["example.org"].value) == (0.154, 0.2)
    assert found["example.org"].summary == (
        "example.org: 2 complaint(s) of 1000 recipient(s) tried in the last 24 hours (0.2 %, bad: the warmup gate "
        "steps back)."
    )


def test_an_operator_can_lower_the_minimum_sample_or_raise_the_threshold():
    a_day_of_sending()
    evaluate(NOW)  # installs the rules
    AlertRule.objects.filter(kind="monitoring.ip_bounce_rate_high").update(thresholds={"minimum": 40})
    AlertRule.objects.filter(kind="monitoring.complaint_rate_high").update(thresholds={"percent": 0.3})
    evaluate(NOW + timedelta(minutes=1))
    evaluate(NOW + HELD + timedelta(minutes=1))
    assert firing("ip_bounce_rate_high") == {IP_B, IP_C}
    assert firing("complaint_rate_high") == set()


def test_an_ips_alert_resolves_when_its_day_passes_and_fires_again_on_the_same_row():
    a_day_of_sending()
    evaluate(NOW)
    evaluate(NOW + HELD)
    first = alerts("ip_bounce_rate_high")[IP_B]
    # A day later B's bad mail is out of the window: nothing to judge, the alert resolves.
    later = NOW + timedelta(days=1)
    evaluate(later)
    first.refresh_from_db()
    assert (first.state, firing("ip_bounce_rate_high")) == (Alert.RESOLVED, set())
    # B sends 300 more, 20 refused (6.7 %): the same alert fires again.
    send(mail_from(IP_B, later, queue_id(20), sender="bob@example.com", to=recipients("d", 300), hard=20))
    evaluate(later + timedelta(minutes=10))
    evaluate(later + timedelta(minutes=10) + HELD)
    assert firing("ip_bounce_rate_high") == {IP_B}
    assert Alert.objects.filter(rule__kind="monitoring.ip_bounce_rate_high", subject=IP_B).count() == 1
    first.refresh_from_db()
    assert (first.state, first.reopen_count) == (Alert.FIRING, 1)


def test_a_rate_that_falls_under_the_threshold_resolves():
    a_day_of_sending()
    evaluate(NOW)
    evaluate(NOW + HELD)
    assert "example.org" in firing("complaint_rate_high")
    # The newsletter goes to 1500 more people without a complaint: 2 of 2500 is 0.08 %, under 0.1 %.
    send(mail_from(IP_A, NOW + HELD, queue_id(30), sender="news@example.org", to=recipients("m", 1500)))
    evaluate(NOW + timedelta(hours=1))
    assert alerts("complaint_rate_high")["example.org"].state == Alert.RESOLVED
    # A's 2 of 2800 (0.07 %) too.
    assert firing("complaint_rate_high") == set()
    # One more complaint brings the domain (3 of 2500, 0.12 %) and A (3 of 2800, 0.107 %) back over the line.
    read_at(NOW + timedelta(hours=1), complaint(queue_id(30), "m5@example.net", IP_A))
    evaluate(NOW + timedelta(hours=1, minutes=1))
    evaluate(NOW + timedelta(hours=1, minutes=12))
    assert firing("complaint_rate_high") == {IP_A, "example.org"}
    assert {subject: alert.reopen_count for subject, alert in alerts("complaint_rate_high").items()} == {
        IP_A: 1,
        "example.org": 1,
    }
