"""The alert kind deliverability.dns_check_failed, evaluated on the stored latest results (monitoring, which
evaluates rules, is a sibling app: its kind's evaluate() is called here directly): firing while a check's latest
result is failed, not firing once it passes again."""

import pytest
from django.utils import timezone

from accounts.authz import SystemActor
from deliverability.alert_kinds import DNS_CHECK_FAILED
from deliverability.dns_checks import domain_dns_check
from deliverability.tests.mail_dns import right_records
from dockspace.alert_kinds import alert_kind

pytestmark = pytest.mark.django_db


def observe():
    kind = alert_kind(DNS_CHECK_FAILED)
    return {o.subject: o for o in kind.evaluate(kind.view({}, timezone.now()))}


def test_a_failed_check_fires_and_passing_again_resolves_it(mail_dns, domain):
    assert observe() == {}

    mail_dns.domain(records=[r for r in right_records() if "_dmarc" not in r])
    domain_dns_check(domain, actor=SystemActor())
    seen = observe()
    assert seen["example.com DMARC"].is_firing
    assert seen["example.com DMARC"].summary.startswith(
        'example.com: no DMARC record at _dmarc.example.com. Publish: _dmarc.example.com. TXT "v=DMARC1; p='
    )
    assert not seen["example.com MX"].is_firing and not seen["example.com DKIM mail"].is_firing

    mail_dns.domain()
    domain_dns_check(domain, actor=SystemActor())
    assert not observe()["example.com DMARC"].is_firing
