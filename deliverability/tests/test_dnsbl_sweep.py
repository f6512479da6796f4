"""The blocklist sweep against real NSD zones: listed, error codes, NXDOMAIN, timeouts, a broken list; the standby
flow (listing -> IP RESTING -> alert fires -> delisting -> alert resolved, IP stays RESTING until release); history
and the current standing."""

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.authz import SYSTEM, SystemActor
from accounts.models import AuditEvent
from accounts.tests.factories import StaffFactory
from deliverability import dnsbl, ip_duties, sending_ips
from deliverability.alert_kinds import DNSBL_LISTED
from deliverability.dns.resolver import AsyncDnsRun
from deliverability.models import Dnsbl, DnsblResult, SendingIp
from deliverability.tests.dnsbl_lists import DOMAIN_ZONE, make_list, only_test_lists, serve_ip_list
from deliverability.tests.factories import make_ip, move, signed_in
from dockspace.alert_kinds import alert_kind
from mail.tests.factories import make_domain

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _test_lists_only():
    only_test_lists()


def sweep(**kw):
    return dnsbl.dnsbl_sweep(actor=SystemActor("test sweep"), **kw)


def observe():
    kind = alert_kind(DNSBL_LISTED)
    return {o.subject: o for o in kind.evaluate(kind.view({}, timezone.now()))}


def standing(subject, zone="bl.test"):
    return DnsblResult.objects.get(subject=subject, dnsbl__zone=zone, is_latest=True)


def test_listed_error_codes_and_nxdomain_are_told_apart(dns_server, settings):
    settings.SENDING_IPS = []
    serve_ip_list(
        dns_server,
        {
            "192.0.2.10": "127.0.0.2",
            "192.0.2.11": "127.255.255.254",
            "192.0.2.12": "10.0.0.1",
            "192.0.2.13": "127.0.0.7",
        },
    )
    make_list(action=Dnsbl.ALERT)
    for n in (10, 11, 12, 13, 14):
        make_ip(f"192.0.2.{n}", state=SendingIp.ACTIVE)

    report = sweep()

    found = {o.subject.name: o.verdict for o in report.outcomes}
    assert (found["192.0.2.10"].status, found["192.0.2.10"].code, found["192.0.2.10"].meaning) == (
        "listed",
        "127.0.0.2",
        "SBL",
    )
    assert found["192.0.2.11"].status == "error" and "public or open resolver" in found["192.0.2.11"].meaning
    assert found["192.0.2.12"].status == "error" and "outside 127.0.0.0/8" in found["192.0.2.12"].meaning
    assert found["192.0.2.13"].status == "error" and "does not document" in found["192.0.2.13"].meaning
    assert found["192.0.2.14"].status == "clear"
    assert Dnsbl.objects.get(zone="bl.test").health == Dnsbl.HEALTHY
    # Errors are history only: no current standing, nothing fires for them.
    assert not DnsblResult.objects.filter(subject="192.0.2.11", is_latest=True).exists()
    assert DnsblResult.objects.get(subject="192.0.2.11").status == "error"
    seen = observe()
    assert seen["192.0.2.10 on bl.test"].is_firing
    assert "Removal: https://bl.test/removal" in seen["192.0.2.10 on bl.test"].summary
    assert not seen["192.0.2.14 on bl.test"].is_firing and "192.0.2.11 on bl.test" not in seen
    # An alert list only alerts.
    assert SendingIp.objects.get(address="192.0.2.10").state == SendingIp.ACTIVE


def test_a_list_that_lists_everything_is_broken_and_its_answers_ignored(dns_server, settings):
    settings.SENDING_IPS = []
    dns_server.zone("all.test", ["* A 127.0.0.2"])
    make_list("all.test")
    ip = make_ip("192.0.2.20", state=SendingIp.ACTIVE)

    report = sweep()

    broken = Dnsbl.objects.get(zone="all.test")
    assert broken.health == Dnsbl.BROKEN
    assert broken.health_reason == "test point 127.0.0.1 is listed (127.0.0.2): the list answers every query"
    assert report.outcomes == [] and [d.zone for d in report.broken] == ["all.test"]
    ip.refresh_from_db()
    assert ip.state == SendingIp.ACTIVE and observe() == {}


