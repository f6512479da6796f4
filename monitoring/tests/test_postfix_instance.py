"""The real-Postfix harness (monitoring/tests/postfix_instance.py) makes Postfix write each kind of line the mail
traffic parser reads: one private instance plays every case once, then each test checks that case's lines."""

import re
from datetime import UTC, datetime

import pytest

from monitoring.tests.postfix_instance import (
    BLACKHOLE,
    DENYLISTED_IP,
    LAPTOP_IP,
    OUTSIDE_IP,
    POOL_IP,
    POOL_TRANSPORT,
    QUARANTINE,
    PostfixInstance,
    play_every_case,
    requires_postfix,
)

pytestmark = requires_postfix


@pytest.fixture(scope="module")
def played():
    with PostfixInstance() as pf:
        yield pf, play_every_case(pf)


def lines_of(pf, queue_id):
    return [line for line in pf.log_lines() if f": {queue_id}: " in line]


def test_lines_are_stamped_as_dms_writes_them(played):
    pf, _ = played
    for line in pf.log_lines():
        stamp, host, program = line.split(" ", 3)[:3]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", stamp), line
        assert datetime.fromisoformat(stamp).utcoffset().total_seconds() == 0
        assert host == "mail", line
        assert re.fullmatch(r"postfix/[\w/-]+\[\d+\]:", program), line
    # postlogd's own lines keep its classic stamp (zero-padded day, whole seconds).
    assert all(re.match(r"[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d mail postfix/", line) for line in pf.raw_log_lines())


def test_mail_from_outside_passes_postscreen_and_is_delivered_over_lmtp(played):
    pf, cases = played
    assert any(
        re.search(rf"postfix/postscreen\[\d+\]: PASS NEW \[{OUTSIDE_IP}\]:\d+$", line) for line in pf.log_lines()
    )
    story = "\n".join(lines_of(pf, cases.inbound))
    assert "postfix/smtpd[" in story and f"{cases.inbound}: client=unknown[{OUTSIDE_IP}]" in story
    assert re.search(rf"postfix/cleanup\[\d+\]: {cases.inbound}: message-id=<[^>]+@example\.net>", story)
    assert re.search(rf"postfix/qmgr\[\d+\]: {cases.inbound}: from=<news@example\.net>, size=\d+, nrcpt=1", story)
    assert re.search(
        rf"postfix/lmtp\[\d+\]: {cases.inbound}: to=<alice@example\.com>, relay=mail\.example\.com\[[^\]]+/lmtp\], "
        r"delay=[\d.]+, delays=[\d./]+, dsn=2\.0\.0, status=sent \(250 2\.0\.0 <alice@example\.com> \S+ Saved\)",
        story,
    )
    assert story.endswith(f"{cases.inbound}: removed")


def test_a_delivery_through_an_alias_names_the_original_recipient(played):
    pf, cases = played
    story = "\n".join(lines_of(pf, cases.alias))
    assert "postfix/lmtp[" in story and "to=<bob@example.com>, orig_to=<info@example.com>" in story
    assert "to=<friend@example.net>, orig_to=<info@example.com>, relay=127.0.0.1[127.0.0.1]:" in story


def test_a_relay_attempt_and_an_unknown_mailbox_are_rejected_at_rcpt_without_a_queue_id(played):
    pf, cases = played
    assert cases.relay_denied.refused["victim@elsewhere.example"][0] == 554
    assert cases.unknown_user.refused["nobody@example.com"][0] == 550
    log = "\n".join(pf.log_lines())
    assert re.search(
        rf"postfix/smtpd\[\d+\]: NOQUEUE: reject: RCPT from unknown\[{OUTSIDE_IP}\]: 554 5\.7\.1 "
        r"<victim@elsewhere\.example>: Relay access denied; from=<spam@example\.net> to=<victim@elsewhere\.example> "
        r"proto=ESMTP helo=<mta\.example\.net>",
        log,
    )
    assert "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in virtual mailbox table" in log


def test_postscreen_rejects_a_denylisted_client(played):
    pf, cases = played
    assert cases.denylisted.refused["alice@example.com"][0] == 550
    log = "\n".join(pf.log_lines())
    assert re.search(rf"postfix/postscreen\[\d+\]: DENYLISTED \[{DENYLISTED_IP}\]:\d+", log)
    assert re.search(
        rf"postfix/postscreen\[\d+\]: NOQUEUE: reject: RCPT from \[{DENYLISTED_IP}\]:\d+: 550 5\.3\.2 Service "
        r"currently unavailable; from=<spam@spam\.example>, to=<alice@example\.com>, proto=ESMTP, helo=<",
        log,
    )


