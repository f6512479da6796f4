"""Worker, beat and watchdog silent: read from the heartbeats the processes write (monitoring.heartbeats), firing
once the last one is older than the rule's minutes and resolving when a new one arrives."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from monitoring import alert_services
from monitoring.alert_models import Alert, AlertRule
from monitoring.heartbeats import heartbeat_record

pytestmark = pytest.mark.django_db

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds):
    return START + timedelta(seconds=seconds)


def evaluate(seconds):
    with time_machine.travel(at(seconds), tick=False):
        alert_services.alerts_evaluate()
    subjects = ("worker", "beat", "watchdog")
    return {alert.rule.kind.split(".")[1]: alert for alert in Alert.objects.filter(subject__in=subjects)}


def test_the_rules_are_installed_with_three_minutes():
    evaluate(0)
    kinds = ("monitoring.worker_silent", "monitoring.beat_silent", "monitoring.watchdog_silent")
    rules = AlertRule.objects.filter(kind__in=kinds)
    assert {rule.kind: rule.thresholds for rule in rules} == {
        "monitoring.worker_silent": {"minutes": 3},
        "monitoring.beat_silent": {"minutes": 3},
        "monitoring.watchdog_silent": {"minutes": 3},
    }


def test_a_worker_not_seen_for_three_minutes_fires_and_a_new_heartbeat_resolves_it():
    heartbeat_record("worker", now=at(0))
    heartbeat_record("beat", now=at(0))
    assert {name: a.state for name, a in evaluate(180).items()} == {}  # exactly 3 minutes: not yet
    alerts = evaluate(181)
    assert alerts["worker_silent"].state == "firing" and alerts["beat_silent"].state == "firing"
    assert alerts["worker_silent"].summary == "The Celery worker was last seen 3 minutes ago: is it running?"
    heartbeat_record("worker", now=at(200))
    alerts = evaluate(210)
    assert alerts["worker_silent"].state == "resolved" and alerts["beat_silent"].state == "firing"


def test_beat_counts_as_seen_while_it_sends_tasks():
    heartbeat_record("beat", now=at(0))
    heartbeat_record("worker", now=at(0))
    every, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.MINUTES)
    PeriodicTask.objects.create(name="t", task="monitoring.heartbeat", interval=every, last_run_at=at(400))
    alerts = evaluate(500)
    assert "beat_silent" not in alerts and alerts["worker_silent"].state == "firing"


def test_before_a_process_was_ever_seen_nothing_fires():
    assert evaluate(0) == {}
    assert evaluate(3600) == {}


def test_a_watchdog_never_started_is_not_reported():
    heartbeat_record("worker", now=at(0))
    heartbeat_record("beat", now=at(0))
    assert "watchdog_silent" not in evaluate(0)
    assert "watchdog_silent" not in evaluate(3600)  # a day without it: still nothing (it never ran here)
    assert evaluate(3600)["worker_silent"].state == "firing"  # positive control: the same evaluation fires others
    rule = AlertRule.objects.get(kind="monitoring.watchdog_silent")
    assert rule.last_evaluated_at == at(3600) and rule.last_error == ""


def test_a_watchdog_not_seen_for_three_minutes_fires_a_minute_later_and_a_new_round_resolves_it():
    heartbeat_record("watchdog", now=at(0))
    assert "watchdog_silent" not in evaluate(180)  # exactly 3 minutes: not yet
    assert evaluate(181)["watchdog_silent"].state == "pending"  # its rule's "for": 1 minute
    alert = evaluate(241)["watchdog_silent"]
    assert alert.state == "firing"
    assert alert.summary == "The watchdog was last seen 4 minutes ago: is it running?"
    heartbeat_record("watchdog", now=at(260))
    alert = evaluate(270)["watchdog_silent"]
    assert alert.state == "resolved" and alert.summary == "The watchdog was seen 0.2 minutes ago."


def test_a_watchdog_back_within_its_minute_never_fires():
    heartbeat_record("watchdog", now=at(0))
    assert evaluate(3600)["watchdog_silent"].state == "pending"  # Dockspace starts again: the worker evaluates first
    heartbeat_record("watchdog", now=at(3605))  # the watchdog's first round
    alert = evaluate(3660)["watchdog_silent"]
    assert alert.state == "resolved" and alert.fired_at is None
