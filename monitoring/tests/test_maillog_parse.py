"""The mail-log parser, table-driven and without a database, on the line shapes Postfix 3.7 and Dovecot 2.3 write
(their format strings: Postfix global/log_adhoc.c, opened.c, smtpd/smtpd.c, smtpd_check.c, cleanup_message.c,
qmgr_active.c, bounce_notify_*.c, pickup.c, postscreen_smtpd.c; Dovecot login-common/client-common.c), and on
garbage: never an exception."""

import dataclasses
import random
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.maillog import events
from monitoring.maillog.parse import classic_year, parse_event, parse_line, parse_lines, parse_syslog, sending_ip

AT = "2026-12-06T10:15:02.123456+00:00 mail "


def fields(event):
    """The event's values without its line: what a test compares."""
    return {f.name: getattr(event, f.name) for f in dataclasses.fields(event) if f.name != "line"}


def client(queue_id, host, ip, method="", username=""):
    return events.ClientConnected, dict(
        queue_id=queue_id, client_host=host, client_ip=ip, sasl_method=method, sasl_username=username
    )


def delivery(queue_id, to, relay, delay, delays, dsn, status, reply, orig=""):
    return events.Delivery, dict(
        queue_id=queue_id,
        recipient=to,
        orig_recipient=orig,
        relay=relay,
        delay=delay,
        delays=delays,
        dsn=dsn,
        status=status,
        reply=reply,
    )


def rejected(
    queue_id, stage, code, dsn, reply, host, ip, sender="", to="", helo="", proto="", warning=False, action=""
):
    return events.Rejected, dict(
        queue_id=queue_id,
        stage=stage,
        code=code,
        dsn=dsn,
        reply=reply,
        client_host=host,
        client_ip=ip,
        sender=sender,
        recipient=to,
        helo=helo,
        proto=proto,
        is_warning=warning,
        action=action or ("reject_warning" if warning else "reject"),
    )


def login(protocol, user, ip, ok, reason=""):
    return events.LoginSeen, dict(protocol=protocol, user=user, remote_ip=ip, ok=ok, reason=reason)


OTHER = (events.Other, {})

