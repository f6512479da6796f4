"""`manage.py watchdog` as a real process, with no Celery worker or beat running and the Celery broker unreachable:
a worker last seen 10 minutes ago is reported by a signed webhook (verified by the receiver) and by mail to a real
SMTP server; a fresh worker heartbeat sends "resolved" both ways; SIGTERM stops it cleanly. And a round that hits
a database error is logged once, not in a loop of tracebacks, and the watchdog goes on."""

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.models import OutboundMessage
from accounts.tests.smtp_server import SmtpServer, free_port
from dockspace.tests.celery_processes import database_url, wait_for
from monitoring.alert_models import AlertEvent, AlertRule
from monitoring.alert_services import alert_rules_install
from monitoring.heartbeats import heartbeat_record
from monitoring.models import Heartbeat
from monitoring.standard_webhooks import generate_secret
from monitoring.tests.factories import email_channel, webhook_channel
from monitoring.tests.stand_ins import LOOPBACK_ALLOWED, webhook_receiver

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(settings.BASE_DIR)
SUBJECT_PREFIX = "[Dockspace] {}: Celery worker silent: worker"


def start_watchdog(tmp_path, *args, **env):
    log = open(tmp_path / "watchdog.log", "w")  # noqa: SIM115 - closed by stop()
    environ = {**os.environ, "DATABASE_URL": database_url(), **env}
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "watchdog", *args], cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT
    )
    proc.log_file = log
    return proc


def outbox():
    return list(OutboundMessage.objects.values_list("subject", "status", "sent_via", "last_error"))


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.log_file.close()


def test_a_stopped_worker_is_reported_by_webhook_and_email_without_celery_and_its_return_resolves_it(tmp_path):
    alert_rules_install()
    secret = generate_secret()
    heartbeat_record(Heartbeat.WORKER, now=timezone.now() - timedelta(minutes=10))
    smtp = SmtpServer().start()
    env = {
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp.port),
        "EMAIL_USE_TLS": "0",
        **LOOPBACK_ALLOWED,  # the webhook receiver
        # The broker (and Redis cache) of a stopped Celery: nothing listens there. The watchdog must not need it.
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }
    try:
        with webhook_receiver(secret) as receiver:
            rule = AlertRule.objects.get(kind="monitoring.worker_silent")
            assert rule.for_seconds == 0
            rule.channels.set(
                [
                    webhook_channel(receiver.url + "/watchdog", secret, is_default=False),
                    email_channel(addresses="oncall@example.org", to_staff=False, is_default=False),
                ]
            )

            def webhooks(kind):
                return [r for r in receiver.received if r["payload"] and r["payload"]["type"] == kind]

            def mails(word):
                return [r for r in smtp.received if r.message["Subject"] == SUBJECT_PREFIX.format(word)]

            proc = start_watchdog(tmp_path, "--interval", "1", **env)
            try:
                fired = wait_for(lambda: webhooks("alert.fired") and mails("FIRING"), 60)
                assert fired, (receiver.received, outbox(), (tmp_path / "watchdog.log").read_text()[-3000:])

                heartbeat_record(Heartbeat.WORKER)  # the worker is back
                resolved = wait_for(lambda: webhooks("alert.resolved") and mails("RESOLVED"), 60)
                assert resolved, (receiver.received, outbox(), (tmp_path / "watchdog.log").read_text()[-3000:])
            finally:
                exit_code = stop(proc)
    finally:
        smtp.stop()

    log = (tmp_path / "watchdog.log").read_text()
    assert exit_code == 0 and "the watchdog stopped" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert all(r["error"] == "" and r["path"] == "/watchdog" for r in receiver.received)  # every signature held
    [fired_hook], [resolved_hook] = webhooks("alert.fired"), webhooks("alert.resolved")
    assert fired_hook["payload"]["data"]["summary"].startswith("The Celery worker was last seen 10")
    assert resolved_hook["payload"]["data"]["state"] == "resolved"
    [fired_mail], [resolved_mail] = mails("FIRING"), mails("RESOLVED")
    assert fired_mail.rcpt_tos == resolved_mail.rcpt_tos == ["oncall@example.org"]
    assert "The Celery worker was last seen 10" in fired_mail.text
    sent = OutboundMessage.objects.filter(kind="alert").values_list("status", "sent_via")
    assert set(sent) == {("sent", "primary")}
    assert set(AlertEvent.objects.values_list("status", flat=True)) == {"sent"}
    assert Heartbeat.objects.filter(name="watchdog").exists()


def test_a_database_error_is_logged_once_and_the_watchdog_goes_on_until_the_database_works(tmp_path):
    # A database that is not migrated yet: every query fails with "no such table".
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'later.sqlite3'}"}
    once = subprocess.run(
        [sys.executable, "manage.py", "watchdog", "--once"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert once.returncode == 1
    assert once.stderr.strip().endswith(
        "CommandError: the round failed: OperationalError: no such table: monitoring_heartbeat"
    )
    assert "Traceback" not in once.stderr and "WARNING" not in once.stderr

    proc = start_watchdog(tmp_path, "--interval", "1", **env)
    try:
        log = tmp_path / "watchdog.log"
        assert wait_for(lambda: "a round failed" in log.read_text(), 60), log.read_text()
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env={**os.environ, **env},
            capture_output=True,
            timeout=300,
        )
        assert migrate.returncode == 0, migrate.stderr[-2000:]
        assert wait_for(lambda: "rounds work again" in log.read_text(), 60), log.read_text()[-3000:]
    finally:
        exit_code = stop(proc)
    text = log.read_text()
    assert exit_code == 0
    failures = [line.split(" WARNING ", 1)[1] for line in text.splitlines() if "a round failed" in line]
    assert "no such table" in failures[0] and "Traceback" not in text
    # A round a second failed until the migration was done: a failure is logged when it differs from the last one.
    assert all(line != previous for previous, line in zip(failures, failures[1:], strict=False)), failures
