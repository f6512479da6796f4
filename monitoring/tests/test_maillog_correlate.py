"""The correlator, without a database: real line shapes tied into messages and attempts by queue id, across
batches (a store stand-in keeps what each batch wrote and restores it, as monitoring.traffic does), with queue ids
used again, expiry, rejections, and the same lines read twice."""

import dataclasses
import gc
from datetime import UTC, datetime, timedelta

from monitoring.maillog import correlate as c
from monitoring.maillog.correlate import Correlator, OpenMessage, restorable_queue_ids
from monitoring.maillog.parse import parse_line

START = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def log(seconds, text):
    """A DMS line written `seconds` after START."""
    return f"{(START + timedelta(seconds=seconds)).isoformat()} mail {text}"


class Store:
    """What monitoring.traffic keeps between batches, in memory: messages by key with ids, attempts and rejections
    by line key (a key stored once), and the restore of the messages a batch may continue."""

    def __init__(self, source="mx1"):
        self.source = source
        self.messages = {}
        self.attempts = {}
        self.rejections = {}

    def restorable(self, queue_ids):
        found = []
        for stored in self.messages.values():
            if stored.queue_id in queue_ids:
                copy = dataclasses.replace(stored, recipients=dict(stored.recipients), id=stored.id)
                found.append(copy)
        return found

    def ingest(self, raws):
        pairs = [(parse_line(raw), raw) for raw in raws]
        pairs = [(event, raw) for event, raw in pairs if event is not None]
        restored = self.restorable(restorable_queue_ids(event for event, _ in pairs))
        batch = c.correlate(self.source, pairs, restored)
        for message in batch.messages:
            if message.id is None:
                message.id = len(self.messages) + 1
            self.messages[message.line_key] = dataclasses.replace(message, recipients=dict(message.recipients))
        for attempt in batch.attempts:
            self.attempts.setdefault(attempt.line_key, (attempt.message.line_key, attempt))
        for rejection in batch.rejections:
            self.rejections.setdefault(rejection.line_key, rejection.event)
        return batch

    def only_message(self):
        assert len(self.messages) == 1, self.messages
        return next(iter(self.messages.values()))

    def statuses(self, message):
        return [(a.recipient, a.status) for key, a in self.attempts.values() if key == message.line_key]


SENT_OUT = [
    log(0, "postfix/submission/smtpd[20]: connect from unknown[198.51.100.23]"),
    log(1, "postfix/submission/smtpd[20]: 4F1D33B5E2: client=unknown[198.51.100.23], sasl_method=PLAIN, "
        "sasl_username=alice@example.com"),
    log(1, "postfix/cleanup[30]: 4F1D33B5E2: message-id=<m1@example.com>"),
    log(1, "postfix/qmgr[7]: 4F1D33B5E2: from=<alice@example.com>, size=2048, nrcpt=2 (queue active)"),
    log(2, "postfix/submission/smtpd[20]: disconnect from unknown[198.51.100.23] ehlo=2 starttls=1 auth=1 mail=1 "
        "rcpt=2 data=1 quit=1 commands=9"),
    log(3, "postfix/out-192-0-2-10/smtp[40]: 4F1D33B5E2: to=<bob@example.org>, relay=mx.example.org[192.0.2.25]:25, "
        "delay=2.1, delays=0.1/0/1/1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 9F8E7D6C5B)"),
    log(3, "postfix/out-192-0-2-10/smtp[40]: 4F1D33B5E2: to=<carol@example.org>, relay=mx.example.org[192.0.2.25]:25, "
        "conn_use=2, delay=2.2, delays=0.1/0/1/1.1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 9F8E7D6C5C)"),
    log(3, "postfix/qmgr[7]: 4F1D33B5E2: removed"),
]  # fmt: skip


