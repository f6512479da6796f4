"""The alert state machine, table-driven, with the clock moved by time-machine: pending until the condition held
for the rule's "for", firing with one notification, repeats at the rule's interval, resolved with a notification,
the same row reopened, acknowledgement and silence. Notifications are the AlertEvent rows each evaluation queues."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from accounts.authz import SYSTEM
from dockspace.tests.extension_app.models import AlarmSwitch
from monitoring import alert_services
from monitoring.alert_models import Alert, AlertEvent
from monitoring.tests.factories import switch, switch_rule, webhook_channel

pytestmark = pytest.mark.django_db

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
FOR, REPEAT = 120, 3600

# Each step: (seconds after START, what happens, state of the alert afterwards, the notifications that step
# queues). "on"/"off" flip the condition and evaluate; "eval" evaluates again; "ack",
# "silence N", "unsilence" are the operator's, followed by an evaluation; "gone" deletes the subject.
CASES = {
    "pending until held for 'for', then fires once": [
        (0, "on", "pending", []),
        (60, "eval", "pending", []),
        (FOR - 1, "eval", "pending", []),
        (FOR, "eval", "firing", ["fired"]),
        (FOR + 60, "eval", "firing", []),
    ],
    "a flap shorter than 'for' never fires, and the 'for' starts again": [
        (0, "on", "pending", []),
        (60, "off", "resolved", []),
        (90, "on", "pending", []),
        (90 + FOR - 1, "eval", "pending", []),
        (90 + FOR, "eval", "firing", ["fired"]),
    ],
    "repeats at the rule's interval while firing": [
        (0, "on", "pending", []),
        (FOR, "eval", "firing", ["fired"]),
        (FOR + REPEAT - 1, "eval", "firing", []),
        (FOR + REPEAT, "eval", "firing", ["repeat"]),
        (FOR + 2 * REPEAT - 60, "eval", "firing", []),
        (FOR + 2 * REPEAT, "eval", "firing", ["repeat"]),
    ],
    "resolves by itself with a resolved notification": [
        (0, "on", "pending", []),
        (FOR, "eval", "firing", ["fired"]),
        (FOR + 60, "off", "resolved", ["resolved"]),
        (FOR + 120, "eval", "resolved", []),
    ],
    "comes back on the same row, fires again after 'for'": [
        (0, "on", "pending", []),
        (FOR, "eval", "firing", ["fired"]),
        (FOR + 60, "off", "resolved", ["resolved"]),
        (FOR + 120, "on", "pending", []),
        (2 * FOR + 120, "eval", "firing", ["fired"]),
    ],
    "acknowledged: no more repeats, the resolved notification still comes": [
        (0, "on", "pending", []),
        (FOR, "eval", "firing", ["fired"]),
        (FOR + 60, "ack", "firing", []),
        (FOR + REPEAT, "eval", "firing", []),
        (FOR + 3 * REPEAT, "eval", "firing", []),
        (FOR + 3 * REPEAT + 60, "off", "resolved", ["resolved"]),
    ],
    "an acknowledgement ends with its episode": [
        (0, "on", "pending", []),
        (FOR, "eval", "firing", ["fired"]),
        (FOR + 60, "ack", "firing", []),
        (FOR + 120, "off", "resolved", ["resolved"]),
        (FOR + 180, "on", "pending", []),
        (2 * FOR + 180, "eval", "firing", ["fired"]),
        (2 * FOR + 180 + REPEAT, "eval", "firing", ["repeat"]),
    ],
    "silenced: nothing at all until the silence ends, then it is notified": [
        (0, "on", "pending", []),
        (10, "silence 7200", "pending", []),
        (FOR, "eval", "firing", []),
        (FOR + REPEAT, "eval", "firing", []),
        (7210, "eval", "firing", ["fired"]),
        (7270, "eval", "firing", []),
    ],
    "a silence started while firing holds the repeats and the resolved notification": [
        (0, "on", "pending", []),
        (FOR, "eval", "firing", ["fired"]),
        (FOR + 60, "silence 14400", "firing", []),
        (FOR + REPEAT, "eval", "firing", []),
        (FOR + REPEAT + 60, "off", "resolved", []),
    ],
    "repeats resume when a silence ends": [
        (0, "on", "pending", []),
        (FOR, "eval", "firing", ["fired"]),
        (FOR + 60, "silence 7200", "firing", []),
        (FOR + REPEAT, "eval", "firing", []),
        (FOR + 3000, "unsilence", "firing", []),
        (FOR + REPEAT + 60, "eval", "firing", ["repeat"]),
    ],
    "a subject the check no longer reports is resolved": [
        (0, "on", "pending", []),
        (FOR, "eval", "firing", ["fired"]),
        (FOR + 60, "gone", "resolved", ["resolved"]),
    ],
}


def run_step(rule, at, action):
    with time_machine.travel(START + timedelta(seconds=at), tick=False):
        alert = Alert.objects.filter(rule=rule, subject="alarm-1").first()
        if action == "on":
            switch(is_on=True)
        elif action == "off":
            switch(is_on=False)
        elif action == "gone":
            AlarmSwitch.objects.filter(name="alarm-1").delete()
        elif action == "ack":
            alert_services.alert_acknowledge(alert=alert, actor=SYSTEM)
        elif action.startswith("silence"):
            alert_services.alert_silence(alert=alert, seconds=int(action.split()[1]), actor=SYSTEM)
        elif action == "unsilence":
            alert_services.alert_silence(alert=alert, seconds=0, actor=SYSTEM)
        alert_services.alerts_evaluate()


@pytest.mark.parametrize("steps", CASES.values(), ids=CASES.keys())
def test_the_state_machine(steps):
    rule = switch_rule(webhook_channel(), for_seconds=FOR, repeat_seconds=REPEAT)
    for at, action, state, notified in steps:
        before = set(AlertEvent.objects.values_list("pk", flat=True))
        run_step(rule, at, action)
        alerts = list(Alert.objects.filter(rule=rule))
        assert len(alerts) <= 1, "one row per rule and subject"
        assert alerts and alerts[0].state == state, (at, action, alerts and alerts[0].state)
        new = AlertEvent.objects.exclude(pk__in=before).order_by("pk")
        assert [event.kind for event in new] == notified, (at, action)


def test_reopening_keeps_the_row_and_counts_it():
    rule = switch_rule(webhook_channel(), for_seconds=0, repeat_seconds=REPEAT)
    first_seen = None
    for episode in range(3):
        at = episode * 600
        run_step(rule, at, "on")
        alert = Alert.objects.get(rule=rule)
        first_seen = first_seen or alert.first_seen_at
        assert (alert.state, alert.reopen_count, alert.fired_at) == ("firing", episode, START + timedelta(seconds=at))
        run_step(rule, at + 60, "off")
    alert = Alert.objects.get(rule=rule)
    assert alert.first_seen_at == first_seen == START
    assert alert.resolved_at == START + timedelta(seconds=1260)
    assert list(AlertEvent.objects.order_by("pk").values_list("kind", flat=True)) == ["fired", "resolved"] * 3
    assert {event.alert_id for event in AlertEvent.objects.all()} == {alert.pk}


def test_no_resolved_notification_when_the_rule_says_so():
    rule = switch_rule(webhook_channel(), for_seconds=0, repeat_seconds=REPEAT, notify_resolved=False)
    run_step(rule, 0, "on")
    run_step(rule, 60, "off")
    assert list(AlertEvent.objects.values_list("kind", flat=True)) == ["fired"]


def test_one_notification_per_channel_of_the_rule():
    rule = switch_rule(
        webhook_channel(name="A"), webhook_channel(name="B"), webhook_channel(name="C", is_enabled=False), for_seconds=0
    )
    run_step(rule, 0, "on")
    assert sorted(AlertEvent.objects.values_list("channel_name", "kind")) == [("A", "fired"), ("B", "fired")]


def test_each_subject_is_its_own_alert():
    rule = switch_rule(webhook_channel(), for_seconds=0)
    switch("alarm-2", is_on=True)
    run_step(rule, 0, "on")
    assert sorted(Alert.objects.values_list("subject", "state")) == [("alarm-1", "firing"), ("alarm-2", "firing")]
    run_step(rule, 60, "off")
    assert sorted(Alert.objects.values_list("subject", "state")) == [("alarm-1", "resolved"), ("alarm-2", "firing")]


def test_the_threshold_the_operator_set_is_the_one_evaluated():
    rule = switch_rule(webhook_channel(), for_seconds=0)
    switch(is_on=True, value=50)
    rule.thresholds = {"above": 60}
    rule.save()
    alert_services.alerts_evaluate()
    assert not Alert.objects.filter(rule=rule, state="firing").exists()
    rule.thresholds = {"above": 40}
    rule.save()
    alert_services.alerts_evaluate()
    alert = Alert.objects.get(rule=rule)
    assert (alert.state, alert.value, alert.summary) == ("firing", 50, "alarm-1 is on")


def test_disabling_a_rule_closes_its_alerts_without_notifying():
    rule = switch_rule(webhook_channel(), for_seconds=0)
    run_step(rule, 0, "on")
    rule.is_enabled = False
    rule.save()
    run_step(rule, 60, "eval")
    alert = Alert.objects.get(rule=rule)
    assert alert.state == "resolved" and "disabled" in alert.summary
    assert list(AlertEvent.objects.values_list("kind", flat=True)) == ["fired"]


def test_a_check_that_fails_leaves_the_alerts_as_they_are():
    rule = switch_rule(webhook_channel(), for_seconds=0)
    run_step(rule, 0, "on")
    from dockspace.tests.extension_app import apps

    def broken(view):
        raise RuntimeError("probe table missing")

    object.__setattr__(apps.SWITCH_ON, "evaluate", broken)
    try:
        result = alert_services.alerts_evaluate()
    finally:
        object.__setattr__(apps.SWITCH_ON, "evaluate", apps.switch_observations)
    rule.refresh_from_db()
    assert rule.last_error == "RuntimeError: probe table missing"
    assert result.errors == ["extension_app.switch_on: RuntimeError"]
    assert Alert.objects.get(rule=rule).state == "firing"
    alert_services.alerts_evaluate()
    rule.refresh_from_db()
    assert rule.last_error == ""


def test_an_acknowledgement_saved_during_an_evaluation_is_kept():
    rule = switch_rule(webhook_channel(), for_seconds=0)
    run_step(rule, 0, "on")
    alert = Alert.objects.get(rule=rule)
    stale = Alert.objects.get(pk=alert.pk)  # what an evaluation read before the operator acted
    alert_services.alert_acknowledge(alert=alert, actor=SYSTEM)
    stale.summary = "newer"
    stale.save(update_fields=alert_services._EVALUATED_FIELDS)
    assert Alert.objects.get(pk=alert.pk).acknowledged_at is not None


def test_the_resolved_notification_says_whether_its_episode_was_acknowledged():
    rule = switch_rule(webhook_channel(), for_seconds=0, repeat_seconds=REPEAT)
    for at, action in [(0, "on"), (60, "ack"), (120, "off"), (180, "on"), (240, "off")]:
        run_step(rule, at, action)
    sent = [(event.kind, event.payload["data"]["acknowledged"]) for event in AlertEvent.objects.order_by("pk")]
    # The first episode was acknowledged (its resolved notification says so); the second, not yet acknowledged,
    # starts and ends unacknowledged: the acknowledgement ended with its episode.
    assert sent == [("fired", False), ("resolved", True), ("fired", False), ("resolved", False)]
    assert Alert.objects.get(rule=rule).acknowledged_at is None
