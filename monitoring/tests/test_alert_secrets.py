"""Channel secrets: stored encrypted (SECRET_KEY-derived), readable after a key rotation through
SECRET_KEY_FALLBACKS, only from DOCKSPACE_ALERT_* variables when from the environment, and never in a page, an
audit entry, a notification row or a log line, whatever happens to the notification."""

import logging

import pytest
from django.test import Client, TestCase

from accounts.models import AuditEvent
from accounts.tests.factories import StaffFactory
from monitoring import alert_services, channel_secrets
from monitoring.alert_models import AlertEvent, NotificationChannel
from monitoring.standard_webhooks import generate_secret
from monitoring.tests.factories import switch, switch_rule, telegram_channel, webhook_channel
from monitoring.tests.stand_ins import telegram_stand_in, webhook_receiver

pytestmark = pytest.mark.django_db

TOKEN = "987654321:ZZHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
TOKEN_TAIL = TOKEN.split(":")[1]


def test_a_stored_secret_survives_a_key_rotation_only_with_the_fallback(settings):
    channel = webhook_channel()
    secret = channel.secret()
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "n" * 50, [old_key]
    assert channel.secret() == secret
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(channel_secrets.SecretUnavailable, match="cannot be decrypted .* set it again"):
        channel.secret()
    outcome = alert_services.channel_send_test(channel=channel, actor_label="test")
    assert not outcome.is_sent and "set it again" in outcome.text


# Made with monitoring.channel_secrets before its encryption moved to dockspace.secret_box, under this SECRET_KEY.
OLD_KEY = "a-key-made-for-the-test-" + "k" * 30
OLD_TOKEN = (
    "gAAAAABrFcp-6qjk3YWL3telBnlqK9A3ALq9YX2aKAPIDeWGoqfvDER4Yqp6"
    "oBuuEuwt63CNsxEEs05aIUUPo5n-MbSSGb7fZFVV1zne0FgJ1I9y8hbBycs="
)


def test_a_secret_stored_before_the_move_to_secret_box_still_decrypts(settings):
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = OLD_KEY, []
    assert channel_secrets.decrypt(OLD_TOKEN) == "whsec_before-the-move"
    settings.SECRET_KEY = "n" * 50
    with pytest.raises(channel_secrets.SecretUnavailable, match="set it again"):
        channel_secrets.decrypt(OLD_TOKEN)


def test_an_environment_secret_wins_and_a_file_works_too(monkeypatch, tmp_path):
    channel = webhook_channel(secret_env="DOCKSPACE_ALERT_HOOK")
    monkeypatch.delenv("DOCKSPACE_ALERT_HOOK", raising=False)
    with pytest.raises(channel_secrets.SecretUnavailable, match="DOCKSPACE_ALERT_HOOK is not set in this process"):
        channel.secret()
    secret_file = tmp_path / "hook-secret"
    secret_file.write_text("whsec_from-a-file\n")
    monkeypatch.setenv("DOCKSPACE_ALERT_HOOK_FILE", str(secret_file))
    assert channel.secret() == "whsec_from-a-file"