def test_a_message_sent_by_a_user_is_one_outgoing_message_with_an_attempt_per_recipient():
    store = Store()
    batch = store.ingest(SENT_OUT)
    message = store.only_message()
    assert (message.queue_id, message.sender, message.size, message.nrcpt) == (
        "4F1D33B5E2",
        "alice@example.com",
        2048,
        2,
    )
    assert (message.message_id, message.sasl_username, message.client_ip) == (
        "m1@example.com",
        "alice@example.com",
        "198.51.100.23",
    )
    assert (message.direction, message.state) == (c.OUT, c.DELIVERED)
    assert message.first_seen_at == START + timedelta(seconds=1)
    assert message.removed_at == message.last_seen_at == START + timedelta(seconds=3)
    attempts = [a for _, a in store.attempts.values()]
    assert [(a.recipient, a.status, a.service, a.sending_ip, a.dsn) for a in attempts] == [
        ("bob@example.org", "sent", "out-192-0-2-10", "192.0.2.10", "2.0.0"),
        ("carol@example.org", "sent", "out-192-0-2-10", "192.0.2.10", "2.0.0"),
    ]
    assert attempts[0].reply == "250 2.0.0 Ok: queued as 9F8E7D6C5B"
    assert batch.other_by_program == {"postfix/submission/smtpd": 1}  # disconnect (connect starts a session)
    assert batch.events["SessionStarted"] == 1


def test_a_message_from_another_server_is_incoming():
    store = Store()
    store.ingest([
        log(0, "postfix/smtpd[21]: 3C5A12B4D1: client=mail.example.net[203.0.113.5]"),
        log(0, "postfix/qmgr[7]: 3C5A12B4D1: from=<a@example.net>, size=900, nrcpt=1 (queue active)"),
        log(1, "postfix/lmtp[41]: 3C5A12B4D1: to=<alice@example.com>, relay=mail.example.com[/var/run/dovecot/lmtp], "
            "delay=0.1, delays=0.05/0/0/0.05, dsn=2.0.0, status=sent (250 2.0.0 <alice@example.com> x Saved)"),
        log(1, "postfix/qmgr[7]: 3C5A12B4D1: removed"),
    ])  # fmt: skip
    message = store.only_message()
    assert (message.direction, message.state, message.client_host) == (c.IN, c.DELIVERED, "mail.example.net")
    assert store.statuses(message) == [("alice@example.com", "sent")]


def test_a_message_deferred_in_one_batch_and_delivered_in_a_later_one_stays_one_message():
    store = Store()
    store.ingest([
        log(0, "postfix/smtpd[21]: 3C5A12B4D1: client=mail.example.net[203.0.113.5]"),
        log(0, "postfix/cleanup[30]: 3C5A12B4D1: message-id=<m2@example.net>"),
        log(0, "postfix/qmgr[7]: 3C5A12B4D1: from=<a@example.net>, size=900, nrcpt=1 (queue active)"),
        log(1, "postfix/smtp[40]: 3C5A12B4D1: to=<bob@example.org>, relay=mx.example.org[192.0.2.25]:25, delay=1, "
            "delays=0/0/0.5/0.5, dsn=4.2.0, status=deferred (host mx.example.org[192.0.2.25] said: 450 4.2.0 "
            "Greylisted (in reply to RCPT TO command))"),
    ])  # fmt: skip
    message = store.only_message()
    assert (message.state, message.removed_at) == (c.DEFERRED, None)
    batch = store.ingest([
        log(600, "postfix/qmgr[7]: 3C5A12B4D1: from=<a@example.net>, size=900, nrcpt=1 (queue active)"),
        log(601, "postfix/smtp[40]: 3C5A12B4D1: to=<bob@example.org>, relay=mx.example.org[192.0.2.25]:25, delay=601, "
            "delays=600/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok)"),
        log(601, "postfix/qmgr[7]: 3C5A12B4D1: removed"),
    ])  # fmt: skip
    assert [m.id for m in batch.messages] == [message.id]  # the stored message, updated
    message = store.only_message()
    assert (message.state, message.message_id) == (c.DELIVERED, "m2@example.net")
    assert message.removed_at == START + timedelta(seconds=601)
    assert store.statuses(message) == [("bob@example.org", "deferred"), ("bob@example.org", "sent")]


