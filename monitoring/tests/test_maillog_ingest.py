"""manage.py maillog ingest and the service under it: a DMS mail log (monitoring/tests/maillog_lines/dms.log, real
Postfix 3.7 / Dovecot 2.3 line shapes) into messages, delivery attempts and rejections an operator would look for;
the same file twice, gzip archives, batches cut anywhere, the checkpoint stored with its rows; refusals naming
--file."""

import gc
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from accounts.tests.factories import StaffFactory, UserFactory
from monitoring import traffic
from monitoring.models import DeliveryAttempt, LogSource, MailHost, MailMessage, SmtpRejection
from monitoring.tests.factories import run

pytestmark = pytest.mark.django_db

SAMPLE = Path(__file__).parent / "maillog_lines" / "dms.log"
ROOT = Path(settings.BASE_DIR)


def ingest(path, *more):
    return run("maillog", "ingest", "--file", str(path), *more)


def refused(*args):
    """Run a command that must fail: its message, after checking that nothing was stored."""
    with pytest.raises(CommandError) as caught:
        run(*args)
    assert not MailMessage.objects.exists() and not SmtpRejection.objects.exists()
    return str(caught.value)


def everything():
    """Every stored traffic row's values (ids left out), to compare two states."""
    return (
        sorted(MailMessage.objects.values_list(*[f for f in traffic._MESSAGE_FIELDS], "line_key")),
        sorted(
            DeliveryAttempt.objects.values_list("message__line_key", "at", "recipient", "status", "reply", "line_key")
        ),
        sorted(SmtpRejection.objects.values_list("at", "stage", "code", "reply", "line_key")),
    )


def message(queue_id):
    return MailMessage.objects.get(queue_id=queue_id)


def test_a_dms_log_becomes_the_messages_attempts_and_rejections_an_operator_looks_for():
    out = ingest(SAMPLE)
    assert f"Read 66 lines of {SAMPLE} into log source 'local'" in out
    assert "Messages: 8 new, 0 updated." in out
    assert "Delivery attempts: 10 new: sent 6, deferred 2, bounced 1, expired 1." in out
    assert "SMTP rejections: 3 new (0 of them not refusals: warnings, HOLD and DISCARD actions)." in out
    assert (
        "Other lines by program: postfix/postscreen 5, opendkim 3, dovecot 3, postfix/smtpd 3, "
        "postfix/submission/smtpd 2, postfix/out-192-0-2-10/smtp 1." in out
    )

    # "Did my message leave, and what did the other side say?"
    sent = message("4A1B2C3D4E")
    assert (sent.sender, sent.sasl_username, sent.direction, sent.state) == (
        "alice@example.com",
        "alice@example.com",
        MailMessage.OUT,
        MailMessage.DELIVERED,
    )
    assert (sent.message_id, sent.size, sent.nrcpt, sent.client_ip) == (
        "d3b07384-0001@example.com",
        2874,
        2,
        "198.51.100.23",
    )
    assert sent.removed_at == datetime(2026, 12, 6, 9, 0, 3, 901000, tzinfo=UTC)
    assert list(sent.attempts.values_list("recipient", "status", "service", "sending_ip", "relay")) == [
        ("bob@example.org", "sent", "out-192-0-2-10", "192.0.2.10", "mx.example.org[192.0.2.25]:25"),
        ("carol@example.org", "sent", "out-192-0-2-10", "192.0.2.10", "mx.example.org[192.0.2.25]:25"),
    ]
    bounced = DeliveryAttempt.objects.get(recipient="nobody@example.org")
    assert (bounced.status, bounced.dsn, bounced.message.state, bounced.message.sender) == (
        "bounced",
        "5.1.1",
        MailMessage.BOUNCED,
        "bob@example.com",
    )
    assert bounced.reply == (
        "host mx.example.org[192.0.2.25] said: 550 5.1.1 <nobody@example.org>: Recipient address rejected: User "
        "unknown in virtual mailbox table (in reply to RCPT TO command)"
    )
    greylisted = message("6C3D4E5F6A")
    assert greylisted.state == MailMessage.DELIVERED
    assert list(greylisted.attempts.values_list("status", "delay", "sending_ip")) == [
        ("deferred", 1.4, "192.0.2.11"),
        ("sent", 303.0, "192.0.2.11"),
    ]
    received = message("5B2C3D4E5F")
    assert (received.direction, received.client_host, received.sender, received.state) == (
        MailMessage.IN,
        "mail-wr1-f54.google.com",
        "dave@gmail.com",
        MailMessage.DELIVERED,
    )
    assert received.attempts.get().recipient == "alice@example.com"
    expired = message("9F6A7B8C9D")
    assert (expired.direction, expired.state) == (MailMessage.OUT, MailMessage.EXPIRED)
    assert list(expired.attempts.values_list("recipient", "status")) == [
        ("ops@gone.example", "deferred"),
        ("ops@gone.example", "expired"),
    ]
    notification = message("8E5F6A7B8C")
    assert (notification.sender, notification.direction, notification.state) == (
        "",
        MailMessage.OUT,
        MailMessage.DELIVERED,
    )
    assert message("AB7B8C9DAE").state == MailMessage.REJECTED

    assert list(
        SmtpRejection.objects.order_by("at").values_list("stage", "code", "client_ip", "recipient", "reply")
    ) == [
        (
            "postscreen",
            550,
            "203.0.113.9",
            "alice@example.com",
            "Service unavailable; client [203.0.113.9] blocked using zen.spamhaus.org",
        ),
        ("RCPT", 554, "203.0.113.10", "x@elsewhere.example", "<x@elsewhere.example>: Relay access denied"),
        ("header", None, "203.0.113.5", "alice@example.com", "Message content rejected"),
    ]
    source = LogSource.objects.get()
    assert (source.name, source.kind, source.lines_read, source.events_other) == ("local", LogSource.FILE, 66, 17)
    assert source.position == 0  # reading a whole file moves no follower's checkpoint


