"""Delivering the outbox against real SMTP servers on loopback: retries with backoff, the backup server, giving up
after the attempts or the expiry, permanent refusals, and the claim that keeps two workers from sending one message
twice. Time moves with time-machine."""

import smtplib
import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.mail import send_mail
from django.db import connection

from accounts.models import OutboundMessage
from accounts.outbox_delivery import (
    error_text,
    is_permanent_refusal,
    outbound_message_claim,
    outbound_messages_deliver,
    outbox_drain,
    outbox_prune,
    retry_delay,
)
from accounts.tests.smtp_server import SmtpServer, use_smtp

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def primary():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def backup():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def queue(subject="Alert", to="ops@example.com"):
    send_mail(subject, "disk almost full", None, [to])
    return OutboundMessage.objects.get(subject=subject)


def state(row):
    row.refresh_from_db()
    return row.status, row.attempts


def test_a_queued_message_is_delivered_to_the_primary(settings, primary, backup, clock):
    use_smtp(settings, primary, backup)
    row = queue()
    assert outbox_drain()["sent"] == 1
    assert [r.rcpt_tos for r in primary.received] == [["ops@example.com"]] and backup.received == []
    row.refresh_from_db()
    assert (row.status, row.sent_via, row.sent_at, row.last_error, row.has_body) == (
        "sent",
        "primary",
        START,
        "",
        False,
    )


def test_with_the_primary_down_it_is_tried_again_later_and_reaches_it_when_it_is_back(settings, primary, clock):
    use_smtp(settings, primary)
    primary.stop()
    row = queue()
    assert outbox_drain()["queued"] == 1
    row.refresh_from_db()
    assert (row.status, row.attempts, row.next_attempt_at) == ("queued", 1, START + timedelta(seconds=60))
    assert row.last_error.startswith("primary: ") and "refused" in row.last_error.lower()
    primary.start()
    clock.shift(59)
    assert outbox_drain() == {"expired": 0}  # not due yet
    clock.shift(1)
    assert outbox_drain()["sent"] == 1
    assert state(row) == ("sent", 2)
    assert len(primary.received) == 1


def test_a_sender_delivering_its_own_messages_is_told_which_still_wait_and_sends_them_when_due(
    settings, primary, clock
):
    use_smtp(settings, primary)
    primary.stop()
    row, other = queue(), queue(subject="Someone else's")
    assert outbound_messages_deliver([row.pk]) == [row.pk]  # refused: waits for its next attempt
    assert state(row) == ("queued", 1)
    primary.start()
    clock.shift(59)
    assert outbound_messages_deliver([row.pk]) == [row.pk] and primary.received == []  # not due yet
    clock.shift(1)
    assert outbound_messages_deliver([row.pk]) == []
    assert state(row) == ("sent", 2) and [r.message["Subject"] for r in primary.received] == ["Alert"]
    assert state(other) == ("queued", 0)  # only the ones it was given
    assert outbound_messages_deliver([row.pk]) == [] and len(primary.received) == 1  # sent once


def test_with_the_primary_down_it_fails_over_to_the_backup(settings, primary, backup, clock):
    use_smtp(settings, primary, backup)
    primary.stop()
    backup.stop()
    row = queue()
    outbox_drain()
    row.refresh_from_db()
    assert row.status == "queued" and row.last_error.startswith("primary: ") and "; backup: " in row.last_error
    backup.start()  # the primary stays down
    clock.shift(60)
    assert outbox_drain()["sent"] == 1
    row.refresh_from_db()
    assert (row.status, row.attempts, row.sent_via, row.has_body) == ("sent", 2, "backup", False)
    assert [r.rcpt_tos for r in backup.received] == [["ops@example.com"]]


def test_with_both_down_the_waits_double_and_it_fails_after_the_last_attempt(settings, primary, backup, clock):
    use_smtp(settings, primary, backup)
    primary.stop()
    backup.stop()
    row = queue()
    waits = []
    for attempt in range(1, settings.DOCKSPACE_OUTBOX_MAX_ATTEMPTS):
        outbox_drain()
        row.refresh_from_db()
        assert (row.status, row.attempts) == ("queued", attempt)
        waits.append((row.next_attempt_at - START).total_seconds() - sum(waits))
        clock.move_to(row.next_attempt_at - timedelta(seconds=1))
        outbox_drain()
        assert state(row) == ("queued", attempt)  # a second early: not tried
        clock.shift(1)
    assert waits == [60, 120, 240, 480]
    outbox_drain()
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("failed", 5)
    clock.shift(3600)
    primary.start()
    outbox_drain()
    assert state(row) == ("failed", 5) and primary.received == []  # failed is final, unless retried by hand


def test_the_number_of_attempts_is_a_setting(settings, primary, clock):
    use_smtp(settings, primary)
    settings.DOCKSPACE_OUTBOX_MAX_ATTEMPTS = 2
    primary.stop()
    row = queue()
    outbox_drain()
    clock.shift(60)
    outbox_drain()
    assert state(row) == ("failed", 2)


