"""Rules, channels and switches for the alert tests."""

from dockspace.tests.extension_app.models import AlarmSwitch
from monitoring.alert_models import AlertRule, NotificationChannel
from monitoring.alert_services import alert_rules_install
from monitoring.standard_webhooks import generate_secret

SWITCH_KIND = "extension_app.switch_on"


def webhook_channel(url="http://127.0.0.1:9/hook", secret=None, name="Ops webhook", **fields):
    channel = NotificationChannel(name=name, kind=NotificationChannel.WEBHOOK, webhook_url=url, **fields)
    channel.set_secret(secret or generate_secret())
    channel.full_clean()
    channel.save()
    return channel


def telegram_channel(token, chat_id="-100200300", name="Ops Telegram", **fields):
    channel = NotificationChannel(name=name, kind=NotificationChannel.TELEGRAM, telegram_chat_id=chat_id, **fields)
    channel.set_secret(token)
    channel.full_clean()
    channel.save()
    return channel


def email_channel(name="Ops email", addresses="", to_staff=True, **fields):
    channel = NotificationChannel(
        name=name, kind=NotificationChannel.EMAIL, email_to_staff=to_staff, email_addresses=addresses, **fields
    )
    channel.full_clean()
    channel.save()
    return channel


def switch_rule(*channels, **fields):
    """The test extension's rule (installed like every rule), with these channels only."""
    alert_rules_install()
    rule = AlertRule.objects.get(kind=SWITCH_KIND)
    for name, value in fields.items():
        setattr(rule, name, value)
    rule.save()
    rule.channels.set(channels)
    return rule


def switch(name="alarm-1", is_on=True, value=None):
    row, _ = AlarmSwitch.objects.update_or_create(name=name, defaults={"is_on": is_on, "value": value})
    return row