EXPIRING = [
    log(0, "postfix/pickup[50]: 7D1E2F3A4B: uid=0 from=<root>"),
    log(0, "postfix/qmgr[7]: 7D1E2F3A4B: from=<root@mail.example.com>, size=500, nrcpt=2 (queue active)"),
    log(1, "postfix/smtp[40]: 7D1E2F3A4B: to=<ops@example.org>, relay=mx.example.org[192.0.2.25]:25, delay=1, "
        "delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok)"),
    log(1, "postfix/smtp[40]: 7D1E2F3A4B: to=<old@gone.example>, relay=none, delay=1, delays=0/0/1/0, dsn=4.4.1, "
        "status=deferred (connect to mx.gone.example[192.0.2.99]:25: Connection timed out)"),
    log(432000, "postfix/qmgr[7]: 7D1E2F3A4B: from=<root@mail.example.com>, status=expired, returned to sender"),
    log(432000, "postfix/cleanup[30]: 8E9F0A1B2C: message-id=<20261211100000.8E9F0A1B2C@mail.example.com>"),
    log(432000, "postfix/bounce[60]: 7D1E2F3A4B: sender non-delivery notification: 8E9F0A1B2C"),
    log(432000, "postfix/qmgr[7]: 7D1E2F3A4B: removed"),
]  # fmt: skip


def test_an_expired_message_gives_up_its_waiting_recipients():
    store = Store()
    store.ingest(EXPIRING)
    by_id = {m.queue_id: m for m in store.messages.values()}
    message = by_id["7D1E2F3A4B"]
    assert (message.direction, message.state) == (c.OUT, c.MIXED)  # one delivered, one expired
    assert store.statuses(message) == [
        ("ops@example.org", "sent"),
        ("old@gone.example", "deferred"),
        ("old@gone.example", "expired"),
    ]
    assert by_id["8E9F0A1B2C"].direction == c.OUT  # the notification Postfix wrote to the sender


def test_an_expired_message_with_every_recipient_waiting_is_expired():
    store = Store()
    store.ingest([line for line in EXPIRING if "ops@example.org" not in line])
    assert {m.queue_id: m.state for m in store.messages.values()}["7D1E2F3A4B"] == c.EXPIRED


def test_a_bounced_recipient_makes_a_bounced_message():
    store = Store()
    store.ingest([
        log(0, "postfix/smtpd[21]: 3C5A12B4D1: client=unknown[198.51.100.23], sasl_method=PLAIN, "
            "sasl_username=alice@example.com"),
        log(0, "postfix/qmgr[7]: 3C5A12B4D1: from=<alice@example.com>, size=900, nrcpt=1 (queue active)"),
        log(1, "postfix/smtp[40]: 3C5A12B4D1: to=<nobody@example.org>, relay=mx.example.org[192.0.2.25]:25, "
            "delay=1, delays=0/0/0.5/0.5, dsn=5.1.1, status=bounced (host mx.example.org[192.0.2.25] said: 550 5.1.1 "
            "<nobody@example.org>: User unknown (in reply to RCPT TO command))"),
        log(1, "postfix/qmgr[7]: 3C5A12B4D1: removed"),
    ])  # fmt: skip
    message = store.only_message()
    assert message.state == c.BOUNCED
    ((_, attempt),) = store.attempts.values()
    assert attempt.reply.endswith("User unknown (in reply to RCPT TO command)")


