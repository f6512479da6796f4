"""Mail traffic for the bounce and complaint tests: the messages the fixtures (feedback_fixtures/) tell of, written
as Postfix logs them and ingested as the follower would, each delivered through a pooled IP's out-* transport."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitoring.tests.traffic_logs import attempt, ingest_lines, line, removed, submission

FIXTURES = Path(__file__).parent / "feedback_fixtures"
NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)  # after every fixture's date
IP_A, IP_B = "192.0.2.10", "192.0.2.11"


def fixture(name):
    return (FIXTURES / name).read_bytes()


def transport(ip):
    return "out-" + ip.replace(".", "-").replace(":", "-")


def sent(at, qid, recipients, ip, *, sender="alice@example.com", statuses=None, message_id=None):
    """A message submitted by `sender` and tried once per recipient from `ip` (status sent unless `statuses` says
    otherwise: {recipient: (status, dsn)}); its Message-ID is <qid lower-cased @example.com>, as in the fixtures."""
    lines = submission(at, qid, sender, recipients)
    if message_id is not None:
        lines[1] = line(at + timedelta(milliseconds=50), "postfix/cleanup", f"{qid}: message-id=<{message_id}>")
    for number, recipient in enumerate(recipients):
        status, dsn = (statuses or {}).get(recipient, ("sent", ""))
        lines.append(
            attempt(at + timedelta(seconds=1 + number), qid, recipient, status, dsn=dsn, service=transport(ip))
        )
    lines.append(removed(at + timedelta(seconds=5), qid))
    return lines


def the_fixtures_traffic():
    """The messages of the fixtures as the log told them: alice's quarterly figures from A, refused at SMTP for bob
    (5.1.1) and carol (5.2.2); the Yahoo complaint's offer from A; the Exim, Gmail and JMRP ones from B. The AOL
    complaint's newsletter and the Microsoft NDR's contract are not in the log."""
    lines = []
    lines += sent(
        datetime(2026, 12, 6, 23, 7, 58, tzinfo=UTC),
        "4F1D33B5E2",
        ["bob@example.org", "carol@example.org"],
        IP_A,
        statuses={"bob@example.org": ("bounced", "5.1.1"), "carol@example.org": ("bounced", "5.2.2")},
    )
    lines += sent(datetime(2026, 12, 7, 9, 12, 42, tzinfo=UTC), "6C3F55D7A4", ["erin@example.net"], IP_B)
    lines += sent(datetime(2026, 12, 7, 10, 41, 20, tzinfo=UTC), "7D4A66E8B5", ["frank.nosuch@gmail.com"], IP_B)
    lines += sent(
        datetime(2026, 12, 8, 7, 58, 1, tzinfo=UTC),
        "C29FBBD30A",
        ["kate@yahoo.com"],
        IP_A,
        sender="bounces+kate=yahoo.com@example.com",
    )
    lines += sent(
        datetime(2026, 12, 8, 9, 40, 53, tzinfo=UTC),
        "D3A0CCE41B",
        ["leo@hotmail.com"],
        IP_B,
        sender="marketing@example.com",
    )
    lines.sort(key=lambda text: text.split(" ", 1)[0])
    ingest_lines(lines)


def dsn(recipients, *, message_id="", status="5.1.1", subject="Undelivered Mail Returned to Sender"):
    """A delivery status notification as any server (or anyone) can write one: a failed block per recipient, the
    original's headers quoting `message_id`. `recipients` may hold (Final-Recipient, Original-Recipient) pairs."""
    blocks = ""
    for recipient in recipients:
        final, original = recipient if isinstance(recipient, tuple) else (recipient, "")
        blocks += f"Final-Recipient: rfc822; {final}\n"
        blocks += f"Original-Recipient: rfc822; {original}\n" if original else ""
        blocks += f"Action: failed\nStatus: {status}\n\n"
    status_part = f"Reporting-MTA: dns; mx.example.net\n\n{blocks}"
    headers = f"Message-ID: <{message_id}>\n" if message_id else ""
    return (
        "From: MAILER-DAEMON@mx.example.net\nTo: alice@example.com\n"
        f"Subject: {subject}\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nx\n"
        f"--b\nContent-Type: message/delivery-status\n\n{status_part}\n"
        f"--b\nContent-Type: text/rfc822-headers\n\n{headers}From: alice@example.com\n\n--b--\n"
    ).encode()


def arf(recipient, *, message_id="", source_ip=""):
    """An abuse report as any feedback loop (or anyone) can write one."""
    fields = f"Feedback-Type: abuse\nUser-Agent: loop/1.0\nVersion: 1\nOriginal-Rcpt-To: {recipient}\n"
    fields += f"Source-IP: {source_ip}\n" if source_ip else ""
    headers = f"Message-ID: <{message_id}>\n" if message_id else ""
    return (
        "From: fbl@loop.example.net\nTo: abuse@example.com\nSubject: complaint\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nspam\n"
        f"--b\nContent-Type: message/feedback-report\n\n{fields}\n"
        f"--b\nContent-Type: text/rfc822-headers\n\n{headers}From: alice@example.com\n\n--b--\n"
    ).encode()
