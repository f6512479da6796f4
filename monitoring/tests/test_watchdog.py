"""The watchdog in-process (monitoring.watchdog, `manage.py watchdog --once`): it evaluates only the worker and beat
rules, sends their notifications itself (webhook, email through the outbox delivered here), tries a mail the SMTP
server did not take again at a later round, and is declared as a process that `make run` starts. The process
itself, against a real database with no worker: test_watchdog_process.py."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.core.management import CommandError

from accounts.models import OutboundMessage
from accounts.outbox_delivery import retry_delay
from accounts.tests.smtp_server import SmtpServer, use_smtp
from dockspace.processes import collect_processes, selected_processes
from monitoring import alert_services
from monitoring.alert_models import Alert, AlertEvent, AlertRule
from monitoring.heartbeats import heartbeat_record
from monitoring.models import Heartbeat
from monitoring.standard_webhooks import generate_secret
from monitoring.tests.factories import email_channel, run, switch, webhook_channel
from monitoring.tests.stand_ins import webhook_receiver
from monitoring.watchdog import Watchdog, watchdog_round

pytestmark = pytest.mark.django_db

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WORKER_SILENT = "monitoring.worker_silent"


def worker_silent_rule(*channels):
    alert_services.alert_rules_install()
    rule = AlertRule.objects.get(kind=WORKER_SILENT)
    rule.channels.set(channels)
    return rule


def once(seconds):
    with time_machine.travel(START + timedelta(seconds=seconds), tick=False):
        return run("watchdog", "--once").strip()


def test_once_records_its_heartbeat_and_sends_a_worker_silent_alert_itself_then_the_resolution(outbound_to_loopback):
    secret = generate_secret()
    heartbeat_record(Heartbeat.WORKER, now=START - timedelta(minutes=10))
    with webhook_receiver(secret) as receiver:
        worker_silent_rule(webhook_channel(receiver.url + "/watchdog", secret))

        # "1 sent": the watchdog sent it, not a task (a task would have left it nothing to send).
        assert once(0) == "1 fired, 0 resolved; notifications: 1 sent, 0 failed, 0 to retry"
        assert once(60) == "0 fired, 0 resolved; notifications: 0 sent, 0 failed, 0 to retry"  # told once
        heartbeat_record(Heartbeat.WORKER, now=START + timedelta(seconds=100))
        assert once(120) == "0 fired, 1 resolved; notifications: 1 sent, 0 failed, 0 to retry"

    assert Heartbeat.objects.get(name="watchdog").seen_at == START + timedelta(seconds=120)
    assert [r["error"] for r in receiver.received] == ["", ""]  # both signatures verified by the receiver
    fired, resolved = (r["payload"] for r in receiver.received)
    assert (fired["type"], fired["data"]["subject"]) == ("alert.fired", "worker")
    assert fired["data"]["summary"] == "The Celery worker was last seen 10 minutes ago: is it running?"
    assert (resolved["type"], resolved["data"]["state"]) == ("alert.resolved", "resolved")
    assert set(AlertEvent.objects.values_list("status", flat=True)) == {"sent"}


def test_it_evaluates_only_the_worker_and_beat_rules():
    alert_services.alert_rules_install()
    heartbeat_record(Heartbeat.WORKER, now=START - timedelta(minutes=10))
    heartbeat_record(Heartbeat.BEAT, now=START - timedelta(minutes=10))
    switch(is_on=True)  # the test extension's rule would fire at once
    with time_machine.travel(START, tick=False):
        done = watchdog_round()
    assert sorted(done.evaluation.fired) == ["monitoring.beat_silent: beat", "monitoring.worker_silent: worker"]
    evaluated = AlertRule.objects.filter(last_evaluated_at__isnull=False).values_list("kind", flat=True)
    assert sorted(evaluated) == ["monitoring.beat_silent", "monitoring.worker_silent"]
    assert sorted(Alert.objects.values_list("rule__kind", flat=True)) == sorted(evaluated)

    # Positive control: the worker's evaluations, later, have the others (the watchdog's own rule included).
    for minutes in (4, 5):
        with time_machine.travel(START + timedelta(minutes=minutes), tick=False):
            alert_services.alerts_evaluate()
    open_alerts = set(Alert.objects.exclude(state="resolved").values_list("rule__kind", flat=True))
    assert {"extension_app.switch_on", "monitoring.watchdog_silent"} <= open_alerts
    assert Alert.objects.get(rule__kind="monitoring.watchdog_silent").state == "firing"


def test_email_goes_straight_to_the_smtp_server_and_a_refused_mail_is_sent_at_a_later_round(
    settings, django_capture_on_commit_callbacks
):
    smtp = SmtpServer()  # not started yet: the first attempt finds nobody listening
    use_smtp(settings, smtp)
    heartbeat_record(Heartbeat.WORKER, now=START - timedelta(minutes=10))
    worker_silent_rule(email_channel(addresses="oncall@example.org", to_staff=False))
    try:
        with django_capture_on_commit_callbacks(execute=True), time_machine.travel(START, tick=False):
            first = watchdog_round()
        message = OutboundMessage.objects.get()
        assert (message.kind, message.status, message.attempts) == ("alert", "queued", 1)
        assert first.sent == 1 and first.mail_waiting == [message.pk]  # the outbox took it; SMTP did not

        smtp.start()
        before_retry = START + retry_delay(1) - timedelta(seconds=1)
        with django_capture_on_commit_callbacks(execute=True), time_machine.travel(before_retry, tick=False):
            second = watchdog_round(mail_waiting=first.mail_waiting)
        assert smtp.received == [] and second.mail_waiting == [message.pk]  # not due yet
        with django_capture_on_commit_callbacks(execute=True), time_machine.travel(START + retry_delay(1), tick=False):
            third = watchdog_round(mail_waiting=second.mail_waiting)
    finally:
        smtp.stop()
    assert third.mail_waiting == []
    [mail] = smtp.received
    assert mail.rcpt_tos == ["oncall@example.org"]
    assert mail.message["Subject"] == "[Dockspace] FIRING: Celery worker silent: worker"
    message.refresh_from_db()
    assert (message.status, message.sent_via, message.attempts) == ("sent", "primary", 2)


def test_running_it_judges_the_worker_and_beat_only_from_its_third_round():
    heartbeat_record(Heartbeat.WORKER, now=START - timedelta(hours=5))  # before Dockspace was stopped
    worker_silent_rule()
    watchdog = Watchdog(interval=60)
    for seconds in (0, 60):  # the worker started with it has two rounds to record its heartbeat
        with time_machine.travel(START + timedelta(seconds=seconds), tick=False):
            assert watchdog.run_once().summary().startswith("0 fired")
        assert Heartbeat.objects.get(name="watchdog").seen_at == START + timedelta(seconds=seconds)
    assert not Alert.objects.exists()
    with time_machine.travel(START + timedelta(seconds=120), tick=False):
        assert watchdog.run_once().summary().startswith("1 fired")  # it never came


def test_a_bad_interval_is_refused_naming_the_option():
    with pytest.raises(CommandError, match="argument --interval: must be a whole number of seconds, at least 1"):
        run("watchdog", "--interval", "0", "--once")
    with pytest.raises(CommandError, match="--interval: .*got 'soon'"):
        run("watchdog", "--interval", "soon", "--once")
    assert "0 fired" in run("watchdog", "--interval", "5", "--once")  # positive control


def test_the_watchdog_is_a_declared_process_that_make_run_starts_by_default():
    [watchdog] = [process for process in collect_processes() if process.name == "watchdog"]
    assert watchdog in selected_processes(collect_processes(), environ={})
    argv = watchdog.command({})
    assert Path(argv[1]).name == "manage.py" and Path(argv[1]).is_file() and argv[2:] == ["watchdog"]
    # Positive control: a DOCKSPACE_PROCESSES that does not name it leaves it out.
    assert watchdog not in selected_processes(collect_processes(), environ={"DOCKSPACE_PROCESSES": "web,worker"})