def test_a_list_without_its_test_point_is_broken(dns_server, settings):
    settings.SENDING_IPS = ["192.0.2.21"]
    dns_server.zone("empty.test", ["21.2.0.192 A 127.0.0.2"])
    make_list("empty.test")

    sweep()

    assert Dnsbl.objects.get(zone="empty.test").health == Dnsbl.BROKEN
    assert "test point 127.0.0.2 is not listed" in Dnsbl.objects.get(zone="empty.test").health_reason
    assert not DnsblResult.objects.exists()


def test_a_silent_resolver_gives_errors_and_changes_nothing(silent_dns_server, settings):
    settings.SENDING_IPS = []
    settings.DNS_NAMESERVERS = silent_dns_server.nameservers
    make_list()
    ip = make_ip("192.0.2.30", state=SendingIp.ACTIVE)

    sweep(run=AsyncDnsRun(timeout=0.3))

    ip.refresh_from_db()
    assert ip.state == SendingIp.ACTIVE
    row = DnsblResult.objects.get(subject="192.0.2.30")
    assert (row.status, row.is_latest) == ("error", False) and "timeout" in row.meaning
    assert (
        Dnsbl.objects.get(zone="bl.test").health_reason
        == "the test point did not answer (timeout: no answer within 0.3 s)"
    )
    assert observe() == {}


def test_a_servfail_list_changes_nothing(dns_server, settings):
    settings.SENDING_IPS = ["192.0.2.31"]
    dns_server.failing_zone("bl.test")
    make_list()

    sweep()

    assert DnsblResult.objects.get().status == "error" and observe() == {}


def test_the_standby_flow_rests_alerts_resolves_and_waits_for_quarantine_release(dns_server, settings):
    settings.SENDING_IPS = []
    settings.IP_QUARANTINE_DAYS = 7
    make_list()
    ip = make_ip("192.0.2.40", state=SendingIp.ACTIVE)
    warming = make_ip("192.0.2.41")
    serve_ip_list(dns_server, {"192.0.2.40": "127.0.0.2", "192.0.2.41": "127.0.0.2"})

    sweep()

    ip.refresh_from_db()
    warming.refresh_from_db()
    assert (ip.state, warming.state) == (SendingIp.RESTING, SendingIp.RESTING)
    assert ip.state_changes.first().reason == "listed on bl.test (bl.test): 127.0.0.2 SBL"
    assert observe()["192.0.2.40 on bl.test"].is_firing
    assert ip_duties.listing_clear_since(ip) >= timezone.now() - timedelta(seconds=5)  # listed: not clear

    start = timezone.now()
    with time_machine.travel(start + timedelta(days=1), tick=False):
        serve_ip_list(dns_server, {})
        sweep()
        cleared_at = timezone.now()
        assert not observe()["192.0.2.40 on bl.test"].is_firing
        ip.refresh_from_db()
        assert ip.state == SendingIp.RESTING
        assert ip_duties.listing_clear_since(ip) == cleared_at
        assert standing("192.0.2.40").status == "clear"
        assert DnsblResult.objects.get(subject="192.0.2.40", status="listed").cleared_at == cleared_at
    with time_machine.travel(cleared_at + timedelta(days=6), tick=False):
        assert ip_duties.duty_run(ip_duties.RELEASE).moved == []
    with time_machine.travel(cleared_at + timedelta(days=7, minutes=1), tick=False):
        # Due, but the list's last clear answer is a week old: release waits for it to answer again.
        assert ip_duties.duty_run(ip_duties.RELEASE).moved == []
        [held] = [m for m in ip_duties.release_plan().waiting if m.ip.address == "192.0.2.40"]
        assert "held: bl.test has not answered clear about 192.0.2.40 since" in held.reason
        sweep()
        moved = ip_duties.duty_run(ip_duties.RELEASE).moved
    assert "192.0.2.40 RESTING -> WARMING" in moved


