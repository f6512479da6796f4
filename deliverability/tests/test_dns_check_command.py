"""manage.py dns_check: every check printed with the record to publish, --json, exit 1 when a check failed or a
domain is unknown, --as with and without the permission."""

import io
import json

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command

from deliverability.models import DnsCheckRun
from deliverability.tests.factories import staff_with
from deliverability.tests.mail_dns import MAIL_HOSTNAME, right_records
from mail.tests.factories import refused, run

pytestmark = pytest.mark.django_db


def test_it_prints_every_check_and_succeeds_when_nothing_failed(mail_dns, domain):
    mail_dns.domain()
    out = run("dns_check", "example.com")

    lines = out.splitlines()
    assert lines[0] == "example.com: ok"
    assert [line.split()[1] for line in lines[1:]] == ["MX", "SPF", "DKIM", "DMARC", "PTR", "MTA-STS", "TLS-RPT", "DBL"]
    assert all(line.split()[0] == "ok" for line in lines[1:])
    assert DnsCheckRun.objects.get().actor_label == "manage.py dns_check"


def failing(*args):
    """Run a command that must exit non-zero: (what it printed, the CommandError)."""
    out = io.StringIO()
    with pytest.raises(CommandError) as failed:
        call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue(), failed.value


def test_a_failed_check_prints_the_record_to_publish_and_exits_1(mail_dns, domain):
    mail_dns.domain(records=[r for r in right_records() if " MX " not in r])
    out, error = failing("dns_check", "example.com")

    assert (str(error), error.returncode) == ("DNS checks failed for example.com.", 1)
    assert "  failed   MX             example.com: no MX record" in out
    assert f"           publish: example.com. MX 10 {MAIL_HOSTNAME}." in out


def test_json_holds_each_check_with_its_record(mail_dns, domain):
    mail_dns.domain(records=[r for r in right_records() if "_dmarc" not in r])
    out, _ = failing("dns_check", "example.com", "--json")
    data = json.loads(out)

    [report] = data
    assert (report["domain"], report["level"]) == ("example.com", "failed")
    dmarc = next(c for c in report["checks"] if c["check"] == "dmarc")
    assert dmarc["level"] == "failed"
    assert dmarc["record_to_publish"]["name"] == "_dmarc.example.com"
    assert dmarc["record_to_publish"]["type"] == "TXT"
    mx = next(c for c in report["checks"] if c["check"] == "mx")
    assert (mx["level"], mx["record_to_publish"]) == ("ok", None)


def test_json_of_a_passing_domain_exits_0(mail_dns, domain):
    mail_dns.domain()
    [report] = json.loads(run("dns_check", "--json"))  # no DOMAIN: every active domain
    assert report["level"] == "ok" and len(report["checks"]) == 8


def test_an_unknown_domain_is_named_and_nothing_is_checked(mail_dns, domain):
    assert refused("dns_check", "example.com", "nope.example") == "DOMAIN: no managed domain 'nope.example'."
    assert not DnsCheckRun.objects.exists()


def test_as_a_staff_member_without_the_permission_it_is_refused(mail_dns, domain):
    mail_dns.domain()
    staff_with("mail.view_domain")
    assert refused("dns_check", "--as", "ops@example.com") == (
        "you do not have the permission 'deliverability.run_dns_check'."
    )
    assert not DnsCheckRun.objects.exists()


def test_as_a_staff_member_who_may_run_checks_but_not_view_domains_it_is_refused_naming_no_domain(mail_dns, domain):
    mail_dns.domain()
    person = staff_with("deliverability.run_dns_check")
    for args in ([], ["example.com"], ["nope.example"]):
        message = refused("dns_check", *args, "--as", "ops@example.com")
        assert message == (
            "--as: checking a domain's DNS shows the domain: it needs the permission to view domains "
            "('mail.view_domain')."
        )
    assert not DnsCheckRun.objects.exists()
    # The positive control: with view_domain too, the check runs.
    person.user_permissions.add(Permission.objects.get(content_type__app_label="mail", codename="view_domain"))
    assert "example.com" in run("dns_check", "example.com", "--as", "ops@example.com")
    assert DnsCheckRun.objects.get().actor_label == "manage.py dns_check --as ops@example.com"


def two_dmarc_problems():
    """A DMARC record with two warnings: testing mode (t=y) and an unknown tag."""
    return [r for r in right_records() if "_dmarc" not in r] + [
        '_dmarc TXT "v=DMARC1; p=quarantine; t=y; adkimm=s; rua=mailto:dmarc@example.com"'
    ]


def test_every_problem_of_a_check_is_printed_and_in_json(mail_dns, domain):
    mail_dns.domain(records=two_dmarc_problems())
    out = run("dns_check", "example.com")

    dmarc_line = next(line for line in out.splitlines() if line.split()[1:2] == ["DMARC"])
    assert dmarc_line.startswith("  warning  DMARC          _dmarc.example.com: t=y: testing mode")
    assert "(and 1 more)" in dmarc_line
    listed = [line for line in out.splitlines() if line.startswith("           - ")]
    assert listed == [
        "           - warning: _dmarc.example.com: t=y: testing mode, receivers apply one step less than quarantine",
        "           - warning: _dmarc.example.com: unknown tag adkimm is ignored",
    ]

    [report] = json.loads(run("dns_check", "example.com", "--json"))
    dmarc = next(c for c in report["checks"] if c["check"] == "dmarc")
    assert dmarc["problems"] == [
        {
            "level": "warning",
            "reason": "_dmarc.example.com: t=y: testing mode, receivers apply one step less than quarantine",
        },
        {"level": "warning", "reason": "_dmarc.example.com: unknown tag adkimm is ignored"},
    ]
    mx = next(c for c in report["checks"] if c["check"] == "mx")
    assert mx["problems"] == []  # an ok check has none