TABLE = [
    # --- smtpd (and the submission services) ---
    ("postfix/smtpd[1234]: connect from mail-wr1-f54.google.com[209.85.221.54]", (events.SessionStarted, {})),
    ("postfix/smtpd[1234]: disconnect from mail-wr1-f54.google.com[209.85.221.54] ehlo=1 quit=1 commands=2", OTHER),
    (
        "postfix/smtpd[1234]: 3C5A12B4D1: client=mail-wr1-f54.google.com[209.85.221.54]",
        client("3C5A12B4D1", "mail-wr1-f54.google.com", "209.85.221.54"),
    ),
    (
        "postfix/submission/smtpd[2345]: 4F1D33B5E2: client=unknown[198.51.100.23], sasl_method=PLAIN, "
        "sasl_username=alice@example.com",
        client("4F1D33B5E2", "", "198.51.100.23", "PLAIN", "alice@example.com"),
    ),
    (  # smtpd_client_port_logging = yes
        "postfix/submissions/smtpd[2346]: 4F1D33B5E3: client=host.example.org[2001:db8::23]:50122, "
        "sasl_method=LOGIN, sasl_username=bob@example.com",
        client("4F1D33B5E3", "host.example.org", "2001:db8::23", "LOGIN", "bob@example.com"),
    ),
    (
        "postfix/smtpd[1234]: NOQUEUE: reject: RCPT from unknown[203.0.113.9]: 554 5.7.1 <x@example.org>: Relay "
        "access denied; from=<spam@example.biz> to=<x@example.org> proto=ESMTP helo=<ylmf-pc>",
        rejected(
            "",
            "RCPT",
            554,
            "5.7.1",
            "<x@example.org>: Relay access denied",
            "",
            "203.0.113.9",
            "spam@example.biz",
            "x@example.org",
            "ylmf-pc",
            "ESMTP",
        ),
    ),
    (  # a reply holding ";" itself (reject_rbl_client)
        "postfix/smtpd[1234]: NOQUEUE: reject: RCPT from unknown[203.0.113.9]: 554 5.7.1 Service unavailable; "
        "Client host [203.0.113.9] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/203.0.113.9; "
        "from=<spam@example.biz> to=<alice@example.com> proto=ESMTP helo=<ylmf-pc>",
        rejected(
            "",
            "RCPT",
            554,
            "5.7.1",
            "Service unavailable; Client host [203.0.113.9] blocked using zen.spamhaus.org; "
            "https://www.spamhaus.org/query/ip/203.0.113.9",
            "",
            "203.0.113.9",
            "spam@example.biz",
            "alice@example.com",
            "ylmf-pc",
            "ESMTP",
        ),
    ),
    (  # once queued, further recipients refused carry the queue id
        "postfix/smtpd[1234]: 3C5A12B4D1: reject: RCPT from mail.example.net[203.0.113.5]: 550 5.1.1 "
        "<nobody@example.com>: Recipient address rejected: User unknown in virtual mailbox table; "
        "from=<a@example.net> to=<nobody@example.com> proto=ESMTP helo=<mail.example.net>",
        rejected(
            "3C5A12B4D1",
            "RCPT",
            550,
            "5.1.1",
            "<nobody@example.com>: Recipient address rejected: User unknown in virtual mailbox table",
            "mail.example.net",
            "203.0.113.5",
            "a@example.net",
            "nobody@example.com",
            "mail.example.net",
            "ESMTP",
        ),
    ),
    (
        "postfix/smtpd[1234]: NOQUEUE: reject: CONNECT from unknown[203.0.113.9]: 554 5.7.1 "
        "<unknown[203.0.113.9]>: Client host rejected: Access denied; proto=SMTP",
        rejected(
            "",
            "CONNECT",
            554,
            "5.7.1",
            "<unknown[203.0.113.9]>: Client host rejected: Access denied",
            "",
            "203.0.113.9",
            proto="SMTP",
        ),
    ),
    (
        "postfix/smtpd[1234]: NOQUEUE: reject_warning: RCPT from unknown[203.0.113.9]: 450 4.7.25 Client host "
        "rejected: cannot find your hostname, [203.0.113.9]; from=<a@example.biz> to=<alice@example.com> "
        "proto=ESMTP helo=<ylmf-pc>",
        rejected(
            "",
            "RCPT",
            450,
            "4.7.25",
            "Client host rejected: cannot find your hostname, [203.0.113.9]",
            "",
            "203.0.113.9",
            "a@example.biz",
            "alice@example.com",
            "ylmf-pc",
            "ESMTP",
            warning=True,
        ),
    ),
    (  # check_*_access WARN: logged, not refused; the text is the table's
        "postfix/smtpd[1234]: 3C5A12B4D1: warn: RCPT from mail.example.net[203.0.113.5]: watch this sender; "
        "from=<a@example.net> to=<alice@example.com> proto=ESMTP helo=<mail.example.net>",
        rejected(
            "3C5A12B4D1",
            "RCPT",
            None,
            "",
            "watch this sender",
            "mail.example.net",
            "203.0.113.5",
            "a@example.net",
            "alice@example.com",
            "mail.example.net",
            "ESMTP",
            warning=True,
            action="warn",
        ),
    ),
    (
        "postfix/smtpd[1234]: NOQUEUE: milter-reject: RCPT from mail.example.net[203.0.113.5]: 451 4.7.1 "
        "Greylisting in action, please come back later; from=<a@example.net> to=<alice@example.com> proto=ESMTP "
        "helo=<mail.example.net>",
        rejected(
            "",
            "RCPT",
            451,
            "4.7.1",
            "Greylisting in action, please come back later",
            "mail.example.net",
            "203.0.113.5",
            "a@example.net",
            "alice@example.com",
            "mail.example.net",
            "ESMTP",
            action="milter-reject",
        ),
    ),
    (  # a refusal by a signed-in user: the SASL fields follow helo
        "postfix/submission/smtpd[2345]: NOQUEUE: reject: RCPT from unknown[198.51.100.23]: 553 5.7.1 "
        "<ceo@example.com>: Sender address rejected: not owned by user alice@example.com; from=<ceo@example.com> "
        "to=<x@example.org> proto=ESMTP helo=<[192.168.1.10]> sasl_method=PLAIN sasl_username=alice@example.com",
        rejected(
            "",
            "RCPT",
            553,
            "5.7.1",
            "<ceo@example.com>: Sender address rejected: not owned by user alice@example.com",
            "",
            "198.51.100.23",
            "ceo@example.com",
            "x@example.org",
            "[192.168.1.10]",
            "ESMTP",
        ),
    ),
    (
        "postfix/smtpd[1234]: disconnect from mail.example.net[203.0.113.5] ehlo=1 mail=1 rcpt=1 data=1 quit=1 "
        "commands=5",
        OTHER,
    ),
    ("postfix/smtpd[1234]: warning: unknown[203.0.113.9]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", OTHER),
    ("postfix/smtpd[1234]: NOQUEUE: client=unknown[203.0.113.9]", OTHER),
    # --- cleanup ---
    (
        "postfix/cleanup[3456]: 3C5A12B4D1: message-id=<CAF=abc+1@mail.gmail.com>",
        (events.MessageIdSeen, dict(queue_id="3C5A12B4D1", message_id="CAF=abc+1@mail.gmail.com")),
    ),
    (
        "postfix/cleanup[3456]: 3C5A12B4D1: message-id=<>",
        (events.MessageIdSeen, dict(queue_id="3C5A12B4D1", message_id="")),
    ),
    (  # a Message-ID header without angle brackets is logged as written
        "postfix/cleanup[3456]: 3C5A12B4D1: message-id=20261206101502.GA1234",
        (events.MessageIdSeen, dict(queue_id="3C5A12B4D1", message_id="20261206101502.GA1234")),
    ),
    ("postfix/cleanup[3456]: 3C5A12B4D1: resent-message-id=<r@example.net>", OTHER),
    (  # header_checks REJECT: the header's text is not kept, the table's reply is
        "postfix/cleanup[3456]: 3C5A12B4D1: reject: header Subject: Buy cheap pills from mail.example.net"
        "[203.0.113.5]; from=<a@example.net> to=<alice@example.com> proto=ESMTP helo=<mail.example.net>: 5.7.1 "
        "Message content rejected",
        rejected(
            "3C5A12B4D1",
            "header",
            None,
            "5.7.1",
            "Message content rejected",
            "mail.example.net",
            "203.0.113.5",
            "a@example.net",
            "alice@example.com",
            "mail.example.net",
            "ESMTP",
        ),
    ),
    (
        "postfix/cleanup[3456]: 3C5A12B4D1: reject: body see http://spam.example/ from me from "
        "mail.example.net[203.0.113.5]; from=<a@example.net> to=<alice@example.com> proto=ESMTP "
        "helo=<mail.example.net>: 5.7.1 Message content rejected",
        rejected(
            "3C5A12B4D1",
            "body",
            None,
            "5.7.1",
            "Message content rejected",
            "mail.example.net",
            "203.0.113.5",
            "a@example.net",
            "alice@example.com",
            "mail.example.net",
            "ESMTP",
        ),
    ),
    (  # header_checks WARN without text, on mail picked up locally
        "postfix/cleanup[3456]: 7D1E2F3A4B: warning: header X-Mailer: PHP/8.2 from local; from=<www-data@example.com> "
        "to=<x@example.org>",
        rejected(
            "7D1E2F3A4B",
            "header",
            None,
            "",
            "",
            "",
            "",
            "www-data@example.com",
            "x@example.org",
            warning=True,
            action="warning",
        ),
    ),
    (  # Rspamd as a milter refusing at the end of the message
        "postfix/cleanup[3456]: 3C5A12B4D1: milter-reject: END-OF-MESSAGE from mail.example.net[203.0.113.5]: "
        "5.7.1 Spam message rejected; from=<a@example.net> to=<alice@example.com> proto=ESMTP "
        "helo=<mail.example.net>",
        rejected(
            "3C5A12B4D1",
            "END-OF-MESSAGE",
            None,
            "5.7.1",
            "Spam message rejected",
            "mail.example.net",
            "203.0.113.5",
            "a@example.net",
            "alice@example.com",
            "mail.example.net",
            "ESMTP",
            action="milter-reject",
        ),
    ),
    # HOLD and DISCARD actions, as the real Postfix 3.7 of postfix_instance.py logs them (play_every_case): accepted,
    # then kept in the hold queue or dropped; not refusals. At the first recipient smtpd has no queue id yet.
    (
        "postfix/cleanup[13517]: 05AA920C26F: hold: header Subject: Invoice overdue from unknown[127.0.0.9]; "
        "from=<billing@example.net> to=<alice@example.com> proto=ESMTP helo=<mta.example.net>: looks like invoice "
        "fraud",
        rejected(
            "05AA920C26F",
            "header",
            None,
            "",
            "looks like invoice fraud",
            "",
            "127.0.0.9",
            "billing@example.net",
            "alice@example.com",
            "mta.example.net",
            "ESMTP",
            warning=True,
            action="hold",
        ),
    ),
    (
        "postfix/smtpd[13512]: NOQUEUE: hold: RCPT from unknown[127.0.0.9]: <review@example.com>: Recipient "
        "address triggers HOLD action; from=<news@example.net> to=<review@example.com> proto=ESMTP "
        "helo=<mta.example.net>",
        rejected(
            "",
            "RCPT",
            None,
            "",
            "<review@example.com>: Recipient address triggers HOLD action",
            "",
            "127.0.0.9",
            "news@example.net",
            "review@example.com",
            "mta.example.net",
            "ESMTP",
            warning=True,
            action="hold",
        ),
    ),
    (
        "postfix/cleanup[13517]: 0737520C27D: discard: header Subject: Unsubscribe me from unknown[127.0.0.9]; "
        "from=<list@example.net> to=<alice@example.com> proto=ESMTP helo=<mta.example.net>",
        rejected(
            "0737520C27D",
            "header",
            None,
            "",
            "",
            "",
            "127.0.0.9",
            "list@example.net",
            "alice@example.com",
            "mta.example.net",
            "ESMTP",
            warning=True,
            action="discard",
        ),
    ),
    (
        "postfix/smtpd[13512]: NOQUEUE: discard: RCPT from unknown[127.0.0.9]: <trap@example.com>: Recipient "
        "address triggers DISCARD action; from=<news@example.net> to=<trap@example.com> proto=ESMTP "
        "helo=<mta.example.net>",
        rejected(
            "",
            "RCPT",
            None,
            "",
            "<trap@example.com>: Recipient address triggers DISCARD action",
            "",
            "127.0.0.9",
            "news@example.net",
            "trap@example.com",
            "mta.example.net",
            "ESMTP",
            warning=True,
            action="discard",
        ),
    ),
    (  # a milter's HOLD (cleanup_milter.c cleanup_milter_apply)
        "postfix/cleanup[3456]: 3C5A12B4D1: milter-hold: END-OF-MESSAGE from mail.example.net[203.0.113.5]: "
        "milter triggers HOLD action; from=<a@example.net> to=<alice@example.com> proto=ESMTP "
        "helo=<mail.example.net>",
        rejected(
            "3C5A12B4D1",
            "END-OF-MESSAGE",
            None,
            "",
            "milter triggers HOLD action",
            "mail.example.net",
            "203.0.113.5",
            "a@example.net",
            "alice@example.com",
            "mail.example.net",
            "ESMTP",
            warning=True,
            action="milter-hold",
        ),
    ),
    # --- qmgr ---
    (
        "postfix/qmgr[789]: 3C5A12B4D1: from=<a@example.net>, size=4321, nrcpt=2 (queue active)",
        (events.Queued, dict(queue_id="3C5A12B4D1", sender="a@example.net", size=4321, nrcpt=2)),
    ),
    (
        "postfix/qmgr[789]: 5B6C7D8E9F: from=<>, size=3100, nrcpt=1 (queue active)",
        (events.Queued, dict(queue_id="5B6C7D8E9F", sender="", size=3100, nrcpt=1)),
    ),
    ("postfix/qmgr[789]: 3C5A12B4D1: removed", (events.Removed, dict(queue_id="3C5A12B4D1"))),
    (
        "postfix/qmgr[789]: 3C5A12B4D1: from=<a@example.net>, status=expired, returned to sender",
        (events.Expired, dict(queue_id="3C5A12B4D1", sender="a@example.net")),
    ),
    (  # postsuper -e
        "postfix/qmgr[789]: 3C5A12B4D1: from=<a@example.net>, status=force-expired, returned to sender",
        (events.Expired, dict(queue_id="3C5A12B4D1", sender="a@example.net")),
    ),
    ("postfix/qmgr[789]: 3C5A12B4D1: skipped, still being delivered", OTHER),
    (
        "postfix/qmgr[789]: 3C5A12B4D1: to=<bob@example.org>, relay=none, delay=1201, delays=1200/1/0/0, dsn=4.4.1, "
        "status=deferred (delivery temporarily suspended: connect to mx.example.org[192.0.2.3]:25: Connection refused)",
        delivery(
            "3C5A12B4D1",
            "bob@example.org",
            "none",
            1201.0,
            "1200/1/0/0",
            "4.4.1",
            events.DEFERRED,
            "delivery temporarily suspended: connect to mx.example.org[192.0.2.3]:25: Connection refused",
        ),
    ),
    # --- delivery agents ---
    (
        "postfix/smtp[4567]: 3C5A12B4D1: to=<bob@example.org>, relay=mx.example.org[192.0.2.25]:25, delay=1.2, "
        "delays=0.11/0.01/0.5/0.58, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 9F8E7D6C5B)",
        delivery(
            "3C5A12B4D1",
            "bob@example.org",
            "mx.example.org[192.0.2.25]:25",
            1.2,
            "0.11/0.01/0.5/0.58",
            "2.0.0",
            events.SENT,
            "250 2.0.0 Ok: queued as 9F8E7D6C5B",
        ),
    ),
    (  # a reply with nested parentheses, a reused connection, an alias's original recipient
        "postfix/out-192-0-2-10/smtp[4568]: 3C5A12B4D1: to=<bob@example.org>, orig_to=<sales@example.com>, "
        "relay=mx.example.org[2001:db8::25]:25, conn_use=3, delay=0.62, delays=0.1/0/0.21/0.31, dsn=4.2.0, "
        "status=deferred (host mx.example.org[2001:db8::25] said: 450 4.2.0 <bob@example.org>: Recipient address "
        "rejected: Greylisted, see https://example.org/grey (in reply to RCPT TO command))",
        delivery(
            "3C5A12B4D1",
            "bob@example.org",
            "mx.example.org[2001:db8::25]:25",
            0.62,
            "0.1/0/0.21/0.31",
            "4.2.0",
            events.DEFERRED,
            "host mx.example.org[2001:db8::25] said: 450 4.2.0 <bob@example.org>: Recipient address rejected: "
            "Greylisted, see https://example.org/grey (in reply to RCPT TO command)",
            orig="sales@example.com",
        ),
    ),
    (
        "postfix/smtp[4567]: 3C5A12B4D1: to=<nobody@example.org>, relay=mx.example.org[192.0.2.25]:25, delay=0.9, "
        "delays=0.1/0/0.4/0.4, dsn=5.1.1, status=bounced (host mx.example.org[192.0.2.25] said: 550 5.1.1 "
        "<nobody@example.org>: Recipient address rejected: User unknown (in reply to RCPT TO command))",
        delivery(
            "3C5A12B4D1",
            "nobody@example.org",
            "mx.example.org[192.0.2.25]:25",
            0.9,
            "0.1/0/0.4/0.4",
            "5.1.1",
            events.BOUNCED,
            "host mx.example.org[192.0.2.25] said: 550 5.1.1 <nobody@example.org>: Recipient address rejected: "
            "User unknown (in reply to RCPT TO command)",
        ),
    ),
    (
        "postfix/smtp[4567]: 3C5A12B4D1: to=<x@nx.example>, relay=none, delay=0.2, delays=0.1/0/0.1/0, dsn=5.4.4, "
        "status=bounced (Host or domain name not found. Name service error for name=nx.example type=A: Host not "
        "found)",
        delivery(
            "3C5A12B4D1",
            "x@nx.example",
            "none",
            0.2,
            "0.1/0/0.1/0",
            "5.4.4",
            events.BOUNCED,
            "Host or domain name not found. Name service error for name=nx.example type=A: Host not found",
        ),
    ),
    (  # the tls= summary of newer Postfix versions, between delays and dsn
        "postfix/smtp[4567]: 3C5A12B4D1: to=<bob@example.org>, relay=mx.example.org[192.0.2.25]:25, delay=1, "
        "delays=0.1/0/0.4/0.5, tls=may/dane, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
        delivery(
            "3C5A12B4D1",
            "bob@example.org",
            "mx.example.org[192.0.2.25]:25",
            1.0,
            "0.1/0/0.4/0.5",
            "2.0.0",
            events.SENT,
            "250 2.0.0 Ok",
        ),
    ),
    (  # address verification probes are no deliveries
        "postfix/smtp[4567]: 3C5A12B4D1: to=<bob@example.org>, relay=mx.example.org[192.0.2.25]:25, delay=0.5, "
        "delays=0/0/0.3/0.2, dsn=2.1.5, status=deliverable (250 2.1.5 Ok)",
        OTHER,
    ),
    ("postfix/smtp[4567]: connect to mx.example.org[192.0.2.25]:25: Connection refused", OTHER),
    (
        "postfix/smtp[4567]: 3C5A12B4D1: host mx.example.org[192.0.2.25] said: 421 4.7.0 Try again later (in reply "
        "to end of DATA command)",
        OTHER,
    ),
    (
        "postfix/lmtp[4321]: 3C5A12B4D1: to=<alice@example.com>, relay=mail.example.com[/var/run/dovecot/lmtp], "
        "delay=0.09, delays=0.05/0.01/0.01/0.02, dsn=2.0.0, status=sent (250 2.0.0 <alice@example.com> "
        "kBp+BUyXsGUJDwAAyqXGbQ Saved)",
        delivery(
            "3C5A12B4D1",
            "alice@example.com",
            "mail.example.com[/var/run/dovecot/lmtp]",
            0.09,
            "0.05/0.01/0.01/0.02",
            "2.0.0",
            events.SENT,
            "250 2.0.0 <alice@example.com> kBp+BUyXsGUJDwAAyqXGbQ Saved",
        ),
    ),
    (
        "postfix/local[5678]: 7D1E2F3A4B: to=<root@mail.example.com>, orig_to=<root>, relay=local, delay=0.02, "
        "delays=0.01/0/0/0.01, dsn=2.0.0, status=sent (forwarded as 8E9F0A1B2C)",
        delivery(
            "7D1E2F3A4B",
            "root@mail.example.com",
            "local",
            0.02,
            "0.01/0/0/0.01",
            "2.0.0",
            events.SENT,
            "forwarded as 8E9F0A1B2C",
            orig="root",
        ),
    ),
    (
        "postfix/virtual[5679]: 3C5A12B4D1: to=<alice@example.com>, relay=virtual, delay=0.1, delays=0.05/0/0/0.05, "
        "dsn=2.0.0, status=sent (delivered to maildir)",
        delivery(
            "3C5A12B4D1",
            "alice@example.com",
            "virtual",
            0.1,
            "0.05/0/0/0.05",
            "2.0.0",
            events.SENT,
            "delivered to maildir",
        ),
    ),
    (
        "postfix/pipe[5680]: 3C5A12B4D1: to=<alice@example.com>, relay=dovecot, delay=0.1, delays=0.05/0/0/0.05, "
        "dsn=2.0.0, status=sent (delivered via dovecot service)",
        delivery(
            "3C5A12B4D1",
            "alice@example.com",
            "dovecot",
            0.1,
            "0.05/0/0/0.05",
            "2.0.0",
            events.SENT,
            "delivered via dovecot service",
        ),
    ),
    (
        "postfix/error[5681]: 3C5A12B4D1: to=<bob@example.org>, relay=none, delay=3600, delays=3599/1/0/0, "
        "dsn=4.4.1, status=deferred (delivery temporarily suspended: connect to mx.example.org[192.0.2.25]:25: "
        "Connection timed out)",
        delivery(
            "3C5A12B4D1",
            "bob@example.org",
            "none",
            3600.0,
            "3599/1/0/0",
            "4.4.1",
            events.DEFERRED,
            "delivery temporarily suspended: connect to mx.example.org[192.0.2.25]:25: Connection timed out",
        ),
    ),
    # --- bounce, pickup, postsuper ---
    (
        "postfix/bounce[6789]: 3C5A12B4D1: sender non-delivery notification: 5B6C7D8E9F",
        (
            events.BounceCreated,
            dict(queue_id="3C5A12B4D1", notification_queue_id="5B6C7D8E9F", kind="sender non-delivery"),
        ),
    ),
    (
        "postfix/bounce[6789]: 3C5A12B4D1: sender delay notification: 5B6C7D8EA0",
        (events.BounceCreated, dict(queue_id="3C5A12B4D1", notification_queue_id="5B6C7D8EA0", kind="sender delay")),
    ),
    (
        "postfix/bounce[6789]: 3C5A12B4D1: postmaster non-delivery notification: 5B6C7D8EA1",
        (
            events.BounceCreated,
            dict(queue_id="3C5A12B4D1", notification_queue_id="5B6C7D8EA1", kind="postmaster non-delivery"),
        ),
    ),
    (
        "postfix/pickup[8901]: 7D1E2F3A4B: uid=0 from=<root>",
        (events.LocallyPicked, dict(queue_id="7D1E2F3A4B", uid=0, sender="root")),
    ),
    (
        "postfix/pickup[8901]: 7D1E2F3A4C: uid=33 from=<www-data@example.com> orig_id=1A2B3C4D5E",
        (events.LocallyPicked, dict(queue_id="7D1E2F3A4C", uid=33, sender="www-data@example.com")),
    ),
    ("postfix/postsuper[9012]: 3C5A12B4D1: removed", (events.Removed, dict(queue_id="3C5A12B4D1"))),
    ("postfix/postsuper[9012]: Deleted: 1 message", OTHER),
    # --- postscreen ---
    (
        "postfix/postscreen[345]: NOQUEUE: reject: RCPT from [203.0.113.9]:41234: 550 5.7.1 Service unavailable; "
        "client [203.0.113.9] blocked using zen.spamhaus.org; from=<spam@example.biz>, to=<alice@example.com>, "
        "proto=ESMTP, helo=<ylmf-pc>",
        rejected(
            "",
            "postscreen",
            550,
            "5.7.1",
            "Service unavailable; client [203.0.113.9] blocked using zen.spamhaus.org",
            "",
            "203.0.113.9",
            "spam@example.biz",
            "alice@example.com",
            "ylmf-pc",
            "ESMTP",
        ),
    ),
    (
        "postfix/postscreen[345]: NOQUEUE: reject: CONNECT from [203.0.113.9]:41235: too many connections",
        rejected("", "postscreen", None, "", "too many connections", "", "203.0.113.9"),
    ),
    ("postfix/postscreen[345]: PASS NEW [198.51.100.7]:50000", OTHER),
    ("postfix/postscreen[345]: DNSBL rank 3 for [203.0.113.9]:41234", OTHER),
    # --- Dovecot 2.3 ---
    (
        "dovecot: imap-login: Login: user=<alice@example.com>, method=PLAIN, rip=198.51.100.23, lip=172.18.0.2, "
        "mpid=2345, TLS, session=<Yq1r2s3t4u5v>",
        login("imap", "alice@example.com", "198.51.100.23", True),
    ),
    (
        "dovecot: pop3-login: Login: user=<bob@example.com>, method=PLAIN, rip=2001:db8::7, lip=2001:db8::1, "
        "mpid=2346, TLS, session=<Zq1r2s3t4u5v>",
        login("pop3", "bob@example.com", "2001:db8::7", True),
    ),
    (
        "dovecot: imap-login: Disconnected: Connection closed (auth failed, 3 attempts in 12 secs): "
        "user=<alice@example.com>, method=PLAIN, rip=203.0.113.9, lip=172.18.0.2, TLS, session=<Aq1r2s3t4u5v>",
        login(
            "imap", "alice@example.com", "203.0.113.9", False, "Connection closed (auth failed, 3 attempts in 12 secs)"
        ),
    ),
    (  # the form of earlier 2.3 releases
        "dovecot: pop3-login: Aborted login (auth failed, 1 attempts in 2 secs): user=<bob@example.com>, "
        "method=PLAIN, rip=203.0.113.9, lip=172.18.0.2, session=<Bq1r2s3t4u5v>",
        login("pop3", "bob@example.com", "203.0.113.9", False, "Aborted login (auth failed, 1 attempts in 2 secs)"),
    ),
    (
        "dovecot: imap-login: Disconnected: Inactivity (no auth attempts in 180 secs): user=<>, rip=203.0.113.9, "
        "lip=172.18.0.2, TLS handshaking: Disconnected, session=<Cq1r2s3t4u5v>",
        OTHER,
    ),
    (
        "dovecot: lmtp(alice@example.com)<2345><kBp+BUyXsGUJDwAAyqXGbQ>: msgid=<CAF=abc+1@mail.gmail.com>: saved "
        "mail to INBOX",
        OTHER,
    ),
    ("dovecot: lmtp(2345): Connect from local", OTHER),
    ("dovecot: auth: passwd-file(bob@example.com,203.0.113.9,<Dq1r2s3t4u5v>): unknown user", OTHER),
    # --- the rest: counted as other ---
    ("opendkim[234]: 3C5A12B4D1: DKIM-Signature field added (s=mail, d=example.com)", OTHER),
    (
        "rspamd_proxy[123]: <f2a1b3>; proxy; rspamd_task_write_log: id: <CAF=abc+1@mail.gmail.com>, qid: "
        "<3C5A12B4D1>, ip: 203.0.113.5, from: <a@example.net>, (default: F (no action): [-1.00/15.00] []), len: "
        "4321, time: 12.3ms",
        OTHER,
    ),
    (
        "amavis[345]: (00345-01) Passed CLEAN {RelayedInbound}, [203.0.113.5]:4321 [203.0.113.5] <a@example.net> "
        "-> <alice@example.com>, Queue-ID: 3C5A12B4D1, Message-ID: <x@example.net>, mail_id: abc, Hits: -1.2, "
        "size: 1234, queued_as: 4D5E6F7A8B, 250 ms",
        OTHER,
    ),
    ("postfix/master[1]: daemon started -- version 3.7.11, configuration /etc/postfix", OTHER),
    ("postfix/anvil[99]: statistics: max connection rate 1/60s for (smtp:203.0.113.9) at Dec  6 10:10:02", OTHER),
]


