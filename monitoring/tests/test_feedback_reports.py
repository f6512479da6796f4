"""The bounce and complaint parser (monitoring.feedback_reports), table-driven over raw messages in the shapes real
MTAs and feedback loops send (feedback_fixtures/): each classified with its reason, and the identifiers that tie it
back to the message we sent. Pure: no database."""

from pathlib import Path

import pytest

from monitoring.feedback_reports import (
    COMPLAINT,
    HARD,
    MAX_RECIPIENT_BLOCKS,
    OTHER,
    SOFT,
    best_status,
    parse_report,
    status_kind,
    verp_recipient,
)
from monitoring.tests.feedback_traffic import dsn

FIXTURES = Path(__file__).parent / "feedback_fixtures"


def fixture(name):
    return (FIXTURES / name).read_bytes()


# name, kind, first reason words, [(recipient, kind, status)], reporter
CLASSIFIED = [
    (
        "postfix_failed.eml",
        HARD,
        "5.1.1 failed: bad destination mailbox address",
        [("bob@example.org", HARD, "5.1.1"), ("carol@example.org", SOFT, "5.2.2")],
        "mail.example.com",
    ),
    ("postfix_delayed.eml", SOFT, "4.4.1 delayed: no answer from host", [("dave@example.net", SOFT, "4.4.1")], ""),
    # Exim writes Status 5.0.0; the remote's 550 5.1.1 in the Diagnostic-Code is more precise.
    ("exim_failed.eml", HARD, "5.1.1 failed", [("erin@example.net", HARD, "5.1.1")], "mx.example.net"),
    ("gmail_failed.eml", HARD, "5.1.1 failed", [("frank.nosuch@gmail.com", HARD, "5.1.1")], "googlemail.com"),
    (
        "gmail_over_quota.eml",
        SOFT,
        "5.2.2 failed: mailbox full; counted as soft, as most ESPs do",
        [("grace@gmail.com", SOFT, "5.2.2")],
        "googlemail.com",
    ),
    (
        "microsoft_ndr.eml",
        HARD,
        "5.1.10 failed: addressing status",
        [("henry@contoso.com", HARD, "5.1.10")],
        "DB9PR01MB1234.eurprd01.prod.exchangelabs.com",
    ),
    ("yahoo_failed.eml", HARD, "5.0.0 failed", [("ivan.gone@yahoo.com", HARD, "5.0.0")], ""),
    ("arf_yahoo.eml", COMPLAINT, "abuse complaint", [("kate@yahoo.com", COMPLAINT, "")], "Yahoo!-Mail-Feedback/2.0"),
    ("arf_microsoft_jmrp.eml", COMPLAINT, "abuse complaint", [("leo@hotmail.com", COMPLAINT, "")], "Hotmail FBL"),
    # AOL-like loops redact the recipient.
    ("arf_aol.eml", COMPLAINT, "abuse complaint", [("", COMPLAINT, "")], "AOL SComp"),
    ("auto_reply.eml", OTHER, "auto-reply", [], ""),
    ("plain_message.eml", OTHER, "not a delivery or feedback report", [], ""),
    ("yahoo_failure_notice_plain.eml", OTHER, "a non-delivery notice without a machine-readable report", [], ""),
]


@pytest.mark.parametrize("name, kind, reason, recipients, reporter", CLASSIFIED)
def test_each_report_is_classified_with_its_reason(name, kind, reason, recipients, reporter):
    report = parse_report(fixture(name))
    assert report.kind == kind
    assert report.reason.startswith(reason), report.reason
    assert [(r.recipient, r.kind, r.status) for r in report.recipients] == recipients
    if reporter:
        assert report.reporter == reporter