def test_nothing_of_a_message_body_or_header_is_stored():
    ingest(SAMPLE)
    stored = json.dumps(everything(), default=str)
    assert "Cheap watches" not in stored and "Subject" not in stored


def test_ingesting_the_same_file_twice_changes_nothing():
    ingest(SAMPLE)
    before = everything()
    out = ingest(SAMPLE)
    assert "Messages: 0 new, 0 updated." in out
    assert "Delivery attempts: 0 new" in out and "SMTP rejections: 0 new" in out
    assert everything() == before
    assert LogSource.objects.get().lines_read == 132


@pytest.mark.parametrize("size", [3, 10, 29])
def test_reading_the_file_again_in_other_batches_changes_nothing(size):
    source = traffic.logsource_for(name="local")
    traffic.maillog_ingest_file(str(SAMPLE), source=source)
    before = everything()
    again = traffic.maillog_ingest_file(str(SAMPLE), source=source, batch_lines=size)
    assert (again.messages_new, again.messages_updated, sum(again.attempts.values()), again.rejections) == (0, 0, 0, 0)
    assert everything() == before


def test_a_gzip_archive_reads_like_the_plain_file_and_once_only(tmp_path):
    archive = tmp_path / "mail.log.2.gz"
    with SAMPLE.open("rb") as plain, gzip.open(archive, "wb") as packed:
        shutil.copyfileobj(plain, packed)
    ingest(archive)
    from_archive = everything()
    assert len(from_archive[0]) == 8
    ingest(SAMPLE)
    assert everything() == from_archive


def test_batches_cut_anywhere_store_what_one_batch_stores():
    source = traffic.logsource_for(name="local")
    traffic.maillog_ingest_file(str(SAMPLE), source=source, batch_lines=100)
    whole = everything()
    for size in (1, 4, 7, 30):
        MailMessage.objects.all().delete()
        SmtpRejection.objects.all().delete()
        traffic.maillog_ingest_file(str(SAMPLE), source=source, batch_lines=size)
        assert everything() == whole, size


@dataclass
class Checkpoint:
    path: str
    device: int
    inode: int
    head: str
    position: int


def test_a_batch_and_its_checkpoint_are_stored_together():
    source = traffic.logsource_for(name="mx1")
    lines = SAMPLE.read_text().splitlines(keepends=True)
    half = sum(len(line.encode()) for line in lines[:29])
    result = traffic.maillog_ingest_lines(
        source, lines[:29], Checkpoint("/var/log/mail/mail.log", 2049, 77, "ab" * 32, half)
    )
    assert result.lines == 29
    source.refresh_from_db()
    assert (source.path, source.device, source.inode, source.head, source.position) == (
        "/var/log/mail/mail.log",
        2049,
        77,
        "ab" * 32,
        half,
    )
    assert message("6C3D4E5F6A").state == MailMessage.DEFERRED  # its delivery is in the next batch
    traffic.maillog_ingest_lines(source, lines[29:], Checkpoint("/var/log/mail/mail.log", 2049, 77, "ab" * 32, 9999))
    assert message("6C3D4E5F6A").state == MailMessage.DELIVERED
    assert MailMessage.objects.count() == 8 and DeliveryAttempt.objects.count() == 10