def test_quarantine_release_waits_while_a_standby_list_is_broken(dns_server, silent_dns_server, settings):
    settings.SENDING_IPS = []
    settings.IP_QUARANTINE_DAYS = 7
    make_list()
    ip = make_ip("192.0.2.40", state=SendingIp.ACTIVE)
    serve_ip_list(dns_server, {"192.0.2.40": "127.0.0.2"})
    sweep()
    serve_ip_list(dns_server, {})
    sweep()  # delisted: clear since now
    # Then the list cannot be asked any more (its server is silent): broken, its answers ignored.
    settings.DNS_NAMESERVERS = silent_dns_server.nameservers
    sweep(run=AsyncDnsRun(timeout=0.3))
    assert Dnsbl.objects.get(zone="bl.test").health == Dnsbl.BROKEN

    with time_machine.travel(timezone.now() + timedelta(days=8), tick=False):
        result = ip_duties.duty_run(ip_duties.RELEASE)
        [held] = ip_duties.release_plan().waiting
        page = signed_in(StaffFactory()).get("/admin/deliverability/ip-duties/").content.decode()
    assert "192.0.2.40: RESTING &rarr; WARMING due, held back: bl.test is broken (its answers are ignored)" in page
    assert result.moved == []
    # The task's summary and the dry run say why (an operator reads them, not the duty's internals).
    assert (
        result.summary() == "release: moved 0 IP(s); held 1: 192.0.2.40 (bl.test is broken (its answers are ignored))"
    )
    assert held.held == "bl.test is broken (its answers are ignored)"
    ip.refresh_from_db()
    assert ip.state == SendingIp.RESTING


def test_an_alert_only_code_on_a_standby_list_does_not_rest_the_ip(dns_server, settings):
    settings.SENDING_IPS = []
    serve_ip_list(dns_server, {"192.0.2.50": "127.0.0.10"})
    make_list(alert_only_codes=["127.0.0.10"])
    ip = make_ip("192.0.2.50", state=SendingIp.ACTIVE)

    sweep()

    ip.refresh_from_db()
    assert ip.state == SendingIp.ACTIVE
    assert observe()["192.0.2.50 on bl.test"].is_firing


def test_an_operator_resting_ip_is_not_moved_again(dns_server, settings):
    settings.SENDING_IPS = []
    serve_ip_list(dns_server, {"192.0.2.51": "127.0.0.2"})
    make_list()
    ip = move(make_ip("192.0.2.51"), SendingIp.RESTING)

    sweep()
    sweep()

    assert ip.state_changes.count() == 2  # added, rested by hand


def test_an_ip_an_operator_rests_during_the_sweep_does_not_abort_it(dns_server, settings, monkeypatch):
    settings.SENDING_IPS = []
    serve_ip_list(dns_server, {"192.0.2.52": "127.0.0.2", "192.0.2.53": "127.0.0.2"})
    make_list()
    first = make_ip("192.0.2.52", state=SendingIp.ACTIVE)
    make_ip("192.0.2.53", state=SendingIp.ACTIVE)
    real = sending_ips.ip_set_state

    def operator_first(**kw):
        # An operator rests the first IP just before the sweep's own move reaches its row lock.
        if kw["ip"].pk == first.pk and kw.get("actor_label") == dnsbl.SWEEP_LABEL:
            real(ip=first, state=SendingIp.RESTING, reason="by hand", actor=SYSTEM, actor_label="operator")
        return real(**kw)

    monkeypatch.setattr(sending_ips, "ip_set_state", operator_first)
    report = sweep()

    moved = {o.subject.name: o.moved_to_resting for o in report.outcomes}
    assert moved == {"192.0.2.52": False, "192.0.2.53": True}  # the rest of the sweep went on
    assert dict(SendingIp.objects.values_list("address", "state")) == {
        "192.0.2.52": SendingIp.RESTING,
        "192.0.2.53": SendingIp.RESTING,
    }
    assert [c.actor_label for c in first.state_changes.order_by("pk")] == ["test", "operator"]  # not moved twice
    assert DnsblResult.objects.filter(is_latest=True, status=DnsblResult.LISTED).count() == 2  # both kept


def test_domains_are_checked_on_domain_lists(dns_server, settings):
    settings.SENDING_IPS = []
    dns_server.zone(DOMAIN_ZONE, ["test A 127.0.1.2", "spammy.example A 127.0.1.2"])
    make_list(DOMAIN_ZONE, kind=Dnsbl.DOMAIN, action=Dnsbl.ALERT)
    make_domain("spammy.example")
    make_domain("fine.example")

    sweep()

    assert standing("spammy.example", DOMAIN_ZONE).meaning == "spam domain"
    assert standing("fine.example", DOMAIN_ZONE).status == "clear"
    assert observe()["spammy.example on dbl.test"].is_firing


