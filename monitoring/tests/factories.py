"""Factories of the monitoring tests: mail hosts (against a test's sshd, monitoring/tests/sshd.py), and alert
rules, channels and switches."""

import io

from django.core.management import call_command

from dockspace.tests.extension_app.models import AlarmSwitch
from monitoring import hosts, ssh
from monitoring.alert_models import AlertRule, NotificationChannel
from monitoring.alert_services import alert_rules_install
from monitoring.models import MailHost
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


# --- mail hosts ------------------------------------------------------------------------------------------


def add_host(sshd, name="mx1", **kwargs):
    """A stored MailHost for the running `sshd`, its host key trusted as the service does it."""
    arguments = {"key_path": str(sshd.keys["user"]), **kwargs}
    return hosts.mailhost_add(name=name, ssh_target=sshd.target, trust=sshd.fingerprint(), **arguments).host


def unsaved_host(sshd, **fields):
    """A MailHost pinned to the key `sshd` presents now, not stored (for the SSH module alone)."""
    offered = ssh.fetch_host_key("127.0.0.1", sshd.port)
    values = {
        "name": "mx1",
        "ssh_user": sshd.user,
        "ssh_host": "127.0.0.1",
        "ssh_port": sshd.port,
        "key_path": str(sshd.keys["user"]),
        "host_key_type": offered.type,
        "host_key_fingerprint": offered.fingerprint,
        "host_key": offered.base64,
        **fields,
    }
    return MailHost(**values)


def run(*args):
    """call_command with captured output: what the command printed on stdout."""
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()