# name, original Message-ID (no brackets), DSN queue id, queue ids in Received, trace, VERP tag, VERP recipient
TIE_BACKS = [
    ("postfix_failed.eml", "4f1d33b5e2@example.com", "4F1D33B5E2", ("4F1D33B5E2",), "192.0.2.10/4F1D33B5E2", "", ""),
    (
        "postfix_delayed.eml",
        "20261206230512.5B2E44C6F3@mail.example.com",
        "5B2E44C6F3",
        ("5B2E44C6F3",),
        "",
        "dave=example.net",
        "dave@example.net",
    ),
    # A remote Exim has no X-Postfix-Queue-ID: our Postfix's id is in the original's Received header.
    ("exim_failed.eml", "6c3f55d7a4@example.com", "", ("6C3F55D7A4",), "", "", ""),
    ("gmail_failed.eml", "7d4a66e8b5@example.com", "", ("7D4A66E8B5",), "192.0.2.11/7D4A66E8B5", "", ""),
    ("microsoft_ndr.eml", "9f6c88a0d7@example.com", "", ("9F6C88A0D7",), "", "", ""),
    ("yahoo_failed.eml", "a07d99b1e8@example.com", "", ("A07D99B1E8",), "", "", ""),
    (
        "arf_yahoo.eml",
        "c29fbbd30a@example.com",
        "",
        ("C29FBBD30A",),
        "192.0.2.10/C29FBBD30A",
        "kate=yahoo.com",
        "kate@yahoo.com",
    ),
    ("arf_microsoft_jmrp.eml", "d3a0cce41b@example.com", "", ("D3A0CCE41B",), "", "", ""),
    ("arf_aol.eml", "e4b1ddf52c@example.com", "", ("E4B1DDF52C",), "", "", ""),
]


@pytest.mark.parametrize("name, message_id, queue_id, received, trace, tag, verp", TIE_BACKS)
def test_the_identifiers_that_tie_a_report_to_our_message(name, message_id, queue_id, received, trace, tag, verp):
    report = parse_report(fixture(name))
    assert report.original_message_id == message_id
    assert report.queue_id == queue_id
    assert report.received_queue_ids == received
    assert report.trace == trace
    assert (report.verp_tag, report.verp_recipient) == (tag, verp)


def test_a_postfix_dsn_names_the_sender_its_diagnostic_and_the_remote_mta():
    report = parse_report(fixture("postfix_failed.eml"))
    assert report.original_sender == "alice@example.com"  # X-Postfix-Sender
    bob = report.recipients[0]
    assert bob.action == "failed"
    assert bob.remote_mta == "mx.example.org"
    assert bob.diagnostic == (
        "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown in virtual mailbox table"
    )
    assert report.recipient == "bob@example.org"  # the one the report's reason tells of
    assert report.reason.endswith("(and 1 more recipient in the report)")


def test_a_complaint_names_the_source_ip_reported_domain_and_feedback_type():
    report = parse_report(fixture("arf_yahoo.eml"))
    assert (report.feedback_type, report.source_ip, report.reported_domain) == ("abuse", "192.0.2.10", "example.com")
    assert report.original_sender == "bounces+kate=yahoo.com@example.com"  # Original-Mail-From, the return path
    assert parse_report(fixture("arf_aol.eml")).source_ip == "192.0.2.10"


def test_a_microsoft_ndr_with_crlf_line_endings_reads_like_any_other():
    raw = fixture("microsoft_ndr.eml")
    assert b"\r\n" in raw
    assert parse_report(raw) == parse_report(raw.replace(b"\r\n", b"\n"))


def _arf(feedback_type):
    return fixture("arf_yahoo.eml").replace(b"Feedback-Type: abuse", b"Feedback-Type: " + feedback_type)


@pytest.mark.parametrize(
    "feedback_type, kind, reason",
    [
        (b"abuse", COMPLAINT, "abuse complaint"),
        (b"fraud", COMPLAINT, "fraud report"),
        (b"virus", COMPLAINT, "virus report"),
        (b"not-spam", OTHER, "not-spam report"),
        (b"auth-failure", OTHER, "authentication failure report"),
        (b"other", OTHER, "feedback of type 'other'"),
        (b"opt-out", OTHER, "feedback of unknown type 'opt-out'"),
    ],
)
def test_only_abuse_fraud_and_virus_feedback_counts_as_a_complaint(feedback_type, kind, reason):
    report = parse_report(_arf(feedback_type))
    assert (report.kind, report.reason.split(",")[0].startswith(reason)) == (kind, True), report.reason


