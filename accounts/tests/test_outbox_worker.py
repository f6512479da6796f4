"""The outbox with a real Celery worker and beat (Redis when REDIS_URL is set, else the embedded broker) and a real
SMTP server: a message is sent as soon as its transaction commits, and one the broker never got is sent by the drain
that beat runs."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.mail import send_mail
from django.core.management import call_command
from django.db import connection
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from accounts.models import OutboundMessage
from accounts.tests.smtp_server import SmtpServer, use_smtp

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]

CELERY = str(Path(sys.executable).with_name("celery"))


def _database_url():
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _wait_for(condition, seconds=90):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.3)  # waiting for another process, not moving time
    return condition()


def test_a_real_worker_sends_at_commit_and_the_drain_sends_what_the_broker_missed(settings, tmp_path, monkeypatch):
    from dockspace.celery import app

    smtp = SmtpServer().start()
    use_smtp(settings, smtp)
    app.conf.task_always_eager = False  # through the broker to the worker below
    call_command("install_periodic_tasks")
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.exclude(task="accounts.outbox_drain").update(enabled=False)
    PeriodicTask.objects.filter(task="accounts.outbox_drain").update(interval=every_second)

    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp.port),
        "EMAIL_USE_TLS": "0",
    }
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("worker", "beat")}  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [CELERY, "-A", "dockspace", "worker", "--pool", "solo", "--loglevel", "INFO"],
        env=env,
        stdout=logs["worker"],
        stderr=subprocess.STDOUT,
    )
    procs = [worker]
    try:
        send_mail("Sent at commit", "text", None, ["ann@example.com"])
        assert _wait_for(lambda: len(smtp.received) == 1), (tmp_path / "worker.log").read_text()[-3000:]
        assert OutboundMessage.objects.get(subject="Sent at commit").status == "sent"

        with monkeypatch.context() as patch:
            patch.setattr("accounts.outbox.queue_task", lambda *args, **kwargs: None)  # the broker never hears of it
            send_mail("Sent by the drain", "text", None, ["bob@example.com"])
        procs.append(
            subprocess.Popen(
                [CELERY, "-A", "dockspace", "beat", "--loglevel", "INFO", "--pidfile", str(tmp_path / "beat.pid")],
                env=env,
                stdout=logs["beat"],
                stderr=subprocess.STDOUT,
            )
        )
        assert _wait_for(lambda: len(smtp.received) == 2), (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for handle in logs.values():
            handle.close()
        smtp.stop()
    assert [r.rcpt_tos for r in smtp.received] == [["ann@example.com"], ["bob@example.com"]]
    row = OutboundMessage.objects.get(subject="Sent by the drain")
    assert (row.status, row.sent_via, row.has_body) == ("sent", "primary", False)
    worker_log = (tmp_path / "worker.log").read_text()
    assert "outbound message" in worker_log and "1 sent" in worker_log
