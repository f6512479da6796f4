"""Bounces that come back by mail move the warmup gate of the IP the message left from (issue "Sending policy", Done
when): a real Postfix configured as DMS (monitoring/tests/postfix_instance.py) sends a pool's mail from two WARMING
IPs through their out-* transports, a remote MX accepts every recipient, and later the remote MTAs' delivery status
notifications (RFC 3464, a remote Postfix's and Gmail's shapes, built from the message the remote MX received) come
back to the sender's mailbox through Postfix's MX port. The mail log is ingested as the follower would
(monitoring.traffic), each DSN as the feedback mailbox reader would (monitoring.feedback.feedback_ingest), and the
daily task's evaluation (deliverability.ip_warmup.warmup_evaluate_all, the system actor) reads both through
monitoring's ip_sending_results hook: no mock of our code on the way.

The IPs are 192.0.2.10 (A) and 192.0.2.11 (B), sending IPs being public addresses; their transports bind to the
loopback stand-ins 127.0.0.2 and 127.0.0.3 (the address the remote MX sees), and are named out-192-0-2-10 and
out-192-0-2-11 as Dockspace names them, which is how the mail traffic knows each attempt's IP.

It uses monitoring's services and Postfix harness: a deliverability test module allowed to (pyproject's layers
contract, ignore_imports)."""

import re
import smtplib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, make_msgid

import pytest
import time_machine

from accounts.authz import SystemActor
from accounts.models import AuditEvent
from deliverability import ip_warmup, warmup
from deliverability.models import IpWarmup, SendingIp, WarmupPlan
from deliverability.tests.factories import make_ip, make_pool
from monitoring import feedback, traffic
from monitoring.feedback_models import FeedbackEvent
from monitoring.tests.postfix_instance import OUTSIDE_IP, POOLED_DOMAIN, PostfixInstance, requires_postfix

pytestmark = [requires_postfix, pytest.mark.django_db]

IP_A, IP_B = "192.0.2.10", "192.0.2.11"
TRANSPORT_A, TRANSPORT_B = "out-192-0-2-10", "out-192-0-2-11"
BIND_A, BIND_B = "127.0.0.2", "127.0.0.3"  # what the remote MX sees of A and B
SENDER_A = "carol@example.org"  # the pooled domain's mailbox: sent through A
SENDER_B = "alice@example.com"  # sent through B (its own line in the sender-dependent transport table)
SENT_AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # the mail goes out from here on (the clock ticks)
STEP = 3  # both IPs' step of the standard plan (700/day) when the day's mail goes out
# Recipients per message (a message goes to the remote MX in transactions of at most 50, Postfix's default);
# each IP sends over the standard plan's minimum sample (500), so the last 24 h are judged.
A_MESSAGES, A_RECIPIENTS = 4, 130  # 520 recipients from A
B_MESSAGES, B_RECIPIENTS = 5, 110  # 550 recipients from B
A_POSTFIX_HARD = 21  # a remote Postfix's DSN: the first 21 recipients of A's first message (5.1.1) ...
A_POSTFIX_FULL = 1  # ... and the next one's mailbox is full (5.2.2: soft, not counted)
A_GMAIL_HARD = 6  # Gmail's DSNs, one per recipient, for A's second message
A_HARD = A_POSTFIX_HARD + A_GMAIL_HARD  # 27 of 520: 5.19 %, at or over the 5 % that steps back, under 10 %
B_HARD = 1  # one Gmail DSN for B's first message: 1 of 550, 0.18 %, under the 2 % that advances


class TwoIpPostfix(PostfixInstance):
    """The harness's Postfix with A's and B's transports, picked by the sender as Dockspace's pool rotation does."""

    def main_cf(self):
        values = super().main_cf()
        self._table(
            "sender_transport",
            [
                f"@{POOLED_DOMAIN} {TRANSPORT_A}:[127.0.0.1]:{self.remote_port}",
                f"{SENDER_B} {TRANSPORT_B}:[127.0.0.1]:{self.remote_port}",
            ],
        )
        return values

    def master_cf(self):
        transports = ""
        for name, bind, helo in (
            (TRANSPORT_A, BIND_A, "out-a.example.org"),
            (TRANSPORT_B, BIND_B, "out-b.example.org"),
        ):
            transports += (
                f"{name} unix - - n - - smtp\n"
                f"  -o syslog_name=postfix/{name} -o smtp_bind_address={bind} -o smtp_helo_name={helo}\n"
            )
        return super().master_cf() + transports