def test_the_hourly_run_rechecks_listed_pairs_and_the_rest_every_four_hours(dns_server, settings):
    settings.SENDING_IPS = ["192.0.2.60", "192.0.2.61"]
    serve_ip_list(dns_server, {"192.0.2.60": "127.0.0.2"})
    make_list(action=Dnsbl.ALERT)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert len(sweep(only_due=True).outcomes) == 2
    with time_machine.travel(start + timedelta(hours=1), tick=False):
        assert [o.subject.name for o in sweep(only_due=True).outcomes] == ["192.0.2.60"]
    with time_machine.travel(start + timedelta(hours=4), tick=False):
        assert len(sweep(only_due=True).outcomes) == 2


def test_the_hourly_run_tests_every_list_even_with_nothing_due(dns_server, settings):
    settings.SENDING_IPS = ["192.0.2.62"]
    serve_ip_list(dns_server)
    make_list(action=Dnsbl.ALERT)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        sweep(only_due=True)
    assert Dnsbl.objects.get(zone="bl.test").health == Dnsbl.HEALTHY
    dns_server.zone("bl.test", ["* A 127.0.0.2"])  # the list now answers every query
    with time_machine.travel(start + timedelta(hours=1), tick=False):
        report = sweep(only_due=True)
    # Nothing was due (192.0.2.62 is clear and was asked an hour ago), yet the list was tested and found broken.
    assert report.outcomes == [] and [d.zone for d in report.broken] == ["bl.test"]
    assert Dnsbl.objects.get(zone="bl.test").health == Dnsbl.BROKEN


def test_a_repeated_standing_is_one_history_row(dns_server, settings):
    settings.SENDING_IPS = ["192.0.2.70"]
    serve_ip_list(dns_server, {"192.0.2.70": "127.0.0.2"})
    make_list(action=Dnsbl.ALERT)
    sweep()
    sweep()
    assert DnsblResult.objects.filter(subject="192.0.2.70").count() == 1


def test_a_staff_member_without_the_run_permission_is_refused(dns_server):
    from django.core.exceptions import ValidationError

    from accounts.tests.factories import UserFactory

    with pytest.raises(ValidationError):
        dnsbl.dnsbl_sweep(actor=UserFactory(is_staff=True))
    assert dnsbl.dnsbl_sweep(actor=SYSTEM).outcomes == []


def test_a_list_whose_questions_cannot_be_asked_is_broken_alone_and_its_key_is_never_shown(dns_server, settings):
    # A zone stored before the length rule (or written around the services) makes names over 253 characters: that
    # list is broken, the others are still asked, and the key inside its names appears in no reason.
    settings.SENDING_IPS = []
    serve_ip_list(dns_server, {"192.0.2.10": "127.0.0.2"})
    make_list(action=Dnsbl.STANDBY)
    key = "secretdqskey12345"
    long_zone = ".".join(["k" * 60] * 4) + ".test"  # 248 characters: no question under it fits
    make_list("long.test", action=Dnsbl.ALERT, key_zone="dq.test", access_key=key)
    Dnsbl.objects.filter(zone="long.test").update(key_zone=long_zone)
    make_ip("192.0.2.10", state=SendingIp.ACTIVE)

    report = sweep()

    long_list = Dnsbl.objects.get(zone="long.test")
    assert long_list.health == Dnsbl.BROKEN and key not in long_list.health_reason
    assert "not a valid DNS name" in long_list.health_reason
    assert not any(o.verdict.status == "listed" and o.dnsbl.pk == long_list.pk for o in report.outcomes)
    assert all(key not in r.meaning for r in DnsblResult.objects.all())
    # The positive control: the good standby list still rested the listed IP in the same sweep.
    assert Dnsbl.objects.get(zone="bl.test").health == Dnsbl.HEALTHY
    assert SendingIp.objects.get(address="192.0.2.10").state == SendingIp.RESTING


def test_a_one_off_check_of_an_address_dockspace_does_not_watch_reports_it_but_raises_no_alert(dns_server, settings):
    settings.SENDING_IPS = []
    serve_ip_list(dns_server, {"198.51.100.7": "127.0.0.2", "192.0.2.10": "127.0.0.2"})
    make_list(action=Dnsbl.ALERT)
    make_ip("192.0.2.10", state=SendingIp.ACTIVE)

    report = sweep(subjects=[dnsbl.subject_for("198.51.100.7"), dnsbl.subject_for("192.0.2.10")])

    found = {o.subject.name: o.verdict.status for o in report.outcomes}
    assert found == {"198.51.100.7": "listed", "192.0.2.10": "listed"}  # both answered and reported
    assert DnsblResult.objects.get(subject="198.51.100.7").is_latest is False  # history only: no standing
    seen = observe()
    assert "198.51.100.7 on bl.test" not in seen
    # The positive control: the sending IP asked in the same check has its standing and its alert.
    assert seen["192.0.2.10 on bl.test"].is_firing