def test_a_bounce_notification_knows_the_message_it_tells_of_even_from_a_later_batch():
    store = Store()
    store.ingest([
        log(0, "postfix/smtpd[21]: 3C5A12B4D1: client=unknown[198.51.100.23], sasl_method=PLAIN, "
            "sasl_username=alice@example.com"),
        log(0, "postfix/qmgr[7]: 3C5A12B4D1: from=<alice@example.com>, size=900, nrcpt=1 (queue active)"),
        log(1, "postfix/smtp[40]: 3C5A12B4D1: to=<nobody@example.org>, relay=mx.example.org[192.0.2.25]:25, "
            "delay=1, delays=0/0/0.5/0.5, dsn=5.1.1, status=bounced (host mx.example.org[192.0.2.25] said: 550 5.1.1 "
            "<nobody@example.org>: User unknown (in reply to RCPT TO command))"),
        log(1, "postfix/cleanup[30]: 9A8B7C6D5E: message-id=<20261206100001.9A8B7C6D5E@mail.example.com>"),
    ])  # fmt: skip
    store.ingest(
        [  # the bounce daemon's line, read in the next batch
            log(1, "postfix/bounce[60]: 3C5A12B4D1: sender non-delivery notification: 9A8B7C6D5E"),
            log(1, "postfix/qmgr[7]: 3C5A12B4D1: removed"),
        ]
    )
    by_queue_id = {m.queue_id: m for m in store.messages.values()}
    original, notification = by_queue_id["3C5A12B4D1"], by_queue_id["9A8B7C6D5E"]
    assert (notification.notification_of_key, notification.direction) == (original.line_key, c.OUT)
    assert original.notification_of_key == "" and original.last_seen_at == START + timedelta(seconds=1)


def test_a_queue_id_used_again_after_removal_is_another_message():
    again = [line.replace("m1@example.com", "m9@example.com").replace("T10:00:0", "T11:00:0") for line in SENT_OUT]
    store = Store()
    store.ingest(SENT_OUT + again)
    assert sorted(m.message_id for m in store.messages.values()) == ["m1@example.com", "m9@example.com"]
    assert len(store.attempts) == 4


def test_a_queue_id_used_again_in_a_later_batch_is_another_message():
    again = [line.replace("m1@example.com", "m9@example.com").replace("T10:00:0", "T11:00:0") for line in SENT_OUT]
    store = Store()
    store.ingest(SENT_OUT)
    store.ingest(again)
    assert sorted((m.message_id, m.state) for m in store.messages.values()) == [
        ("m1@example.com", c.DELIVERED),
        ("m9@example.com", c.DELIVERED),
    ]


def test_a_client_line_for_an_open_queue_id_starts_another_message():
    store = Store()
    store.ingest([
        log(0, "postfix/smtpd[21]: 3C5A12B4D1: client=mail.example.net[203.0.113.5]"),
        log(5, "postfix/smtpd[22]: 3C5A12B4D1: client=other.example.net[203.0.113.6]"),
        log(5, "postfix/qmgr[7]: 3C5A12B4D1: from=<b@example.net>, size=900, nrcpt=1 (queue active)"),
    ])  # fmt: skip
    messages = sorted(store.messages.values(), key=lambda m: m.first_seen_at)
    assert [(m.client_host, m.sender, m.state) for m in messages] == [
        ("mail.example.net", "", c.QUEUED),
        ("other.example.net", "b@example.net", c.QUEUED),
    ]


def test_a_stored_message_silent_for_longer_than_a_queue_lifetime_is_not_continued():
    store = Store()
    store.ingest([log(0, "postfix/smtpd[21]: 3C5A12B4D1: client=mail.example.net[203.0.113.5]")])
    store.ingest([log(8 * 86400, "postfix/cleanup[30]: 3C5A12B4D1: message-id=<late@example.net>")])
    assert sorted(m.message_id for m in store.messages.values()) == ["", "late@example.net"]


def test_a_stored_message_never_queued_is_not_continued_a_day_later():
    store = Store()
    store.ingest([log(0, "postfix/smtpd[21]: 3C5A12B4D1: client=mail.example.net[203.0.113.5]")])
    store.ingest([log(2 * 86400, "postfix/cleanup[30]: 3C5A12B4D1: message-id=<next@example.net>")])
    assert sorted(m.message_id for m in store.messages.values()) == ["", "next@example.net"]


