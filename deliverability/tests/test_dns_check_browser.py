"""In headless Chromium at 1300 px: a domain's DNS checks table keeps the check and the level on one line, wraps each
record between its words (only a DKIM key wider than the cell breaks, inside that cell), keeps the copy buttons and
never widens the page; the domain list shows each domain's worst level."""

import pytest
from django.utils import timezone

from accounts.tests.factories import StaffFactory
from deliverability.models import DnsCheckResult, DnsCheckRun
from dockspace.tests.chromium import click_and_wait
from mail.tests.factories import make_domain

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "x7Qz3Kd9" * 45 + "IDAQAB"
DMARC = "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@example.com; ruf=mailto:dmarc-forensic@example.com; fo=1"
RESULTS = [
    ("mx", "", "ok", "example.com: MX 10 mail.example.net.", "", "", ""),
    ("spf", "", "warning", "example.com: SPF ends with ~all (softfail)", "example.com", "TXT", "v=spf1 mx -all"),
    ("dkim", "dkim2024", "failed", "dkim2024._domainkey.example.com: no DKIM record", "dkim2024._domainkey.example.com",
     "TXT", "v=DKIM1; k=rsa; p=" + KEY),
    ("dmarc", "", "warning", "_dmarc.example.com: DMARC policy p=none", "_dmarc.example.com", "TXT", DMARC),
    ("ptr", "192.0.2.25", "ok", "192.0.2.25: PTR mail.example.net matches", "", "", ""),
    ("mta_sts", "", "warning", "example.com: no MTA-STS policy", "_mta-sts.example.com", "TXT", "v=STSv1; id=2024"),
    ("tls_rpt", "", "warning", "example.com: no TLS-RPT record", "_smtp._tls.example.com", "TXT",
     "v=TLSRPTv1; rua=mailto:tls-reports@example.com"),
]  # fmt: skip


def checked(domain, rows):
    now = timezone.now()
    run = DnsCheckRun.objects.create(domain=domain, level="failed", checked_at=now)
    for kind, subject, level, reason, name, rdtype, value in rows:
        DnsCheckResult.objects.create(
            run=run, domain=domain, kind=kind, subject=subject, level=level, reason=reason, checked_at=now,
            record_name=name, record_type=rdtype, record_value=value,
        )  # fmt: skip


def sign_in(page):
    StaffFactory(email="admin@example.com")
    page.set_viewport_size({"width": 1300, "height": 900})
    page.goto(page.base + "/login/")
    page.fill("#id_email", "admin@example.com")
    page.fill("#id_password", "correct horse battery staple")
    click_and_wait(page, "main button[type=submit]")


# How many lines each piece of text takes (distinct tops of its line boxes).
LINES = """(element) => {
    const range = document.createRange();
    range.selectNodeContents(element);
    return new Set([...range.getClientRects()].map(rect => Math.round(rect.top))).size;
}"""


def test_the_dns_checks_table_keeps_checks_and_levels_on_one_line_and_records_whole_words(page):
    domain = make_domain("example.com")
    checked(domain, RESULTS)
    sign_in(page)
    page.goto(page.base + f"/admin/mail/domain/{domain.pk}/change/")

    table = page.locator("table.dns-checks")
    for cell in table.locator("th.dns-check, td.dns-level").all():
        assert cell.evaluate(LINES) == 1, cell.inner_text()
    # Every word of a record stays whole; only the DKIM key (wider than the cell) takes several lines, in its cell.
    broken = [word.inner_text() for word in table.locator(".dns-word").all() if word.evaluate(LINES) > 1]
    assert [w[:12] for w in broken] == ["p=MIIBIjANBg", '"7Qz3Kd9x7Qz']
    assert table.locator(".dns-word").evaluate_all(
        "words => words.every(w => w.getBoundingClientRect().right <= w.closest('td').getBoundingClientRect().right)"
    )
    # What is shown is what the copy button copies.
    for cell in table.locator("td.dns-record:has(code)").all():
        assert cell.locator("code").inner_text() == cell.locator("button.copy-record").get_attribute("data-copy")
    assert table.locator("button.copy-record").count() == 5
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_the_domain_list_shows_each_domains_worst_dns_level(page):
    checked(make_domain("example.com"), RESULTS)
    checked(make_domain("example.org"), RESULTS[:2])
    make_domain("example.net")
    sign_in(page)
    page.goto(page.base + "/admin/mail/domain/")

    cells = page.locator("#result_list td.field-dns_level").all_inner_texts()
    assert [c.strip() for c in cells] == ["failed", "-", "warning"]  # example.com, .net, .org
    colours = page.locator("#result_list td.field-dns_level .dns-level-dot").evaluate_all(
        "dots => dots.map(d => getComputedStyle(d, '::before').backgroundColor)"
    )
    assert len(set(colours)) == 2 and "rgba(0, 0, 0, 0)" not in colours