def test_a_batch_whose_checkpoint_cannot_be_stored_stores_none_of_its_rows():
    source = traffic.logsource_for(name="mx1")
    with pytest.raises(Exception):  # noqa: B017 - the database's own error (an integer out of range)
        traffic.maillog_ingest_lines(source, SAMPLE.read_text().splitlines(), Checkpoint("/x", 1, 1, "", 2**70))
    assert not MailMessage.objects.exists() and not DeliveryAttempt.objects.exists()
    assert not SmtpRejection.objects.exists() and LogSource.objects.get().lines_read == 0


def test_json_summary():
    data = json.loads(ingest(SAMPLE, "--json"))
    assert (data["lines"], data["source"], data["messages"]) == (66, "local", {"new": 8, "updated": 0})
    assert data["attempts"] == {"sent": 6, "deferred": 2, "bounced": 1, "expired": 1}
    assert data["rejections"] == {"new": 3, "warnings": 0}
    assert data["other_lines_by_program"]["opendkim"] == 3
    assert data["lines_per_second"] > 0


def test_host_names_the_source_and_ties_it_to_the_host():
    host = MailHost.objects.create(
        name="mx1",
        ssh_user="root",
        ssh_host="192.0.2.1",
        key_path="/k",
        host_key_type="ssh-ed25519",
        host_key_fingerprint="SHA256:x",
        host_key="AAAA",
    )
    assert "into log source 'mx1'" in ingest(SAMPLE, "--host", "mx1")
    source = LogSource.objects.get()
    assert (source.name, source.kind, source.mail_host) == ("mx1", LogSource.HOST, host)
    assert set(MailMessage.objects.values_list("source__name", flat=True)) == {"mx1"}


def test_an_unknown_host_is_refused():
    assert refused("maillog", "ingest", "--file", str(SAMPLE), "--host", "nope") == "--host: no mail host 'nope'."


def test_classic_timestamps_take_the_year_the_file_was_written(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text(
        "Dec 31 23:59:58 mail postfix/pickup[1]: 1A2B3C4D5E: uid=0 from=<root>\n"
        "Jan  1 00:00:01 mail postfix/qmgr[2]: 1A2B3C4D5E: from=<root@mail.example.com>, size=300, nrcpt=1 "
        "(queue active)\n"
    )
    written = datetime(2027, 1, 1, 0, 5, tzinfo=UTC).timestamp()
    os.utime(log, (written, written))
    ingest(log)
    stored = message("1A2B3C4D5E")
    assert (stored.first_seen_at, stored.last_seen_at) == (
        datetime(2026, 12, 31, 23, 59, 58, tzinfo=UTC),
        datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC),
    )


def test_a_person_without_the_permission_may_not_ingest():
    staff = StaffFactory(is_superuser=False)  # staff, without the permission to add mail messages
    with pytest.raises(ValidationError) as caught:
        traffic.maillog_ingest_lines(traffic.logsource_for(name="local"), SAMPLE.read_text().splitlines(), actor=staff)
    assert "monitoring.add_mailmessage" in str(caught.value)
    assert not MailMessage.objects.exists()


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda tmp: tmp / "missing.log", "no such file: {path}"),
        (lambda tmp: tmp, "{path} is a directory, not a log file"),
        (lambda tmp: _file(tmp / "plain", "x") / "mail.log", "cannot read {path}: Not a directory"),
        (
            lambda tmp: _file(tmp / "notes.txt", "shopping list\neggs\nmilk\n"),
            "{path} is not a mail log: none of its first 3 lines",
        ),
        (
            lambda tmp: _file(tmp / "image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"),
            "{path} is not a mail log",
        ),
        (lambda tmp: _file(tmp / "mail.log.3.gz", b"\x1f\x8b\x08\x00garbage"), "cannot read {path}"),
    ],
)
def test_a_file_that_is_not_a_readable_mail_log_is_refused_naming_file(tmp_path, make, says):
    path = make(tmp_path)
    message = refused("maillog", "ingest", "--file", str(path))
    assert message.startswith("--file: " + says.format(path=path)), message
    assert not LogSource.objects.exists()


def test_a_file_without_line_endings_is_refused_without_reading_it_whole(tmp_path):
    path = _file(tmp_path / "blob.bin", b"\x00" * (8 * 1024 * 1024))
    message = refused("maillog", "ingest", "--file", str(path))
    assert message.startswith(f"--file: {path} is not a mail log: none of its first 128 lines is a syslog line")


def _file(path, content):
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def test_an_empty_file_is_read_as_no_lines(tmp_path):
    out = ingest(_file(tmp_path / "mail.log", b""))
    assert "Read 0 lines" in out


