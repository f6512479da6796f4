"""Mail logs for the traffic tests: the stored samples (real Postfix 3.7 and DMS line shapes), files from
bench/maillog_generate.py, lines written here for a scenario (a submission and its delivery attempts, with the shapes
of the samples), and pflogsumm's Grand Totals of a file (bench/pflogsumm_totals.py; skipped where pflogsumm is
missing)."""

import importlib.util
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings

from monitoring import traffic

LINES = Path(__file__).parent / "maillog_lines"
REAL_POSTFIX = LINES / "real_postfix_3_7.log"  # captured from a real Postfix 3.7 set up like DMS
DMS = LINES / "dms.log"  # DMS line shapes: submission, greylisting, bounce, pickup and expiry, rejects
BENCH = Path(settings.BASE_DIR) / "bench"
PFLOGSUMM = "/usr/sbin/pflogsumm"
# After the last line of dms.log (2026-12-11 09:30): every sample line is in the past.
AFTER_SAMPLES = datetime(2026, 12, 12, 0, 0, tzinfo=UTC)


def ingest_file(path, source="local"):
    return traffic.maillog_ingest_file(str(path), source=traffic.logsource_for(name=source))


def ingest_lines(lines, source="local"):
    return traffic.maillog_ingest_lines(traffic.logsource_for(name=source), list(lines))


def _bench_module(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pflogsumm_totals(path):
    """pflogsumm's Grand Totals of the file, exact (bench/pflogsumm_totals.py runs its own code, display thresholds
    raised)."""
    if not os.path.exists(PFLOGSUMM):
        pytest.skip(f"{PFLOGSUMM} is missing (Debian: apt-get install pflogsumm; CI installs it)")
    return _bench_module("pflogsumm_totals").pflogsumm_totals(path)


def generated_log(directory, lines=20_000):
    """A DMS mail log from bench/maillog_generate.py (seed 1: the same file every time)."""
    path = Path(directory) / "mail.log"
    subprocess.run(
        [sys.executable, str(BENCH / "maillog_generate.py"), "--lines", str(lines), "--out", str(path)],
        check=True,
        capture_output=True,
    )
    return path


# --- lines for a scenario ------------------------------------------------------------------------------------


def line(at, program, text):
    return f"{at.isoformat(timespec='microseconds')} mail {program}[4242]: {text}"


def submission(at, qid, sender, recipients, *, size=1200, program="postfix/submission/smtpd"):
    """A message one of our people submitted (SASL), queued for `recipients`."""
    return [
        line(at, program, f"{qid}: client=unknown[198.51.100.23], sasl_method=PLAIN, sasl_username={sender}"),
        line(at + timedelta(milliseconds=50), "postfix/cleanup", f"{qid}: message-id=<{qid.lower()}@example.com>"),
        line(
            at + timedelta(milliseconds=90),
            "postfix/qmgr",
            f"{qid}: from=<{sender}>, size={size}, nrcpt={len(recipients)} (queue active)",
        ),
    ]


def attempt(at, qid, recipient, status, *, dsn="", reply="", relay="mx.example.org[192.0.2.25]:25", service="smtp"):
    """One delivery attempt line (status sent, deferred or bounced), with Postfix's reply shape."""
    dsn = dsn or {"sent": "2.0.0", "deferred": "4.4.1", "bounced": "5.1.1"}[status]
    reply = (
        reply
        or {
            "sent": "250 2.0.0 Ok: queued as 9C8B7A6D5E",
            "deferred": "connect to mx.example.org[192.0.2.25]:25: Connection timed out",
            "bounced": f"host {relay.split(':')[0]} said: 550 5.1.1 <{recipient}>: Recipient address rejected: "
            "User unknown (in reply to RCPT TO command)",
        }[status]
    )
    program = "postfix/smtp" if service == "smtp" else f"postfix/{service}/smtp"
    return line(
        at,
        program,
        f"{qid}: to=<{recipient}>, relay={relay}, delay=1.2, delays=0.1/0/0.6/0.5, dsn={dsn}, status={status} "
        f"({reply})",
    )


def removed(at, qid):
    """qmgr's last line of a message; give it a time after the message's last attempt (lines are sorted by it)."""
    return line(at, "postfix/qmgr", f"{qid}: removed")


def queue_id(number):
    return f"{0xA0000 + number:05X}B{number:04d}"
