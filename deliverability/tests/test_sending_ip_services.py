"""Sending IPs through the services: addresses normalised, bad input refused naming the field and the rule, the
actor's permission checked, the audit log written without the operator's notes."""

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError

from accounts.authz import SYSTEM
from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from deliverability import sending_ips
from deliverability.models import SendingIp
from deliverability.tests.factories import make_ip, make_pool

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "given, stored",
    [
        ("192.0.2.7", "192.0.2.7"),
        (" 2001:DB8:0:0::0010 ", "2001:db8::10"),
        ("::ffff:192.0.2.8", "192.0.2.8"),
    ],
)
def test_addresses_are_stored_normalised_and_found_by_any_spelling(given, stored):
    ip = make_ip(given)
    assert ip.address == stored
    assert sending_ips.ip_by_address(given.upper()).pk == ip.pk
    with pytest.raises(ValidationError, match="already a sending IP"):
        make_ip(stored)


@pytest.mark.parametrize(
    "field, kwargs, rule",
    [
        ("address", {"address": "192.0.2"}, "is not an IPv4 or IPv6 address"),
        ("address", {"address": "0.0.0.0"}, "cannot send mail"),
        ("address", {"address": "ff02::1"}, "cannot send mail"),
        ("helo_name", {"helo_name": "localhost"}, "is not a fully qualified host name"),
        ("helo_name", {"helo_name": "  "}, "the HELO name is required"),
        ("weight", {"weight": 0}, "from 1 to 100"),
        ("weight", {"weight": 101}, "from 1 to 100"),
        ("weight", {"weight": "many"}, "is not a whole number"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_the_rule(field, kwargs, rule):
    values = {"address": "192.0.2.50", "helo_name": "out50.example.com", **kwargs}
    with pytest.raises(ValidationError) as e:
        sending_ips.ip_add(**values, actor=SYSTEM)
    assert rule in e.value.message_dict[field][0]
    assert not SendingIp.objects.exists() and not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    "given",
    ["2001:db8::1%x -o content_filter=evil:", "2001:db8::2%eth0", "2001:db8::1%a b{;}", "::ffff:192.0.2.9%x"],
)
def test_a_scoped_ipv6_address_is_refused_and_nothing_is_stored_or_audited(given):
    with pytest.raises(ValidationError) as e:
        sending_ips.ip_add(address=given, helo_name="out6.example.com", actor=SYSTEM)
    assert "without a %zone" in e.value.message_dict["address"][0]
    assert not SendingIp.objects.exists() and not AuditEvent.objects.exists()
    with pytest.raises(ValidationError, match="without a %zone"):
        sending_ips.ip_by_address(given)
    # The positive control: the same address without its zone is added, and audited as stored.
    ip = sending_ips.ip_add(address=given.split("%")[0], helo_name="out6.example.com", actor=SYSTEM)
    assert AuditEvent.objects.get().description.startswith(f"Added sending IP {ip.address} (out6.example.com)")


@pytest.mark.parametrize(
    "given, rule",
    [
        ("127.0.0.1", "a loopback address"),
        ("127.1.2.3", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("169.254.1.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("255.255.255.255", "the broadcast address"),
    ],
)
def test_an_address_no_other_host_reaches_is_refused_naming_the_rule(given, rule):
    with pytest.raises(ValidationError) as e:
        sending_ips.ip_add(address=given, helo_name="out.example.com", actor=SYSTEM)
    message = e.value.message_dict["address"][0]
    assert "cannot send mail: it is " + rule in message and "other hosts reach" in message
    assert not SendingIp.objects.exists() and not AuditEvent.objects.exists()


def test_private_and_documentation_addresses_are_still_accepted():
    # The positive control: an IP behind NAT or in a test network may be a sending IP.
    for address in ("10.0.0.5", "192.168.1.5", "192.0.2.5", "2001:db8::5", "fd00::5"):
        make_ip(address)
    assert SendingIp.objects.count() == 5


def test_the_helo_name_is_lower_cased_and_loses_its_trailing_dot():
    assert make_ip("192.0.2.60", helo_name="Out60.Example.COM.").helo_name == "out60.example.com"


def test_update_changes_settings_but_never_the_state_or_address():
    pool = make_pool()
    ip = make_ip()
    ip = sending_ips.ip_update(ip=ip, pool=pool, weight="40", helo_name="new.example.com", actor=SYSTEM)
    assert (ip.pool, ip.weight, ip.helo_name) == (pool, 40, "new.example.com")
    with pytest.raises(ValidationError) as e:
        sending_ips.ip_update(ip=ip, state="ACTIVE", actor=SYSTEM)
    assert "only through a state change" in e.value.message_dict["state"][0]
    with pytest.raises(ValidationError) as e:
        sending_ips.ip_update(ip=ip, address="192.0.2.99", actor=SYSTEM)
    assert "remove the IP and add it again" in e.value.message_dict["address"][0]
    assert SendingIp.objects.get(pk=ip.pk).state == "WARMING"


def test_audit_rows_say_what_changed_but_not_the_notes():
    ip = make_ip(notes="ticket 4711, contact hostmaster@provider.example")
    sending_ips.ip_update(ip=ip, notes="provider login: admin / hunter2", actor=SYSTEM, actor_label="test")
    texts = " ".join(AuditEvent.objects.values_list("description", flat=True))
    assert "Added sending IP" in texts and "Changed notes." in texts
    assert "hunter2" not in texts and "4711" not in texts


def staff(*codenames):
    person = UserFactory(is_staff=True)
    person.user_permissions.set(
        Permission.objects.filter(content_type__app_label="deliverability", codename__in=codenames)
    )
    return type(person).objects.get(pk=person.pk)  # permissions are cached per object


def test_staff_need_the_model_permission_for_each_change():
    ip = make_ip()
    viewer = staff("view_sendingip")
    for call in (
        lambda: sending_ips.ip_add(address="192.0.2.70", helo_name="o.example.com", actor=viewer),
        lambda: sending_ips.ip_update(ip=ip, weight=5, actor=viewer),
        lambda: sending_ips.ip_set_state(ip=ip, state="RESTING", reason="standby", actor=viewer),
        lambda: sending_ips.ip_remove(ip=ip, actor=viewer),
    ):
        with pytest.raises(ValidationError, match="you do not have the permission"):
            call()
    assert SendingIp.objects.get().state == "WARMING"
    changer = staff("view_sendingip", "change_sendingip")
    sending_ips.ip_set_state(ip=ip, state="RESTING", reason="standby", actor=changer)
    event = AuditEvent.objects.get(action="deliverability.sending_ip.state")
    assert event.actor == changer and ip.state_changes.first().actor_label == changer.email


def test_an_address_added_at_the_same_moment_elsewhere_is_refused_on_the_field(monkeypatch):
    real_save = SendingIp.save

    def other_add_first(self, *args, **kwargs):
        # Another add of the same address commits between ip_add's check and its insert.
        SendingIp.objects.bulk_create([SendingIp(address=self.address, helo_name="other.example.com")])
        monkeypatch.setattr(SendingIp, "save", real_save)
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(SendingIp, "save", other_add_first)
    with pytest.raises(ValidationError) as e:
        sending_ips.ip_add(address="192.0.2.70", helo_name="out70.example.com", actor=SYSTEM)
    assert e.value.message_dict["address"] == ["192.0.2.70 is already a sending IP."]
    assert not AuditEvent.objects.exists()