# --- the DSNs the remote MTAs write ----------------------------------------------------------------------------------


def _headers(original: bytes) -> str:
    """The original's header section as the remote MX received it (our Postfix's Received line on top), LF ends."""
    text = original.decode("utf-8", "replace").replace("\r\n", "\n")
    return text.split("\n\n", 1)[0] + "\n"


def _header(original: bytes, name: str) -> str:
    match = re.search(rf"^{name}:[ \t]*(.*)$", _headers(original), re.MULTILINE | re.IGNORECASE)
    return match.group(1).strip() if match else ""


def postfix_dsn(original: bytes, sender: str, remote_queue_id: str, failures: dict[str, str], at: datetime) -> str:
    """A remote Postfix's non-delivery report, as Postfix 3.x writes it: the failed recipients with their status
    ({recipient: "5.1.1"}), and the message attached whole with the remote's own Received line on top."""
    boundary = f"{remote_queue_id}.{int(at.timestamp())}/mx.example.net"
    date = format_datetime(at)
    blocks = "".join(
        f"Final-Recipient: rfc822; {rcpt}\nOriginal-Recipient: rfc822;{rcpt}\nAction: failed\nStatus: {status}\n"
        f"Diagnostic-Code: x-unix; {'mailbox is full' if status == '5.2.2' else 'user unknown'}\n\n"
        for rcpt, status in failures.items()
    )
    human = "".join(
        f"<{rcpt}>: {'mailbox is full' if s == '5.2.2' else 'unknown user'}\n\n" for rcpt, s in failures.items()
    )
    received = (
        f"Received: from out-a.example.org (out-a.example.org [{IP_A}])\n"
        f"\tby mx.example.net (Postfix) with ESMTP id {remote_queue_id};\n\t{date}\n"
    )
    body = original.decode("utf-8", "replace").replace("\r\n", "\n")
    return (
        f"Return-Path: <>\nReceived: by mx.example.net (Postfix)\n\tid 1A2B3C4D5E; {date}\nDate: {date}\n"
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\nSubject: Undelivered Mail Returned to Sender\n"
        f"To: {sender}\nAuto-Submitted: auto-replied\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status;\n\tboundary="{boundary}"\n'
        f"Content-Transfer-Encoding: 8bit\nMessage-Id: {make_msgid(domain='mx.example.net')}\n\n"
        "This is a MIME-encapsulated message.\n\n"
        f"--{boundary}\nContent-Description: Notification\nContent-Type: text/plain; charset=utf-8\n\n"
        "This is the mail system at host mx.example.net.\n\nI'm sorry to have to inform you that your message could "
        "not\nbe delivered to one or more recipients. It's attached below.\n\n                   The mail system\n\n"
        f"{human}"
        f"--{boundary}\nContent-Description: Delivery report\nContent-Type: message/delivery-status\n\n"
        f"Reporting-MTA: dns; mx.example.net\nX-Postfix-Queue-ID: {remote_queue_id}\n"
        f"X-Postfix-Sender: rfc822; {sender}\nArrival-Date: {date}\n\n{blocks}"
        f"--{boundary}\nContent-Description: Undelivered Message\nContent-Type: message/rfc822\n"
        f"Content-Transfer-Encoding: 8bit\n\n{received}{body}\n"
        f"--{boundary}--\n"
    )


