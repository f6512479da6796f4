"""manage.py traffic (totals as pflogsumm counts them, breakdowns, text and JSON) and manage.py traffic search (each
matching message's story); bad input names the option, exits 1 and shows no traceback."""

import json
import os
import subprocess
import sys

import pytest
import time_machine
from django.conf import settings
from django.core.management.base import CommandError

from accounts.tests.factories import UserFactory
from monitoring.tests.factories import run
from monitoring.tests.traffic_logs import AFTER_SAMPLES, DMS, REAL_POSTFIX, ingest_file, pflogsumm_totals

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def after_the_samples():
    with time_machine.travel(AFTER_SAMPLES, tick=False):
        yield


def traffic(*args):
    return run("traffic", *args)


def test_json_has_the_totals_first_with_pflogsumms_keys_and_counts():
    ingest_file(REAL_POSTFIX)
    data = json.loads(traffic("--since", "30d", "--json"))
    assert list(data)[0] == "totals"
    expected = pflogsumm_totals(REAL_POSTFIX)
    for key in ("received", "delivered", "forwarded", "deferred", "deferrals", "bounced", "rejected"):
        assert data["totals"][key] == expected[key], key
    assert data["totals"]["delivered_local"] + data["totals"]["delivered_remote"] == data["totals"]["delivered"]
    assert data["read_from"] == "raw"
    assert data["rates"]["bounce_rate"] == pytest.approx(2 / 15, abs=1e-4)  # 11 delivered, 2 bounced, 2 expired


def test_the_bench_finds_the_totals_in_the_json():
    """bench/maillog_ingest.py looks for the first object with pflogsumm's keys: it must be the totals."""
    sys.path.insert(0, str(settings.BASE_DIR / "bench"))
    try:
        import maillog_ingest
    finally:
        sys.path.remove(str(settings.BASE_DIR / "bench"))
    ingest_file(DMS)
    data = json.loads(traffic("--since", "30d", "--json", "--by", "domain"))
    assert maillog_ingest.find_totals(data) is data["totals"]


def test_text_shows_the_grand_totals_and_the_breakdowns_asked_for():
    ingest_file(DMS)
    out = traffic("--since", "10d", "--by", "domain", "--by", "ip")
    assert "Mail traffic from 2026-12-02 00:00:00 to 2026-12-12 00:00:00 (raw rows)." in out
    assert "  received                      6" in out
    assert "  delivered                     6   local 3, remote 3" in out
    assert "  deferred                      2   2 deferrals" in out
    assert "  rejected                      3   33 % (postscreen included)" in out
    assert "By sender's domain (7):" in out and "By recipient's domain" in out
    assert "By sending IP (3):" in out
    assert "(no pooled IP)" in out
    assert "  bounce rate              12.5 %   deferral rate 22.2 %" in out


def test_a_range_with_nothing_in_it_prints_zeros():
    out = traffic("--since", "1h", "--by", "sender")
    assert "  received                      0" in out
    assert "(nothing in this range)" in out


def test_search_prints_each_matching_messages_story():
    ingest_file(DMS)
    out = traffic("search", "--to", "erin@example.net")
    lines = out.splitlines()
    assert lines[0] == (
        "Message 6C3D4E5F6A (log source local): from <alice@example.com>, Message-ID <d3b07384-0002@example.com>, out"
    )
    assert lines[1] == (
        "  2026-12-06 09:10:00  received by postfix/submission/smtpd, from unknown[198.51.100.23], SASL user "
        "alice@example.com, 1,999 bytes, 1 recipient(s)"
    )
    assert lines[2] == (
        "  2026-12-06 09:10:01  to <erin@example.net>: deferred via mx.example.net[198.51.100.80]:25 "
        "(out-192-0-2-11, sending IP 192.0.2.11), delay 1.4 s, dsn 4.2.0"
    )
    assert "Greylisted" in lines[3]
    assert lines[4].startswith("  2026-12-06 09:15:03  to <erin@example.net>: sent via")
    assert lines[6] == "  Now: Delivered (recipients: sent 1). Left the queue 2026-12-06 09:15:03."


