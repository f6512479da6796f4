"""The DNS checks in the admin: the domain's page shows the latest checks (green/amber/red, record to publish, copy
button) and "Check now" for those who may run checks; the results list filters by level; the dashboard card counts
failed and warning domains."""

import re

import pytest
from django.contrib.auth.models import Permission

from accounts.authz import SystemActor
from accounts.tests.factories import StaffFactory
from deliverability.dns_checks import domain_dns_check
from deliverability.models import DnsCheckResult, DnsCheckRun
from deliverability.tests.factories import signed_in, staff_with
from deliverability.tests.mail_dns import right_records

pytestmark = pytest.mark.django_db


def page(client, domain):
    return client.get(f"/admin/mail/domain/{domain.pk}/change/").content.decode()


def test_the_domain_page_shows_the_latest_checks_with_the_record_to_publish_and_a_copy_button(mail_dns, domain):
    mail_dns.domain(records=[r for r in right_records() if "_dmarc" not in r])
    domain_dns_check(domain, actor=SystemActor())
    html = page(signed_in(StaffFactory()), domain)

    assert '<fieldset class="module aligned" id="dns-checks">' in html
    row = re.search(r'<tr class="dns-level-failed" data-check="dmarc">(.*?)</tr>', html, re.S).group(1)
    assert 'class="dns-level state-bad">failed<' in row and "no DMARC record at _dmarc.example.com" in row
    record = re.search(r'<code class="dns-record">(.*?)</code>', row).group(1)
    assert re.sub(r"</?span[^>]*>", "", record).startswith("_dmarc.example.com. TXT &quot;v=DMARC1; p=")
    assert '<button type="button" class="copy-record" data-copy="_dmarc.example.com. TXT &quot;v=DMARC1; p=' in row
    assert '<tr class="dns-level-ok" data-check="mx">' in html
    assert 'src="/static/js/copy-record.js"' in html and "<script>" not in html  # no inline script (CSP)
    assert 'id="dns-check-now"' in html


def test_a_domain_never_checked_says_so(domain):
    assert "Not checked yet." in page(signed_in(StaffFactory()), domain)


def test_check_now_runs_the_checks_and_returns_to_the_domain(mail_dns, domain):
    mail_dns.domain()
    person = staff_with("mail.view_domain", "mail.change_domain", "deliverability.view_dnscheckresult")
    client = signed_in(person)
    assert 'id="dns-check-now"' not in page(client, domain)  # no permission to run checks: no button
    response = client.post(f"/admin/deliverability/dnscheckresult/check/{domain.pk}/", follow=True)
    assert "Not checked: you do not have the permission &#x27;deliverability.run_dns_check&#x27;." in (
        response.content.decode()
    )
    assert not DnsCheckRun.objects.exists()

    person.user_permissions.add(Permission.objects.get(codename="run_dns_check"))
    client = signed_in(type(person).objects.get(pk=person.pk))
    assert 'id="dns-check-now"' in page(client, domain)
    response = client.post(f"/admin/deliverability/dnscheckresult/check/{domain.pk}/", follow=True)
    assert response.redirect_chain[-1][0] == f"/admin/mail/domain/{domain.pk}/change/"
    html = response.content.decode()
    assert "Checked the DNS of example.com: ok." in html
    assert DnsCheckRun.objects.get().actor_label == "ops@example.com"


def test_check_now_needs_the_permission_to_view_domains_and_names_no_domain_without_it(mail_dns, domain):
    mail_dns.domain()
    person = staff_with("deliverability.run_dns_check", "deliverability.view_dnscheckresult")
    client = signed_in(person)
    for pk in (domain.pk, domain.pk + 1000):
        response = client.post(f"/admin/deliverability/dnscheckresult/check/{pk}/", follow=True)
        html = response.content.decode()
        assert "Not checked: checking a domain&#x27;s DNS shows the domain" in html and "mail.view_domain" in html
        assert "example.com" not in html
    assert not DnsCheckRun.objects.exists()
    # The positive control: with view_domain, an unknown id is a 404 and the domain is checked.
    person.user_permissions.add(Permission.objects.get(content_type__app_label="mail", codename="view_domain"))
    client = signed_in(type(person).objects.get(pk=person.pk))
    assert client.post(f"/admin/deliverability/dnscheckresult/check/{domain.pk + 1000}/").status_code == 404
    response = client.post(f"/admin/deliverability/dnscheckresult/check/{domain.pk}/", follow=True)
    assert "Checked the DNS of example.com: ok." in response.content.decode()
    assert DnsCheckRun.objects.count() == 1


def test_check_now_answers_only_a_post(domain):
    client = signed_in(StaffFactory())
    assert client.get(f"/admin/deliverability/dnscheckresult/check/{domain.pk}/").status_code == 405
    assert not DnsCheckRun.objects.exists()


def test_the_results_list_filters_by_level(mail_dns, domain):
    mail_dns.domain(records=[r for r in right_records() if " MX " not in r])
    domain_dns_check(domain, actor=SystemActor())
    client = signed_in(StaffFactory())

    failed = client.get("/admin/deliverability/dnscheckresult/?level__exact=failed").content.decode()
    ok = client.get("/admin/deliverability/dnscheckresult/?level__exact=ok").content.decode()
    assert "example.com: no MX record" in failed and "example.com: DMARC policy" not in failed
    assert "example.com: DMARC policy" in ok and "example.com: no MX record" not in ok