def gmail_dsn(original: bytes, sender: str, recipient: str, at: datetime) -> str:
    """Gmail's "Address not found" (Delivery Status Notification (Failure)) for one recipient: no queue id of ours
    but the original's Message-ID, and its headers in a text/rfc822-headers part."""
    boundary = "000000000000" + make_msgid().strip("<>").split(".")[0][-16:]
    message_id = _header(original, "Message-ID")
    date = format_datetime(at)
    return (
        f'Return-Path: <>\nContent-Type: multipart/report; boundary="{boundary}"; report-type=delivery-status\n'
        f"To: {sender}\nFrom: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\nAuto-Submitted: auto-replied\n"
        f"Message-ID: {make_msgid(domain='mx.google.com')}\nDate: {date}\n"
        f"Subject: Delivery Status Notification (Failure)\nReferences: {message_id}\nIn-Reply-To: {message_id}\n"
        f"X-Failed-Recipients: {recipient}\n\n"
        f'--{boundary}\nContent-Type: text/plain; charset="UTF-8"\n\n\n** Address not found **\n\n'
        f"Your message wasn't delivered to {recipient} because the address couldn't be found, or is unable to "
        "receive mail.\n\n"
        f"--{boundary}\nContent-Type: message/delivery-status\n\n"
        f"Reporting-MTA: dns; googlemail.com\nReceived-From-MTA: dns; {sender}\nArrival-Date: {date}\n"
        f"X-Original-Message-ID: {message_id}\n\n"
        f"Final-Recipient: rfc822; {recipient}\nAction: failed\nStatus: 5.1.1\n"
        "Remote-MTA: dns; gmail-smtp-in.l.google.com. (2a00:1450:400c:c0b::1a, the\n"
        " server for the domain gmail.com.)\n"
        "Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
        " 550 5.1.1  https://support.google.com/mail/?p=NoSuchUser a640c23a62f3a-a7a3b5e2f1asi1234567ex.123 - gsmtp\n"
        f"Last-Attempt-Date: {date}\n\n"
        f"--{boundary}\nContent-Type: text/rfc822-headers\n\n{_headers(original)}\n"
        f"--{boundary}--\n"
    )


# --- one day's mail through the real Postfix, played once for the module -------------------------------------------


def recipients(tag, message, count):
    return [f"{tag}{message}-{n}@example.net" for n in range(count)]


def received_copy(pf, queue_id, recipient, peer_ip):
    """What the remote MX received of our message `queue_id` for `recipient`, checked to come from `peer_ip`."""
    for message in pf.remote.received:
        if recipient in message.recipients and f" id {queue_id}" in _headers(message.data).replace("\n\t", " "):
            assert message.peer_ip == peer_ip, (queue_id, message.peer_ip)
            return message.data
    raise AssertionError(f"the remote MX did not receive {queue_id} for {recipient}")


def remote_queue_id(pf, queue_id, recipient):
    """The queue id the remote MX gave our delivery of `queue_id` to `recipient` (our log's relay reply)."""
    pattern = re.compile(rf": {queue_id}: to=<{re.escape(recipient)}>, .*status=sent \(.*queued as (\w+)\)")
    return next(m.group(1) for line in pf.log_lines() if (m := pattern.search(line)))


def deliver_back(pf, dsns):
    """The DSNs reach our MX from outside (null sender, to the original's sender), as the remote MTAs send them."""
    with smtplib.SMTP("127.0.0.1", pf.mx_port, local_hostname="mx.example.net", source_address=(OUTSIDE_IP, 0)) as smtp:
        for to, text in dsns:
            refused = smtp.sendmail("", [to], text.encode())
            assert refused == {}, refused