def test_a_queue_id_used_again_in_a_batch_never_goes_back_to_an_older_stored_message():
    store = Store()
    store.ingest([log(0, "postfix/smtpd[21]: 3C5A12B4D1: client=gone.example.net[203.0.113.7]")])  # abandoned
    store.ingest([
        log(60, "postfix/smtpd[22]: 3C5A12B4D1: client=mail.example.net[203.0.113.5]"),
        log(60, "postfix/qmgr[7]: 3C5A12B4D1: from=<a@example.net>, size=900, nrcpt=1 (queue active)"),
        log(61, "postfix/qmgr[7]: 3C5A12B4D1: removed"),
        log(62, "postfix/cleanup[30]: 3C5A12B4D1: message-id=<third@example.net>"),
    ])  # fmt: skip
    messages = sorted(store.messages.values(), key=lambda m: m.first_seen_at)
    assert [(m.client_host, m.sender, m.message_id) for m in messages] == [
        ("gone.example.net", "", ""),
        ("mail.example.net", "a@example.net", ""),
        ("", "", "third@example.net"),
    ]


def test_a_queued_message_silent_for_days_is_continued():
    store = Store()
    store.ingest([
        log(0, "postfix/smtpd[21]: 3C5A12B4D1: client=mail.example.net[203.0.113.5]"),
        log(0, "postfix/qmgr[7]: 3C5A12B4D1: from=<a@example.net>, size=900, nrcpt=1 (queue active)"),
    ])  # fmt: skip
    store.ingest([log(3 * 86400, "postfix/qmgr[7]: 3C5A12B4D1: removed")])
    assert store.only_message().removed_at == START + timedelta(days=3)


def test_rejections_are_kept_and_one_at_the_end_of_the_message_ends_it():
    store = Store()
    store.ingest([
        log(0, "postfix/smtpd[21]: NOQUEUE: reject: RCPT from unknown[203.0.113.9]: 554 5.7.1 <x@example.org>: "
            "Relay access denied; from=<spam@example.biz> to=<x@example.org> proto=ESMTP helo=<ylmf-pc>"),
        log(1, "postfix/smtpd[22]: 3C5A12B4D1: client=mail.example.net[203.0.113.5]"),
        log(2, "postfix/cleanup[30]: 3C5A12B4D1: milter-reject: END-OF-MESSAGE from mail.example.net[203.0.113.5]: "
            "5.7.1 Spam message rejected; from=<a@example.net> to=<alice@example.com> proto=ESMTP "
            "helo=<mail.example.net>"),
    ])  # fmt: skip
    assert [(r.queue_id, r.stage, r.code, r.reply) for r in store.rejections.values()] == [
        ("", "RCPT", 554, "<x@example.org>: Relay access denied"),
        ("3C5A12B4D1", "END-OF-MESSAGE", None, "Spam message rejected"),
    ]
    message = store.only_message()
    assert (message.state, message.sender, message.removed_at) == (
        c.REJECTED,
        "a@example.net",
        START + timedelta(seconds=2),
    )


# HOLD and DISCARD, in the order the real Postfix 3.7 of postfix_instance.py logs them (play_every_case).
HELD_BY_HEADER = [
    log(0, "postfix/smtpd[12]: 05AA920C26F: client=unknown[127.0.0.9]"),
    log(
        0,
        "postfix/cleanup[17]: 05AA920C26F: hold: header Subject: Invoice overdue from unknown[127.0.0.9]; "
        "from=<billing@example.net> to=<alice@example.com> proto=ESMTP helo=<mta.example.net>: looks like fraud",
    ),
    log(0, "postfix/cleanup[17]: 05AA920C26F: message-id=<m7@example.net>"),
]
RELEASED = [
    log(60, "postfix/postsuper[32]: 05AA920C26F: released from hold"),
    log(61, "postfix/qmgr[9]: 05AA920C26F: from=<billing@example.net>, size=480, nrcpt=1 (queue active)"),
    log(61, "postfix/lmtp[18]: 05AA920C26F: to=<alice@example.com>, relay=mail.example.com[/var/run/dovecot/lmtp], "
        "delay=61, delays=61/0/0/0, dsn=2.0.0, status=sent (250 2.0.0 <alice@example.com> x Saved)"),
    log(61, "postfix/qmgr[9]: 05AA920C26F: removed"),
]  # fmt: skip


