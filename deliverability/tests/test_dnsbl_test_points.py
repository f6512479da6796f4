"""A list's own test point (a permanent test entry it documents, such as the Spamhaus DBL's dbltest.com) in place of
RFC 5782's that must be listed: used by the sweep's health check against real NSD zones (under the key zone when the
list has a key), checked by the services (an IP for an IP list, a domain name for a domain list), editable in the
admin and with `dnsbl_list --test-point`, and set on the shipped domain lists by migration 0009."""

import io
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from accounts.authz import SYSTEM, SystemActor
from accounts.models import AuditEvent
from accounts.tests.factories import StaffFactory
from deliverability import dnsbl, dnsbl_lists
from deliverability.dnsbl_defaults import DEFAULT_LISTS
from deliverability.models import Dnsbl
from deliverability.tests.dnsbl_lists import DOMAIN_ZONE, IP_ZONE, make_list, only_test_lists
from deliverability.tests.factories import signed_in
from mail.tests.factories import make_domain, run

pytestmark = pytest.mark.django_db

KEY = "secretdqskey12345"


@pytest.fixture(autouse=True)
def _test_lists_only(settings):
    only_test_lists()
    settings.SENDING_IPS = []


def sweep():
    return dnsbl.dnsbl_sweep(actor=SystemActor("test sweep"))


def health(zone):
    found = Dnsbl.objects.get(zone=zone)
    return found.health, found.health_reason


def failing(*args):
    with pytest.raises(CommandError) as failed:
        call_command(*args, stdout=io.StringIO(), stderr=io.StringIO())
    return failed.value


def domain_list(**kw):
    return make_list(DOMAIN_ZONE, kind=Dnsbl.DOMAIN, action=Dnsbl.ALERT, **kw)


# --- the sweep -----------------------------------------------------------------------------------------


def test_a_domain_list_with_its_own_test_entry_is_healthy_with_it_and_broken_without(dns_server):
    # Like the DBL: it lists its own dbltest entry, not RFC 5782's "test".
    dns_server.zone(DOMAIN_ZONE, ["dbltest.example A 127.0.1.2", "spammy.example A 127.0.1.2"])
    listing = domain_list()
    make_domain("spammy.example")

    sweep()
    assert health(DOMAIN_ZONE) == (
        Dnsbl.BROKEN,
        "test point test is not listed (the zone does not answer as a blocklist)",
    )

    dnsbl_lists.dnsbl_update(dnsbl=listing, test_point="dbltest.example", actor=SYSTEM, actor_label="test")
    report = sweep()
    assert health(DOMAIN_ZONE) == (Dnsbl.HEALTHY, "")
    assert [(o.subject.name, o.verdict.status) for o in report.outcomes] == [("spammy.example", "listed")]


def test_a_list_must_still_not_list_rfc_5782s_other_point(dns_server):
    dns_server.zone(DOMAIN_ZONE, ["dbltest.example A 127.0.1.2", "invalid A 127.0.1.2"])
    domain_list(test_point="dbltest.example")
    sweep()
    assert health(DOMAIN_ZONE) == (
        Dnsbl.BROKEN,
        "test point invalid is listed (127.0.1.2): the list answers every query",
    )


def test_an_ip_lists_own_test_point_replaces_127_0_0_2(dns_server):
    dns_server.zone(IP_ZONE, ["3.0.0.127 A 127.0.0.2"])
    make_list(action=Dnsbl.ALERT, test_point="127.0.0.3")
    sweep()
    assert health(IP_ZONE) == (Dnsbl.HEALTHY, "")
    # The positive control: the same zone fails RFC 5782's own point.
    dnsbl_lists.dnsbl_update(dnsbl=Dnsbl.objects.get(zone=IP_ZONE), test_point="", actor=SYSTEM, actor_label="t")
    sweep()
    assert health(IP_ZONE)[0] == Dnsbl.BROKEN


