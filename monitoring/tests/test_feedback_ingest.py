"""Bounces and complaints into the database (monitoring.feedback.feedback_ingest): each fixture stored once per
recipient with its kind, tied to the message the mail traffic holds (by queue ID, else Message-ID) and to the IP it
left from; a message read twice stores nothing more; refusals name the field."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError

from accounts.tests.factories import UserFactory
from monitoring import feedback, feedback_reports
from monitoring.models import FeedbackEvent, MailMessage
from monitoring.sending_results import ip_sending_results
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


@pytest.fixture(autouse=True)
def now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def traffic():
    the_fixtures_traffic()


def ingest(name, source="stdin"):
    return feedback.feedback_ingest(raw=fixture(name), source=source)


# fixture, [(kind, status or type, recipient, queue ID tied, sending IP)]
STORED = [
    (
        "postfix_failed.eml",
        [
            ("hard", "5.1.1", "bob@example.org", "4F1D33B5E2", IP_A),
            ("soft", "5.2.2", "carol@example.org", "4F1D33B5E2", IP_A),
        ],
    ),
    ("exim_failed.eml", [("hard", "5.1.1", "erin@example.net", "6C3F55D7A4", IP_B)]),  # by Received's queue ID
    ("gmail_failed.eml", [("hard", "5.1.1", "frank.nosuch@gmail.com", "7D4A66E8B5", IP_B)]),
    ("microsoft_ndr.eml", [("hard", "5.1.10", "henry@contoso.com", "", None)]),  # not in the log
    ("arf_yahoo.eml", [("complaint", "abuse", "kate@yahoo.com", "C29FBBD30A", IP_A)]),
    ("arf_microsoft_jmrp.eml", [("complaint", "abuse", "leo@hotmail.com", "D3A0CCE41B", IP_B)]),
    # Not in the log: its Source-IP (anyone can write one) is kept, but charged to no IP.
    ("arf_aol.eml", [("complaint", "abuse", "", "", None)]),
    ("postfix_delayed.eml", [("soft", "4.4.1", "dave@example.net", "5B2E44C6F3", None)]),
    ("auto_reply.eml", [("other", "", "", "", None)]),
    ("plain_message.eml", [("other", "", "", "", None)]),
]


@pytest.mark.parametrize("name, expected", STORED)
def test_each_report_is_stored_per_recipient_and_tied_to_the_message_and_ip(traffic, name, expected):
    done = ingest(name)
    assert not done.is_duplicate
    rows = FeedbackEvent.objects.order_by("position")
    got = [
        (
            e.kind,
            e.status or e.feedback_type,
            e.recipient,
            e.message.queue_id if e.message else e.queue_id,
            e.sending_ip,
        )
        for e in rows
    ]
    assert got == expected
    assert all(e.received_at == NOW and e.source == "stdin" and e.reason for e in rows)


def test_a_bounce_keeps_the_sender_its_domain_the_reason_and_the_remote_reply(traffic):
    ingest("gmail_failed.eml")
    event = FeedbackEvent.objects.get()
    assert (event.original_sender, event.sender_domain) == ("alice@example.com", "example.com")
    assert event.original_message_id == "7d4a66e8b5@example.com"
    assert event.reason == "5.1.1 failed: bad destination mailbox address (the address does not exist)"
    assert event.diagnostic.startswith("550-5.1.1 The email account that you tried to reach does not exist.")
    assert event.trace == "192.0.2.11/7D4A66E8B5"
    assert event.reporter == "googlemail.com"
    assert event.message.feedback_events.get() == event


def test_a_message_read_twice_is_stored_once_whatever_its_line_endings(traffic):
    first = ingest("postfix_failed.eml")
    again = feedback.feedback_ingest(raw=fixture("postfix_failed.eml").replace(b"\n", b"\r\n"), source="imap")
    assert (len(first.events), again.is_duplicate, again.events) == (2, True, [])
    assert FeedbackEvent.objects.count() == 2
    assert again.report.kind == "hard"  # still told what it is


def test_a_message_id_ties_a_report_whose_queue_id_the_log_does_not_know():
    # The NDR names queue ID 9F6C88A0D7 in a Received header; the log knows the message under another queue ID.
    ingest_lines(
        sent(
            datetime(2026, 12, 7, 12, 20, 27, tzinfo=UTC),
            "1A2B3C4D5E",
            ["henry@contoso.com"],
            IP_B,
            message_id="9f6c88a0d7@example.com",
        )
    )
    ingest("microsoft_ndr.eml")
    event = FeedbackEvent.objects.get()
    assert (event.message.queue_id, event.sending_ip, event.queue_id) == ("1A2B3C4D5E", IP_B, "1A2B3C4D5E")


def test_a_queue_id_used_again_ties_to_the_message_whose_message_id_agrees():
    # Postfix used 6C3F55D7A4 again later for another message: the report's Message-ID picks the right one.
    first = datetime(2026, 12, 7, 9, 12, 42, tzinfo=UTC)
    ingest_lines(sent(first, "6C3F55D7A4", ["erin@example.net"], IP_B))
    ingest_lines(
        sent(first + timedelta(hours=2), "6C3F55D7A4", ["zed@example.net"], IP_A, message_id="other@example.com")
    )
    ingest("exim_failed.eml")
    event = FeedbackEvent.objects.get()
    assert (event.message.first_seen_at, event.sending_ip) == (first, IP_B)


def test_a_message_sent_after_the_report_is_not_the_one_it_tells_of():
    ingest_lines(sent(NOW + timedelta(hours=1), "6C3F55D7A4", ["erin@example.net"], IP_B))
    assert MailMessage.objects.get().first_seen_at > NOW
    ingest("exim_failed.eml")
    assert FeedbackEvent.objects.get().message is None


def test_a_redacted_complaint_takes_the_recipient_of_the_message_it_is_tied_to():
    ingest_lines(
        sent(
            datetime(2026, 12, 8, 11, 12, 43, tzinfo=UTC),
            "E4B1DDF52C",
            ["olga@aol.com"],
            IP_B,
            sender="news@example.com",
        )
    )
    ingest("arf_aol.eml")
    event = FeedbackEvent.objects.get()
    # The message's own IP, not the report's Source-IP (which the loop saw): the traffic knows which transport sent it.
    assert (event.recipient, event.sending_ip, event.source_ip) == ("olga@aol.com", IP_B, IP_A)


def test_a_message_sent_from_several_ips_gives_the_recipients_own():
    at = datetime(2026, 12, 7, 9, 12, 42, tzinfo=UTC)
    qid, recipients = "6C3F55D7A4", ["someone@example.net", "erin@example.net"]
    lines = submission(at, qid, "alice@example.com", recipients)
    lines.append(attempt(at + timedelta(seconds=1), qid, "someone@example.net", "sent", service=transport(IP_A)))
    lines.append(attempt(at + timedelta(seconds=2), qid, "erin@example.net", "sent", service=transport(IP_B)))
    lines.append(removed(at + timedelta(seconds=3), qid))
    ingest_lines(lines)
    assert set(MailMessage.objects.get().attempts.values_list("sending_ip", flat=True)) == {IP_A, IP_B}
    ingest("exim_failed.eml")
    assert FeedbackEvent.objects.get().sending_ip == IP_B


def test_a_bounce_for_a_recipient_the_message_did_not_have_is_tied_to_nothing():
    at = datetime(2026, 12, 7, 9, 12, 42, tzinfo=UTC)
    qid = "6C3F55D7A4"
    lines = submission(at, qid, "alice@example.com", ["a@example.net", "b@example.net"])
    lines.append(attempt(at + timedelta(seconds=1), qid, "a@example.net", "deferred", service=transport(IP_A)))
    lines.append(attempt(at + timedelta(seconds=2), qid, "a@example.net", "sent", service=transport(IP_A)))
    lines.append(attempt(at + timedelta(seconds=3), qid, "b@example.net", "sent", service=transport(IP_B)))
    lines.append(removed(at + timedelta(seconds=4), qid))
    ingest_lines(lines)
    ingest("exim_failed.eml")  # for erin@example.net, whom the log does not show
    event = FeedbackEvent.objects.get()
    assert (event.message, event.sending_ip, event.recipient) == (None, None, "erin@example.net")
    assert event.reason.endswith("; erin@example.net: not a recipient of message 6C3F55D7A4; not counted")


def test_a_dsn_quoting_a_real_message_id_counts_only_the_recipients_the_message_had():
    # The reviewer's repro: one DSN quoting our Message-ID, for one real recipient and 300 made up.
    ingest_lines(sent(NOW - timedelta(hours=2), "AB12CD34F2", ["r0@example.org", "r1@example.org"], IP_A))
    made_up = [f"fake{n}@nowhere.test" for n in range(300)]
    done = feedback.feedback_ingest(
        raw=dsn(["R1@Example.org", *made_up], message_id="ab12cd34f2@example.com"), source="x"
    )
    assert len(done.events) == 301
    tied = FeedbackEvent.objects.exclude(message=None)
    assert [(e.recipient, e.message.queue_id, e.sending_ip) for e in tied] == [("r1@example.org", "AB12CD34F2", IP_A)]
    untied = FeedbackEvent.objects.filter(message=None, sending_ip=None, recipient__in=made_up)
    assert untied.count() == 300
    assert untied.filter(reason__endswith="not a recipient of message AB12CD34F2; not counted").count() == 300
    assert ip_sending_results([IP_A], NOW - timedelta(days=1), NOW + timedelta(seconds=1))[IP_A]["hard_bounces"] == 1


def test_a_recipient_is_known_by_the_original_address_postfix_logged():
    at = NOW - timedelta(hours=2)
    lines = submission(at, "AB12CD34F2", "alice@example.com", ["list@example.org"])
    lines.append(
        attempt(at + timedelta(seconds=1), "AB12CD34F2", "dan@example.org", "sent", service=transport(IP_B)).replace(
            "relay=", "orig_to=<list@example.org>, relay="
        )
    )
    ingest_lines(lines)
    assert MailMessage.objects.get().attempts.get().orig_recipient == "list@example.org"
    feedback.feedback_ingest(
        raw=dsn([("x@elsewhere.test", "list@example.org")], message_id="ab12cd34f2@example.com"), source="x"
    )
    event = FeedbackEvent.objects.get()
    assert (event.recipient, event.message.queue_id, event.sending_ip) == ("dan@example.org", "AB12CD34F2", IP_B)


def test_a_complaint_tied_to_no_message_keeps_its_source_ip_but_is_charged_to_none():
    done = feedback.feedback_ingest(raw=arf("victim@evil.test", source_ip=IP_A), source="forged")
    [event] = done.events
    assert (event.kind, event.message, event.sending_ip, event.source_ip) == ("complaint", None, None, IP_A)
    assert event.reason == (
        "abuse complaint (the recipient reported it as spam), from loop/1.0; tied to no message we sent: counted for "
        "no IP"
    )
    assert ip_sending_results([IP_A], NOW - timedelta(days=1), NOW + timedelta(seconds=1))[IP_A]["complaints"] == 0


def test_a_redacted_complaint_about_a_message_with_several_recipients_is_tied_to_nothing():
    ingest_lines(sent(NOW - timedelta(hours=2), "AB12CD34F2", ["r0@example.org", "r1@example.org"], IP_A))
    feedback.feedback_ingest(raw=arf("", message_id="ab12cd34f2@example.com"), source="x")
    event = FeedbackEvent.objects.get()
    assert (event.message, event.sending_ip) == (None, None)
    assert event.reason.endswith("; no recipient named: not a recipient of message AB12CD34F2; not counted")


def test_the_recipient_blocks_past_the_cap_are_ignored_and_each_event_says_so(monkeypatch):
    monkeypatch.setattr(feedback_reports, "MAX_RECIPIENT_BLOCKS", 3)
    done = feedback.feedback_ingest(raw=dsn([f"r{n}@example.org" for n in range(10)]), source="x")
    assert [e.recipient for e in done.events] == ["r0@example.org", "r1@example.org", "r2@example.org"]
    assert all(e.reason.endswith("; 7 more recipient blocks ignored (at most 3 read)") for e in done.events)


@pytest.mark.parametrize(
    "raw, source, field, message",
    [
        (b"", "stdin", "raw", "the message is empty."),
        (b"  \n", "stdin", "raw", "the message is empty."),
        (b"Subject: x\n\nbody", "", "source", "a source is 1 to 200 characters."),
        (b"Subject: x\n\nbody", "x" * 201, "source", "a source is 1 to 200 characters."),
        ("text", "stdin", "raw", "the message must be given as bytes."),
    ],
)
def test_bad_input_is_refused_naming_the_field(raw, source, field, message):
    with pytest.raises(ValidationError) as refused:
        feedback.feedback_ingest(raw=raw, source=source)
    assert refused.value.message_dict == {field: [message]}
    assert not FeedbackEvent.objects.exists()


def test_a_message_over_the_size_limit_is_refused(monkeypatch):
    monkeypatch.setattr(feedback, "MAX_REPORT_BYTES", 1000)
    with pytest.raises(ValidationError) as refused:
        feedback.feedback_ingest(raw=fixture("postfix_failed.eml"), source="stdin")
    assert refused.value.message_dict["raw"][0].endswith("a report is at most 1,000 bytes.")


def test_only_who_may_add_bounces_and_complaints_may_ingest_them():
    person = UserFactory(email="ops@example.com", is_staff=True)
    with pytest.raises(ValidationError) as refused:
        feedback.feedback_ingest(actor=person, raw=fixture("arf_yahoo.eml"), source="stdin")
    assert "monitoring.add_feedbackevent" in str(refused.value)
    person.user_permissions.add(Permission.objects.get(codename="add_feedbackevent"))
    person = type(person).objects.get(pk=person.pk)  # permissions are cached per instance
    assert feedback.feedback_ingest(actor=person, raw=fixture("arf_yahoo.eml"), source="stdin").events
