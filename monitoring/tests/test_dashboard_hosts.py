"""The dashboard's mail-host cards: each host's status (with the reasons when it is not healthy), probe age,
queue, disk and restart flag; the largest mailboxes with a bar; a fresh install says how to add a host. Each card
needs the view permission of what it reads."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.tests.factories import StaffFactory, UserFactory
from mail.tests.factories import make_mailbox
from monitoring.models import HostProbe, MailboxQuotaUsage, MailHost
from monitoring.tests.dashboard_pages import HOME, card, signed_in, staff_with

pytestmark = pytest.mark.django_db

MIB = 1024**2


def mail_host(name, **fields):
    return MailHost.objects.create(
        name=name,
        ssh_user="root",
        ssh_host="192.0.2.1",
        key_path="/k",
        host_key_type="ssh-ed25519",
        host_key_fingerprint="SHA256:x",
        host_key="AAAA",
        **fields,
    )


def probe(host, minutes_ago=2, status=HostProbe.HEALTHY, **readings):
    return HostProbe.objects.create(
        host=host,
        started_at=timezone.now() - timedelta(minutes=minutes_ago),
        duration_ms=100,
        reachable=status != HostProbe.DOWN,
        status=status,
        **readings,
    )


def test_a_fresh_install_says_how_to_add_a_mail_host():
    html = signed_in(StaffFactory()).get(HOME).content.decode()

    hosts = card(html, "Mail hosts")
    assert "No mail host yet" in hosts
    assert "manage.py mailhost add NAME --ssh USER@HOST[:PORT] --key PATH" in hosts
    assert 'href="/admin/monitoring/mailhost/add/"' in hosts
    assert "Not measured yet" in card(html, "Largest mailboxes")


def test_each_host_shows_its_latest_probe_status_queue_disk_and_restart_flag():
    mx1 = mail_host("mx1", restart_needed=True, restart_reason="DKIM key changed")
    probe(mx1, minutes_ago=10, status=HostProbe.DOWN, reasons=["older probe"])
    probe(mx1, minutes_ago=3, queue_count=42, queue_oldest_age_seconds=1800, disk_percent=71.4)
    mx2 = mail_host("mx2")
    probe(mx2, status=HostProbe.DOWN, reasons=["SSH: connection refused"])
    mail_host("mx3")

    hosts = card(signed_in(StaffFactory()).get(HOME).content.decode(), "Mail hosts")

    rows = dict(re.findall(r'<a href="/admin/monitoring/mailhost/\d+/change/">(mx\d)</a>(.*?)</tr>', hosts, re.S))
    assert set(rows) == {"mx1", "mx2", "mx3"}
    assert "healthy" in rows["mx1"] and "older probe" not in rows["mx1"]
    assert "3\xa0minutes ago" in rows["mx1"]
    assert "42" in rows["mx1"] and "oldest 30 min" in rows["mx1"] and "71 %" in rows["mx1"]
    assert "restart needed: DKIM key changed" in rows["mx1"]
    assert 'class="state-bad">down' in rows["mx2"] and "SSH: connection refused" in rows["mx2"]
    assert "restart needed" not in rows["mx2"]
    assert "not probed yet" in rows["mx3"] and "never" in rows["mx3"]


def test_the_largest_mailboxes_are_listed_by_use_with_a_bar_and_a_link():
    host = mail_host("mx1")
    now = timezone.now()
    ann = make_mailbox("ann@example.com")
    for index in range(12):
        MailboxQuotaUsage.objects.create(
            host=host,
            address=f"user{index:02}@example.com",
            used_bytes=index * MIB,
            limit_bytes=100 * MIB,
            measured_at=now,
        )
    MailboxQuotaUsage.objects.create(
        host=host, address="ann@example.com", used_bytes=900 * MIB, limit_bytes=1000 * MIB, measured_at=now
    )

    largest = card(signed_in(StaffFactory()).get(HOME).content.decode(), "Largest mailboxes")

    shown = re.findall(r"([a-z0-9]+@example\.com)</", largest)
    assert shown[:3] == ["ann@example.com", "user11@example.com", "user10@example.com"]
    assert len(shown) == 10 and "user02@example.com" not in shown
    assert f'href="/admin/mail/mailbox/{ann.pk}/change/"' in largest
    assert "900 MiB of 1000 MiB (90 %)" in largest
    assert re.search(r'<meter class="quota-bar"[^>]*value="0.900"', largest)


def test_every_bar_of_the_largest_mailboxes_has_fallback_text_of_the_same_form():
    host = mail_host("mx1")
    now = timezone.now()
    for address, used, limit in [("ann@example.com", 900, 1000), ("bob@example.com", 50, None)]:
        MailboxQuotaUsage.objects.create(
            host=host,
            address=address,
            used_bytes=used * MIB,
            limit_bytes=limit and limit * MIB,
            measured_at=now,
        )

    largest = card(signed_in(StaffFactory()).get(HOME).content.decode(), "Largest mailboxes")

    assert re.findall(r"<meter [^>]*>([^<]*)</meter>", largest) == ["90 % used", "no limit"]


def test_each_host_card_needs_the_permission_to_view_what_it_reads():
    host = mail_host("mx1")
    probe(host, status=HostProbe.DOWN, reasons=["SSH: connection refused"])
    MailboxQuotaUsage.objects.create(
        host=host, address="ann@example.com", used_bytes=MIB, limit_bytes=None, measured_at=timezone.now()
    )
    nothing = signed_in(UserFactory(email="plain@example.com", is_staff=True)).get(HOME).content.decode()
    hosts_only = signed_in(staff_with("monitoring.view_mailhost", email="h@example.com")).get(HOME).content.decode()
    quota_only = (
        signed_in(staff_with("monitoring.view_mailboxquotausage", email="q@example.com")).get(HOME).content.decode()
    )
    history_only = signed_in(staff_with("monitoring.view_hostprobe", email="p@example.com")).get(HOME).content.decode()

    assert "mx1" not in nothing and "ann@example.com" not in nothing
    # Positive controls: one permission, that card and no other of these.
    assert "SSH: connection refused" in card(hosts_only, "Mail hosts")
    assert card(hosts_only, "Largest mailboxes") is None and card(hosts_only, "History") is None
    assert "ann@example.com" in card(quota_only, "Largest mailboxes") and "1 MiB (no limit)" in quota_only
    assert card(quota_only, "Mail hosts") is None and card(quota_only, "History") is None
    assert card(history_only, "History") is not None
    assert card(history_only, "Mail hosts") is None and card(history_only, "Largest mailboxes") is None
    # Without mail.view_mailbox the address is shown, not linked to a page the person cannot open.
    assert "/admin/mail/mailbox/" not in card(quota_only, "Largest mailboxes")
