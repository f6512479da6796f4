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