@pytest.mark.parametrize("text, expected", TABLE, ids=[text[:60] for text, _ in TABLE])
def test_each_line_shape_gives_its_event(text, expected):
    event = parse_line(AT + text)
    kind, values = expected
    assert type(event) is kind
    assert event.line.text == text.split(": ", 1)[1]
    if kind is not events.Other:
        assert fields(event) == values


def test_it_reads_the_service_and_sending_ip_of_a_pooled_transport():
    event = parse_line(
        AT + "postfix/out-2001-db8--1/smtp[4568]: 3C5A12B4D1: to=<bob@example.org>, relay=mx.example.org"
        "[192.0.2.25]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok)"
    )
    assert isinstance(event, events.Delivery)
    assert (event.line.service, event.line.daemon) == ("out-2001-db8--1", "smtp")
    assert sending_ip(event.line.service) == "2001:db8::1"


def test_a_quoted_recipient_cannot_forge_the_rest_of_its_delivery_line():
    # A sender may write a quoted local part holding ">, relay=..., status=bounced (...": Postfix logs it inside
    # to=<...>; the line's real relay, dsn and status are what follow the address.
    crafted = '"alice+x>, relay=mx.fake.example[192.0.2.9]:25, delay=1, dsn=5.7.1, status=bounced (550 spoofed"'
    event = parse_line(
        AT + f"postfix/lmtp[1]: ABCDE12345: to=<{crafted}@example.com>, relay=dms[/var/run/dovecot/lmtp], "
        "delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 <alice@example.com> Saved)"
    )
    assert isinstance(event, events.Delivery)
    assert (event.recipient, event.relay, event.dsn, event.status) == (
        f"{crafted}@example.com",
        "dms[/var/run/dovecot/lmtp]",
        "2.0.0",
        "sent",
    )


