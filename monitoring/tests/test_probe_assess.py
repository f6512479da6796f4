"""healthy / degraded / down from one probe, table-driven: which conditions count, and the sentences operators read."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from monitoring.probes.assess import Assessment, Thresholds, assess
from monitoring.probes.collect import HostReading
from monitoring.probes.parse import DiskUse, QueueStats
from monitoring.probes.tls import CertificateReading

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
EXPECTED = frozenset({"postfix", "dovecot", "rspamd", "cron"})
HEALTHY_READING = HostReading(
    services={"postfix": "RUNNING", "dovecot": "RUNNING", "rspamd": "RUNNING", "cron": "RUNNING", "clamav": "STOPPED"},
    expected_services=EXPECTED,
    queue=QueueStats(count=3, deferred=1, active=2, hold=0, oldest_age_seconds=120.0),
    disk=DiskUse("/var/mail", 1000, 500, 500, 50.0),
)


def cert(port=993, days=60, **changes):
    fields = {"not_after": NOW + timedelta(days=days, hours=1), "days_left": days, "verified": True, **changes}
    return CertificateReading(port=port, mode="tls", **fields)


def services(**states):
    return replace(HEALTHY_READING, services={**HEALTHY_READING.services, **states})


CASES = [
    ("all well", HEALTHY_READING, [cert(25), cert(993)], Assessment("healthy", [])),
    ("a service not expected may be stopped", services(clamav="FATAL"), [], Assessment("healthy", [])),
    ("postfix stopped", services(postfix="STOPPED"), [], Assessment("down", ["postfix is STOPPED"])),
    ("dovecot fatal", services(dovecot="FATAL"), [], Assessment("down", ["dovecot is FATAL"])),
    (
        "postfix missing, rspamd backing off",
        replace(HEALTHY_READING, services={"dovecot": "RUNNING", "rspamd": "BACKOFF", "cron": "RUNNING"}),
        [],
        Assessment("down", ["postfix is not listed by supervisorctl", "rspamd is BACKOFF"]),
    ),
    ("rspamd backing off", services(rspamd="BACKOFF"), [], Assessment("degraded", ["rspamd is BACKOFF"])),
    ("cron starting", services(cron="STARTING"), [], Assessment("degraded", ["cron is STARTING"])),
    (
        "disk at 93 %",
        replace(HEALTHY_READING, disk=DiskUse("/var/mail", 1000, 930, 70, 93.0)),
        [],
        Assessment("degraded", ["disk /var/mail 93 % used"]),
    ),
    (
        "disk at exactly 90 %",
        replace(HEALTHY_READING, disk=DiskUse("/", 1000, 900, 100, 90.0)),
        [],
        Assessment("degraded", ["disk / 90 % used"]),
    ),
    (
        "disk just under 90 %",
        replace(HEALTHY_READING, disk=DiskUse("/", 1000, 899, 101, 89.9)),
        [],
        Assessment("healthy", []),
    ),
    (
        "queue over 100",
        replace(HEALTHY_READING, queue=QueueStats(101, 101, 0, 0, 60.0)),
        [],
        Assessment("degraded", ["101 messages queued (over 100)"]),
    ),
    ("queue at 100", replace(HEALTHY_READING, queue=QueueStats(100, 100, 0, 0, 60.0)), [], Assessment("healthy", [])),
    (
        "oldest message 45 minutes",
        replace(HEALTHY_READING, queue=QueueStats(2, 2, 0, 0, 45 * 60.0)),
        [],
        Assessment("degraded", ["oldest queued message is 45 min old"]),
    ),
    (
        "oldest message 3 days",
        replace(HEALTHY_READING, queue=QueueStats(2, 2, 0, 0, 3 * 86400.0)),
        [],
        Assessment("degraded", ["oldest queued message is 3 days old"]),
    ),
    (
        "oldest message 30 minutes",
        replace(HEALTHY_READING, queue=QueueStats(1, 1, 0, 0, 1800.0)),
        [],
        Assessment("healthy", []),
    ),
    ("certificate in 14 days", HEALTHY_READING, [cert(days=14)], Assessment("healthy", [])),
    (
        "certificate in 5 days",
        HEALTHY_READING,
        [cert(587, days=5)],
        Assessment("degraded", ["certificate on port 587 expires in 5 days"]),
    ),
    (
        "certificate expired",
        HEALTHY_READING,
        [
            CertificateReading(
                465, "tls", NOW - timedelta(days=3, hours=2), -4, verified=False, verify_error="certificate has expired"
            )
        ],
        Assessment(
            "degraded",
            [
                "certificate on port 465 expired 3 days ago",
                "certificate on port 465 does not verify: certificate has expired",
            ],
        ),
    ),
    (
        "self-signed certificate",
        HEALTHY_READING,
        [cert(25, verified=False, verify_error="self-signed certificate")],
        Assessment("degraded", ["certificate on port 25 does not verify: self-signed certificate"]),
    ),
    (
        "certificate port closed",
        HEALTHY_READING,
        [CertificateReading(993, "tls", error="connection refused")],
        Assessment("degraded", ["certificate on port 993: connection refused"]),
    ),
    (
        "a failed reading",
        replace(HEALTHY_READING, queue=None, errors={"queue": "exit status 1: no such container"}),
        [],
        Assessment("degraded", ["queue reading failed: exit status 1: no such container"]),
    ),
    (
        "service states unknown",
        replace(HEALTHY_READING, services=None, errors={"services": "exit status 1: container is not running"}),
        [],
        Assessment(
            "down",
            ["state of postfix and dovecot unknown (supervisorctl status: exit status 1: container is not running)"],
        ),
    ),
    (
        "settings unknown: only postfix and dovecot are checked",
        replace(
            HEALTHY_READING,
            expected_services=None,
            settings=None,
            services=services(rspamd="FATAL").services,
            errors={"settings": "exit status 1: gone"},
        ),
        [],
        Assessment("degraded", ["settings reading failed: exit status 1: gone"]),
    ),
    (
        "down and degraded reasons together, down first",
        replace(services(postfix="BACKOFF"), disk=DiskUse("/", 10, 10, 0, 100.0)),
        [cert(days=1)],
        Assessment("down", ["postfix is BACKOFF", "disk / 100 % used", "certificate on port 993 expires in 1 day"]),
    ),
]


@pytest.mark.parametrize(
    "reading, certificates, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_the_status_and_its_reasons(reading, certificates, expected):
    assert assess(reading, certificates, reachable=True, now=NOW) == expected


def test_a_stopped_container_is_down_with_one_sentence_for_the_readings_it_failed():
    gone = "exit status 1: Error response from daemon: container mailserver is not running"
    reading = HostReading(
        disk=DiskUse("/srv", 100, 10, 90, 10.0),
        errors={name: gone for name in ("settings", "services", "queue", "quota", "version")}
        | {"load": "/proc/loadavg: expected three decimal load averages first, got ''"},
    )

    assert assess(reading, [], reachable=True, now=NOW) == Assessment(
        "down",
        [
            f"state of postfix and dovecot unknown (supervisorctl status: {gone})",
            "load reading failed: /proc/loadavg: expected three decimal load averages first, got ''",
            f"queue, quota, settings and version readings failed: {gone}",
        ],
    )


def test_an_unreachable_host_is_down_whatever_else_was_read():
    assert assess(None, [], reachable=False, reach_error="connection timed out", now=NOW) == Assessment(
        "down", ["host unreachable: connection timed out"]
    )
    assert assess(HEALTHY_READING, [], reachable=False, now=NOW) == Assessment("down", ["host unreachable"])


def test_a_reachable_host_without_a_reading_is_degraded():
    assert assess(None, [cert()], reachable=True, now=NOW) == Assessment("degraded", ["no reading from the host"])


def test_thresholds_can_be_tightened():
    strict = Thresholds(disk_percent=40.0, queue_count=2, queue_oldest_seconds=60, certificate_days=90)

    result = assess(HEALTHY_READING, [cert(days=60)], reachable=True, now=NOW, thresholds=strict)

    assert result == Assessment(
        "degraded",
        [
            "disk /var/mail 50 % used",
            "3 messages queued (over 2)",
            "oldest queued message is 2 min old",
            "certificate on port 993 expires in 60 days",
        ],
    )
