"""Telegram notifications, against a Bot API stand-in on loopback (DOCKSPACE_TELEGRAM_API_BASE points there):
sendMessage with the chat id and a text of at most 4096 characters, a 429's retry_after honoured, a group's
migrate_to_chat_id saved and used, a refused token not retried, and the token never in an error or a log line."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import TestCase

from monitoring import alert_services, channels
from monitoring.alert_models import AlertEvent, NotificationChannel
from monitoring.tests.factories import switch, switch_rule, telegram_channel
from monitoring.tests.stand_ins import telegram_stand_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("outbound_to_loopback")]

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def bot(settings):
    with telegram_stand_in() as server:
        settings.ALERT_TELEGRAM_API_BASE = server.url
        yield server


def evaluate_and_send(at):
    with (
        time_machine.travel(START + timedelta(seconds=at), tick=False),
        TestCase.captureOnCommitCallbacks(execute=True),
    ):
        alert_services.alerts_evaluate()


def test_a_firing_alert_is_sent_with_send_message(bot):
    switch_rule(telegram_channel(TOKEN), for_seconds=0)
    switch(is_on=True, value=12.5)
    evaluate_and_send(0)
    [request] = bot.received
    assert (request["token"], request["method"]) == (TOKEN, "sendMessage")
    assert request["body"]["chat_id"] == "-100200300"
    text = request["body"]["text"]
    assert text.startswith("[Dockspace] FIRING: Alarm switch on (test extension): alarm-1\n")
    assert "alarm-1 is on" in text and "Value: 12.5" in text
    assert AlertEvent.objects.get().status == "sent"


def test_the_text_is_cut_to_telegrams_4096_characters(bot):
    channel = telegram_channel(TOKEN)
    payload = {"type": "alert.fired", "timestamp": "", "data": {"title": "Big", "summary": "x" * 5000}}
    channels.deliver(channel, payload, "msg_1")
    text = bot.received[0]["body"]["text"]
    assert len(text) == 4096 and text.endswith("x…")


def test_a_429_is_retried_after_the_time_telegram_asks_for(bot):
    bot.script.append(
        (429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 7",
               "parameters": {"retry_after": 7}})
    )  # fmt: skip
    switch_rule(telegram_channel(TOKEN), for_seconds=0)
    switch(is_on=True)
    evaluate_and_send(0)
    event = AlertEvent.objects.get()
    assert (event.status, event.next_attempt_at) == ("queued", START + timedelta(seconds=7))
    assert event.error == "Telegram: too many requests, retry after 7 s"
    with time_machine.travel(START + timedelta(seconds=6), tick=False):
        assert alert_services.notification_send(event_id=event.pk).status is None
    assert len(bot.received) == 1  # nothing sent before the 7 seconds passed
    with time_machine.travel(START + timedelta(seconds=7), tick=False):
        assert alert_services.notification_send(event_id=event.pk).status == "sent"
    assert len(bot.received) == 2 and bot.received[1]["body"] == bot.received[0]["body"]


def test_a_group_that_became_a_supergroup_is_followed_and_remembered(bot):
    bot.script.append(
        (400, {"ok": False, "error_code": 400,
               "description": "Bad Request: group chat was upgraded to a supergroup chat",
               "parameters": {"migrate_to_chat_id": -1001234567890}})
    )  # fmt: skip
    channel = telegram_channel(TOKEN, chat_id="-4001234")
    outcome = alert_services.channel_send_test(channel=channel, actor_label="test")
    assert outcome.is_sent, outcome.text
    assert [r["body"]["chat_id"] for r in bot.received] == ["-4001234", "-1001234567890"]
    channel.refresh_from_db()
    assert channel.telegram_chat_id == "-1001234567890"
    alert_services.channel_send_test(channel=channel, actor_label="test")
    assert bot.received[-1]["body"]["chat_id"] == "-1001234567890"


def test_a_refused_token_fails_at_once_without_showing_it(bot, caplog):
    bot.script.append((401, {"ok": False, "error_code": 401, "description": "Unauthorized"}))
    switch_rule(telegram_channel(TOKEN), for_seconds=0)
    switch(is_on=True)
    with caplog.at_level(logging.DEBUG):
        evaluate_and_send(0)
    event = AlertEvent.objects.get()
    assert (event.status, event.attempts, event.error) == ("failed", 1, "Telegram: Unauthorized")
    assert len(bot.received) == 1
    assert TOKEN not in caplog.text and TOKEN.split(":")[1] not in caplog.text
    assert "Telegram: Unauthorized" in caplog.text


def test_an_unreachable_api_is_retried_and_the_error_names_no_token(settings):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.ALERT_TELEGRAM_API_BASE = f"http://127.0.0.1:{port}"
    channel = telegram_channel(TOKEN)
    with pytest.raises(channels.ChannelError) as caught:
        channels.deliver(channel, {"type": "alert.test", "timestamp": "", "data": {"title": "t"}}, "msg_1")
    assert not caught.value.permanent
    assert f"127.0.0.1:{port}" in str(caught.value) and TOKEN.split(":")[1] not in str(caught.value)


@pytest.mark.parametrize(
    ("chat_id", "accepted"),
    [("-1001234567890", True), ("123456", True), ("@dockspace_ops", True), ("", False), ("ops chat", False)],
)
def test_the_chat_id_is_checked(chat_id, accepted):
    channel = NotificationChannel(name="t", kind="telegram", telegram_chat_id=chat_id, secret_env="DOCKSPACE_ALERT_T")
    if accepted:
        channel.full_clean()
    else:
        with pytest.raises(Exception, match="telegram_chat_id"):
            channel.full_clean()