@pytest.mark.parametrize(
    "action, status, kind, reason",
    [
        ("failed", "5.1.1", HARD, "5.1.1 failed: bad destination mailbox address"),
        ("failed", "5.7.1", HARD, "5.7.1 failed: delivery not authorized"),
        ("failed", "5.4.4", HARD, "5.4.4 failed: unable to route"),
        ("failed", "5.9.9", HARD, "5.9.9 failed: unknown status"),
        ("Failed", "5.2.2", SOFT, "5.2.2 failed: mailbox full; counted as soft"),
        ("failed", "5.2.1", HARD, "5.2.1 failed: mailbox disabled"),
        ("failed", "4.4.1", SOFT, "4.4.1 failed after retrying (the message expired in the queue)"),
        ("failed", "", HARD, "failed, without a status code"),
        ("failed", "2.0.0", OTHER, "2.0.0 failed with a success status"),
        ("delayed", "4.7.0", SOFT, "4.7.0 delayed: other or undefined security status"),
        ("delayed", "", SOFT, "delayed: still being retried"),
        ("delivered", "2.0.0", OTHER, "delivered: a success notification"),
        ("relayed", "2.0.0", OTHER, "relayed: a success notification"),
        ("expanded", "2.0.0", OTHER, "expanded: a success notification"),
        ("", "5.1.1", OTHER, "no Action field"),
        ("bounced", "5.1.1", OTHER, "unknown action 'bounced'"),
    ],
)
def test_a_recipients_action_and_status_decide_its_kind(action, status, kind, reason):
    got_kind, got_reason = status_kind(action, status)
    assert got_kind == kind
    assert got_reason.startswith(reason), got_reason


@pytest.mark.parametrize(
    "field, diagnostic, status",
    [
        ("5.1.1", "smtp; 550 5.1.1 User unknown", "5.1.1"),
        ("5.0.0", "550 5.1.1 <erin@example.net>: User unknown", "5.1.1"),  # Exim's generic status made precise
        ("5.0.0", "554 delivery error: dd Not a valid recipient", "5.0.0"),
        ("5.0.0", "450 4.2.0 try later", "5.0.0"),  # never another class than the field's
        ("", "552-5.2.2 The recipient's inbox is out of storage space", "5.2.2"),
        ("5.1.10 (RecipientNotFound)", "", "5.1.10"),
        ("5.01.001", "", "5.1.1"),
        ("", "550 User unknown", ""),
        ("garbage", "192.0.2.10 said 5.1.1.1", ""),  # an IP address is no status code
    ],
)
def test_the_status_comes_from_the_field_made_precise_by_the_diagnostic(field, diagnostic, status):
    assert best_status(field, diagnostic) == status


@pytest.mark.parametrize(
    "address, tag, recipient",
    [
        ("bounces+bob=example.org@example.com", "bob=example.org", "bob@example.org"),
        ("bounces+a.b+c=mail.example.org@example.com", "a.b+c=mail.example.org", "a.b+c@mail.example.org"),
        ("bounces+7f3a9c@example.com", "7f3a9c", ""),
        ("alice@example.com", "", ""),
        ("", "", ""),
    ],
)
def test_a_verp_return_path_tells_the_recipient(address, tag, recipient):
    assert verp_recipient(address) == (tag, recipient)


