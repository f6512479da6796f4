"""The outbox with a real Celery worker and beat (Redis when REDIS_URL is set, else the embedded broker) and a real
SMTP server: a message is sent as soon as its transaction commits, and one the broker never got is sent by the drain
that beat runs."""

import pytest
from django.core.mail import send_mail
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from accounts.models import OutboundMessage
from accounts.tests.smtp_server import SmtpServer, use_smtp
from dockspace.tests.celery_processes import celery_running, wait_for

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]


def test_a_real_worker_sends_at_commit_and_the_drain_sends_what_the_broker_missed(settings, tmp_path, monkeypatch):
    from dockspace.celery import app

    smtp = SmtpServer().start()
    use_smtp(settings, smtp)
    app.conf.task_always_eager = False  # through the broker to the worker below
    call_command("install_periodic_tasks")
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.exclude(task="accounts.outbox_drain").update(enabled=False)
    PeriodicTask.objects.filter(task="accounts.outbox_drain").update(interval=every_second)

    smtp_env = {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp.port), "EMAIL_USE_TLS": "0"}
    try:
        with celery_running(tmp_path, "worker", **smtp_env) as celery:
            send_mail("Sent at commit", "text", None, ["ann@example.com"])
            assert wait_for(lambda: len(smtp.received) == 1), celery.log()[-3000:]
            # The worker marks the row sent just after the server accepted the message.
            sent_at_commit = OutboundMessage.objects.filter(subject="Sent at commit", status="sent")
            assert wait_for(sent_at_commit.exists), list(OutboundMessage.objects.values_list("status", flat=True))

            with monkeypatch.context() as patch:
                patch.setattr("accounts.outbox.queue_task", lambda *args, **kwargs: None)  # the broker never hears
                send_mail("Sent by the drain", "text", None, ["bob@example.com"])
            celery.start("beat")
            assert wait_for(lambda: len(smtp.received) == 2), celery.log()[-3000:]
            assert wait_for(OutboundMessage.objects.filter(subject="Sent by the drain", status="sent").exists)
    finally:
        smtp.stop()
    assert [r.rcpt_tos for r in smtp.received] == [["ann@example.com"], ["bob@example.com"]]
    row = OutboundMessage.objects.get(subject="Sent by the drain")
    assert (row.status, row.sent_via, row.has_body) == ("sent", "primary", False)
    worker_log = (tmp_path / "worker.log").read_text()
    assert "outbound message" in worker_log and "1 sent" in worker_log