@pytest.fixture(scope="module")
def the_day():
    """Send A's and B's mail, let the remote MTAs' DSNs come back to the senders' mailboxes; returns the mail log's
    lines (as DMS stamps them), the DSNs as the mailboxes got them ({ip: [raw, ...]}) and the queue ids of each IP's
    messages."""
    with time_machine.travel(SENT_AT, tick=True), TwoIpPostfix() as pf:
        queue_ids = {IP_A: [], IP_B: []}
        for ip, sender, tag, messages, count in (
            (IP_A, SENDER_A, "a", A_MESSAGES, A_RECIPIENTS),
            (IP_B, SENDER_B, "b", B_MESSAGES, B_RECIPIENTS),
        ):
            for n in range(messages):
                sent = pf.send(sender, recipients(tag, n, count), sasl_user=sender, subject=f"Newsletter {n}")
                assert sent.data_reply[0] == 250 and not sent.refused, sent
                queue_ids[ip].append(sent.queue_id)
        total = A_MESSAGES * A_RECIPIENTS + B_MESSAGES * B_RECIPIENTS
        pf.wait_for_log(r"status=sent \(250 2\.0\.0 Ok: queued as", count=total, timeout=120)

        later = SENT_AT + timedelta(minutes=30)
        a1, a2 = queue_ids[IP_A][:2]
        first = recipients("a", 0, A_POSTFIX_HARD + A_POSTFIX_FULL)
        failures = {rcpt: "5.1.1" for rcpt in first[:A_POSTFIX_HARD]} | {
            rcpt: "5.2.2" for rcpt in first[A_POSTFIX_HARD:]
        }
        dsns = [
            (
                SENDER_A,
                postfix_dsn(
                    received_copy(pf, a1, first[0], BIND_A),
                    SENDER_A,
                    remote_queue_id(pf, a1, first[0]),
                    failures,
                    later,
                ),
            )
        ]
        for rcpt in recipients("a", 1, A_GMAIL_HARD):
            dsns.append((SENDER_A, gmail_dsn(received_copy(pf, a2, rcpt, BIND_A), SENDER_A, rcpt, later)))
        b1_rcpt = recipients("b", 0, 1)[0]
        b_dsn = gmail_dsn(received_copy(pf, queue_ids[IP_B][0], b1_rcpt, BIND_B), SENDER_B, b1_rcpt, later)
        deliver_back(pf, [*dsns, (SENDER_B, b_dsn)])
        pf.wait_for_log(r"postfix/lmtp\[\d+\]: \w+: to=<.*status=sent", count=len(dsns) + 1)

        came_back = {IP_A: [], IP_B: []}
        for rcpt, raw in pf.lmtp.delivered:
            came_back[IP_A if rcpt == SENDER_A else IP_B].append(raw)
        assert [len(came_back[IP_A]), len(came_back[IP_B])] == [1 + A_GMAIL_HARD, 1]
        yield pf.log_lines(), came_back, queue_ids


# --- the Dockspace side -----------------------------------------------------------------------------------------------


def two_warming_ips():
    """A and B in one pool, WARMING since three days, both put at STEP of the standard plan two days ago."""
    plan = WarmupPlan.objects.get(is_default=True)
    with time_machine.travel(SENT_AT - timedelta(days=3), tick=False):
        pool = make_pool("bulk")
        ips = [make_ip(IP_A, pool=pool), make_ip(IP_B, pool=pool)]
    with time_machine.travel(SENT_AT - timedelta(days=2), tick=False):
        for ip in ips:
            ip_warmup.ip_warmup_set(ip=ip, plan=plan, step=STEP, actor=SystemActor("operator"))
    assert all(ip.state == SendingIp.WARMING for ip in ips)


def ingest_the_log(lines):
    with time_machine.travel(SENT_AT + timedelta(hours=1), tick=False):
        result = traffic.maillog_ingest_lines(traffic.logsource_for(name="local"), lines)
    assert result is not None


def ingest_the_dsns(came_back):
    with time_machine.travel(SENT_AT + timedelta(hours=2), tick=False):
        for ip in (IP_A, IP_B):
            for raw in came_back[ip]:
                assert not feedback.feedback_ingest(raw=raw, source="carol's and alice's mailboxes").is_duplicate


def evaluate():
    """The daily task's evaluation, a day after the steps were set and three hours after the mail went out."""
    with time_machine.travel(SENT_AT + timedelta(hours=3), tick=False):
        return ip_warmup.warmup_evaluate_all(actor=SystemActor(ip_warmup.TASK_LABEL), actor_label=ip_warmup.TASK_LABEL)


def last_decision(address):
    return IpWarmup.objects.get(ip__address=address).history[-1]


def audited(address):
    [event] = AuditEvent.objects.filter(
        action__startswith="deliverability.ip_warmup.", target_label__contains=address
    ).exclude(action="deliverability.ip_warmup.set")
    return event


def where(step_from, step_to):
    daily, hourly = warmup.caps(warmup.DEFAULT_PLAN, step_to)
    moved = f"step {step_from} -> {step_to}" if step_from != step_to else f"step {step_to}"
    return f"{moved} of {warmup.total_steps(warmup.DEFAULT_PLAN)} ({daily}/day, {hourly}/h)"


def seen(attempts, hard, rate):
    return f"24 h: {attempts} attempts, {hard} hard bounces ({rate}), 0 complaints (0 %)"