def test_secrets_appear_nowhere_whatever_happens(settings, caplog, outbound_to_loopback):
    secret = generate_secret()
    pages = []
    with (
        caplog.at_level(logging.DEBUG),
        webhook_receiver(secret, fail_next=1) as receiver,
        telegram_stand_in(
            [(401, {"ok": False, "error_code": 401, "description": "Unauthorized"}), (429, {"ok": False})]
        ) as bot,
    ):
        settings.ALERT_TELEGRAM_API_BASE = bot.url
        hook = webhook_channel(receiver.url + "/in", secret)
        telegram = telegram_channel(TOKEN)
        switch_rule(hook, telegram, for_seconds=0)
        switch(is_on=True)
        with TestCase.captureOnCommitCallbacks(execute=True):
            alert_services.alerts_evaluate()  # webhook: 503 then retried later; Telegram: 401
        for channel in (hook, telegram):
            alert_services.channel_send_test(channel=channel, actor_label="test")  # webhook ok; Telegram 429
        browser = Client()
        browser.force_login(StaffFactory(email="root@example.com"))
        for url in [
            "/admin/monitoring/notificationchannel/",
            f"/admin/monitoring/notificationchannel/{hook.pk}/change/",
            f"/admin/monitoring/notificationchannel/{telegram.pk}/change/",
            "/admin/monitoring/alertevent/",
            *[f"/admin/monitoring/alertevent/{pk}/change/" for pk in AlertEvent.objects.values_list("pk", flat=True)],
            "/admin/monitoring/alert/",
            "/admin/accounts/auditevent/",
        ]:
            response = browser.get(url)
            assert response.status_code == 200, url
            pages.append(response.content.decode())
    assert len(bot.received) == 2 and bot.received[0]["token"] == TOKEN  # the token did reach the Bot API
    assert [r["error"] for r in receiver.received] == ["", ""]
    stored = {channel.pk: channel.secret_encrypted for channel in NotificationChannel.objects.all()}
    places = {
        "log": caplog.text,
        "pages": "\n".join(pages),
        "audit": repr(list(AuditEvent.objects.values())),
        "notifications": repr(list(AlertEvent.objects.values())),
    }
    for place, text in places.items():
        for secret_text in (secret, secret[6:], TOKEN_TAIL, *stored.values()):
            assert secret_text not in text, place
    assert "Telegram: Unauthorized" in places["notifications"]  # the failures are there, without the secrets


@pytest.mark.parametrize(
    ("name", "accepted"),
    [("DOCKSPACE_ALERT_OPS", True), ("DOCKSPACE_ALERT_TELEGRAM_TOKEN", True), ("SECRET_KEY", False),
     ("DATABASE_URL", False), ("DOCKSPACE_ALERT_", False), ("dockspace_alert_ops", False)],
)  # fmt: skip
def test_a_channel_reads_only_variables_made_for_it(name, accepted):
    channel = NotificationChannel(name="t", kind="webhook", webhook_url="https://x.example/h", secret_env=name)
    if accepted:
        channel.full_clean()
    else:
        with pytest.raises(Exception, match="must be a variable name starting with DOCKSPACE_ALERT_"):
            channel.full_clean()


def test_a_channel_that_changes_kind_keeps_no_secret_of_its_old_kind(settings):
    telegram = telegram_channel(TOKEN)
    browser = Client()
    browser.force_login(StaffFactory(email="root@example.com"))
    url = f"/admin/monitoring/notificationchannel/{telegram.pk}/change/"
    values = {
        "name": telegram.name,
        "kind": NotificationChannel.WEBHOOK,
        "is_enabled": "on",
        "webhook_url": "https://hooks.example.com/in",
        "telegram_chat_id": "",
        "secret_env": "",
        "email_addresses": "",
    }
    response = browser.post(url, values)
    # The bot token is not kept as a signing secret: the webhook needs its own before it saves.
    errors = response.context["adminform"].form.errors
    assert response.status_code == 200 and "needs its signing secret" in str(errors)
    telegram.refresh_from_db()
    assert telegram.kind == NotificationChannel.TELEGRAM and telegram.secret_encrypted
    # Positive control: with a signing secret of its own it becomes a webhook.
    assert browser.post(url, {**values, "new_secret": generate_secret()}).status_code == 302
    telegram.refresh_from_db()
    assert telegram.kind == NotificationChannel.WEBHOOK


def test_a_broken_signing_secret_fails_the_notification_instead_of_leaving_it_claimed():
    hook = webhook_channel("http://127.0.0.1:9/in")
    hook.set_secret(TOKEN)  # stored by hand, not through the form's checks
    hook.save()
    event = AlertEvent.objects.create(kind="test", channel=hook, channel_name=hook.name, payload={"type": "test"})
    outcome = alert_services.notification_send(event_id=event.pk)
    event.refresh_from_db()
    assert event.status == AlertEvent.FAILED and outcome.retry_in is None
    assert "signing secret" in event.error and TOKEN_TAIL not in event.error