DSN_HEAD = (
    b"From: MAILER-DAEMON@mail.example.com\nSubject: Undelivered\nMIME-Version: 1.0\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
)


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"", "empty message"),
        (b"   \r\n\r\n", "empty message"),
        (b"\x00\xff\xfe binary junk \x00", "not an email message: no header fields"),
        (b"just some text without a header\n", "not an email message"),
        (DSN_HEAD, "a delivery-status report without its message/delivery-status part"),
        (DSN_HEAD + b"--B\nContent-Type: message/delivery-status\n\n\n--B--\n", "an empty delivery-status part"),
        (
            DSN_HEAD + b"--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\n--B--\n",
            "a delivery-status report without a per-recipient block",
        ),
        (
            b'Content-Type: multipart/report; report-type=feedback-report; boundary="B"\n\n--B\n'
            b"Content-Type: text/plain\n\nhello\n--B--\n",
            "a feedback report without its message/feedback-report part",
        ),
        (
            b'Content-Type: multipart/report; report-type=disposition-notification; boundary="B"\n\n--B--\n',
            "a report of type 'disposition-notification'",
        ),
        (
            b'Content-Type: multipart/report; report-type=feedback-report; boundary="B"\n\n--B\n'
            b"Content-Type: message/feedback-report\n\nUser-Agent: x\n--B--\n",
            "a feedback report without a Feedback-Type field",
        ),
        (DSN_HEAD + b"--B\n" * 5000, "a delivery-status report without its"),  # 5000 empty parts, never closed
        (b"Subject: =?utf-8?q?broken?=\xff\xfe\nContent-Type: text/plain\n\nhi", "not a delivery or feedback report"),
        ("a str, not bytes", "not a message: expected the raw bytes"),
    ],
)
def test_what_is_not_a_readable_report_is_other_with_a_reason_and_never_raises(raw, reason):
    report = parse_report(raw)
    assert report.kind == OTHER
    assert report.reason.startswith(reason), report.reason


def test_a_truncated_report_keeps_what_it_could_read():
    raw = fixture("postfix_failed.eml")
    cut = raw[: raw.index(b"Final-Recipient: rfc822; carol")]
    report = parse_report(cut)
    assert [(r.recipient, r.kind) for r in report.recipients] == [("bob@example.org", HARD)]


def test_deeply_nested_parts_are_other_not_a_crash():
    nested = b"Content-Type: multipart/mixed; boundary=b0\n\n"
    for depth in range(1, 400):
        nested += f"--b{depth - 1}\nContent-Type: multipart/mixed; boundary=b{depth}\n\n".encode()
    report = parse_report(nested)
    assert report.kind == OTHER


def test_a_report_forwarded_inside_another_message_is_found_but_not_the_original_inside_a_report():
    # A bounce of a bounce: the report is the outer DSN (to carol), not the one attached as the original.
    inner = fixture("postfix_failed.eml")
    outer = fixture("exim_failed.eml")
    attached = outer.index(b"Content-type: message/rfc822\n\n") + len(b"Content-type: message/rfc822\n\n")
    raw = outer[:attached] + inner + b"\n--1796721164-eximdsn-1804289383--\n"
    report = parse_report(raw)
    assert [r.recipient for r in report.recipients] == ["erin@example.net"]


def test_headers_with_encoded_words_and_control_characters_come_out_as_one_clean_line():
    raw = fixture("arf_yahoo.eml").replace(
        b"Subject: FW: Weekly offers", b"Subject: =?utf-8?q?Caf=C3=A9_offers?=\x1b[31m\n\tfolded"
    )
    assert parse_report(raw).subject == "Café offers [31m folded"


@pytest.mark.parametrize(
    "count, ignored_note",
    [
        (MAX_RECIPIENT_BLOCKS, ""),
        (MAX_RECIPIENT_BLOCKS + 1, "; 1 more recipient block ignored (at most 1,000 read)"),
        (MAX_RECIPIENT_BLOCKS + 2500, "; 2,500 more recipient blocks ignored (at most 1,000 read)"),
    ],
)
def test_at_most_a_thousand_recipient_blocks_are_read_and_the_reason_says_how_many_were_ignored(count, ignored_note):
    report = parse_report(dsn([f"r{n}@example.org" for n in range(count)]))
    assert [r.recipient for r in report.recipients] == [f"r{n}@example.org" for n in range(MAX_RECIPIENT_BLOCKS)]
    assert report.ignored_recipients == count - MAX_RECIPIENT_BLOCKS
    more = MAX_RECIPIENT_BLOCKS - 1
    assert report.reason == (
        f"5.1.1 failed: bad destination mailbox address (the address does not exist) (and {more} more recipients in "
        f"the report){ignored_note}"
    )
