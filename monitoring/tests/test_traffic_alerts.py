"""The mail traffic's alert kinds, evaluated as the periodic task does (alert_services.alerts_evaluate) on mail-log
lines stored for a scenario: a sender's domain bouncing too much, the deferred queue growing (from the mail log, or
from a probed host's postqueue figures), a remote site refusing our mail with the same reply."""

from datetime import UTC, datetime, timedelta

import pytest

from monitoring import alert_services, traffic
from monitoring.alert_models import Alert
from monitoring.models import HostProbe, MailHost
from monitoring.tests.traffic_logs import attempt, ingest_lines, queue_id, removed, submission

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def evaluate(at):
    alert_services.alerts_evaluate(now=at)


def alerts(kind):
    return {a.subject: a for a in Alert.objects.filter(rule__kind=f"monitoring.{kind}")}


def firing(kind):
    """The subjects of `kind` firing now (a subject never firing or pending has no alert row)."""
    return {subject for subject, alert in alerts(kind).items() if alert.state == Alert.FIRING}


def sent_and_bounced(start, sender, *, sent, bounced, first=0, relay="mx.example.net[198.51.100.7]:25"):
    """`sent + bounced` messages from `sender`, one remote recipient each, a minute apart from `start`."""
    lines = []
    for n in range(sent + bounced):
        at = start + timedelta(minutes=n)
        qid = queue_id(first + n)
        status = "sent" if n < sent else "bounced"
        lines += submission(at, qid, sender, [f"r{n}@example.net"])
        done = at + timedelta(seconds=2)
        lines += [
            attempt(done, qid, f"r{n}@example.net", status, relay=relay),
            removed(done + timedelta(seconds=1), qid),
        ]
    return lines


# --- bounce rate ----------------------------------------------------------------------------------------------


def test_a_domain_whose_mail_bounces_over_the_threshold_fires_once_enough_was_sent():
    lines = sent_and_bounced(NOW - timedelta(minutes=40), "alice@example.com", sent=20, bounced=5)
    lines += sent_and_bounced(NOW - timedelta(minutes=30), "bob@example.org", sent=2, bounced=3, first=100)
    ingest_lines(sorted(lines))
    evaluate(NOW)
    evaluate(NOW + timedelta(minutes=11))  # held for its 10 minutes
    found = alerts("bounce_rate_high")
    assert found["example.com"].state == Alert.FIRING
    assert found["example.com"].value == 20.0
    assert found["example.com"].summary == (
        "Mail from example.com to other servers in the last hour: 5 of 25 recipient(s) bounced (20 %)."
    )
    # 60 % but only 5 deliveries: below the minimum of 20, not judged.
    assert firing("bounce_rate_high") == {"example.com"}


def test_a_domain_under_the_threshold_does_not_fire():
    ingest_lines(sorted(sent_and_bounced(NOW - timedelta(minutes=40), "alice@example.com", sent=28, bounced=2)))
    evaluate(NOW)
    evaluate(NOW + timedelta(minutes=11))
    assert firing("bounce_rate_high") == set()


def test_bounces_older_than_an_hour_are_not_counted():
    ingest_lines(sorted(sent_and_bounced(NOW - timedelta(hours=3), "alice@example.com", sent=0, bounced=25)))
    evaluate(NOW)
    evaluate(NOW + timedelta(minutes=11))
    assert alerts("bounce_rate_high") == {}


# --- a remote site refusing us --------------------------------------------------------------------------------

BLOCKED = (
    "host {mx}[52.101.68.7] said: 550 5.7.1 Unfortunately, messages from [{ip}] weren't sent. Please contact your "
    "Internet service provider since part of their network is on our block list (S3150). You can also refer your "
    "provider to http://mail.live.com/mail/troubleshooting.aspx#errors. [AM4PEPF000{n}.eurprd04.prod.outlook.com] "
    "(in reply to MAIL FROM command)"
)


def refused(at, n, recipient, mx, ip):
    qid = queue_id(n)
    reply = BLOCKED.format(mx=mx, ip=ip, n=27000 + n)
    service = "out-" + ip.replace(".", "-")
    return [
        *submission(at, qid, "alice@example.com", [recipient]),
        attempt(
            at + timedelta(seconds=2),
            qid,
            recipient,
            "bounced",
            dsn="5.7.1",
            reply=reply,
            relay=f"{mx}[52.101.68.7]:25",
            service=service,
        ),
        removed(at + timedelta(seconds=3), qid),
    ]