def test_the_command_exits_1_with_a_message_and_no_traceback(tmp_path):
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    environ.update(DEBUG="1", DOCKSPACE_DATA_DIR=str(tmp_path / "data"))
    missing = tmp_path / "nope.log"
    result = subprocess.run(
        [sys.executable, "manage.py", "maillog", "ingest", "--file", str(missing)],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"--file: no such file: {missing}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_refusal_comes_before_any_file_or_host_is_looked_at_and_tells_nothing_about_them(tmp_path):
    UserFactory(email="nobody@example.com", is_staff=True)  # staff without monitoring.add_mailmessage
    MailHost.objects.create(
        name="secret-mx",
        ssh_user="root",
        ssh_host="192.0.2.1",
        key_path="/k",
        host_key_type="ssh-ed25519",
        host_key_fingerprint="SHA256:x",
        host_key="AAAA",
    )
    notalog = tmp_path / "secret.txt"
    notalog.write_text("not a log\n")
    answers = {
        refused("maillog", "ingest", "--file", str(path), "--as", "nobody@example.com")
        for path in (tmp_path / "nope", notalog, tmp_path)
    }
    answers |= {
        refused("maillog", "follow", "--host", name, "--as", "nobody@example.com") for name in ("secret-mx", "nope")
    }
    assert answers == {"you do not have the permission 'monitoring.add_mailmessage'."}


def test_a_fifo_or_a_device_is_refused_at_once_instead_of_read_forever(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it to read would wait for a writer
    assert refused("maillog", "ingest", "--file", str(fifo)).startswith("--file: cannot read ")
    assert "not a regular file" in refused("maillog", "ingest", "--file", "/dev/zero")
    assert not MailMessage.objects.exists()


def test_the_garbage_collector_is_on_again_after_a_batch_even_a_failed_one():
    # It is paused while a batch is read and stored (monitoring.traffic._collector_paused), for speed.
    source = traffic.logsource_for(name="mx1")
    lines = SAMPLE.read_text().splitlines()
    traffic.maillog_ingest_lines(source, lines)
    assert gc.isenabled()
    with pytest.raises(Exception):  # noqa: B017 - the database's own error (an integer out of range)
        traffic.maillog_ingest_lines(source, lines, Checkpoint("/x", 1, 1, "", 2**70))
    assert gc.isenabled()
    gc.disable()
    try:
        traffic.maillog_ingest_lines(source, lines)
        assert not gc.isenabled()  # left as it was
    finally:
        gc.enable()


@pytest.mark.django_db(transaction=True)
def test_rows_are_numbered_in_log_order():
    # A message's attempts are listed by time, then by id: at one instant (a recipient's last deferral and the
    # expiry that gives it up) the ids must follow the log. PostgreSQL fills the free space of a table's earlier
    # pages with later rows when rows differ in size, so rows copied in log order are not read back in it.
    source = traffic.logsource_for(name="mx1")
    traffic.maillog_ingest_lines(source, SAMPLE.read_text().splitlines())  # a batch before, committed
    rng = random.Random(5)
    recipients = [f"{'r' * rng.randint(1, 200)}{n}@example.org" for n in range(300)]
    lines = [
        f"2026-12-06T11:00:{n // 10:02d}.{n:06d}+00:00 mail postfix/smtp[40]: 7F7F7F7F7F: to=<{recipient}>, "
        f"relay=none, delay=1, delays=0/0/1/0, dsn=4.4.1, status=deferred ({'x' * rng.randint(1, 480)})"
        for n, recipient in enumerate(recipients)
    ]
    traffic.maillog_ingest_lines(source, lines)
    stored = DeliveryAttempt.objects.filter(message__queue_id="7F7F7F7F7F").order_by("id")
    assert list(stored.values_list("recipient", flat=True)) == recipients


def test_control_characters_a_log_writer_planted_are_stored_harmless():
    # A remote reply with a terminal escape (and a NUL, which PostgreSQL text refuses) would reach an operator's
    # terminal through `traffic search`: stored as U+FFFD instead.
    source = traffic.logsource_for()
    lines = [
        "2026-12-06T10:00:00.000001+00:00 mail postfix/smtp[1]: ABCDE12345: to=<bob@example.net>, relay=mx.example.net"
        "[192.0.2.7]:25, delay=1, delays=0/0/0/1, dsn=5.0.0, status=bounced (550 \x1b[31mred\x00 text)"
    ]
    traffic.maillog_ingest_lines(source, lines)
    assert DeliveryAttempt.objects.get().reply == "550 \ufffd[31mred\ufffd text"


def test_an_archive_older_than_the_traffic_days_is_stored_with_a_warning_that_it_will_be_pruned(settings, capsys):
    from io import StringIO

    import time_machine
    from django.core.management import call_command

    settings.TRAFFIC_DAYS = 30
    err = StringIO()
    with time_machine.travel(datetime(2027, 3, 1, tzinfo=UTC)):  # the sample's mail is months old by then
        call_command("maillog", "ingest", "--file", str(SAMPLE), stdout=StringIO(), stderr=err)

    assert MailMessage.objects.exists()
    assert "older than DOCKSPACE_TRAFFIC_DAYS (30 days): the next prune deletes them" in err.getvalue()
    # The positive control: within the days kept, nothing is said.
    settings.TRAFFIC_DAYS = 36500
    err = StringIO()
    call_command("maillog", "ingest", "--file", str(SAMPLE), stdout=StringIO(), stderr=err)
    assert err.getvalue() == ""


def test_forged_dates_and_delays_are_skipped_or_left_out_and_the_lines_around_them_stored(tmp_path):
    good = (
        "2026-12-06T09:41:00.000001+00:00 mail postfix/smtpd[2202]: NOQUEUE: reject: RCPT from unknown[203.0.113.10]: "
        "554 5.7.1 <r1@elsewhere.example>: Relay access denied; from=<spam@example.biz> to=<r1@elsewhere.example> "
        "proto=ESMTP helo=<203.0.113.10>"
    )
    forged = [
        "0001-01-01T00:00:00+00:00 mail postfix/qmgr[1]: ABCDE12345: removed",
        "9999-12-31T23:59:59-14:00 mail postfix/qmgr[1]: ABCDE12345: removed",
        "2026-12-06T09:41:01.000001+00:00 mail postfix/qmgr[7]: 3C5A12B4D1: from=<a@example.net>, size=900, nrcpt=1 "
        "(queue active)",
        "2026-12-06T09:41:02.000001+00:00 mail postfix/smtp[40]: 3C5A12B4D1: to=<b@example.org>, relay=none, delay="
        + "9" * 400
        + ", delays=0/0/0/0, dsn=2.0.0, status=sent (250 ok)",
    ]
    log = tmp_path / "mail.log"
    log.write_text("\n".join([good, *forged, good.replace("r1@", "r2@")]) + "\n")
    summary = json.loads(ingest(log, "--json"))
    assert (summary["lines"], summary["not_syslog_lines"]) == (6, 2)
    assert SmtpRejection.objects.count() == 2
    (attempt,) = DeliveryAttempt.objects.all()
    assert (attempt.status, attempt.delay) == ("sent", None)
    out = run("traffic", "search", "--to", "b@example.org", "--json")
    assert json.loads(out)["messages"][0]["attempts"][0]["delay"] is None  # valid JSON: no Infinity
    run("traffic", "--since", "2026-12-06", "--until", "2026-12-07")


def test_a_blank_source_name_is_refused_not_taken_for_the_followers():
    assert refused("maillog", "ingest", "--file", str(SAMPLE), "--source", "").startswith(
        "--source: a name is required"
    )


def test_a_size_no_message_has_is_left_out_so_the_sums_stay_within_64_bits(tmp_path):
    qid_lines = [
        "2026-12-06T09:41:0{n}.000001+00:00 mail postfix/smtpd[1]: 3C5A12B4D{n}: client=unknown[203.0.113.5]",
        "2026-12-06T09:41:0{n}.000002+00:00 mail postfix/qmgr[7]: 3C5A12B4D{n}: from=<a@example.net>, "
        "size=9223372036854775807, nrcpt=2 (queue active)",
        "2026-12-06T09:41:0{n}.000003+00:00 mail postfix/smtp[40]: 3C5A12B4D{n}: to=<b@example.org>, relay=none, "
        "delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)",
        "2026-12-06T09:41:0{n}.000004+00:00 mail postfix/smtp[40]: 3C5A12B4D{n}: to=<c@example.org>, relay=none, "
        "delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)",
    ]
    log = tmp_path / "mail.log"
    log.write_text("\n".join(line.format(n=n) for n in (1, 2) for line in qid_lines) + "\n")
    ingest(log)
    assert list(MailMessage.objects.values_list("size", flat=True)) == [None, None]
    totals = json.loads(run("traffic", "--since", "2026-12-06", "--until", "2026-12-07", "--json"))["totals"]
    assert (totals["delivered"], totals["bytes_delivered"]) == (4, 0)
    from monitoring import traffic_rollups

    traffic_rollups.traffic_rollup()
