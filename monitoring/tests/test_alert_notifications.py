"""The notification log: one process sends each notification (the claim), a send whose worker died is taken up
again, and notifications are kept 93 days."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import TestCase

from monitoring import alert_services
from monitoring.alert_models import Alert, AlertEvent
from monitoring.standard_webhooks import generate_secret
from monitoring.tasks import purge_alert_events, send_alert_notification
from monitoring.tests.factories import switch, switch_rule, webhook_channel
from monitoring.tests.stand_ins import webhook_receiver

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("outbound_to_loopback")]

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def queued_fired(receiver_url, secret):
    switch_rule(webhook_channel(receiver_url, secret), for_seconds=0)
    switch(is_on=True)
    with time_machine.travel(START, tick=False):
        alert_services.alerts_evaluate()  # the task queued after commit never runs here: the row stays queued
    return AlertEvent.objects.get()


def test_a_notification_being_sent_is_not_sent_by_a_second_task():
    secret = generate_secret()
    with webhook_receiver(secret) as receiver:
        event = queued_fired(receiver.url, secret)
        AlertEvent.objects.filter(pk=event.pk).update(status="sending", claimed_at=START)  # another worker has it
        with time_machine.travel(START + timedelta(minutes=1), tick=False):
            assert send_alert_notification.apply(args=[event.pk]).get().startswith(f"notification {event.pk}: nothing")
        assert receiver.received == []
        # Positive control: the same task sends a queued one.
        AlertEvent.objects.filter(pk=event.pk).update(status="queued")
        with time_machine.travel(START + timedelta(minutes=1), tick=False):
            assert "answered HTTP 204" in send_alert_notification.apply(args=[event.pk]).get()
        assert len(receiver.received) == 1


def test_a_send_whose_worker_died_is_taken_up_by_a_later_evaluation():
    secret = generate_secret()
    with webhook_receiver(secret) as receiver:
        event = queued_fired(receiver.url, secret)
        AlertEvent.objects.filter(pk=event.pk).update(status="sending", claimed_at=START)
        with (
            time_machine.travel(START + alert_services.STALE_CLAIM - timedelta(seconds=1), tick=False),
            TestCase.captureOnCommitCallbacks(execute=True),
        ):
            alert_services.alerts_evaluate()
        assert receiver.received == []  # it may still be sending
        with (
            time_machine.travel(START + alert_services.STALE_CLAIM + timedelta(seconds=1), tick=False),
            TestCase.captureOnCommitCallbacks(execute=True),
        ):
            alert_services.alerts_evaluate()
    assert [r["payload"]["type"] for r in receiver.received] == ["alert.fired"]
    assert receiver.received[0]["headers"]["webhook-id"] == event.message_id
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("sent", 1)


def test_notifications_are_kept_93_days_and_old_resolved_alerts_go_with_them():
    queued_fired("http://127.0.0.1:9/", generate_secret())
    alert = Alert.objects.get()
    switch(is_on=False)
    with time_machine.travel(START + timedelta(minutes=1), tick=False):
        alert_services.alerts_evaluate()
    with time_machine.travel(START + timedelta(days=93, seconds=-1), tick=False):
        assert purge_alert_events() == "deleted 0 notification(s) and 0 resolved alert(s) past retention"
    with time_machine.travel(START + timedelta(days=93, seconds=30), tick=False):  # the fired one, sent at START
        assert purge_alert_events() == "deleted 1 notification(s) and 0 resolved alert(s) past retention"
    with time_machine.travel(START + timedelta(days=93, minutes=2), tick=False):  # resolved at START + 1 minute
        assert purge_alert_events() == "deleted 1 notification(s) and 1 resolved alert(s) past retention"
    assert not Alert.objects.filter(pk=alert.pk).exists() and not AlertEvent.objects.exists()


def test_an_open_alert_is_kept_however_old():
    queued_fired("http://127.0.0.1:9/", generate_secret())
    with time_machine.travel(START + timedelta(days=400), tick=False):
        purge_alert_events()
    assert Alert.objects.get().state == "firing"
