"""The issue's "Done when", end to end: a mail host added through the service (the test's real sshd, its host key
trusted), a real Celery worker and beat probing it and evaluating the rules every few seconds; a DMS service stops
(the `docker` stand-in's supervisorctl says so) -> "DMS service down" fires -> a signed webhook (verified by the
receiver) and an email through the outbox (to a real SMTP server) arrive -> the service runs again -> "resolved"
arrives by both."""

import pytest
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from accounts.models import OutboundMessage
from accounts.tests.smtp_server import SmtpServer, use_smtp
from dockspace.tests.celery_processes import celery_running, wait_for
from monitoring.alert_models import Alert, AlertRule
from monitoring.alert_services import alert_rules_install
from monitoring.models import HostProbe
from monitoring.standard_webhooks import generate_secret
from monitoring.tests.factories import add_host, email_channel, webhook_channel
from monitoring.tests.stand_ins import LOOPBACK_ALLOWED, webhook_receiver

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]

RULE = "monitoring.dms_service_down"
SUBJECT = "mx1: fail2ban"


def every(seconds):
    schedule, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
    return schedule


def test_a_stopped_service_alerts_by_webhook_and_email_and_resolves_by_itself(sshd, settings, tmp_path):
    host = add_host(sshd, name="mx1")
    assert host.host_key_fingerprint == sshd.fingerprint()

    alert_rules_install()
    AlertRule.objects.exclude(kind=RULE).update(is_enabled=False)  # the real machine's disk is not this test's
    secret = generate_secret()
    smtp = SmtpServer().start()
    use_smtp(settings, smtp)
    call_command("install_periodic_tasks")
    PeriodicTask.objects.exclude(task__in=("monitoring.probe_mail_hosts", "monitoring.evaluate_alerts")).update(
        enabled=False
    )
    PeriodicTask.objects.filter(task="monitoring.probe_mail_hosts").update(interval=every(2), expires=None)
    PeriodicTask.objects.filter(task="monitoring.evaluate_alerts").update(interval=every(1), expires=None)
    env = {
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp.port),
        "EMAIL_USE_TLS": "0",
        "DOCKSPACE_SSH_TIMEOUT": "3",  # the TLS probe of 127.0.0.1's mail ports: refused or slow, not waited for
        **LOOPBACK_ALLOWED,  # the webhook receiver
    }
    try:
        with webhook_receiver(secret) as receiver, celery_running(tmp_path, "worker", "beat", **env) as celery:
            rule = AlertRule.objects.get(kind=RULE)
            rule.for_seconds = 2
            rule.save()
            rule.channels.set(
                [
                    webhook_channel(receiver.url + "/dockspace", secret, is_default=False),
                    email_channel(addresses="oncall@example.org", to_staff=False, is_default=False),
                ]
            )

            def webhooks(kind):
                return [r for r in receiver.received if r["payload"] and r["payload"]["type"] == kind]

            def mails(word):
                return [r for r in smtp.received if r.message["Subject"].startswith(f"[Dockspace] {word}:")]

            def probed_running():
                # degraded, not healthy: nothing serves TLS on 127.0.0.1's mail ports here
                probe = HostProbe.objects.filter(host=host).order_by("-started_at").first()
                return probe is not None and probe.reachable and probe.services.get("fail2ban") == "RUNNING"

            assert wait_for(probed_running, 30), celery.log()[-3000:]

            sshd.set_service("fail2ban", "STOPPED")
            fired = wait_for(lambda: webhooks("alert.fired") and mails("FIRING"), 40)
            assert fired, (receiver.received, smtp.received, celery.log()[-3000:])

            sshd.set_service("fail2ban", "RUNNING")
            resolved = wait_for(lambda: webhooks("alert.resolved") and mails("RESOLVED"), 40)
            assert resolved, (receiver.received, smtp.received, celery.log()[-3000:])
    finally:
        smtp.stop()

    assert all(r["error"] == "" and r["path"] == "/dockspace" for r in receiver.received)  # every signature held
    [fired_hook], [resolved_hook] = webhooks("alert.fired"), webhooks("alert.resolved")
    assert fired_hook["payload"]["data"]["subject"] == SUBJECT
    assert fired_hook["payload"]["data"]["summary"] == "fail2ban on mx1 is STOPPED (supervisorctl status)."
    assert resolved_hook["payload"]["data"]["state"] == "resolved"
    [fired_mail], [resolved_mail] = mails("FIRING"), mails("RESOLVED")
    assert fired_mail.message["Subject"] == f"[Dockspace] FIRING: DMS service down: {SUBJECT}"
    assert fired_mail.rcpt_tos == resolved_mail.rcpt_tos == ["oncall@example.org"]
    assert "fail2ban on mx1 is STOPPED" in fired_mail.text
    assert set(OutboundMessage.objects.filter(kind="alert").values_list("status", flat=True)) == {"sent"}
    alert = Alert.objects.get(rule__kind=RULE, subject=SUBJECT)
    assert alert.state == "resolved" and alert.fired_at is not None
    assert ["docker", "exec", "mailserver", "supervisorctl", "status"] in sshd.calls()