def test_content_rejections_keep_nothing_of_the_message():
    event = parse_line(AT + TABLE_BODY_REJECT)
    kept = " ".join(str(value) for value in fields(event).values())
    assert "spam.example" not in kept and "from me" not in kept


TABLE_BODY_REJECT = next(text for text, _ in TABLE if "reject: body" in text)


@pytest.mark.parametrize(
    "service, ip",
    [
        ("out-192-0-2-10", "192.0.2.10"),
        ("out-2001-db8--1", "2001:db8::1"),
        ("out-2001-db8-0-1-2-3-4-5", "2001:db8:0:1:2:3:4:5"),
        ("smtp", None),
        ("submission", None),
        ("out-", None),
        ("out-999-0-2-10", None),
        ("out-192-0-2", None),
        ("out-mx-eu", None),
        ("out-2001-DB8--1", None),  # not a name the transports write (they write the normal form)
    ],
)
def test_sending_ip_is_read_back_from_the_transport_name(service, ip):
    assert sending_ip(service) == ip


# --- the syslog header --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, at",
    [
        ("2026-12-06T10:15:02.123456+00:00 mail postfix/qmgr[7]: x", datetime(2026, 12, 6, 10, 15, 2, 123456, UTC)),
        ("2026-12-06T10:15:02Z mail postfix/qmgr[7]: x", datetime(2026, 12, 6, 10, 15, 2, tzinfo=UTC)),
        (
            "2026-12-06T05:15:02.5-05:00 mail postfix/qmgr[7]: x",
            datetime(2026, 12, 6, 5, 15, 2, 500000, timezone(timedelta(hours=-5))),
        ),
        (
            "2026-12-06T11:15:02+01:00 mail postfix/qmgr[7]: x",
            datetime(2026, 12, 6, 11, 15, 2, tzinfo=timezone(timedelta(hours=1))),
        ),
        ("2026-12-06T10:15:02.123456789+00:00 mail postfix/qmgr[7]: x", datetime(2026, 12, 6, 10, 15, 2, 123456, UTC)),
    ],
)
def test_rfc3339_timestamps_keep_their_offset(raw, at):
    line = parse_syslog(raw)
    assert line.at == at and line.at.utcoffset() == at.utcoffset()
    assert (line.host, line.program, line.pid, line.text) == ("mail", "postfix/qmgr", 7, "x")