def test_a_message_held_by_a_header_check_is_held_until_released_then_delivered():
    store = Store()
    store.ingest(HELD_BY_HEADER)
    message = store.only_message()
    assert (message.state, message.removed_at, message.sender) == (c.HELD, None, "billing@example.net")
    assert [(r.action, r.is_warning) for r in store.rejections.values()] == [("hold", True)]
    store.ingest(RELEASED)  # a later batch: the stored message goes on
    message = store.only_message()
    assert (message.state, message.removed_at) == (c.DELIVERED, START + timedelta(seconds=61))


def test_a_hold_at_the_first_recipient_holds_the_message_smtpd_opens_next():
    store = Store()
    store.ingest([
        log(0, "postfix/smtpd[12]: NOQUEUE: hold: RCPT from unknown[127.0.0.9]: <review@example.com>: Recipient "
            "address triggers HOLD action; from=<news@example.net> to=<review@example.com> proto=ESMTP "
            "helo=<mta.example.net>"),
        log(0, "postfix/smtpd[13]: 1111120C27B: client=unknown[127.0.0.8]"),  # another smtpd process: not it
        log(0, "postfix/smtpd[12]: 0674A20C27B: client=unknown[127.0.0.9]"),
        log(0, "postfix/cleanup[17]: 0674A20C27B: message-id=<m8@example.net>"),
        log(1, "postfix/smtpd[12]: 2222220C27C: client=unknown[127.0.0.9]"),  # the next message of the session
    ])  # fmt: skip
    states = {m.queue_id: m.state for m in store.messages.values()}
    assert states == {"0674A20C27B": c.HELD, "1111120C27B": c.QUEUED, "2222220C27C": c.QUEUED}


def test_a_hold_whose_recipient_was_refused_after_all_or_long_ago_holds_no_other_message():
    store = Store()
    store.ingest([
        # HOLD does not end the checks: a later restriction refused the same recipient, so no queue file was made.
        log(0, "postfix/smtpd[12]: NOQUEUE: hold: RCPT from unknown[127.0.0.9]: <review@example.com>: Recipient "
            "address triggers HOLD action; from=<a@example.net> to=<review@example.com> proto=ESMTP helo=<foo>"),
        log(0, "postfix/smtpd[12]: NOQUEUE: reject: RCPT from unknown[127.0.0.9]: 504 5.5.2 <foo>: Helo command "
            "rejected: need fully-qualified hostname; from=<a@example.net> to=<review@example.com> proto=ESMTP "
            "helo=<foo>"),
        log(5, "postfix/smtpd[12]: 1111120C27B: client=mail.example.net[203.0.113.5]"),  # another session
        log(10, "postfix/smtpd[12]: NOQUEUE: milter-discard: MAIL from unknown[127.0.0.9]: milter triggers DISCARD "
            "action; from=<b@example.net> proto=ESMTP helo=<foo>"),
        log(900, "postfix/smtpd[12]: 2222220C27C: client=mail.example.net[203.0.113.5]"),  # 15 minutes later
    ])  # fmt: skip
    assert {m.queue_id: m.state for m in store.messages.values()} == {"1111120C27B": c.QUEUED, "2222220C27C": c.QUEUED}


def test_a_hold_of_one_smtp_session_is_not_pinned_on_the_next_sessions_message():
    store = Store()
    store.ingest([
        log(0, "postfix/smtpd[500]: connect from evil.example[203.0.113.5]"),
        log(0, "postfix/smtpd[500]: NOQUEUE: hold: MAIL from evil.example[203.0.113.5]: <spam@evil.example>: Sender "
            "address triggers HOLD action; from=<spam@evil.example> proto=ESMTP helo=<evil.example>"),
        log(1, "postfix/smtpd[500]: disconnect from evil.example[203.0.113.5] ehlo=1 mail=1 quit=1 commands=3"),
        log(60, "postfix/smtpd[500]: connect from good.example[198.51.100.7]"),
        log(60, "postfix/smtpd[500]: 1A2B3C4D5E: client=good.example[198.51.100.7]"),
    ])  # fmt: skip
    message = store.only_message()
    assert (message.state, message.first_seen_at) == (c.QUEUED, START + timedelta(seconds=60))
    assert [r.queue_id for r in store.rejections.values()] == [""]


