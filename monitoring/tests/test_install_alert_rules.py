"""`manage.py install_alert_rules` (run at every start; evaluation does the same): one rule per declared kind with
its defaults, created once and never overwritten; the first install gives alerts somewhere to go."""

import pytest
from django.core.management import call_command

from dockspace.alert_kinds import AlertKind, declared_alert_kinds
from monitoring import alert_services
from monitoring.alert_models import AlertRule, NotificationChannel
from monitoring.tests.factories import switch, webhook_channel

pytestmark = pytest.mark.django_db


def test_it_creates_each_rule_once_with_its_kinds_defaults(capsys):
    declared = declared_alert_kinds()
    call_command("install_alert_rules")
    assert f"Alert rules: {len(declared)} created, 0 unchanged." in capsys.readouterr().out
    first = list(AlertRule.objects.order_by("kind").values())
    call_command("install_alert_rules")
    assert f"Alert rules: 0 created, {len(declared)} unchanged." in capsys.readouterr().out
    assert list(AlertRule.objects.order_by("kind").values()) == first
    switch_rule = AlertRule.objects.get(kind="extension_app.switch_on")
    assert (switch_rule.thresholds, switch_rule.for_seconds, switch_rule.repeat_seconds) == ({"above": 10}, 120, 3600)


def test_the_first_install_mails_the_staff_and_later_rules_use_the_default_channels():
    alert_services.alert_rules_install()
    staff = NotificationChannel.objects.get()
    assert (staff.name, staff.kind, staff.email_to_staff, staff.is_default) == ("Staff email", "email", True, True)
    assert all(list(rule.channels.all()) == [staff] for rule in AlertRule.objects.all())
    hook = webhook_channel(is_default=True)
    webhook_channel(name="Quiet", is_default=False)
    staff.is_default = False
    staff.save()
    later = AlertKind(
        name="extension_app.later", label="Later", subject_kind="x", description="Added by an upgrade.",
        evaluate=lambda rule: [],
    )  # fmt: skip
    result = alert_services.alert_rules_install([*declared_alert_kinds(), later])
    assert result.created == ["extension_app.later"]
    assert list(AlertRule.objects.get(kind="extension_app.later").channels.all()) == [hook]
    assert NotificationChannel.objects.filter(name="Staff email").count() == 1


def test_no_staff_email_channel_is_made_once_channels_exist():
    webhook_channel()
    alert_services.alert_rules_install()
    assert list(NotificationChannel.objects.values_list("name", flat=True)) == ["Ops webhook"]


def test_the_operators_changes_are_kept():
    alert_services.alert_rules_install()
    rule = AlertRule.objects.get(kind="monitoring.dms_sync_failing")
    rule.is_enabled, rule.thresholds, rule.for_seconds, rule.repeat_seconds = False, {"behind_minutes": 45}, 0, 600
    rule.save()
    rule.channels.clear()
    call_command("install_alert_rules")
    alert_services.alerts_evaluate()
    rule.refresh_from_db()
    assert (rule.is_enabled, rule.thresholds, rule.for_seconds, rule.repeat_seconds) == (
        False,
        {"behind_minutes": 45},
        0,
        600,
    )
    assert not rule.channels.exists()


def test_a_rule_whose_kind_is_gone_is_kept_reported_and_its_alerts_closed(capsys):
    alert_services.alert_rules_install()
    rule = AlertRule.objects.get(kind="extension_app.switch_on")
    rule.for_seconds = 0
    rule.save()
    switch(is_on=True)
    alert_services.alerts_evaluate()
    rule.kind = "retired_app.gone"
    rule.save()
    call_command("install_alert_rules")
    assert "no installed app declares the alert kind 'retired_app.gone' any more" in capsys.readouterr().out
    alert_services.alerts_evaluate()
    rule.refresh_from_db()
    assert rule.last_error == "no app declares this alert kind any more"
    assert rule.alerts.get().state == "resolved"
    assert str(rule) == "retired_app.gone (not declared by any app)"