def test_classic_timestamps_take_the_year_and_zone_given():
    line = parse_syslog("Dec  6 10:15:02 mx1 postfix/smtpd[1234]: connect from x[192.0.2.1]\n", year=2025)
    assert line.at == datetime(2025, 12, 6, 10, 15, 2, tzinfo=UTC)
    assert (line.host, line.program, line.pid, line.text) == ("mx1", "postfix/smtpd", 1234, "connect from x[192.0.2.1]")
    berlin = ZoneInfo("Europe/Berlin")
    line = parse_syslog("Jan 16 09:00:00 mx1 postfix/qmgr[7]: 3C5A12B4D1: removed", year=2026, tz=berlin)
    assert line.at == datetime(2026, 1, 16, 8, 0, 0, tzinfo=UTC)


def test_a_tag_without_pid_is_read():
    line = parse_syslog(AT + "dovecot: imap-login: Login: user=<a@example.com>")
    assert (line.program, line.pid, line.text) == ("dovecot", None, "imap-login: Login: user=<a@example.com>")


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "\n",
        "hello world",
        "2026-12-06T10:15:02.123456+00:00",
        "2026-12-06T10:15:02.123456+00:00 mail",
        "2026-13-45T10:15:02+00:00 mail postfix/qmgr[7]: x",
        "2026-12-06T25:15:02+00:00 mail postfix/qmgr[7]: x",
        "Dec  6 10:15:02 mail postfix/qmgr[7]: x",  # classic, and no year given
        "Foo  6 10:15:02 mail postfix/qmgr[7]: x",
        "\x00\x01\x02\xff",
        # Dates no log holds: the date arithmetic and the database would overflow on them.
        "0001-01-01T00:00:00+00:00 mail postfix/qmgr[1]: ABCDE12345: removed",
        "9999-12-31T23:59:59-14:00 mail postfix/qmgr[1]: ABCDE12345: removed",
    ],
)
def test_what_is_not_a_syslog_line_is_none(raw):
    assert parse_syslog(raw) is None
    assert parse_line(raw) is None


