"""In headless Chromium: the operator dashboard (the admin's home page) and the scheduler page, with data, no
Content-Security-Policy violation; saves screenshots to docs/images/ for the README's gallery. Long values wrap
inside their card."""

import math
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.tests.factories import StaffFactory
from dockspace.tests.chromium import click_and_wait, shot
from mail.models import DmsSyncState
from mail.tests.factories import make_domain, make_mailbox
from monitoring import heartbeats, tasks
from monitoring.alert_models import Alert
from monitoring.models import Heartbeat, HostProbe, MailboxQuotaUsage, MailHost
from monitoring.tests.factories import switch_rule

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MIB = 1024**2


def mail_hosts_with_history(now):
    """Two hosts with 24 hours of probes (a busy afternoon on mx1; mx2 down now) and a few measured mailboxes."""
    for name in ("mx1", "mx2"):
        MailHost.objects.create(
            name=name,
            ssh_user="root",
            ssh_host="192.0.2.1",
            key_path="/k",
            host_key_type="ssh-ed25519",
            host_key_fingerprint="SHA256:x",
            host_key="AAAA",
            restart_needed=name == "mx1",
            restart_reason="DKIM key changed" if name == "mx1" else "",
        )
    mx1, mx2 = MailHost.objects.order_by("name")
    probes = []
    for step in range(24 * 12, 0, -1):
        at = now - timedelta(minutes=5 * step - 2)
        wave = math.sin(step / 20)
        probes.append(
            HostProbe(
                host=mx1,
                started_at=at,
                duration_ms=300,
                reachable=True,
                status="healthy",
                queue_count=max(0, round(12 + 10 * wave)),
                load1=round(0.6 + 0.4 * wave, 2),
                disk_percent=round(61 + step / 100, 1),
                queue_oldest_age_seconds=120,
            )
        )
        down = step <= 2
        probes.append(
            HostProbe(
                host=mx2,
                started_at=at,
                duration_ms=300,
                reachable=not down,
                status="down" if down else "healthy",
                reasons=["SSH: connection refused"] if down else [],
                queue_count=None if down else 3,
                load1=None if down else round(0.3 + 0.2 * math.cos(step / 9), 2),
                disk_percent=None if down else 38.0,
            )
        )
    HostProbe.objects.bulk_create(probes)
    for address, used, limit in (("bob@example.com", 1800, 2048), ("carol@example.com", 700, 2048)):
        MailboxQuotaUsage.objects.create(
            host=mx1, address=address, used_bytes=used * MIB, limit_bytes=limit * MIB, measured_at=now
        )


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
    mail_hosts_with_history(now)
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
    assert "SSH: connection refused" in page.locator("#mail-hosts").inner_text()
    assert "bob@example.com" in page.locator("#largest-mailboxes").inner_text()
    for key in ("queue", "load", "disk"):  # each table drawn by uPlot, its data folded below
        chart = page.locator(f"#chart-{key}")
        assert chart.locator(".chart-plot canvas").count() == 1
        assert chart.locator("details table.chart-data").count() == 1
    shot(page, "24-admin-dashboard")

    click_and_wait(page, "#content-main a[href='/admin/monitoring/scheduler/']")
    tasks_table = page.locator("#periodic-tasks").inner_text()
    assert "Prune task runs" in tasks_table and "success" in tasks_table
    assert "alive" in page.locator("#processes").inner_text()
    shot(page, "25-admin-scheduler")
    assert violations == []


LONG = "a-very-long-value-without-spaces-" * 6


def test_every_dashboard_card_wraps_long_values_inside_its_width(page):
    """Django's dashboard.css keeps the cells of `.dashboard .module table` on one line and makes every th 100 %
    wide; each card is such a module, so Dockspace's rules must out-rank them or a long value widens the page."""
    StaffFactory(email="admin@example.com")
    now = timezone.now()
    Alert.objects.create(
        rule=switch_rule(),
        subject=f"alarm-{LONG}"[:200],
        state=Alert.FIRING,
        first_seen_at=now,
        pending_since=now,
        last_seen_at=now,
    )
    domain = make_domain(f"{LONG[:50]}.example.com")  # deliverability's cards: deliverability/tests
    make_mailbox(f"{LONG[:60]}@{domain.name}")
    DmsSyncState.objects.update_or_create(
        pk=1,
        defaults={
            "last_success_at": now,
            "last_error": f"WriteError: {LONG}",
            "restart_needed": True,
            "restart_reason": f"DKIM key changed: {LONG}"[:200],  # the field holds 200 (PostgreSQL enforces it)
        },
    )
    mail_hosts_with_history(now)
    MailHost.objects.filter(name="mx1").update(restart_reason=f"DKIM key changed: {LONG}"[:200])

    page.goto(page.base + "/login/")
    page.fill("#id_email", "admin@example.com")
    page.fill("#id_password", "correct horse battery staple")
    click_and_wait(page, "main button[type=submit]")
    page.goto(page.base + "/admin/")

    overflowing = page.evaluate(
        """() => [...document.querySelectorAll('.dashboard-card')]
            .filter(card => card.scrollWidth > card.clientWidth + 1)
            .map(card => card.querySelector('h2').textContent)"""
    )
    assert overflowing == []
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # A key/value table keeps its labels readable: the row header is neither the whole card nor one letter wide.
    widths = page.evaluate(
        """() => { const th = document.querySelector('#dms-sync th[scope=row]');
                   return [th.getBoundingClientRect().width, th.closest('table').getBoundingClientRect().width]; }"""
    )
    assert 0.3 * widths[1] < widths[0] < 0.6 * widths[1]
