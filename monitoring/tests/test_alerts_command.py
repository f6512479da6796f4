"""`manage.py alerts list|ack|silence|unsilence|test-channel|new-webhook-secret`, as the host and `--as` a staff
member (refused without the permission, with positive controls)."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from monitoring import alert_services
from monitoring.alert_models import Alert, webhook_secret_problem
from monitoring.standard_webhooks import generate_secret
from monitoring.tests.factories import switch, switch_rule, webhook_channel
from monitoring.tests.stand_ins import webhook_receiver

pytestmark = pytest.mark.django_db


def run(*args):
    from io import StringIO

    out = StringIO()
    call_command("alerts", *args, stdout=out)
    return out.getvalue()


def staff_with(*codenames, email):
    person = UserFactory(email=email, is_staff=True)
    granted = Permission.objects.filter(content_type__app_label="monitoring", codename__in=codenames)
    person.user_permissions.add(*granted)
    return person


@pytest.fixture
def firing():
    switch_rule(webhook_channel(), for_seconds=0)
    switch("alarm-1", is_on=True, value=12)
    switch("alarm-2", is_on=True)
    alert_services.alerts_evaluate()
    switch("alarm-2", is_on=False)
    alert_services.alerts_evaluate()
    return Alert.objects.get(subject="alarm-1")


def test_list_says_when_nothing_is_open():
    assert run("list") == "No open alerts.\n"


def test_list_shows_the_open_alerts_and_all_of_them_on_request(firing):
    out = run("list")
    assert f"{firing.pk:>6}  firing    Alarm switch on (test extension): alarm-1  since " in out
    assert "alarm-1 is on" in out and "alarm-2" not in out
    assert "alarm-2" in run("list", "--all")


def test_list_json(firing):
    rows = json.loads(run("list", "--json", "--all"))
    assert [(row["subject"], row["state"]) for row in rows] == [("alarm-1", "firing"), ("alarm-2", "resolved")]
    first = rows[0]
    assert first["kind"] == "extension_app.switch_on" and first["value"] == 12 and first["id"] == firing.pk
    assert set(first) >= {"fired_at", "acknowledged_by", "silenced_until", "reopen_count", "summary"}


def test_ack_stops_the_repeats_and_is_audited(firing):
    assert "Acknowledged alert" in run("ack", str(firing.pk))
    firing.refresh_from_db()
    assert firing.acknowledged_at is not None and firing.acknowledged_by is None
    event = AuditEvent.objects.get(action="monitoring.alert.acknowledge")
    assert event.actor_label == "manage.py alerts"
    assert "acknowledged by someone" in run("list")


def test_silence_for_a_duration(firing):
    out = run("silence", str(firing.pk), "--for", "2h")
    firing.refresh_from_db()
    assert firing.silenced_until - timezone.now() == pytest.approx(timedelta(hours=2), abs=timedelta(seconds=10))
    assert f"for 2h, until {firing.silenced_until:%Y-%m-%d %H:%M} UTC" in out
    assert "silenced until" in run("list")
    run("unsilence", str(firing.pk))
    firing.refresh_from_db()
    assert firing.silenced_until is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["silence", "{id}", "--for", "soon"], "--for: 'soon' is not a duration: write e.g. 90s, 30m, 2h, 1d or 1h30m"),
        (["silence", "{id}", "--for", "0"], "--for: give a duration such as 2h; `alerts unsilence ID` ends a silence."),
        (["silence", "{id}", "--for", "60d"], "--for: a silence lasts from 1m to 30d."),
        (["ack", "999999"], "ID: no alert '999999'."),
        (["ack", "abc"], "ID: no alert 'abc'."),
        (["test-channel", "Nope"], "NAME: no notification channel 'Nope' (channels: Ops webhook)."),
    ],
)
def test_refusals_name_the_option(firing, args, message):
    with pytest.raises(CommandError) as caught:
        run(*[arg.format(id=firing.pk) for arg in args])
    assert str(caught.value).startswith(message)
    firing.refresh_from_db()
    assert firing.silenced_until is None


def test_a_resolved_alert_cannot_be_acknowledged(firing):
    resolved = Alert.objects.get(subject="alarm-2")
    with pytest.raises(CommandError, match=f"ID: alert {resolved.pk} is resolved"):
        run("ack", str(resolved.pk))


def test_test_channel_reports_delivery_and_failure(outbound_to_loopback):
    secret = generate_secret()
    with webhook_receiver(secret) as receiver:
        webhook_channel(receiver.url, secret, name="Ops hook")
        out = run("test-channel", "ops hook")
        assert out.startswith("Test notification sent to Ops hook: ")
        assert receiver.received[0]["payload"]["type"] == "alert.test"
    with pytest.raises(CommandError, match="Test notification to Ops hook failed: http://127.0.0.1:"):
        run("test-channel", "Ops hook")  # the receiver is gone


def test_new_webhook_secret_prints_a_usable_secret():
    secret = run("new-webhook-secret").strip()
    assert webhook_secret_problem(secret) == "" and secret != run("new-webhook-secret").strip()


def test_as_a_staff_member_without_the_permission_is_refused(firing):
    staff_with("view_alert", email="helpdesk@example.com")
    for args in (["ack", str(firing.pk)], ["silence", str(firing.pk), "--for", "1h"]):
        with pytest.raises(CommandError) as caught:
            run(*args, "--as", "helpdesk@example.com")
        assert str(caught.value) == "--as: you do not have the permission 'monitoring.change_alert'."
    with pytest.raises(CommandError, match="--as: you do not have the permission 'monitoring.change_notificationch"):
        run("test-channel", "Ops webhook", "--as", "helpdesk@example.com")
    firing.refresh_from_db()
    assert (firing.acknowledged_at, firing.silenced_until) == (None, None)
    assert "alarm-1" in run("list", "--as", "helpdesk@example.com")  # may look
    staff_with(email="nobody@example.com")
    with pytest.raises(CommandError, match="--as: you do not have the permission 'monitoring.view_alert'."):
        run("list", "--as", "nobody@example.com")


def test_as_a_staff_member_with_the_permission_acts_in_their_name(firing):
    staff_with("view_alert", "change_alert", email="oncall@example.com")
    run("ack", str(firing.pk), "--as", "oncall@example.com")
    run("silence", str(firing.pk), "--for", "30m", "--as", "oncall@example.com")
    firing.refresh_from_db()
    assert firing.acknowledged_by.email == "oncall@example.com" and firing.silenced_until is not None
    labels = set(AuditEvent.objects.filter(action__startswith="monitoring.alert").values_list("actor_label", flat=True))
    assert labels == {"manage.py alerts --as oncall@example.com"}


def test_as_someone_who_is_not_staff_is_refused(firing):
    UserFactory(email="member@example.com")
    with pytest.raises(CommandError, match="--as: 'member@example.com' is not an active staff member."):
        run("ack", str(firing.pk), "--as", "member@example.com")


def test_every_action_explains_itself(capsys):
    from django.core.management import get_commands, load_command_class

    command = load_command_class(get_commands()["alerts"], "alerts")
    parser = command.create_parser("manage.py", "alerts")
    text = parser.format_help()
    for action in ("list", "ack", "silence", "unsilence", "test-channel", "new-webhook-secret"):
        assert action in text
    assert "--as EMAIL" in command.help or "`--as EMAIL`" in command.help