def test_a_remote_site_giving_the_same_refusal_n_times_in_an_hour_fires_naming_it_and_our_ips():
    lines = []
    for n in range(5):  # hotmail.com and outlook.com are both served by outlook.com's servers
        mx = "hotmail-com.olc.protection.outlook.com" if n % 2 else "example-org.mail.protection.outlook.com"
        ip = "192.0.2.10" if n < 3 else "192.0.2.11"
        lines += refused(NOW - timedelta(minutes=40 - n), n, f"u{n}@hotmail.com", mx, ip)
    # Unknown recipients say nothing about us: ten of them do not fire.
    for n in range(10):
        at = NOW - timedelta(minutes=30 - n)
        qid = queue_id(50 + n)
        lines += [
            *submission(at, qid, "alice@example.com", ["x@example.org"]),
            attempt(at + timedelta(seconds=2), qid, f"x{n}@example.org", "bounced"),
            removed(at + timedelta(seconds=3), qid),
        ]
    ingest_lines(sorted(lines))
    evaluate(NOW)
    found = alerts("remote_refusing")
    assert found["outlook.com"].state == Alert.FIRING and found["outlook.com"].value == 5
    assert found["outlook.com"].summary.startswith(
        "outlook.com refused 5 message(s) in the last hour to sending IP(s) 192.0.2.10, 192.0.2.11 with: 550 5.7.1 "
        "Unfortunately, messages from [...] weren't sent."
    )
    assert firing("remote_refusing") == {"outlook.com"}


def test_fewer_refusals_than_the_threshold_do_not_fire():
    lines = []
    for n in range(4):
        lines += refused(NOW - timedelta(minutes=10 + n), n, f"u{n}@hotmail.com", "mx.outlook.com", "192.0.2.10")
    ingest_lines(sorted(lines))
    evaluate(NOW)
    assert alerts("remote_refusing") == {}


# --- the deferred queue ---------------------------------------------------------------------------------------


def deferred(start, count, first):
    lines = []
    for n in range(count):
        at = start + timedelta(minutes=n)
        qid = queue_id(first + n)
        lines += [*submission(at, qid, "alice@example.com", ["ops@gone.example"]),
                  attempt(at + timedelta(seconds=30), qid, "ops@gone.example", "deferred")]  # fmt: skip
    return lines


def test_a_deferred_queue_growing_in_the_mail_log_fires():
    lines = deferred(NOW - timedelta(minutes=90), 5, 0)  # waiting since before the hour
    lines += deferred(NOW - timedelta(minutes=40), 20, 100)  # and twenty more since
    ingest_lines(sorted(lines))
    ingest_lines(sorted(deferred(NOW - timedelta(minutes=40), 3, 200)), source="mx2-archive")
    evaluate(NOW)
    evaluate(NOW + timedelta(minutes=11))
    found = alerts("deferred_queue_growing")
    assert found["local"].state == Alert.FIRING and found["local"].value == 25
    assert found["local"].summary == ("25 message(s) deferred on local now, 5 an hour ago (+20); from the mail log.")
    assert firing("deferred_queue_growing") == {"local"}  # mx2-archive: 3 deferred, under the threshold


def test_delivered_messages_leave_the_deferred_queue():
    lines = deferred(NOW - timedelta(minutes=40), 25, 0)
    for n in range(25):  # all delivered on the next try
        at = NOW - timedelta(minutes=5)
        lines += [attempt(at, queue_id(n), "ops@gone.example", "sent"), removed(at + timedelta(seconds=1), queue_id(n))]
    ingest_lines(sorted(lines))
    evaluate(NOW)
    evaluate(NOW + timedelta(minutes=11))
    assert alerts("deferred_queue_growing") == {}


def mail_host(name):
    return MailHost.objects.create(
        name=name,
        ssh_user="root",
        ssh_host="192.0.2.1",
        key_path="/k",
        host_key_type="ssh-ed25519",
        host_key_fingerprint="SHA256:x",
        host_key="AAAA",
    )


def probe(host, at, deferred_count):
    HostProbe.objects.create(
        host=host,
        started_at=at,
        duration_ms=100,
        reachable=True,
        status="healthy",
        queue_count=deferred_count,
        queue_deferred=deferred_count,
    )


def test_a_probed_hosts_queue_is_read_from_its_probes_instead_of_its_log():
    host = mail_host("mx1")
    traffic.logsource_for(host=host)  # its log is followed too: the probes' exact figures win
    for minutes, count in ((75, 2), (65, 3), (60, 3), (5, 40), (0, 41)):
        probe(host, NOW - timedelta(minutes=minutes), count)
    evaluate(NOW)
    found = alerts("deferred_queue_growing")
    assert set(found) == {"mx1"}
    assert found["mx1"].summary == "41 message(s) deferred on mx1 now, 3 an hour ago (+38); from the probes' postqueue."
    probe(host, NOW + timedelta(minutes=10), 42)
    evaluate(NOW + timedelta(minutes=11))
    assert alerts("deferred_queue_growing")["mx1"].state == Alert.FIRING
