"""The warmup gates' hook (MonitoringConfig.ip_sending_results, monitoring.sending_results): per sending IP, the
recipients tried and the synchronous hard bounces from the mail traffic, and the bounces and complaints that came
back by mail, from real rows (a log ingested, the fixtures' reports ingested)."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.apps import apps

from monitoring import feedback
from monitoring.tests.feedback_traffic import (
    IP_A,
    IP_B,
    NOW,
    arf,
    dsn,
    fixture,
    sent,
    the_fixtures_traffic,
    transport,
)
from monitoring.tests.traffic_logs import attempt, ingest_lines, removed, submission

pytestmark = pytest.mark.django_db

DAY_START = NOW - timedelta(days=3)  # every fixture's message and report lies after it
EVERY_REPORT = [
    "postfix_failed.eml",  # our Postfix's DSN for bob (5.1.1) and carol (5.2.2), both refused at SMTP: in the log
    "exim_failed.eml",  # erin, accepted by B's next hop, then bounced: a late hard bounce for B
    "gmail_failed.eml",  # frank, likewise for B
    "gmail_over_quota.eml",  # grace: soft, and not in the log
    "microsoft_ndr.eml",  # henry: hard, but not in the log: no IP
    "arf_yahoo.eml",  # kate's complaint, A
    "arf_microsoft_jmrp.eml",  # leo's complaint, B
    "arf_aol.eml",  # not in the log: tied to no message, so to no IP (its Source-IP, A, is anyone's to write)
    "postfix_delayed.eml",  # soft
    "auto_reply.eml",
]


def hook(addresses, since=DAY_START, until=NOW + timedelta(seconds=1)):
    return apps.get_app_config("monitoring").ip_sending_results(addresses, since, until)


@pytest.fixture
def everything():
    with time_machine.travel(NOW, tick=False):
        the_fixtures_traffic()
        for name in EVERY_REPORT:
            feedback.feedback_ingest(raw=fixture(name), source="test")


def test_each_ip_gets_its_attempts_hard_bounces_and_complaints(everything):
    assert hook([IP_A, IP_B]) == {
        # bob, carol, kate; bob refused 5.1.1 at SMTP, counted once though our DSN came back too (carol's 5.2.2 is
        # soft); kate's complaint (AOL's is tied to no message of ours).
        IP_A: {"attempts": 3, "hard_bounces": 1, "complaints": 1},
        # erin, frank, leo; erin's and frank's bounces came back by mail; leo's complaint.
        IP_B: {"attempts": 3, "hard_bounces": 2, "complaints": 1},
    }


def test_an_ip_that_sent_nothing_has_zeros_and_the_keys_are_the_addresses_as_asked(everything):
    assert hook(["192.0.2.99", "2001:DB8::1"]) == {
        "192.0.2.99": {"attempts": 0, "hard_bounces": 0, "complaints": 0},
        "2001:DB8::1": {"attempts": 0, "hard_bounces": 0, "complaints": 0},
    }
    assert hook([]) == {}


def test_the_window_counts_attempts_by_their_time_and_reports_by_when_they_were_read(everything):
    # Dec 7 from 00:00 to 12:00: erin's and frank's attempts (B); nothing of A; the reports were read on Dec 8.
    since, until = datetime(2026, 12, 7, tzinfo=UTC), datetime(2026, 12, 7, 12, tzinfo=UTC)
    assert hook([IP_A, IP_B], since, until) == {
        IP_A: {"attempts": 0, "hard_bounces": 0, "complaints": 0},
        IP_B: {"attempts": 2, "hard_bounces": 0, "complaints": 0},
    }
    # The moment the reports were read is inside [since, until) only when until is after it.
    assert hook([IP_B], NOW - timedelta(hours=1), NOW)[IP_B]["complaints"] == 0
    assert hook([IP_B], NOW, NOW + timedelta(hours=1))[IP_B] == {"attempts": 0, "hard_bounces": 2, "complaints": 1}


def test_a_recipient_retried_after_deferrals_counts_once_and_a_full_mailbox_is_no_hard_bounce():
    at = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
    qid, out = "5E6F7A8B9C", transport(IP_A)
    lines = submission(at, qid, "alice@example.com", ["x@example.org", "y@example.org", "z@example.org"])
    lines += [
        attempt(at + timedelta(seconds=1), qid, "x@example.org", "deferred", service=out),
        attempt(at + timedelta(seconds=2), qid, "x@example.org", "deferred", service=out),
        attempt(at + timedelta(seconds=3), qid, "x@example.org", "sent", service=out),
        attempt(at + timedelta(seconds=4), qid, "y@example.org", "bounced", dsn="5.2.2", service=out),
        attempt(at + timedelta(seconds=5), qid, "z@example.org", "bounced", dsn="5.7.1", service=out),
        removed(at + timedelta(seconds=6), qid),
    ]
    ingest_lines(lines)
    assert hook([IP_A]) == {IP_A: {"attempts": 3, "hard_bounces": 1, "complaints": 0}}


def test_mail_through_the_plain_smtp_transport_counts_for_no_ip():
    ingest_lines(sent(datetime(2026, 12, 8, 8, 0, tzinfo=UTC), "6D7E8F9A0B", ["p@example.org"], IP_A)[:3])
    ingest_lines(
        [attempt(datetime(2026, 12, 8, 8, 0, 1, tzinfo=UTC), "6D7E8F9A0B", "p@example.org", "bounced", service="smtp")]
    )
    assert hook([IP_A])[IP_A] == {"attempts": 0, "hard_bounces": 0, "complaints": 0}


def test_an_address_that_is_not_one_is_refused_naming_it():
    with pytest.raises(ValueError, match="addresses: 'mx1' is not an IP address"):
        hook(["mx1"])


def test_a_recipient_counts_once_however_many_reports_tell_of_it_whatever_their_bytes():
    at = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
    ingest_lines(sent(at, "AB12CD34F2", ["r0@example.org", "r1@example.org"], IP_A))
    mid = "ab12cd34f2@example.com"
    with time_machine.travel(NOW, tick=False):
        for n in range(5):  # the same bounce and complaint, each copy a message of its own (another subject)
            feedback.feedback_ingest(raw=dsn(["r0@example.org"], message_id=mid, subject=f"bounce {n}"), source="x")
            feedback.feedback_ingest(raw=dsn(["R0@example.org"], message_id=mid, subject=f"again {n}"), source="x")
            feedback.feedback_ingest(raw=arf("r1@example.org", message_id=mid) + b"\n" * (n + 1), source="x")
    assert hook([IP_A]) == {IP_A: {"attempts": 2, "hard_bounces": 1, "complaints": 1}}
    with time_machine.travel(NOW, tick=False):  # the other recipient's are counted as theirs
        feedback.feedback_ingest(raw=dsn(["r1@example.org"], message_id=mid), source="x")
        feedback.feedback_ingest(raw=arf("r0@example.org", message_id=mid), source="x")
    assert hook([IP_A]) == {IP_A: {"attempts": 2, "hard_bounces": 2, "complaints": 2}}
