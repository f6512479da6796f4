"""What alert webhooks and Telegram say when dockspace.outbound_http refuses their address or URL (the send test,
the notification, its event row), never quoting a token; each refusal has its positive control (the same
receiver reached once the allow-list admits it). The rules themselves: dockspace/tests/test_outbound_http.py."""

import ipaddress
from datetime import UTC, datetime

import pytest
import time_machine
from django.test import TestCase

from dockspace import outbound_http
from monitoring import alert_services, channels
from monitoring.alert_models import AlertEvent, NotificationChannel
from monitoring.standard_webhooks import generate_secret
from monitoring.tests.factories import switch, switch_rule, telegram_channel, webhook_channel
from monitoring.tests.stand_ins import telegram_stand_in, webhook_receiver

pytestmark = pytest.mark.django_db

ADVICE = "allow it with DOCKSPACE_OUTBOUND_ALLOWED_NETWORKS"
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw-"


def networks(*cidrs):
    return [ipaddress.ip_network(cidr) for cidr in cidrs]


@pytest.fixture
def receiver():
    secret = generate_secret()
    with webhook_receiver(secret) as server:
        server.secret_value = secret
        yield server


def test_a_refused_webhook_fails_the_send_test_and_the_notification_at_once(receiver, settings):
    channel = webhook_channel(receiver.url + "/hook", receiver.secret_value)
    outcome = alert_services.channel_send_test(channel=channel, actor_label="test")
    expected = f"webhook address 127.0.0.1 is a loopback address; {ADVICE}"
    assert not outcome.is_sent and outcome.text == f"Test notification to Ops webhook failed: {expected}"
    assert AlertEvent.objects.get(kind="test").error == expected

    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    switch_rule(channel, for_seconds=0)
    switch(is_on=True)
    with time_machine.travel(start, tick=False), TestCase.captureOnCommitCallbacks(execute=True):
        alert_services.alerts_evaluate()
    event = AlertEvent.objects.get(kind="fired")
    assert (event.status, event.attempts, event.error) == ("failed", 1, expected)  # permanent: not retried
    assert receiver.received == []

    # Positive control: allowed, the same channel's test arrives signed.
    settings.OUTBOUND_ALLOWED_NETWORKS = networks("127.0.0.0/8")
    assert alert_services.channel_send_test(channel=channel, actor_label="test").is_sent
    assert [r["payload"]["type"] for r in receiver.received] == ["alert.test"]


def test_a_telegram_api_on_loopback_is_refused_unless_allowed(settings):
    with telegram_stand_in() as bot:
        settings.ALERT_TELEGRAM_API_BASE = bot.url
        channel = telegram_channel(TOKEN)
        with pytest.raises(channels.ChannelError) as refused:
            channels.deliver(channel, {"type": "alert.test", "timestamp": "", "data": {"title": "t"}}, "msg_1")
        assert str(refused.value) == f"Telegram address 127.0.0.1 is a loopback address; {ADVICE}"
        assert refused.value.permanent and TOKEN not in str(refused.value)
        assert bot.received == []
        settings.OUTBOUND_ALLOWED_NETWORKS = networks("127.0.0.0/8")
        channels.deliver(channel, {"type": "alert.test", "timestamp": "", "data": {"title": "t"}}, "msg_1")
        assert len(bot.received) == 1


def test_a_redirect_to_a_refused_address_is_not_followed(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = networks("127.0.0.1/32")  # 127.0.0.2 stays refused
    secret = generate_secret()
    with (
        webhook_receiver(secret, host="127.0.0.2") as inside,
        webhook_receiver(secret, redirect_to=inside.url + "/admin") as receiver,
    ):
        with pytest.raises(outbound_http.RefusedAddress, match="127.0.0.2 is a loopback address"):
            outbound_http.post(inside.url, b"{}", {}, timeout=2)  # the redirect's target is one the check refuses
        outcome = alert_services.channel_send_test(channel=webhook_channel(receiver.url, secret), actor_label="test")
    assert not outcome.is_sent
    assert f"HTTP 302 (a redirect to {inside.url}; redirects are not followed)" in outcome.text
    assert len(receiver.received) == 1 and inside.received == []


def test_a_send_test_to_such_a_url_fails_and_shows_neither_path_nor_query(receiver, outbound_to_loopback):
    channel = webhook_channel(receiver.url + "/ok", receiver.secret_value)
    for path in ["/services/T00/SECRET TOKEN?k=APIKEY", "/services/T00/SECRÉT"]:
        NotificationChannel.objects.filter(pk=channel.pk).update(webhook_url=receiver.url + path)  # an older row
        channel.refresh_from_db()
        outcome = alert_services.channel_send_test(channel=channel, actor_label="test")
        event = AlertEvent.objects.filter(kind="test").latest("id")
        expected = f"{receiver.url}: spaces, control characters and non-ASCII characters must be percent-encoded"
        assert (outcome.is_sent, event.status) == (False, "failed")
        assert outcome.text.startswith(f"Test notification to Ops webhook failed: {expected}")
        assert event.error.startswith(expected)
        assert not any(word in outcome.text + event.error for word in ("SECRET", "APIKEY"))
    assert receiver.received == []


def test_a_telegram_token_from_a_variable_is_checked_like_a_stored_one(outbound_to_loopback, monkeypatch, settings):
    with telegram_stand_in() as bot:
        settings.ALERT_TELEGRAM_API_BASE = bot.url
        channel = telegram_channel(TOKEN, secret_env="DOCKSPACE_ALERT_BOT")
        monkeypatch.setenv("DOCKSPACE_ALERT_BOT", TOKEN + " ")  # a trailing space, as an env file may leave it
        with pytest.raises(channels.ChannelError) as refused:
            channels.deliver(channel, {"type": "alert.test", "timestamp": "", "data": {"title": "t"}}, "msg_1")
        assert str(refused.value).startswith("the bot token in DOCKSPACE_ALERT_BOT is not one as @BotFather gives it")
        assert refused.value.permanent and TOKEN.partition(":")[2] not in str(refused.value)
        assert bot.received == []
        # Positive control: the same token without the space is sent.
        monkeypatch.setenv("DOCKSPACE_ALERT_BOT", TOKEN)
        channels.deliver(channel, {"type": "alert.test", "timestamp": "", "data": {"title": "t"}}, "msg_1")
        assert [r["token"] for r in bot.received] == [TOKEN]