A_ATTEMPTS, B_ATTEMPTS = A_MESSAGES * A_RECIPIENTS, B_MESSAGES * B_RECIPIENTS
ADVANCE_REASON = "advance: hard bounces < 2 % and complaints < 0.08 %"


def test_dsns_for_mail_from_a_step_a_back_on_its_own_figures_while_b_advances(the_day):
    lines, came_back, queue_ids = the_day
    two_warming_ips()
    ingest_the_log(lines)
    ingest_the_dsns(came_back)

    # Each DSN is tied to our message and to the IP it left from; the full mailbox is soft.
    events = FeedbackEvent.objects.exclude(kind=FeedbackEvent.OTHER)
    assert sorted(events.order_by().values_list("sending_ip", "kind").distinct()) == [
        (IP_A, FeedbackEvent.HARD),
        (IP_A, FeedbackEvent.SOFT),
        (IP_B, FeedbackEvent.HARD),
    ]
    assert events.filter(sending_ip=IP_A, kind=FeedbackEvent.HARD).count() == A_HARD
    assert set(events.filter(sending_ip=IP_A).values_list("message__queue_id", flat=True)) == set(queue_ids[IP_A][:2])
    assert events.filter(sending_ip=IP_B, kind=FeedbackEvent.HARD).count() == B_HARD
    assert not FeedbackEvent.objects.filter(sending_ip=None).exists()

    report = evaluate()

    assert report.actions == {warmup.STEP_BACK: 1, warmup.ADVANCE: 1} and not report.skipped
    a_seen, b_seen = seen(A_ATTEMPTS, A_HARD, "5.192 %"), seen(B_ATTEMPTS, B_HARD, "0.182 %")
    a_reason = f"step back: hard bounces >= 5 % ({a_seen})"
    b_reason = f"{ADVANCE_REASON} ({b_seen})"
    assert IpWarmup.objects.get(ip__address=IP_A).step == STEP - 1
    assert IpWarmup.objects.get(ip__address=IP_B).step == STEP + 1
    assert last_decision(IP_A) | {"at": None} == {
        "at": None,
        "by": ip_warmup.TASK_LABEL,
        "plan": "standard",
        "action": warmup.STEP_BACK,
        "step_from": STEP,
        "step_to": STEP - 1,
        "window_hours": 24,
        "attempts": A_ATTEMPTS,
        "hard_bounces": A_HARD,
        "complaints": 0,
        "reason": a_reason,
    }
    assert (last_decision(IP_B)["attempts"], last_decision(IP_B)["hard_bounces"]) == (B_ATTEMPTS, B_HARD)
    a_event, b_event = audited(IP_A), audited(IP_B)
    assert (a_event.action, a_event.actor_label) == ("deliverability.ip_warmup.step_back", ip_warmup.TASK_LABEL)
    assert a_event.description == f"{IP_A} {where(STEP, STEP - 1)}, plan standard: {a_reason}"
    assert b_event.description == f"{IP_B} {where(STEP, STEP + 1)}, plan standard: {b_reason}"
    assert str(B_ATTEMPTS) not in a_event.description and str(A_ATTEMPTS) not in b_event.description
    # The policy service's caps follow at once: A back to step 2, B up to step 4; both still WARMING.
    assert ip_warmup.warmup_caps(SENT_AT + timedelta(hours=3)) == {
        IP_A: warmup.caps(warmup.DEFAULT_PLAN, STEP - 1),
        IP_B: warmup.caps(warmup.DEFAULT_PLAN, STEP + 1),
    }
    assert set(SendingIp.objects.values_list("state", flat=True)) == {SendingIp.WARMING}


def test_without_the_dsns_the_same_day_of_mail_advances_a(the_day):
    lines, _, _ = the_day
    two_warming_ips()
    ingest_the_log(lines)

    report = evaluate()

    assert report.actions == {warmup.ADVANCE: 2}
    assert IpWarmup.objects.get(ip__address=IP_A).step == STEP + 1
    assert audited(IP_A).description == (
        f"{IP_A} {where(STEP, STEP + 1)}, plan standard: {ADVANCE_REASON} ({seen(A_ATTEMPTS, 0, '0 %')})"
    )
    assert (last_decision(IP_B)["attempts"], last_decision(IP_B)["hard_bounces"]) == (B_ATTEMPTS, 0)