def test_the_dashboard_card_counts_failed_and_warning_domains(mail_dns, domain):
    from mail.tests.factories import make_domain

    mail_dns.domain(records=[r for r in right_records() if " MX " not in r])
    domain_dns_check(domain, actor=SystemActor())
    other = make_domain("example.org")  # no DKIM key: a warning
    mail_dns.domain("example.org")
    domain_dns_check(other, actor=SystemActor())

    html = signed_in(StaffFactory()).get("/admin/").content.decode()
    card = re.search(r'<h2 id="card-\d+">DNS checks</h2>(.*?)</section>', html, re.S).group(1)
    assert re.search(r'>Domains failing</a></th><td class="number state-bad">1<', card)
    assert re.search(r'>Domains with warnings</a></th><td class="number state-warn">1<', card)
    assert "example.com" in card and "example.org" in card and "2 domain(s) checked" in card

    viewer = staff_with("mail.view_domain")  # may not view check results: no card
    assert "DNS checks</h2>" not in signed_in(viewer).get("/admin/").content.decode()


def checked(domain, *levels):
    """A check run of `domain` whose results are at `levels` (one check each: mx, spf, dkim...)."""
    run = DnsCheckRun.objects.create(domain=domain, level=max(levels, key=["ok", "warning", "failed"].index))
    for (kind, _), level in zip(DnsCheckResult.CHECKS, levels, strict=False):
        DnsCheckResult.objects.create(run=run, domain=domain, kind=kind, level=level, reason=f"{domain.name} {kind}")


def card_of(client):
    html = client.get("/admin/").content.decode()
    return re.search(r'<h2 id="card-\d+">DNS checks</h2>(.*?)</section>', html, re.S).group(1)


def test_the_dashboard_cards_counts_and_links_agree_and_failed_domains_link_to_their_pages():
    from mail.tests.factories import make_domain

    failing = make_domain("failing.example")
    checked(failing, "failed", "warning", "ok")  # counts as failing only
    warned = make_domain("warned.example")
    checked(warned, "ok", "warning")
    checked(make_domain("fine.example"), "ok", "ok")
    client = signed_in(StaffFactory())
    card = card_of(client)

    found = re.findall(r'<a href="([^"]+)">(Domains failing|Domains with warnings)</a></th><td[^>]*>(\d+)<', card)
    rows = {label: (url.replace("&amp;", "&"), int(count)) for url, label, count in found}
    assert rows["Domains failing"][1] == 1 and rows["Domains with warnings"][1] == 1
    listed = {
        label: re.findall(r'<td class="field-reason_and_problems">(.*?)</td>', client.get(url).content.decode())
        for label, (url, _) in rows.items()
    }
    # The warnings listed are those of the domain counted, not failing.example's (its failure counts it above).
    assert listed == {"Domains with warnings": ["warned.example spf"], "Domains failing": ["failing.example mx"]}

    # Names are links to the domains' pages for those who may view domains, plain text for the others.
    assert f'<a href="/admin/mail/domain/{failing.pk}/change/">failing.example</a>' in card
    assert f'<a href="/admin/mail/domain/{warned.pk}/change/">warned.example</a>' in card
    results_only = card_of(signed_in(staff_with("deliverability.view_dnscheckresult")))
    assert "failing.example" in results_only and "/admin/mail/domain/" not in results_only


def test_every_problem_of_a_check_is_listed_on_the_domain_page_and_the_results(mail_dns, domain):
    mail_dns.domain(
        records=[r for r in right_records() if "_dmarc" not in r]
        + ['_dmarc TXT "v=DMARC1; p=quarantine; t=y; adkimm=s; rua=mailto:dmarc@example.com"']
    )
    domain_dns_check(domain, actor=SystemActor())
    client = signed_in(StaffFactory())
    first = "<li>warning: _dmarc.example.com: t=y: testing mode, receivers apply one step less than quarantine</li>"
    second = "<li>warning: _dmarc.example.com: unknown tag adkimm is ignored</li>"

    row = re.search(r'<tr class="dns-level-warning" data-check="dmarc">(.*?)</tr>', page(client, domain), re.S)
    assert first in row.group(1) and second in row.group(1)
    listing = client.get("/admin/deliverability/dnscheckresult/?kind__exact=dmarc").content.decode()
    assert first in listing and second in listing
    result = DnsCheckResult.objects.get(kind="dmarc", is_latest=True)
    detail = client.get(f"/admin/deliverability/dnscheckresult/{result.pk}/change/").content.decode()
    assert first in detail and second in detail

    # A check without problems lists none.
    mx = re.search(r'<tr class="dns-level-ok" data-check="mx">(.*?)</tr>', page(client, domain), re.S).group(1)
    assert "dns-problems" not in mx


def test_the_domain_list_shows_the_worst_level_of_each_domains_latest_checks(mail_dns, domain):
    from mail.tests.factories import make_domain

    mail_dns.domain(records=[r for r in right_records() if " MX " not in r])
    domain_dns_check(domain, actor=SystemActor())  # example.com: no MX, failed
    warned = make_domain("example.org")  # no DKIM key: a warning
    mail_dns.domain("example.org")
    domain_dns_check(warned, actor=SystemActor())
    make_domain("example.net")  # never checked

    html = signed_in(StaffFactory()).get("/admin/mail/domain/").content.decode()
    assert re.search(r'<th scope="col" class="column-dns_level">\s*<div class="text"><span>DNS</span>', html)
    cells = re.findall(r'<td class="field-dns_level">(.*?)</td>', html)
    assert cells == [  # sorted by name: example.com, example.net, example.org
        '<span class="dns-level-dot state-bad">failed</span>',
        "-",
        '<span class="dns-level-dot state-warn">warning</span>',
    ]

    # Staff who may view domains but not the checks get the list without the column.
    viewer = staff_with("mail.view_domain")
    html = signed_in(viewer).get("/admin/mail/domain/").content.decode()
    assert "example.org" in html and "field-dns_level" not in html and "dns-level-dot" not in html