def test_search_by_address_shows_mail_refused_at_smtp():
    ingest_file(DMS)
    out = traffic("search", "--from", "spam@example.biz")
    assert "Refused, warned, held or discarded at SMTP:" in out
    assert (
        "  2026-12-06 09:41:00  refused at RCPT: <spam@example.biz> -> <x@elsewhere.example> from "
        "unknown[203.0.113.10]: 554 5.7.1 <x@elsewhere.example>: Relay access denied" in out
    )


def test_search_json_gives_the_stories():
    ingest_file(DMS)
    data = json.loads(traffic("search", "--queue-id", "9F6A7B8C9D", "--json"))
    story = data["messages"][0]
    assert story["reception"]["received_by"] == "postfix/pickup"
    assert [a["status"] for a in story["attempts"]] == ["deferred", "expired"]
    assert story["final"]["state"] == "expired"
    assert story["final"]["removed_at"] == "2026-12-11T09:30:30.620000+00:00"
    assert data["truncated"] is False


def test_search_finding_nothing_says_so():
    ingest_file(DMS)
    assert traffic("search", "--to", "nobody@example.org", "--status", "deferred") == "No message matches.\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--since", "yesterday"], "--since: 'yesterday' is neither a duration"),
        (["--since", "1h", "--until", "2h"], "--since: must be before until"),
        (["--limit", "0"], "--limit: must be at least 1."),
        (["search", "--to", "erin"], "--to: 'erin' is not an email address"),
        (["search", "--from", "a@b c"], "--from: 'a@b c' is not an email address"),
        (["search", "--status", "lost"], "--status: 'lost' is not one of queued, delivered"),
        (["search", "--queue-id", "x"], "--queue-id: 'x' is not a Postfix queue ID"),
        (["search", "--until", "soon"], "--until: 'soon' is neither a duration"),
        (["--since", ""], "--since: '' is neither a duration"),
        (["search", "--since", " "], "--since: ' ' is neither a duration"),
    ],
)
def test_bad_input_is_refused_naming_the_option(args, message):
    with pytest.raises(CommandError) as caught:
        traffic(*args)
    assert str(caught.value).startswith(message)