def test_a_header_check_rejects_the_message_at_cleanup(played):
    pf, cases = played
    assert cases.header_rejected.data_reply[0] == 550
    assert re.search(
        r"postfix/cleanup\[\d+\]: \w+: reject: header Subject: Cheap VIAGRA from unknown\[[\d.]+\]; "
        r"from=<promo@example\.net> to=<alice@example\.com> proto=ESMTP helo=<mta\.example\.net>: 5\.7\.1 Message "
        r"content rejected",
        "\n".join(pf.log_lines()),
    )


def test_a_submission_carries_the_sasl_user_under_the_submission_syslog_name(played):
    pf, cases = played
    story = "\n".join(lines_of(pf, cases.mixed))
    assert (
        "postfix/submission/smtpd[" in story
        and f"{cases.mixed}: client=unknown[{LAPTOP_IP}], sasl_method=PLAIN, sasl_username=alice@example.com" in story
    )
    assert re.search(rf"postfix/sender-cleanup/cleanup\[\d+\]: {cases.mixed}: message-id=<", story)
    assert "postfix/submission/smtpd" in "\n".join(
        line for line in pf.log_lines() if "Anonymous TLS connection established" in line
    )


def test_a_remote_550_bounces_the_recipient_and_the_sender_is_notified(played):
    pf, cases = played
    story = "\n".join(lines_of(pf, cases.mixed))
    assert re.search(
        rf"postfix/smtp\[\d+\]: {cases.mixed}: to=<reject\.me@example\.net>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, "
        r"delay=[\d.]+, delays=[\d./]+, dsn=5\.1\.1, status=bounced \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: "
        r"550-5\.1\.1 The email account that you tried to reach does not exist\..* \(in reply to RCPT TO command\)\)",
        story,
    )
    notification = re.search(rf"postfix/bounce\[\d+\]: {cases.mixed}: sender non-delivery notification: (\w+)", story)
    assert notification
    told = "\n".join(lines_of(pf, notification.group(1)))
    assert f"{notification.group(1)}: from=<>, size=" in told
    assert re.search(r"postfix/lmtp\[\d+\]: \w+: to=<alice@example\.com>, .*status=sent", told)


def test_a_greylisted_recipient_is_deferred_with_the_451_reply_then_sent_after_a_flush(played):
    pf, cases = played
    greylisted = [line for line in lines_of(pf, cases.mixed) if "to=<greylist.me@example.net>" in line]
    assert len(greylisted) == 2
    assert (
        "dsn=4.7.1, status=deferred (host 127.0.0.1[127.0.0.1] said: 451 4.7.1 <greylist.me@example.net>: "
        in (greylisted[0])
    )
    assert "dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as " in greylisted[1]
    # qmgr logs the message again each time it re-enters the active queue.
    assert sum(f"{cases.mixed}: from=<alice@example.com>" in line for line in lines_of(pf, cases.mixed)) >= 2


def test_mail_of_a_pooled_domain_leaves_through_its_transport_and_address(played):
    pf, cases = played
    assert re.search(
        rf"postfix/{POOL_TRANSPORT}/smtp\[\d+\]: {cases.pooled}: to=<dave@example\.net>, .*status=sent",
        "\n".join(lines_of(pf, cases.pooled)),
    )
    (received,) = [m for m in pf.remote.received if m.recipients == ["dave@example.net"]]
    assert (received.peer_ip, received.helo) == (POOL_IP, "out2.example.org")
    # Mail of the other domain leaves through the default transport and address.
    assert all(m.peer_ip == "127.0.0.1" for m in pf.remote.received if m.sender == "alice@example.com")


def test_mail_deferred_past_the_queue_lifetime_expires_and_is_returned_to_the_sender(played):
    pf, cases = played
    for queue_id, reply in (
        (cases.expiring, r"host 127\.0\.0\.1\[127\.0\.0\.1\] said: 451 4\.3\.0 "),
        (cases.refused, r"connect to 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: Connection refused"),
    ):
        story = "\n".join(lines_of(pf, queue_id))
        assert re.search(rf"status=deferred \({reply}", story)
        assert re.search(
            rf"postfix/qmgr\[\d+\]: {queue_id}: from=<alice@example\.com>, status=expired, returned to sender", story
        )
        assert re.search(rf"postfix/bounce\[\d+\]: {queue_id}: sender non-delivery notification: \w+", story)
        assert "status=bounced" not in story  # an expired recipient has deferrals only
        assert story.endswith(f"{queue_id}: removed")


def test_mail_from_sendmail_is_picked_up(played):
    pf, _ = played
    picked = [line for line in pf.log_lines() if re.search(r"postfix/pickup\[\d+\]: \w+: uid=0 from=<bob@", line)]
    assert len(picked) == 1
    queue_id = picked[0].split(": ")[1]
    assert re.search(
        r"postfix/lmtp\[\d+\]: \w+: to=<alice@example\.com>, .*status=sent", "\n".join(lines_of(pf, queue_id))
    )


