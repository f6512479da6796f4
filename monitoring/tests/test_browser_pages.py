"""In headless Chromium: the operator dashboard (the admin's home page) and the scheduler page, with data, no
Content-Security-Policy violation; saves screenshots to docs/images/ for the README's gallery."""

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.tests.factories import StaffFactory
from dockspace.tests.chromium import click_and_wait, shot
from mail.models import DmsSyncState
from mail.tests.factories import make_domain, make_mailbox
from monitoring import heartbeats, tasks
from monitoring.alert_models import Alert
from monitoring.models import Heartbeat
from monitoring.tests.factories import switch_rule

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_operator_sees_the_dashboard_and_the_scheduler(page):
    StaffFactory(email="admin@example.com")
    now = timezone.now()
    Alert.objects.create(
        rule=switch_rule(),
        subject="alarm-1",
        state=Alert.FIRING,
        first_seen_at=now,
        pending_since=now,
        last_seen_at=now,
    )
    make_domain("example.com")
    make_mailbox("bob@example.com")
    DmsSyncState.objects.update_or_create(pk=1, defaults={"last_success_at": now})
    call_command("install_periodic_tasks", verbosity=0)
    heartbeats.heartbeat_record(Heartbeat.WORKER)
    heartbeats.heartbeat_record(Heartbeat.BEAT)
    tasks.prune_task_runs.apply()
    violations = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )

    page.goto(page.base + "/login/")
    page.fill("#id_email", "admin@example.com")
    page.fill("#id_password", "correct horse battery staple")
    click_and_wait(page, "main button[type=submit]")
    page.goto(page.base + "/admin/")
    dashboard = page.locator("#dashboard").inner_text()
    assert "alarm-1" in dashboard and "Mailboxes" in dashboard and "DMS sync" in dashboard
    shot(page, "24-admin-dashboard")

    click_and_wait(page, "#content-main a[href='/admin/monitoring/scheduler/']")
    tasks_table = page.locator("#periodic-tasks").inner_text()
    assert "Prune task runs" in tasks_table and "success" in tasks_table
    assert "alive" in page.locator("#processes").inner_text()
    shot(page, "25-admin-scheduler")
    assert violations == []