def test_a_message_not_sent_within_the_expiry_is_given_up_and_its_body_wiped(settings, primary, clock):
    use_smtp(settings, primary)
    old = queue("Old")  # written while no worker ran
    clock.shift(3600)
    recent = queue("Recent")
    clock.shift(48 * 3600 - 3600 + 1)  # 48 h and a second after the first
    outcomes = outbox_drain()
    assert outcomes["expired"] == 1 and outcomes["sent"] == 1
    old.refresh_from_db()
    assert (old.status, old.attempts, old.has_body) == ("expired", 0, False)
    assert state(recent) == ("sent", 1)
    assert [r.message["Subject"] for r in primary.received] == ["Recent"]


def test_the_expiry_is_a_setting(settings, primary, clock):
    use_smtp(settings, primary)
    settings.DOCKSPACE_OUTBOX_EXPIRY_SECONDS = 600
    row = queue()
    clock.shift(600)
    assert outbox_drain()["expired"] == 1 and state(row) == ("expired", 0)


def test_a_permanent_refusal_fails_at_once_without_retry_or_backup(settings, primary, backup, clock):
    use_smtp(settings, primary, backup)
    primary.refusal = "550 5.1.1 No such user here"
    row = queue(to="nobody@example.com")
    assert outbox_drain()["failed"] == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("failed", 1)
    assert "550" in row.last_error and "nobody@example.com" in row.last_error
    assert backup.received == []


def test_a_temporary_refusal_is_tried_again(settings, primary, clock):
    use_smtp(settings, primary)
    primary.refusal = "450 4.2.1 Mailbox busy, try later"
    row = queue()
    assert outbox_drain()["queued"] == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("queued", 1) and "450 4.2.1 Mailbox busy" in row.last_error
    primary.refusal = None
    clock.shift(60)
    assert outbox_drain()["sent"] == 1 and state(row) == ("sent", 2)


def test_two_workers_asking_for_one_message_get_it_once(settings, primary, clock):
    use_smtp(settings, primary)
    row = queue()
    assert outbound_message_claim(row.pk) is True
    assert outbound_message_claim(row.pk) is False
    assert state(row) == ("sending", 1)
    # A worker that died mid-send: after the lease another one takes the message again.
    clock.shift(10 * 60)
    assert outbound_message_claim(row.pk) is True and state(row) == ("sending", 2)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_drains_never_send_a_message_twice(settings, primary, monkeypatch):
    use_smtp(settings, primary)
    monkeypatch.setattr("accounts.outbox.queue_task", lambda *args, **kwargs: None)  # no worker: all wait queued
    for n in range(30):
        send_mail(f"Message {n}", "text", None, [f"p{n}@example.com"])
    start = threading.Barrier(2)
    outcomes, errors = [], []

    def drain():
        try:
            start.wait()
            outcomes.append(outbox_drain())
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=drain) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert errors == []
    ids = primary.message_ids()
    assert len(ids) == 30 and len(set(ids)) == 30
    assert sum(o["sent"] for o in outcomes) == 30
    assert set(OutboundMessage.objects.values_list("status", "attempts")) == {("sent", 1)}


def test_finished_messages_are_pruned_after_thirty_days_and_waiting_ones_kept(settings, primary, clock):
    use_smtp(settings, primary)
    sent = queue("Sent")
    outbox_drain()
    failed = queue("Failed")
    OutboundMessage.objects.filter(pk=failed.pk).update(status="failed")
    waiting = queue("Waiting")
    OutboundMessage.objects.filter(pk=waiting.pk).update(next_attempt_at=START + timedelta(days=60))
    clock.shift(timedelta(days=30))
    assert outbox_prune() == 0
    clock.shift(1)
    assert outbox_prune() == 2
    assert list(OutboundMessage.objects.values_list("subject", flat=True)) == ["Waiting"]
    assert not OutboundMessage.objects.filter(pk__in=[sent.pk, failed.pk]).exists()


@pytest.mark.parametrize(("attempts", "seconds"), [(1, 60), (2, 120), (3, 240), (4, 480), (5, 960), (0, 60)])
def test_retry_delay_doubles_from_a_minute(attempts, seconds):
    assert retry_delay(attempts) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("error", "permanent", "text"),
    [
        (
            smtplib.SMTPRecipientsRefused({"a@x.test": (550, b"5.1.1 unknown"), "b@x.test": (553, b"bad")}),
            True,
            "refused a@x.test (550 5.1.1 unknown), b@x.test (553 bad)",
        ),
        (
            smtplib.SMTPRecipientsRefused({"a@x.test": (550, b"unknown"), "b@x.test": (451, b"try later")}),
            False,
            "refused a@x.test (550 unknown), b@x.test (451 try later)",
        ),
        (
            smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication\r\n failed"),
            False,
            "535 5.7.8 Authentication failed",
        ),
        (smtplib.SMTPSenderRefused(550, b"sender denied", "no-reply@x.test"), False, "550 sender denied"),
        (ConnectionRefusedError(111, "Connection refused"), False, "Connection refused"),
        (TimeoutError("timed out"), False, "TimeoutError: timed out"),
        (smtplib.SMTPServerDisconnected(), False, "SMTPServerDisconnected"),
    ],
)
def test_errors_are_told_apart_and_summed_up_in_a_line(error, permanent, text):
    assert is_permanent_refusal(error) is permanent
    assert error_text(error) == text