def test_a_classic_line_of_an_impossible_date_is_none():
    assert parse_syslog("Feb 30 10:15:02 mail postfix/qmgr[7]: x", year=2026) is None


@pytest.mark.parametrize(
    "written, month, day, year",
    [
        ((2026, 12, 6), 12, 6, 2026),
        ((2026, 12, 6), 1, 2, 2026),
        ((2026, 12, 6), 12, 7, 2026),  # a clock a little ahead
        ((2026, 1, 2), 1, 2, 2026),
        ((2026, 1, 2), 12, 31, 2025),  # a December line in a file written in January
        ((2026, 1, 2), 6, 1, 2025),
        ((2026, 1, 2), 1, 20, 2025),  # a year ago, same month
    ],
)
def test_classic_year_is_the_one_before_for_dates_ahead_of_the_file(written, month, day, year):
    assert classic_year(month, day, reference=datetime(*written, 12, 0, tzinfo=UTC)) == year


# --- never an exception ------------------------------------------------------------------------------------------


def test_truncated_lines_never_raise():
    for text, _ in TABLE:
        raw = AT + text
        for end in range(len(raw) + 1):
            event = parse_line(raw[:end], year=2026)
            assert event is None or isinstance(event, events.Event)


def test_mangled_lines_never_raise():
    rng = random.Random(13)
    alphabet = "<>[](),;:=/ \t.-_@0123456789ABCDEFabcdefNOQUEUE\x00\xff\u2028é"
    for text, _ in TABLE:
        for _ in range(30):
            chars = list(AT + text)
            for _ in range(rng.randint(1, 6)):
                chars[rng.randrange(len(chars))] = rng.choice(alphabet)
            event = parse_line("".join(chars), year=2026)
            assert event is None or isinstance(event, events.Event)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300), st.sampled_from([text for text, _ in TABLE]))