def test_a_removed_sending_ip_no_longer_keeps_its_listing_alert_firing(dns_server, settings):
    settings.SENDING_IPS = []
    serve_ip_list(dns_server, {"192.0.2.10": "127.0.0.2"})
    make_list(action=Dnsbl.ALERT)
    ip = make_ip("192.0.2.10", state=SendingIp.ACTIVE)
    sweep()
    assert observe()["192.0.2.10 on bl.test"].is_firing

    move(ip, SendingIp.RETIRING)
    sending_ips.ip_remove(ip=ip, actor=SYSTEM)

    assert "192.0.2.10 on bl.test" not in observe()
    assert not DnsblResult.objects.filter(subject="192.0.2.10", is_latest=True).exists()
    assert DnsblResult.objects.filter(subject="192.0.2.10", status="listed").exists()  # the history stays


def test_a_full_sweep_turns_the_standings_of_a_deactivated_domain_into_history(dns_server, settings):
    settings.SENDING_IPS = []
    dns_server.zone(DOMAIN_ZONE, ["test A 127.0.1.2", "spam.example A 127.0.1.2"])
    make_list(DOMAIN_ZONE, kind=Dnsbl.DOMAIN, action=Dnsbl.ALERT)
    domain = make_domain("spam.example")
    sweep()
    assert observe()["spam.example on dbl.test"].is_firing

    type(domain).objects.filter(pk=domain.pk).update(is_active=False)
    sweep()

    assert "spam.example on dbl.test" not in observe()
    assert not DnsblResult.objects.filter(subject="spam.example", is_latest=True).exists()


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_storing_the_first_standing_of_a_pair_at_once_leave_one_standing(monkeypatch):
    """PostgreSQL only (SQLite runs one write transaction at a time): the hourly sweep and a "check now" find a new
    IP listed at the same moment; the second waits for the first and finds the standing it stored."""

    from django.db import connection, connections

    from deliverability.tests.races import hold_one_at, run_one_then_two

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL): SQLite never runs two write transactions at once")
    only_test_lists()
    bl = make_list(action=Dnsbl.ALERT)
    subject = dnsbl.Subject("192.0.2.10", Dnsbl.IP)
    listed = dnsbl.Verdict("listed", "127.0.0.2", "SBL")
    holding, release = hold_one_at(monkeypatch, dnsbl, "_rest_if_standby")  # one has stored, not committed
    outcome = {}

    def store(name):
        try:
            [stored] = dnsbl._store([(bl, subject, listed)], timezone.now(), f"sweep {name}", {subject.name})
            outcome[name] = stored.changed
        except Exception as exc:  # the race this test is about ends in an IntegrityError
            outcome[name] = repr(exc)
        finally:
            connections.close_all()

    run_one_then_two(lambda: store("one"), lambda: store("two"), holding=holding, release=release)

    assert outcome == {"one": True, "two": False}  # the second found the first's standing unchanged
    assert DnsblResult.objects.filter(subject="192.0.2.10", is_latest=True).count() == 1


def test_a_listing_and_its_delisting_are_audited_once_each(dns_server, settings):
    settings.SENDING_IPS = []
    serve_ip_list(dns_server, {"192.0.2.80": "127.0.0.2"})
    make_list(action=Dnsbl.ALERT)
    ip = make_ip("192.0.2.80", state=SendingIp.ACTIVE)

    def entries():
        return list(
            AuditEvent.objects.filter(action__in=["deliverability.dnsbl.listed", "deliverability.dnsbl.cleared"])
            .order_by("pk")
            .values_list("action", "target_id", "description", "actor_label")
        )

    sweep()
    sweep()  # the same standing: nothing new to audit
    by = dnsbl.SWEEP_LABEL
    listed = ("deliverability.dnsbl.listed", str(ip.pk), "192.0.2.80 listed on bl.test: 127.0.0.2 SBL", by)
    assert entries() == [listed]
    serve_ip_list(dns_server, {})
    sweep()
    cleared = ("deliverability.dnsbl.cleared", str(ip.pk), "192.0.2.80 delisted from bl.test", by)
    assert entries() == [listed, cleared]


