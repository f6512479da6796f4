"""deliverability.dns_checks against a real NSD on loopback: each check's verdict on records a test publishes, the
record to publish, the stored history, who may run checks, and one DnsRun asking each name once."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.authz import SystemActor
from accounts.tests.factories import UserFactory
from deliverability.dns.resolver import DnsRun
from deliverability.dns_checks import dns_check_domains, dns_check_prune, domain_dns_check
from deliverability.models import DnsCheckResult, DnsCheckRun
from deliverability.tests.mail_dns import MAIL_HOSTNAME, SENDING_IP, dkim_line, right_records, txt
from mail import services
from mail.tests.factories import make_domain

pytestmark = pytest.mark.django_db
SYSTEM = SystemActor("test")


def check(domain, **kwargs):
    run = domain_dns_check(domain, actor=SYSTEM, **kwargs)
    return {(r.kind, r.subject): r for r in run.results.all()}


def only(results, kind):
    [result] = [r for (k, _), r in results.items() if k == kind]
    return result


def test_a_domain_whose_records_are_right_passes_every_check(mail_dns, domain):
    mail_dns.domain()
    results = check(domain)

    assert {key: r.level for key, r in results.items()} == {
        ("mx", ""): "ok",
        ("spf", ""): "ok",
        ("dkim", "mail"): "ok",
        ("dmarc", ""): "ok",
        ("ptr", SENDING_IP): "ok",
        ("mta_sts", ""): "ok",
        ("tls_rpt", ""): "ok",
        ("dbl", ""): "ok",
    }
    assert all(not r.record_name for r in results.values())
    assert results[("ptr", SENDING_IP)].reason == f"{SENDING_IP}: PTR {MAIL_HOSTNAME} resolves back to {SENDING_IP}"
    assert DnsCheckRun.objects.get().level == "ok"


def test_an_mx_pointing_elsewhere_fails_with_the_mx_to_publish(mail_dns, domain):
    mail_dns.domain(records=[r for r in right_records() if " MX " not in r] + ["@ MX 10 other.example.net."])
    mx = only(check(domain), "mx")

    assert mx.level == "failed"
    assert mx.reason == f"example.com: MX 10 other.example.net: none is {MAIL_HOSTNAME}"
    assert mx.record_text == f"example.com. MX 10 {MAIL_HOSTNAME}."


def test_an_mx_at_another_name_of_a_sending_ip_passes(mail_dns, domain, dns_server):
    dns_server.zone("example.net", [f"mail A {SENDING_IP}", f"mx A {SENDING_IP}"])
    mail_dns.domain(records=[r for r in right_records() if " MX " not in r] + ["@ MX 10 mx.example.net."])

    assert only(check(domain), "mx").level == "ok"


def test_a_missing_mx_fails(mail_dns, domain):
    mail_dns.domain(records=[r for r in right_records() if " MX " not in r])
    mx = only(check(domain), "mx")

    assert (mx.level, mx.reason) == (
        "failed",
        "example.com: no MX record: mail to the domain goes to its A record, if any",
    )


def test_spf_needing_11_lookups_fails(mail_dns, domain, dns_server):
    includes = " ".join(f"include:s{n}.example.org" for n in range(11))
    dns_server.zone("example.org", [f's{n} TXT "v=spf1 -all"' for n in range(11)])
    mail_dns.domain(records=right_records(spf=f"v=spf1 ip4:{SENDING_IP} {includes} -all"))
    spf = only(check(domain), "spf")

    assert spf.level == "failed"
    assert "SPF needs 11 DNS lookups (limit 10)" in spf.reason

    includes = " ".join(f"include:s{n}.example.org" for n in range(9))
    mail_dns.domain(records=right_records(spf=f"v=spf1 ip4:{SENDING_IP} {includes} -all"))
    assert only(check(domain), "spf").level == "ok"  # 9 of 10


def test_a_void_lookup_in_spf_is_a_warning_and_three_fail(mail_dns, domain):
    mail_dns.domain(records=right_records(spf=f"v=spf1 ip4:{SENDING_IP} a:gone.example.com -all"))
    spf = only(check(domain), "spf")
    assert spf.level == "warning"
    assert "a:gone.example.com in example.com finds nothing (a void lookup" in spf.reason

    voids = " ".join(f"a:gone{n}.example.com" for n in range(3))
    mail_dns.domain(records=right_records(spf=f"v=spf1 ip4:{SENDING_IP} {voids} -all"))
    spf = only(check(domain), "spf")
    assert spf.level == "failed" and "3 void lookups (limit 2)" in spf.reason


def test_two_spf_records_fail(mail_dns, domain):
    mail_dns.domain(records=[*right_records(), '@ TXT "v=spf1 mx -all"'])
    spf = only(check(domain), "spf")

    assert spf.level == "failed"
    assert spf.reason.startswith("example.com: 2 TXT records start with v=spf1; there must be exactly one")


def test_the_record_suggested_for_two_spf_records_keeps_what_each_allowed(mail_dns, domain, dns_server):
    dns_server.zone("example.net", ["mail A 192.0.2.25", '_spf TXT "v=spf1 ip4:198.51.100.0/24 -all"'])
    mail_dns.domain(
        records=[r for r in right_records() if "v=spf1" not in r]
        + ['@ TXT "v=spf1 include:_spf.example.net ?all"', '@ TXT "v=spf1 a:mail.example.net -all"']
    )
    spf = only(check(domain), "spf")

    assert spf.level == "failed" and "2 TXT records start with v=spf1" in spf.reason
    # One record with the terms of both (not a fresh one that drops the include), ending with the strictest all;
    # the records' order is the DNS answer's.
    terms = spf.record_value.split()
    assert (terms[0], sorted(terms[1:-1]), terms[-1]) == (
        "v=spf1",
        ["a:mail.example.net", "include:_spf.example.net"],
        "-all",
    )


def test_spf_that_does_not_authorise_the_sending_ip_fails(mail_dns, domain):
    mail_dns.domain(records=right_records(spf="v=spf1 ip4:198.51.100.1 -all"))
    spf = only(check(domain), "spf")

    assert spf.level == "failed"
    assert f"does not authorise the sending IP {SENDING_IP}" in spf.reason
    assert spf.record_text == f'example.com. TXT "v=spf1 ip4:{SENDING_IP} ip4:198.51.100.1 -all"'


def test_after_a_rotation_a_stale_record_at_the_new_selector_fails_and_the_old_one_still_passes(mail_dns, domain):
    old = domain.dkim_keys.get()
    new = services.dkim_rotate(domain=domain, selector="s2", algorithm="ed25519", actor_label="test")
    # The operator published the new selector, but pasted the old key into it.
    mail_dns.domain(records=[*right_records(keys=[old]), dkim_line(old, selector="s2")])
    results = check(domain)

    assert results[("dkim", "mail")].level == "ok"
    stale = results[("dkim", "s2")]
    assert stale.level == "failed"
    assert stale.reason == "s2._domainkey.example.com: the published key is not the one Dockspace signs with"
    assert stale.record_name == "s2._domainkey.example.com"
    assert stale.record_value == f"v=DKIM1; k=ed25519; p={new.public_key_b64}"


def test_a_missing_dmarc_record_fails_with_the_record_to_publish(mail_dns, domain):
    mail_dns.domain(records=[r for r in right_records() if "_dmarc" not in r])
    dmarc = only(check(domain), "dmarc")

    assert (dmarc.level, dmarc.reason) == ("failed", "example.com: no DMARC record at _dmarc.example.com")
    # Aggregate reports from the start: postmaster@ exists on every mail domain, and the next check wants a rua.
    assert (dmarc.record_name, dmarc.record_value) == (
        "_dmarc.example.com",
        "v=DMARC1; p=none; rua=mailto:postmaster@example.com",
    )


def test_a_ptr_whose_name_does_not_resolve_back_fails(mail_dns, domain):
    mail_dns.mail_host(ptr="other.example.net").domain()
    ptr = only(check(domain), "ptr")

    assert ptr.level == "failed"
    assert ptr.reason == (
        f"{SENDING_IP}: PTR other.example.net does not resolve back to {SENDING_IP} (forward-confirmed reverse DNS "
        "fails)"
    )
    assert ptr.record_text == f"25.2.0.192.in-addr.arpa. PTR {MAIL_HOSTNAME}."


def test_a_ptr_naming_the_helo_name_whose_address_record_is_missing_asks_for_the_address_record(
    mail_dns, domain, dns_server
):
    mail_dns.domain()
    dns_server.zone("example.net", ["other A 198.51.100.7"])  # mail.example.net has no A record
    ptr = only(check(domain), "ptr")

    assert ptr.level == "failed"
    assert ptr.reason.endswith(f"(forward-confirmed reverse DNS fails): publish {MAIL_HOSTNAME}'s A record")
    # The PTR is already right: what to publish is the name's A record, not the PTR again.
    assert ptr.record_text == f"{MAIL_HOSTNAME}. A {SENDING_IP}"


def test_a_listing_on_the_dbl_fails_and_an_error_code_is_only_a_warning(mail_dns, domain, dns_server):
    mail_dns.domain()
    dns_server.zone("dbl.spamhaus.org", ["example.com A 127.0.1.2"])
    dbl = only(check(domain), "dbl")
    assert (dbl.level, dbl.reason) == ("failed", "example.com: listed on dbl.spamhaus.org: 127.0.1.2 spam domain")

    dns_server.zone("dbl.spamhaus.org", ["example.com A 127.255.255.254"])
    dbl = only(check(domain), "dbl")
    assert dbl.level == "warning"
    assert "answered 127.255.255.254: the query came through a public or open resolver" in dbl.reason


def test_a_broken_mta_sts_or_tls_rpt_record_is_a_warning_never_a_failure(mail_dns, domain):
    mail_dns.domain(records=[*right_records(), '_mta-sts TXT "v=STSv1; id=bad-id!"', '_smtp._tls TXT "v=TLSRPTv1;"'])
    results = check(domain)

    assert only(results, "mta_sts").level == "warning" and "id= must be 1 to 32" in only(results, "mta_sts").reason
    assert only(results, "tls_rpt").level == "warning" and "no rua= address" in only(results, "tls_rpt").reason


def test_the_mta_sts_policy_file_is_read_through_the_given_fetcher(mail_dns, domain):
    mail_dns.domain(records=[*right_records(), '_mta-sts TXT "v=STSv1; id=20250301"'])
    # The default fetcher resolves the policy host through the check's resolver: NSD has no such name.
    assert "cannot be read: mta-sts.example.com has no address (A nxdomain, AAAA nxdomain)" in (
        only(check(domain), "mta_sts").reason
    )

    asked = []

    def fetch(url):
        asked.append(url)
        return "version: STSv1\nmode: enforce\nmx: mx.other.example\nmax_age: 86400\n"

    mta_sts = only(check(domain, fetch_policy=fetch), "mta_sts")
    assert asked == ["https://mta-sts.example.com/.well-known/mta-sts.txt"]
    assert mta_sts.level == "failed"  # senders enforcing it refuse the MX (deliverability/tests/test_mta_sts.py)
    assert f"MX {MAIL_HOSTNAME} is not among its mx lines (mx.other.example)" in mta_sts.reason


def test_a_new_run_becomes_the_latest_and_the_previous_one_stays_as_history(mail_dns, domain):
    mail_dns.domain(records=[r for r in right_records() if "_dmarc" not in r])
    first = domain_dns_check(domain, actor=SYSTEM)
    mail_dns.domain()
    second = domain_dns_check(domain, actor=SYSTEM)

    assert (first.level, second.level) == ("failed", "ok")
    assert set(DnsCheckResult.objects.filter(is_latest=True).values_list("run", flat=True)) == {second.pk}
    assert DnsCheckResult.objects.filter(run=first).count() == 8


def test_pruning_deletes_runs_older_than_90_days_but_keeps_the_latest(mail_dns, domain):
    mail_dns.domain()
    old = domain_dns_check(domain, actor=SYSTEM)
    newer = domain_dns_check(domain, actor=SYSTEM)
    DnsCheckRun.objects.filter(pk__in=[old.pk, newer.pk]).update(checked_at=timezone.now() - timedelta(days=91))

    assert dns_check_prune() == 1
    assert list(DnsCheckRun.objects.values_list("pk", flat=True)) == [newer.pk]  # the latest, however old


def test_only_those_with_the_permission_may_run_checks(mail_dns, domain):
    from django.contrib.auth.models import Permission

    mail_dns.domain()
    staff = UserFactory(email="ops@example.com", is_staff=True)
    with pytest.raises(ValidationError, match="you do not have the permission 'deliverability.run_dns_check'"):
        domain_dns_check(domain, actor=staff)
    assert not DnsCheckRun.objects.exists()

    staff.user_permissions.add(Permission.objects.get(codename="run_dns_check"))
    staff = type(staff).objects.get(pk=staff.pk)  # permissions are cached per instance
    # The results describe the domain: the service itself asks for view_domain, whoever calls it.
    for check in (lambda: domain_dns_check(domain, actor=staff), lambda: dns_check_domains(actor=staff)):
        with pytest.raises(ValidationError, match="you do not have the permission 'mail.view_domain'"):
            check()
    assert not DnsCheckRun.objects.exists()

    staff.user_permissions.add(Permission.objects.get(content_type__app_label="mail", codename="view_domain"))
    staff = type(staff).objects.get(pk=staff.pk)
    run = domain_dns_check(domain, actor=staff)
    assert (run.level, run.actor_label) == ("ok", "ops@example.com")


def test_one_run_over_several_domains_asks_each_name_once(mail_dns, dns_server):
    shared = "include:_spf.example.net"
    dns_server.zone("example.net", [f"mail A {SENDING_IP}", f'_spf TXT "v=spf1 ip4:{SENDING_IP} -all"'])
    domains = []
    for name in ("example.com", "example.org"):
        domains.append(make_domain(name))
        mail_dns.domain(name, records=right_records(name, spf=f"v=spf1 {shared} -all", keys=[]))

    run = DnsRun()
    runs = dns_check_domains(domains, actor=SYSTEM, run=run)
    assert [r.level for r in runs] == ["warning", "warning"]  # no DKIM key held: a warning, nothing failed
    # Every question went out once: as many messages as distinct questions, the shared ones included.
    assert run.queries_sent == len(run.answers)
    assert ("_spf.example.net", "TXT") in run.answers and ("mail.example.net", "A") in run.answers

    # Positive control: a run per domain asks the shared names again.
    separate = [DnsRun(), DnsRun()]
    for domain, own in zip(domains, separate, strict=True):
        domain_dns_check(domain, actor=SYSTEM, run=own)
    assert sum(own.queries_sent for own in separate) > run.queries_sent


def test_a_record_longer_than_255_characters_is_shown_as_several_strings():
    result = DnsCheckResult(record_name="s._domainkey.example.com", record_type="TXT", record_value="p=" + "A" * 300)
    assert result.record_text == f"s._domainkey.example.com. TXT {txt('p=' + 'A' * 300)}"


def test_the_daily_task_checks_every_active_domain_and_skips_inactive_ones(mail_dns, domain):
    from deliverability import tasks

    mail_dns.domain()
    make_domain("example.org", is_active=False)
    assert tasks.dns_check_all() == "checked 1 domain(s): 0 failed, 0 with warnings"
    assert list(DnsCheckRun.objects.values_list("domain__name", "trigger")) == [("example.com", "daily")]
    assert tasks.prune_dns_checks() == "deleted 0 check run(s)"