def test_random_text_never_raises(noise, text):
    for raw in (noise, AT + noise, AT + text[: len(noise)] + noise, AT + "postfix/smtpd[1]: NOQUEUE: " + noise):
        event = parse_line(raw, year=2026)
        assert event is None or isinstance(event, events.Event)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_binary_junk_never_raises(junk):
    for raw in (junk.decode("utf-8", "replace"), junk.decode("latin-1")):
        for candidate in (raw, AT + raw):
            event = parse_line(candidate, year=2026)
            assert event is None or isinstance(event, events.Event)


def test_parse_event_takes_any_program_and_text():
    line = events.LogLine(datetime(2026, 12, 6, tzinfo=UTC), "mail", "postfix/smtpd", None, "")
    assert isinstance(parse_event(line), events.Other)
    line = events.LogLine(datetime(2026, 12, 6, tzinfo=UTC), "", "postfix/", None, "QID12: removed")
    assert isinstance(parse_event(line), events.Other)


# --- a batch of lines: what the ingest reads ---------------------------------------------------------------------


def one_by_one(lines, reference):
    """What parse_lines must come to, line by line through parse_syslog and parse_event: the (event, line) pairs
    that tell of mail, the other lines by program, the lines that are not syslog lines."""
    year, limit = reference.year, reference + timedelta(days=1)
    pairs, other, not_syslog = [], Counter(), 0
    for raw in lines:
        raw = raw.rstrip("\r\n")
        try:
            raw.encode()
        except UnicodeEncodeError:
            raw = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        line = parse_syslog(raw, year=year)
        if line is None:
            not_syslog += 1
            continue
        if line.at > limit and not raw[:1].isdigit():
            line = parse_syslog(raw, year=year - 1) or line
        event = parse_event(line)
        if type(event) is events.Other:
            other[line.program] += 1
        else:
            pairs.append((event, raw))
    return pairs, other, not_syslog


def batch_of_every_shape():
    """The sample logs, every line of the table, Dovecot logging under its process name, classic lines around a new
    year, lines that are not syslog lines, and the table's lines mangled."""
    samples = Path(__file__).parent / "maillog_lines"
    lines = [line for path in sorted(samples.glob("*.log")) for line in path.read_text().splitlines(keepends=True)]
    lines += [AT + text + "\r\n" for text, _ in TABLE]
    lines += [
        AT + "imap-login: Login: user=<a@example.com>, method=PLAIN, rip=203.0.113.9, lip=172.18.0.2, TLS",
        AT + "pop3-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<b@example.com>, rip=203.0.113.9",
        AT + "imap-login: Disconnected (no auth attempts in 0 secs): user=<>, rip=203.0.113.9",
        "Dec 31 23:59:58 mail postfix/pickup[1]: 1A2B3C4D5E: uid=0 from=<root>\n",
        "Jan  1 00:00:01 mail postfix/qmgr[2]: 1A2B3C4D5E: from=<root@example.com>, size=300, nrcpt=1 (queue active)",
        "Jan  1 00:00:02 mail postfix/smtpd[3]: connect from unknown[203.0.113.9]",
        "Feb 30 10:15:02 mail postfix/qmgr[7]: 1A2B3C4D5E: removed",
        "2026-13-45T10:15:02+00:00 mail postfix/qmgr[7]: 1A2B3C4D5E: removed",
        "2026-12-06T10:15:02Z mail postfix/qmgr[7]: 1A2B3C4D5E: removed",
        AT + "postfix/qmgr[7]: 1A2B3C4D5E: from=<\udcffbad@example.com>, size=1, nrcpt=1 (queue active)",
        "",
        "\n",
        "hello world",
    ]
    rng = random.Random(21)
    alphabet = "<>[](),;:=/ \t.-_@0123456789ABCDEFabcdefNOQUEUE\x00\xff\u2028é"
    for text, _ in TABLE:
        for _ in range(5):
            chars = list(AT + text)
            for _ in range(rng.randint(1, 4)):
                chars[rng.randrange(len(chars))] = rng.choice(alphabet)
            lines.append("".join(chars))
    return lines


