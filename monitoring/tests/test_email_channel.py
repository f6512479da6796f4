"""Email notifications go out with Django's send_mail (so the configured EMAIL_BACKEND, the outbox included,
carries them): to the staff who may see alerts and to the listed addresses."""

import pytest
from django.contrib.auth.models import Permission
from django.test import TestCase

from accounts.tests.factories import StaffFactory, UserFactory
from monitoring import alert_services, channels
from monitoring.alert_models import AlertEvent, NotificationChannel
from monitoring.tests.factories import email_channel, switch, switch_rule

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    root = StaffFactory(email="root@example.com")
    watcher = UserFactory(email="watcher@example.com", is_staff=True)
    watcher.user_permissions.add(Permission.objects.get(codename="view_alert"))
    UserFactory(email="helpdesk@example.com", is_staff=True)  # staff, but may not see alerts
    UserFactory(email="member@example.com")
    UserFactory(email="gone@example.com", is_staff=True, is_active=False, is_superuser=True)
    return root, watcher


def test_staff_who_may_see_alerts_and_listed_addresses_get_the_mail(people, mailoutbox):
    channel = email_channel(addresses="oncall@example.org\nroot@example.com\n")
    switch_rule(channel, for_seconds=0)
    switch(is_on=True)
    with TestCase.captureOnCommitCallbacks(execute=True):
        alert_services.alerts_evaluate()
    [message] = mailoutbox
    assert sorted(message.to) == ["oncall@example.org", "root@example.com", "watcher@example.com"]
    assert message.subject == "[Dockspace] FIRING: Alarm switch on (test extension): alarm-1"
    assert "alarm-1 is on" in message.body and "/admin/monitoring/alert/" in message.body
    assert AlertEvent.objects.get().status == "sent"


def test_an_alert_mail_is_written_to_the_outbox_and_delivered_from_there(people, settings, monkeypatch):
    from accounts.models import OutboundMessage
    from accounts.outbox_delivery import outbox_drain

    settings.EMAIL_BACKEND = "accounts.outbox.OutboxBackend"
    settings.EMAIL_HOST = ""  # delivered as a private file
    settings.EMAIL_FILE_PATH = str(settings.DATA_DIR / "alert-outbox")
    monkeypatch.setattr("accounts.outbox.queue_task", lambda *args, **kwargs: None)  # the drain sends it
    switch_rule(email_channel(), for_seconds=0)
    switch(is_on=True)
    with TestCase.captureOnCommitCallbacks(execute=True):
        alert_services.alerts_evaluate()
    row = OutboundMessage.objects.get()
    assert (row.kind, row.status) == ("alert", "queued")
    assert row.subject == "[Dockspace] FIRING: Alarm switch on (test extension): alarm-1"
    assert outbox_drain()["sent"] == 1
    assert (OutboundMessage.objects.get().status, AlertEvent.objects.get().status) == ("sent", "sent")


def test_resolved_and_repeat_mails_say_so(people, mailoutbox):
    channel = email_channel()
    payload = {"type": "alert.resolved", "timestamp": "", "data": {"title": "DMS sync failing: DMS files"}}
    channels.deliver(channel, payload, "msg_1")
    payload["type"] = "alert.repeat"
    channels.deliver(channel, payload, "msg_2")
    assert [m.subject for m in mailoutbox] == [
        "[Dockspace] RESOLVED: DMS sync failing: DMS files",
        "[Dockspace] STILL FIRING: DMS sync failing: DMS files",
    ]


def test_nobody_to_mail_is_a_failure_that_is_not_retried(mailoutbox):
    UserFactory(email="helpdesk@example.com", is_staff=True)
    channel = email_channel()
    outcome = alert_services.channel_send_test(channel=channel, actor_label="test")
    assert not outcome.is_sent and "no recipients" in outcome.text
    assert mailoutbox == []


def test_a_mail_server_that_refuses_is_retried(people, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens
    switch_rule(email_channel(), for_seconds=0)
    switch(is_on=True)
    with TestCase.captureOnCommitCallbacks(execute=True):
        alert_services.alerts_evaluate()
    event = AlertEvent.objects.get()
    assert (event.status, event.attempts) == ("queued", 1)
    assert event.error.startswith("sending mail failed: ConnectionRefusedError")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"email_to_staff": False, "email_addresses": ""}, "give at least one address"),
        ({"email_to_staff": True, "email_addresses": "not an address"}, "'not an address' is not an email address"),
        ({"email_to_staff": False, "email_addresses": "a@example.com\nb@example.com"}, None),
        ({"email_to_staff": True, "email_addresses": ""}, None),
    ],
)
def test_the_addresses_are_checked(fields, error):
    channel = NotificationChannel(name="m", kind="email", **fields)
    if error is None:
        channel.full_clean()
    else:
        with pytest.raises(Exception, match=error):
            channel.full_clean()