def test_a_message_marked_discarded_that_is_delivered_was_not_discarded():
    store = Store()
    store.ingest([
        log(0, "postfix/smtpd[12]: NOQUEUE: milter-discard: MAIL from unknown[127.0.0.9]: milter triggers DISCARD "
            "action; from=<b@example.net> proto=ESMTP helo=<foo>"),
        log(1, "postfix/smtpd[12]: 2222220C27C: client=mail.example.net[203.0.113.5]"),
    ])  # fmt: skip
    assert store.only_message().state == c.DISCARDED
    store.ingest([
        log(2, "postfix/qmgr[9]: 2222220C27C: from=<c@example.net>, size=480, nrcpt=1 (queue active)"),
        log(3, "postfix/lmtp[18]: 2222220C27C: to=<alice@example.com>, relay=mail.example.com[/var/run/dovecot/lmtp], "
            "delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (250 2.0.0 <alice@example.com> x Saved)"),
        log(3, "postfix/qmgr[9]: 2222220C27C: removed"),
    ])  # fmt: skip
    assert store.only_message().state == c.DELIVERED


def test_a_discarded_message_stays_discarded():
    store = Store()
    store.ingest([
        log(0, "postfix/smtpd[12]: 0737520C27D: client=unknown[127.0.0.9]"),
        log(0, "postfix/cleanup[17]: 0737520C27D: discard: header Subject: Unsubscribe me from unknown[127.0.0.9]; "
            "from=<list@example.net> to=<alice@example.com> proto=ESMTP helo=<mta.example.net>"),
        log(1, "postfix/smtpd[12]: NOQUEUE: discard: RCPT from unknown[127.0.0.9]: <trap@example.com>: Recipient "
            "address triggers DISCARD action; from=<news@example.net> to=<trap@example.com> proto=ESMTP "
            "helo=<mta.example.net>"),
        log(1, "postfix/smtpd[12]: 07C5320C27E: client=unknown[127.0.0.9]"),
    ])  # fmt: skip
    states = {m.queue_id: m.state for m in store.messages.values()}
    assert states == {"0737520C27D": c.DISCARDED, "07C5320C27E": c.DISCARDED}
    # A `removed` line, should one come, does not make it queued or delivered.
    store.ingest([log(2, "postfix/qmgr[9]: 0737520C27D: removed")])
    assert {m.queue_id: m.state for m in store.messages.values()}["0737520C27D"] == c.DISCARDED


def test_a_recipient_refused_once_queued_does_not_end_the_message():
    store = Store()
    store.ingest([
        log(0, "postfix/smtpd[21]: 3C5A12B4D1: client=mail.example.net[203.0.113.5]"),
        log(0, "postfix/smtpd[21]: 3C5A12B4D1: reject: RCPT from mail.example.net[203.0.113.5]: 550 5.1.1 "
            "<nobody@example.com>: Recipient address rejected: User unknown in virtual mailbox table; "
            "from=<a@example.net> to=<nobody@example.com> proto=ESMTP helo=<mail.example.net>"),
        log(1, "postfix/qmgr[7]: 3C5A12B4D1: from=<a@example.net>, size=900, nrcpt=1 (queue active)"),
    ])  # fmt: skip
    assert (store.only_message().state, store.only_message().removed_at) == (c.QUEUED, None)
    assert len(store.rejections) == 1


def test_reading_the_same_lines_again_changes_nothing():
    store = Store()
    lines = SENT_OUT + EXPIRING
    store.ingest(lines)
    before = {key: dataclasses.replace(m) for key, m in store.messages.items()}
    attempts = dict(store.attempts)
    batch = store.ingest(lines)
    assert batch.messages == []  # every message found stored, none changed
    assert store.messages.keys() == before.keys() and len(store.attempts) == len(attempts)