@pytest.mark.parametrize(
    "reference", [datetime(2026, 12, 6, 12, tzinfo=UTC), datetime(2027, 1, 1, 0, 5, tzinfo=UTC)], ids=str
)
def test_a_batch_gives_the_events_its_lines_give_one_by_one(reference):
    lines = batch_of_every_shape()
    parsed = parse_lines(lines, reference=reference)
    pairs, other, not_syslog = one_by_one(lines, reference)
    assert len(pairs) > 100 and sum(other.values()) > 50 and not_syslog > 20  # every kind of line is in the batch
    assert parsed.pairs == pairs
    assert (parsed.lines, parsed.not_syslog, parsed.other_by_program) == (len(lines), not_syslog, other)
    assert parsed.other == sum(other.values())
    assert (parsed.first_at, parsed.last_at) == (
        min(event.line.at for event, _ in pairs),
        max(event.line.at for event, _ in pairs),
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.sampled_from([AT + text for text, _ in TABLE]), st.text(max_size=120)), max_size=12))
def test_any_batch_gives_the_events_its_lines_give_one_by_one(lines):
    reference = datetime(2026, 12, 6, 12, tzinfo=UTC)
    parsed = parse_lines(lines, reference=reference)
    assert (parsed.pairs, parsed.other_by_program, parsed.not_syslog) == one_by_one(lines, reference)


def test_an_empty_batch_has_no_events_and_no_times():
    parsed = parse_lines([], reference=datetime(2026, 12, 6, tzinfo=UTC))
    assert (parsed.pairs, parsed.lines, parsed.other, parsed.first_at, parsed.last_at) == ([], 0, 0, None, None)


def test_a_delay_too_long_to_be_postfixs_is_left_out():
    line = parse_syslog(
        "2026-12-06T10:15:02.123456+00:00 mail postfix/smtp[4]: 3C5A12B4D1: to=<a@example.org>, relay=none, delay="
        + "9" * 400
        + ", delays=0/0/0/0, dsn=4.4.1, status=deferred (connect to mx.example.org: Connection refused)"
    )
    event = parse_event(line)
    assert (type(event), event.delay, event.status) == (events.Delivery, None, "deferred")


def test_a_senders_words_cannot_stand_for_the_client_or_the_envelope_of_a_content_action():
    # A sender whose quoted local part holds a space, and a Subject that imitates the context: the client and the
    # envelope are the real ones (read from the end), and the action is counted.
    spoof = "VIAGRA from trusted.example[10.0.0.1]; from=<alice@example.com> to=<bob@example.com>: 5.7.1 x"
    line = parse_syslog(
        f"{AT}postfix/cleanup[17]: 0737520C27D: reject: header Subject: {spoof} from unknown[127.0.0.9]; "
        'from=<"a b"@evil.example> to=<carol@example.com> proto=ESMTP helo=<mta.example.net>: 5.7.1 Message content '
        "rejected"
    )
    event = parse_event(line)
    assert (event.client_ip, event.sender, event.recipient, event.action, event.reply) == (
        "127.0.0.9",
        '"a b"@evil.example',
        "carol@example.com",
        "reject",
        "Message content rejected",
    )


def test_a_content_action_whose_context_cannot_be_read_still_counts():
    line = parse_syslog(
        f"{AT}postfix/cleanup[17]: 0737520C27D: hold: header Subject: x from unknown[127.0.0.9]; from=<a@example.net> "
        "to=<b@example.com> proto=ESMTP helo=<mta.example.net>: held: see <https://wiki.example.com/hold>"
    )
    event = parse_event(line)
    assert (type(event), event.queue_id, event.stage, event.action, event.is_warning) == (
        events.Rejected,
        "0737520C27D",
        "header",
        "hold",
        True,
    )


@pytest.mark.parametrize(
    "text",
    [
        # A quoted local part imitating a context, in Postfix's external form (a quote inside is \").
        "postfix/smtpd[21]: NOQUEUE: reject: RCPT from real[192.0.2.1]: 554 5.7.1 <x@d>: Recipient address rejected: "
        'no; from=<s@s> to=<"; from=<victim@v> to=<\\""@d> proto=ESMTP helo=<h>',
        'postfix/smtpd[21]: NOQUEUE: reject: RCPT from unknown[203.0.113.9]: 554 5.7.1 <"x; from=<victim@v> to=<y"@d>: '
        'Relay access denied; from=<spam@example.biz> to=<"x; from=<victim@v> to=<y"@d> proto=ESMTP helo=<ylmf-pc>',
        "postfix/postscreen[9]: NOQUEUE: reject: RCPT from [192.0.2.1]:4711: 550 5.3.2 Service currently unavailable; "
        'from=<s@s>, to=<"x; from=<victim@v>, to=<\\""@d>, proto=ESMTP, helo=<h>',
        # A HELO name with a quote closes a quoted string the reading started inside.
        "postfix/smtpd[21]: NOQUEUE: reject: RCPT from real[192.0.2.1]: 554 5.7.1 <x@d>: no; from=<s@s> "
        'to=<"q; from=<victim@v> to=<z"@d> proto=ESMTP helo=<h"x>',
        "postfix/cleanup[17]: 4BBBB11111: hold: header Subject: hi from real[192.0.2.1]; from=<s@s> "
        'to=<"q from evil[6.6.6.6]; from=<victim@v> to=<\\""@d> proto=ESMTP helo=<h>: 5.7.1 held',
        "postfix/cleanup[17]: 4BBBB11111: reject: header Subject: hi from real[192.0.2.1]; "
        'from=<"q from evil[6.6.6.6]; from=<f@e\\""@d> to=<a@b> proto=ESMTP helo=<h>: 5.7.1 no',
    ],
)
def test_a_quoted_local_part_cannot_stand_for_the_sender_or_the_client(text):
    event = parse_event(parse_syslog(AT + text))
    assert type(event) is events.Rejected
    assert "victim@v" not in (event.sender, event.recipient) and event.client_ip != "6.6.6.6"
    assert event.sender in ("s@s", "spam@example.biz", "")