def test_a_full_mailbox_bounces_and_the_notification_leaves_with_the_null_sender(played):
    pf, cases = played
    story = "\n".join(lines_of(pf, cases.quota))
    assert re.search(
        r"to=<full@example\.com>, relay=mail\.example\.com\[[^\]]+\], .*dsn=5\.2\.2, status=bounced \(host "
        r"mail\.example\.com\[[^\]]+\] said: 552 5\.2\.2 <full@example\.com> Quota exceeded",
        story,
    )
    notification = re.search(rf"{cases.quota}: sender non-delivery notification: (\w+)", story).group(1)
    told = "\n".join(lines_of(pf, notification))
    assert f"{notification}: from=<>, size=" in told
    assert re.search(r"postfix/smtp\[\d+\]: \w+: to=<sender@example\.net>, .*status=sent", told)
    assert any(m.sender == "" and m.recipients == ["sender@example.net"] for m in pf.remote.received)


def test_a_failed_sasl_login_is_logged_as_a_warning(played):
    pf, cases = played
    assert cases.auth_failed
    assert re.search(
        rf"postfix/submission/smtpd\[\d+\]: warning: unknown\[{LAPTOP_IP}\]: SASL PLAIN authentication failed: ",
        "\n".join(pf.log_lines()),
    )


def test_the_dms_view_of_the_log_hides_the_temporary_directory_and_ports(played):
    pf, _ = played
    shown = pf.dms_log()
    assert str(pf.base) not in shown
    assert "relay=mail.example.com[/var/run/dovecot/lmtp]" in shown
    assert f":{pf.remote_port}" not in shown and "relay=127.0.0.1[127.0.0.1]:25," in shown


def test_hold_and_discard_actions_are_logged_with_and_without_a_queue_id(played):
    pf, cases = played
    log = "\n".join(pf.log_lines())
    assert re.search(
        rf"postfix/cleanup\[\d+\]: {cases.held}: hold: header Subject: Invoice overdue from unknown\[{OUTSIDE_IP}\]; "
        r"from=<billing@example\.net> to=<alice@example\.com> proto=ESMTP helo=<mta\.example\.net>: looks like "
        r"invoice fraud",
        log,
    )
    assert rf"{cases.held}: released from hold" in log and f"{cases.held}: removed" in log
    assert re.search(rf"{cases.discarded}: discard: header Subject: Unsubscribe me from unknown\[{OUTSIDE_IP}\]", log)
    # At the first recipient smtpd has no queue file yet: the action comes first, then the message's client= line.
    for action, recipient, queue_id in (
        ("hold", QUARANTINE, cases.held_rcpt),
        ("discard", BLACKHOLE, cases.discarded_rcpt),
    ):
        assert re.search(
            rf"postfix/smtpd\[(\d+)\]: NOQUEUE: {action}: RCPT from unknown\[{OUTSIDE_IP}\]: <{re.escape(recipient)}>: "
            rf"Recipient address triggers {action.upper()} action;.*\n.*postfix/smtpd\[\1\]: {queue_id}: client=",
            log,
        )
    assert f"{cases.held_rcpt}: removed" not in log and f"{cases.discarded}: removed" not in log


@pytest.mark.django_db
def test_its_log_ingested_agrees_with_pflogsumm_held_and_discarded_included(played, tmp_path):
    from accounts.authz import SYSTEM
    from monitoring.tests.traffic_logs import ingest_file, pflogsumm_totals
    from monitoring.traffic_models import MailMessage
    from monitoring.traffic_stats import traffic_totals

    pf, cases = played
    path = tmp_path / "mail.log"
    path.write_text(pf.dms_log())
    ingest_file(path)
    expected = pflogsumm_totals(path)
    assert (expected["held"], expected["discarded"]) == (2, 2)
    totals = traffic_totals(SYSTEM, since=datetime(2000, 1, 1, tzinfo=UTC), until=datetime(2100, 1, 1, tzinfo=UTC))
    got = totals.as_dict()
    keys = ("received", "delivered", "forwarded", "deferred", "deferrals", "bounced", "rejected", "held", "discarded")
    assert {key: got[key] for key in keys} == {key: expected[key] for key in keys}
    states = dict(MailMessage.objects.values_list("queue_id", "state"))
    assert (states[cases.held], states[cases.held_rcpt]) == (MailMessage.DELIVERED, MailMessage.HELD)
    assert (states[cases.discarded], states[cases.discarded_rcpt]) == (MailMessage.DISCARDED, MailMessage.DISCARDED)