def test_a_keyed_lists_test_point_is_asked_under_its_key_zone_and_the_key_is_never_shown(dns_server):
    domain_list(test_point="dbltest.example", key_zone="dq.test", access_key=KEY)
    dns_server.zone(DOMAIN_ZONE, ["dbltest.example A 127.0.1.2"])  # the public zone: not where a keyed list asks
    dns_server.zone("dq.test", [])
    sweep()
    state, reason = health(DOMAIN_ZONE)
    assert state == Dnsbl.BROKEN and reason == (
        "test point dbltest.example is not listed (the zone does not answer as a blocklist)"
    )
    assert KEY not in reason

    dns_server.zone("dq.test", [f"dbltest.example.{KEY} A 127.0.1.2"])
    sweep()
    assert health(DOMAIN_ZONE) == (Dnsbl.HEALTHY, "")


# --- the services --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "given", "stored"),
    [
        (Dnsbl.DOMAIN, " DBLTest.Example. ", "dbltest.example"),
        (Dnsbl.DOMAIN, "test", ""),  # RFC 5782's own: the same as empty
        (Dnsbl.DOMAIN, "", ""),
        (Dnsbl.IP, "127.0.0.3", "127.0.0.3"),
        (Dnsbl.IP, "::ffff:127.0.0.3", "127.0.0.3"),
        (Dnsbl.IP, "2001:DB8::2", "2001:db8::2"),
        (Dnsbl.IP, "127.0.0.2", ""),
    ],
)
def test_a_test_point_is_stored_in_one_spelling(kind, given, stored):
    zone = DOMAIN_ZONE if kind == Dnsbl.DOMAIN else IP_ZONE
    assert make_list(zone, kind=kind, action=Dnsbl.ALERT, test_point=given).test_point == stored


@pytest.mark.parametrize(
    ("kind", "given", "rule"),
    [
        (Dnsbl.IP, "dbltest.com", "an IP list's test point is an IP address it lists"),
        (Dnsbl.IP, "fe80::1%eth0", "without a %zone"),
        (Dnsbl.IP, "127.0.0.1", "the test point a list must NOT list"),
        (Dnsbl.DOMAIN, "127.0.0.2", "a domain list's test point is a domain name it lists"),
        (Dnsbl.DOMAIN, "not a name", "a domain list's test point is a domain name it lists"),
        (Dnsbl.DOMAIN, "a" * 60 + ".com", "at most 63 characters"),
        (Dnsbl.DOMAIN, "invalid", "a domain list's test point is a domain name"),
        (Dnsbl.DOMAIN, "invalid.", "a domain list's test point is a domain name"),
    ],
)
def test_a_bad_test_point_is_refused_naming_the_field_and_nothing_is_added(kind, given, rule):
    zone = DOMAIN_ZONE if kind == Dnsbl.DOMAIN else IP_ZONE
    with pytest.raises(ValidationError) as refused:
        make_list(zone, kind=kind, action=Dnsbl.ALERT, test_point=given)
    assert rule in refused.value.message_dict["test_point"][0]
    assert not Dnsbl.objects.filter(zone=zone).exists()


def test_changing_a_lists_kind_checks_its_test_point_against_the_new_kind():
    listing = make_list(action=Dnsbl.ALERT, test_point="127.0.0.3")
    with pytest.raises(ValidationError) as refused:
        dnsbl_lists.dnsbl_update(dnsbl=listing, kind=Dnsbl.DOMAIN, actor=SYSTEM, actor_label="test")
    assert "a domain list's test point is a domain name" in refused.value.message_dict["test_point"][0]
    listing.refresh_from_db()
    assert (listing.kind, listing.test_point) == (Dnsbl.IP, "127.0.0.3")
    # With a test point of the new kind given in the same change, it goes through.
    changed = dnsbl_lists.dnsbl_update(
        dnsbl=listing, kind=Dnsbl.DOMAIN, test_point="dbltest.example", actor=SYSTEM, actor_label="test"
    )
    assert (changed.kind, changed.test_point) == (Dnsbl.DOMAIN, "dbltest.example")


