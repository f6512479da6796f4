"""In headless Chromium: deliverability's dashboard cards (DNS checks, Blocklists) keep long domain names inside
their width (Django's dashboard.css would keep table cells on one line; static/css/admin.css out-ranks it)."""

import pytest
from django.utils import timezone

from accounts.tests.factories import StaffFactory
from deliverability.models import Dnsbl, DnsblResult, DnsCheckResult, DnsCheckRun
from deliverability.tests.dnsbl_lists import make_list
from dockspace.tests.chromium import click_and_wait
from mail.tests.factories import make_domain

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG = "a-very-long-label-without-spaces-" * 2


def test_the_dns_checks_and_blocklists_cards_wrap_long_names(page):
    StaffFactory(email="admin@example.com")
    now = timezone.now()
    names = [f"{LONG[:60]}{n}.{LONG[:60]}.example.com" for n in range(3)]
    dnsbl = make_list("dbl.example.net", name=f"Domain list {LONG}"[:63], kind=Dnsbl.DOMAIN, action=Dnsbl.ALERT)
    for name in names:
        domain = make_domain(name)
        check_run = DnsCheckRun.objects.create(domain=domain, level="failed", checked_at=now)
        DnsCheckResult.objects.create(run=check_run, domain=domain, kind="mx", level="failed", reason="x")
        DnsblResult.objects.create(dnsbl=dnsbl, subject=name, status=DnsblResult.LISTED, is_latest=True)

    page.goto(page.base + "/login/")
    page.fill("#id_email", "admin@example.com")
    page.fill("#id_password", "correct horse battery staple")
    click_and_wait(page, "main button[type=submit]")
    page.goto(page.base + "/admin/")

    assert names[0] in page.locator("#dns-check-counts").inner_text()
    assert names[0] in page.locator("#dnsbl-counts").inner_text()
    overflowing = page.evaluate(
        """() => [...document.querySelectorAll('.dashboard-card')]
            .filter(card => card.scrollWidth > card.clientWidth + 1)
            .map(card => card.querySelector('h2').textContent)"""
    )
    assert overflowing == []
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