def test_a_repeated_error_is_one_history_row_and_never_touches_the_standing(dns_server, settings):
    settings.SENDING_IPS = ["192.0.2.81"]
    serve_ip_list(dns_server, {"192.0.2.81": "127.0.0.2"})
    make_list(action=Dnsbl.ALERT)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        sweep()
    for hours in (1, 2):  # the same error twice: one row, checked again
        with time_machine.travel(start + timedelta(hours=hours), tick=False):
            serve_ip_list(dns_server, {"192.0.2.81": "127.0.0.7"})  # a code the list does not document
            sweep()
    with time_machine.travel(start + timedelta(hours=3), tick=False):
        serve_ip_list(dns_server, {"192.0.2.81": "127.255.255.254"})  # another error: a new row
        sweep()
    with time_machine.travel(start + timedelta(hours=4), tick=False):
        serve_ip_list(dns_server, {"192.0.2.81": "127.0.0.2"})
        sweep()

    rows = list(
        DnsblResult.objects.filter(subject="192.0.2.81")
        .order_by("pk")
        .values_list("status", "code", "first_seen_at", "checked_at", "is_latest")
    )
    assert rows == [
        ("listed", "127.0.0.2", start, start + timedelta(hours=4), True),
        ("error", "127.0.0.7", start + timedelta(hours=1), start + timedelta(hours=2), False),
        ("error", "127.255.255.254", start + timedelta(hours=3), start + timedelta(hours=3), False),
    ]


def test_a_sweep_stores_many_standings_in_as_few_queries_as_a_handful(dns_server, settings):
    settings.SENDING_IPS = []
    listed = {f"192.0.2.{n}": "127.0.0.2" for n in range(100, 140, 3)}
    listed.update({"192.0.2.101": "127.0.0.7", "192.0.2.131": "127.0.0.7"})  # errors: codes the list does not know
    serve_ip_list(dns_server, listed)
    make_list(action=Dnsbl.ALERT)
    ips = [make_ip(f"192.0.2.{n}", state=SendingIp.ACTIVE) for n in range(100, 140)]

    def queries(ips):
        DnsblResult.objects.all().delete()
        counts = []
        for _ in range(2):  # new standings, then the same ones checked again
            with CaptureQueriesContext(connection) as captured:
                sweep(subjects=[dnsbl.Subject(ip.address, Dnsbl.IP, ip) for ip in ips])
            counts.append(len(captured))
        return counts

    assert queries(ips) == queries(ips[:4])
    assert DnsblResult.objects.filter(status="error").count() == 1


def test_a_sweep_that_fails_while_storing_stores_nothing(dns_server, settings, monkeypatch):
    settings.SENDING_IPS = []
    serve_ip_list(dns_server, {"192.0.2.90": "127.0.0.2", "192.0.2.91": "127.0.0.2"})
    make_list()
    make_ip("192.0.2.90", state=SendingIp.ACTIVE)
    make_ip("192.0.2.91", state=SendingIp.ACTIVE)
    real = sending_ips.ip_set_state

    def fails_at_the_second(**kw):
        if kw["ip"].address == "192.0.2.91":
            raise RuntimeError("the database went away")
        return real(**kw)

    monkeypatch.setattr(sending_ips, "ip_set_state", fails_at_the_second)
    with pytest.raises(RuntimeError):
        sweep()
    assert not DnsblResult.objects.exists()
    assert not AuditEvent.objects.filter(action="deliverability.dnsbl.listed").exists()
    assert set(SendingIp.objects.values_list("state", flat=True)) == {SendingIp.ACTIVE}


def test_a_subject_named_twice_is_checked_once(dns_server, settings):
    settings.SENDING_IPS = []
    serve_ip_list(dns_server, {"192.0.2.95": "127.0.0.2"})
    make_list(action=Dnsbl.ALERT)
    ip = make_ip("192.0.2.95", state=SendingIp.ACTIVE)
    subject = dnsbl.Subject(ip.address, Dnsbl.IP, ip)

    report = sweep(subjects=[subject, dnsbl.subject_for("192.0.2.95")])

    assert [(o.subject.name, o.verdict.status) for o in report.outcomes] == [("192.0.2.95", "listed")]
    assert DnsblResult.objects.get().is_latest