def test_a_refusal_exits_1_without_a_traceback():
    env = {**os.environ, "DEBUG": "1", "DOCKSPACE_DATA_DIR": os.environ["DOCKSPACE_DATA_DIR"]}
    done = subprocess.run(
        [sys.executable, "manage.py", "traffic", "search", "--to", "not-an-address"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "--to: 'not-an-address' is not an email address" in done.stderr
    assert "Traceback" not in done.stderr


def test_as_a_staff_member_without_the_permission_it_is_refused():
    person = UserFactory(is_staff=True)
    with pytest.raises(CommandError) as caught:
        traffic("--as", person.email)
    assert "monitoring.view_mailmessage" in str(caught.value)


@pytest.mark.parametrize("where", ["before search", "after search"])
def test_as_applies_to_search_wherever_it_is_given(where):
    ingest_file(DMS)
    person = UserFactory(is_staff=True)
    for who, refusal in ((person.email, "monitoring.view_mailmessage"), ("nobody@x.test", "not an active staff")):
        args = ["--as", who, "search"] if where == "before search" else ["search", "--as", who]
        with pytest.raises(CommandError) as caught:
            traffic(*args, "--queue-id", "9F6A7B8C9D")
        assert refusal in str(caught.value)


def test_options_given_before_search_apply_to_it():
    ingest_file(DMS)
    everything = traffic("search", "--from", "<>")
    assert everything.count("Message ") >= 2
    later = traffic("--since", "2026-12-11", "--json", "search", "--from", "<>")
    stories = json.loads(later)["messages"]
    assert stories and all(m["message"]["last_seen_at"] >= "2026-12-11" for m in stories)
    assert len(stories) < everything.count("Message ")
    with pytest.raises(CommandError) as caught:
        traffic("--by", "status", "search", "--from", "<>")
    assert str(caught.value).startswith("--by: breakdowns go with the totals")


def test_a_notification_postfix_wrote_says_so():
    ingest_file(DMS)
    out = traffic("search", "--from", "<>", "--since", "2026-12-11")
    assert out.splitlines()[1] == (
        "  2026-12-11 09:30:30  written by Postfix (a notification to the sender), 2,410 bytes, 1 recipient(s)"
    )


@pytest.mark.parametrize(
    "args, field",
    [
        (["--since", "99999999999999999999"], "--since"),
        (["--since", "9999999999d"], "--since"),
        (["--since", "0001-01-01T00:00+01:00"], "--since"),
        (["--until", "9999-12-31T23:59:59-01:00"], "--until"),
        (["search", "--to", "a@b.example\x00"], "--to"),
        (["search", "--message-id", "a\x00b@example.com"], "--message-id"),
    ],
)
def test_absurd_or_binary_input_is_a_field_named_error_not_a_traceback(args, field):
    with pytest.raises(CommandError) as caught:
        run("traffic", *args)
    assert str(caught.value).startswith(f"{field}:")


HELD_AND_DISCARDED = [
    "2026-12-06T10:00:00.000001+00:00 mail postfix/smtpd[12]: NOQUEUE: hold: RCPT from unknown[127.0.0.9]: "
    "<review@example.com>: Recipient address triggers HOLD action; from=<news@example.net> to=<review@example.com> "
    "proto=ESMTP helo=<mta.example.net>",
    "2026-12-06T10:00:00.000002+00:00 mail postfix/smtpd[12]: 0674A20C27B: client=unknown[127.0.0.9]",
    "2026-12-06T10:00:00.000003+00:00 mail postfix/cleanup[17]: 0674A20C27B: message-id=<m8@example.net>",
    "2026-12-06T10:00:01.000001+00:00 mail postfix/smtpd[12]: 0737520C27D: client=unknown[127.0.0.9]",
    "2026-12-06T10:00:01.000002+00:00 mail postfix/cleanup[17]: 0737520C27D: discard: header Subject: Unsubscribe "
    "from unknown[127.0.0.9]; from=<list@example.net> to=<trap@example.com> proto=ESMTP helo=<mta.example.net>",
]


def test_held_and_discarded_messages_are_found_by_recipient_and_tell_what_happened():
    from monitoring.tests.traffic_logs import ingest_lines

    ingest_lines(HELD_AND_DISCARDED)
    held = traffic("search", "--to", "review@example.com")
    assert "Message 0674A20C27B (log source local): from <news@example.net>" in held
    assert "held at RCPT: <review@example.com>: Recipient address triggers HOLD action" in held
    assert "Now: Held in the hold queue by a HOLD action: `postsuper -H 0674A20C27B` on the mail host" in held
    discarded = traffic("search", "--to", "trap@example.com", "--status", "discarded")
    assert "Message 0737520C27D (log source local): from <list@example.net>" in discarded
    assert "discarded at header: -" in discarded
    assert "Now: Discarded by a DISCARD action" in discarded
    data = json.loads(traffic("--since", "2026-12-06", "--until", "2026-12-07", "--by", "reason", "--json"))
    assert (data["totals"]["held"], data["totals"]["discarded"], data["totals"]["reject_warnings"]) == (1, 1, 0)
    reasons = {row["key"]: row for row in data["breakdowns"]["reason"]["rows"]}
    hold = reasons["Recipient address triggers HOLD action"]
    assert (hold["rejected"], hold["warnings"], hold["held"], hold["discarded"]) == (0, 0, 1, 0)


def test_a_breakdown_asked_for_twice_is_shown_once():
    ingest_file(DMS)
    data = json.loads(
        traffic("--since", "2026-12-01", "--until", "2026-12-12", "--by", "status", "--by", "status", "--json")
    )
    assert list(data["breakdowns"]) == ["status"]