def test_a_new_test_point_is_tested_again_and_audited_with_its_old_and_new_value(dns_server):
    dns_server.zone(DOMAIN_ZONE, [])
    listing = domain_list()
    sweep()
    assert health(DOMAIN_ZONE)[0] == Dnsbl.BROKEN

    dnsbl_lists.dnsbl_update(dnsbl=listing, test_point="dbltest.example", actor=SYSTEM, actor_label="test")

    assert health(DOMAIN_ZONE) == (Dnsbl.UNTESTED, "")
    [event] = AuditEvent.objects.filter(action="deliverability.dnsbl.change")
    assert event.description == f"Changed blocklist {DOMAIN_ZONE}: test_point (none) -> dbltest.example."
    # Giving the same point again, in another spelling, changes nothing.
    dnsbl_lists.dnsbl_update(dnsbl=listing, test_point="DBLTEST.example.", actor=SYSTEM, actor_label="test")
    assert AuditEvent.objects.filter(action="deliverability.dnsbl.change").count() == 1


# --- the admin and the command -------------------------------------------------------------------------


def admin_form(listing, **changes):
    return {
        "name": listing.name,
        "zone": listing.zone,
        "kind": listing.kind,
        "listed_codes": json.dumps(listing.listed_codes),
        "alert_only_codes": "[]",
        "action": listing.action,
        "key_zone": "",
        "access_key_env": "",
        "removal_url": "",
        "is_enabled": "on",
        "test_point": "",
        "new_access_key": "",
        **changes,
    }


def test_the_admin_edits_a_test_point_and_refuses_a_bad_one_on_its_field():
    listing = domain_list()
    client = signed_in(StaffFactory())
    url = f"/admin/deliverability/dnsbl/{listing.pk}/change/"
    page = client.get(url).content.decode()
    assert 'name="test_point"' in page and "dbltest.com" in page  # the field, with its help

    response = client.post(url, admin_form(listing, test_point="127.0.0.2"))
    assert response.status_code == 200
    assert "a domain list&#x27;s test point is a domain name it lists" in response.content.decode()
    listing.refresh_from_db()
    assert listing.test_point == ""

    assert client.post(url, admin_form(listing, test_point="dbltest.example")).status_code == 302
    listing.refresh_from_db()
    assert listing.test_point == "dbltest.example"


def test_dnsbl_list_sets_shows_and_clears_a_test_point():
    out = run(
        "dnsbl_list", "add", "Domains", DOMAIN_ZONE, "--kind", "domain", "--codes", '{"127.0.1.2": "spam"}',
        "--test-point", "dbltest.example",
    )  # fmt: skip
    assert out.splitlines()[0] == f"Domains ({DOMAIN_ZONE}): domain, alert, enabled, test point dbltest.example."
    row = next(r for r in json.loads(run("dnsbl_list", "list", "--json")) if r["zone"] == DOMAIN_ZONE)
    assert row["test_point"] == "dbltest.example"

    run("dnsbl_list", "update", "Domains", "--test-point", "")
    assert Dnsbl.objects.get(zone=DOMAIN_ZONE).test_point == ""

    error = failing("dnsbl_list", "update", "Domains", "--test-point", "192.0.2.1")
    assert str(error).startswith("--test-point: '192.0.2.1': a domain list's test point is a domain name")
    assert Dnsbl.objects.get(zone=DOMAIN_ZONE).test_point == ""


# --- the shipped lists ---------------------------------------------------------------------------------


def test_the_shipped_domain_lists_ask_their_documented_test_entries_and_the_ip_lists_rfc_5782s():
    points = dict(Dnsbl.objects.values_list("zone", "test_point"))
    assert {zone: point for zone, point in points.items() if point} == {
        "dbl.spamhaus.org": "dbltest.com",
        "multi.surbl.org": "test.surbl.org",
        "multi.uribl.com": "test.uribl.com",
    }
    # dnsbl_defaults, the reference of what is shipped, says the same.
    assert {d["zone"]: d["test_point"] for d in DEFAULT_LISTS if d.get("test_point")} == {
        zone: point for zone, point in points.items() if point
    }
    # Every shipped point passes the services' rules for its list.
    for listing in Dnsbl.objects.all():
        assert dnsbl_lists.check_test_point(listing.kind, listing.test_point) == listing.test_point
