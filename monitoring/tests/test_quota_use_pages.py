"""Quota use as the mail hosts' Dovecot reported it (MailboxQuotaUsage), shown by mail's pages through mail's seam
(MonitoringConfig.mailbox_usage): the mailbox's admin page, its domain's admin page and its owner's profile; before
any probe measured a mailbox, each says "not measured yet"."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.tests.factories import StaffFactory
from mail.tests.factories import make_domain, make_mailbox
from monitoring.models import MailboxQuotaUsage, MailHost

pytestmark = pytest.mark.django_db

MIB = 1024**2


@pytest.fixture
def host():
    return MailHost.objects.create(
        name="mx1",
        ssh_user="root",
        ssh_host="192.0.2.1",
        key_path="/k",
        host_key_type="ssh-ed25519",
        host_key_fingerprint="SHA256:x",
        host_key="AAAA",
    )


def measured(host, address, used, limit):
    return MailboxQuotaUsage.objects.create(
        host=host,
        address=address,
        used_bytes=used,
        limit_bytes=limit,
        measured_at=timezone.now() - timedelta(minutes=4),
    )


def page(person, url):
    client = Client()
    client.force_login(person)
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def quota_row(html):
    match = re.search(r"<dt>Quota use</dt><dd>(.*?)</dd>", html, re.S)
    return match.group(1)


def test_the_mailbox_page_shows_used_of_limit_with_a_bar(host):
    mailbox = make_mailbox("ann@example.com")
    measured(host, "ann@example.com", 300 * MIB, 1200 * MIB)

    html = page(StaffFactory(is_superuser=True), f"/admin/mail/mailbox/{mailbox.pk}/change/")

    assert "300 MiB of 1.2 GiB (25 %)" in html
    assert re.search(r'<meter class="quota-bar"[^>]*value="0.250"', html)
    assert "measured 4\xa0minutes ago" in html


def test_the_domain_page_shows_the_total_and_its_fullest_mailboxes(host):
    domain = make_domain("example.com")
    ann = make_mailbox("ann@example.com")
    make_mailbox("bob@example.com")
    make_mailbox("carol@example.com")
    make_mailbox("dan@other.example")
    measured(host, "ann@example.com", 100 * MIB, 1000 * MIB)
    measured(host, "bob@example.com", 400 * MIB, 1000 * MIB)
    measured(host, "dan@other.example", 999 * MIB, 1000 * MIB)

    html = page(StaffFactory(is_superuser=True), f"/admin/mail/domain/{domain.pk}/change/")

    assert "500 MiB used by 2 of 3 mailboxes measured." in html
    table = re.search(r'<table class="quota-table" id="domain-quota-use">(.*?)</table>', html, re.S).group(1)
    assert re.findall(r"([a-z]+@[a-z.]+)</a>", table) == ["bob@example.com", "ann@example.com"]
    assert f'href="/admin/mail/mailbox/{ann.pk}/change/"' in table
    assert table.count("<meter") == 2


def test_the_owner_sees_their_use_on_the_profile(host):
    mailbox = make_mailbox("ann@example.com")
    measured(host, "ann@example.com", 50 * MIB, None)

    row = quota_row(page(mailbox.person, "/profile/"))

    assert "50 MiB (no limit)" in row and "<meter" in row


def test_before_any_measure_the_pages_say_not_measured_yet(host):
    domain = make_domain("example.com")
    mailbox = make_mailbox("ann@example.com")
    measured(host, "someone@else.example", MIB, MIB)
    admin = StaffFactory(is_superuser=True)

    assert "not measured yet" in page(admin, f"/admin/mail/mailbox/{mailbox.pk}/change/")
    assert "not measured yet" in page(admin, f"/admin/mail/domain/{domain.pk}/change/")
    row = quota_row(page(mailbox.person, "/profile/"))
    assert "not measured yet" in row and "<meter" not in row