def test_reading_the_same_lines_again_cut_into_other_batches_changes_nothing():
    store = Store()
    lines = SENT_OUT + EXPIRING
    store.ingest(lines)
    before = {key: m.values() for key, m in store.messages.items()}
    for cut in range(1, len(lines)):
        store.ingest(lines[:cut])
        store.ingest(lines[cut:])
        assert {key: m.values() for key, m in store.messages.items()} == before, cut
    assert len(store.attempts) == 5


def test_reading_earlier_lines_again_does_not_undo_a_later_outcome():
    lines = [
        log(0, "postfix/smtpd[21]: 3C5A12B4D1: client=mail.example.net[203.0.113.5]"),
        log(0, "postfix/qmgr[7]: 3C5A12B4D1: from=<a@example.net>, size=900, nrcpt=1 (queue active)"),
        log(1, "postfix/smtp[40]: 3C5A12B4D1: to=<bob@example.org>, relay=none, delay=1, delays=0/0/1/0, dsn=4.4.1, "
            "status=deferred (connect to mx.example.org[192.0.2.25]:25: Connection refused)"),
        log(900, "postfix/smtp[40]: 3C5A12B4D1: to=<bob@example.org>, relay=mx.example.org[192.0.2.25]:25, "
            "delay=900, delays=899/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok)"),
        log(900, "postfix/qmgr[7]: 3C5A12B4D1: removed"),
    ]  # fmt: skip
    store = Store()
    store.ingest(lines)
    batch = store.ingest(lines[:3])  # the first lines again, the later ones stored already
    assert batch.messages == [] and store.only_message().state == c.DELIVERED


def test_lines_split_over_batches_give_what_one_batch_gives():
    lines = SENT_OUT + EXPIRING
    whole = Store()
    whole.ingest(lines)
    for cut in range(1, len(lines)):
        split = Store()
        split.ingest(lines[:cut])
        split.ingest(lines[cut:])
        assert sorted(m.values() for m in split.messages.values()) == sorted(
            m.values() for m in whole.messages.values()
        )
        assert split.attempts.keys() == whole.attempts.keys()


def test_a_removed_line_for_an_unknown_message_is_ignored():
    store = Store()
    batch = store.ingest([log(0, "postfix/qmgr[7]: 3C5A12B4D1: removed")])
    assert store.messages == {} and batch.events == {"Removed": 1}


def test_restorable_queue_ids_name_the_notifications_too():
    events = [parse_line(line) for line in EXPIRING]
    assert restorable_queue_ids(events) == {"7D1E2F3A4B", "8E9F0A1B2C"}


def test_message_state_waits_for_recipients_not_tried_yet():
    message = OpenMessage("k", "Q1234", START, START, nrcpt=2, recipients={"a@example.org": ("sent", START)})
    assert c.message_state(message) == c.QUEUED
    message.removed_at = START
    assert c.message_state(message) == c.DELIVERED


def test_a_restored_message_is_continued_by_a_correlator():
    stored = OpenMessage(
        "k1", "3C5A12B4D1", START, START, sender="a@example.net", id=7, recipients={"b@example.org": ("sent", START)}
    )
    correlator = Correlator("mx1", [stored])
    raw = log(60, "postfix/qmgr[7]: 3C5A12B4D1: removed")
    correlator.feed(parse_line(raw), raw)
    (message,) = correlator.result().messages
    assert (message.id, message.removed_at, message.state) == (7, START + timedelta(seconds=60), c.DELIVERED)


def test_a_correlated_batch_is_freed_without_the_garbage_collector():
    # The ingest pauses the cyclic collector during a batch: a reference cycle would keep a batch's messages and
    # attempts in memory until the collector's next full pass.
    lines = SENT_OUT + EXPIRING
    pairs = [(parse_line(raw), raw) for raw in lines]
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        batch = c.correlate("mx1", pairs)
        assert batch.messages and batch.attempts
        del batch
        assert gc.collect() == 0
    finally:
        if was_enabled:
            gc.enable()
