"""End to end through a real Celery worker and beat (as test_celery_worker.py starts them): the test extension's
alert condition is switched on, beat's "Evaluate alert rules" runs it in the worker, which notifies a webhook
receiver on loopback (signature verified by the receiver), repeats, and resolves once the condition is off."""

import pytest
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from dockspace.tests.celery_processes import celery_running, wait_for
from monitoring.alert_models import Alert, AlertEvent, AlertRule
from monitoring.standard_webhooks import generate_secret
from monitoring.tests.factories import switch, switch_rule, webhook_channel
from monitoring.tests.stand_ins import LOOPBACK_ALLOWED, webhook_receiver

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]


def test_a_worker_fires_repeats_and_resolves_an_alert_to_a_webhook(tmp_path):
    secret = generate_secret()
    with webhook_receiver(secret) as receiver:
        rule = switch_rule(webhook_channel(receiver.url + "/alerts", secret), for_seconds=1)
        rule.repeat_seconds = 4  # below what the admin allows, to see a repeat within the test
        rule.save()
        call_command("install_periodic_tasks")
        every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
        task = PeriodicTask.objects.get(task="monitoring.evaluate_alerts")
        task.interval = every_second
        task.save()

        def kinds():
            return [r["payload"]["type"] if r["payload"] else r["error"] for r in receiver.received]

        with celery_running(tmp_path, "worker", "beat", **LOOPBACK_ALLOWED):
            evaluated = AlertRule.objects.filter(pk=rule.pk, last_evaluated_at__isnull=False)
            evaluating = wait_for(evaluated.exists)
            assert evaluating, (tmp_path / "worker.log").read_text()[-3000:]
            switch(is_on=True, value=99)
            fired = wait_for(lambda: "alert.repeat" in kinds())
            switch(is_on=False)
            resolved = wait_for(lambda: "alert.resolved" in kinds())
        worker_log = (tmp_path / "worker.log").read_text()
        assert fired and resolved, (kinds(), worker_log[-3000:])
    received = kinds()
    assert received[0] == "alert.fired" and received[-1] == "alert.resolved", received
    assert set(received[1:-1]) == {"alert.repeat"}, received
    assert all(r["error"] == "" and r["path"] == "/alerts" for r in receiver.received)
    fired_payload = receiver.received[0]["payload"]["data"]
    assert (fired_payload["subject"], fired_payload["value"], fired_payload["state"]) == ("alarm-1", 99, "firing")
    alert = Alert.objects.get(rule=rule)
    assert alert.state == "resolved" and alert.reopen_count == 0
    assert set(AlertEvent.objects.values_list("status", flat=True)) == {"sent"}
    assert "rule(s) evaluated" in worker_log and "monitoring.send_alert_notification" in worker_log
