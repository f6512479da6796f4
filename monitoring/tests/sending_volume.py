"""Mail in volume for the sending-rate tests: messages sent from a pooled IP to many recipients, some refused at
SMTP (as Postfix logs them), and the bounces and complaints that come back later by mail, written from the real
Gmail DSN and Yahoo ARF fixtures for another message and recipient, ingested as `manage.py feedback ingest` does."""

from datetime import timedelta

import time_machine

from monitoring import feedback
from monitoring.tests.feedback_traffic import fixture, transport
from monitoring.tests.traffic_logs import attempt, ingest_lines, removed, submission


def recipients(prefix, count):
    return [f"{prefix}{n}@example.net" for n in range(count)]


def mail_from(ip, at, qid, *, sender="alice@example.com", to, hard=0, soft=0):
    """Log lines of one message from `sender` through `ip` to the addresses `to`: the first `hard` refused 5.1.1,
    the next `soft` refused 5.2.2 (a full mailbox), the rest delivered."""
    statuses = {address: ("bounced", "5.1.1") for address in to[:hard]}
    statuses |= {address: ("bounced", "5.2.2") for address in to[hard : hard + soft]}
    lines = submission(at, qid, sender, to)
    for number, address in enumerate(to):
        status, dsn = statuses.get(address, ("sent", ""))
        lines.append(attempt(at + timedelta(seconds=1 + number), qid, address, status, dsn=dsn, service=transport(ip)))
    lines.append(removed(at + timedelta(seconds=len(to) + 5), qid))
    return lines


def send(*messages):
    ingest_lines(sorted(line for lines in messages for line in lines))


def late_bounce(qid, recipient, ip):
    """Gmail's DSN (5.1.1) for `recipient` of the message `qid` sent from `ip`."""
    raw = fixture("gmail_failed.eml").decode()
    raw = raw.replace("7d4a66e8b5", qid.lower()).replace("7D4A66E8B5", qid).replace("192.0.2.11", ip)
    raw = raw.replace("frank.nosuch@gmail.com", recipient).replace("6571f0a2", f"g{qid.lower()}")
    return raw.encode()


def complaint(qid, recipient, ip):
    """Yahoo's abuse report (ARF) about the message `qid` sent from `ip` to `recipient`."""
    raw = fixture("arf_yahoo.eml").decode()
    raw = raw.replace("C29FBBD30A", qid).replace("c29fbbd30a", qid.lower()).replace("192.0.2.10", ip)
    raw = raw.replace("kate@yahoo.com", recipient).replace("kate=yahoo.com", recipient.replace("@", "="))
    raw = raw.replace("20261208081539.4242.fbl", f"{qid.lower()}.{recipient}")
    return raw.encode()


def read_at(moment, *raws):
    """Ingest the reports as read at `moment`."""
    with time_machine.travel(moment, tick=False):
        for raw in raws:
            assert feedback.feedback_ingest(raw=raw, source="test").events, "the report stored nothing"
