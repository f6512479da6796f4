"""The blocklist services: a standby list rests sending IPs, so making a list standby, or changing what a standby
list listens to (zone, key zone, codes, test point), needs the permission to change sending IPs as well as the list's
own."""

import pytest
from django.core.exceptions import ValidationError

from accounts.authz import SYSTEM
from accounts.models import AuditEvent
from deliverability import dnsbl_lists
from deliverability.models import Dnsbl
from deliverability.tests.dnsbl_lists import make_list
from deliverability.tests.factories import staff_with

pytestmark = pytest.mark.django_db

LIST_PERMS = ("deliverability.add_dnsbl", "deliverability.change_dnsbl")
RULE = "also needs the permission to change sending IPs"


def add(actor, **values):
    values = {"name": "Mine", "zone": "mine.test", "listed_codes": {"127.0.0.2": "listed"}, **values}
    return dnsbl_lists.dnsbl_add(actor=actor, **values)


def test_a_list_manager_without_change_sendingip_cannot_add_a_standby_list():
    manager = staff_with(*LIST_PERMS)
    with pytest.raises(ValidationError) as e:
        add(manager, action=Dnsbl.STANDBY)
    assert RULE in e.value.message_dict["action"][0] and "change_sendingip" in e.value.message_dict["action"][0]
    assert not Dnsbl.objects.filter(zone="mine.test").exists() and not AuditEvent.objects.exists()
    # The positive controls: an alert list is fine for them; with change_sendingip, standby is too.
    assert add(manager, action=Dnsbl.ALERT).action == Dnsbl.ALERT
    ops = staff_with(*LIST_PERMS, "deliverability.change_sendingip", email="ops2@example.com")
    assert add(ops, name="Theirs", zone="theirs.test", action=Dnsbl.STANDBY).action == Dnsbl.STANDBY


@pytest.mark.parametrize(
    "changes",
    [
        {"action": Dnsbl.STANDBY},
        {"zone": "attacker.test"},
        {"key_zone": "attacker.test"},
        {"listed_codes": {"127.0.0.2": "listed", "127.0.0.3": "also"}},
        {"alert_only_codes": ["127.0.0.10"]},
        {"test_point": "127.0.0.3"},  # decides whether the list's answers are trusted
    ],
)
def test_a_list_manager_without_change_sendingip_cannot_make_or_steer_a_standby_list(changes):
    standby = make_list("standby.test", action=Dnsbl.STANDBY)
    alert = make_list("alert.test", action=Dnsbl.ALERT)
    target = alert if "action" in changes else standby
    fields = ("action", "zone", "key_zone", "listed_codes", "alert_only_codes", "test_point")
    before = {f: getattr(target, f) for f in fields}
    manager = staff_with(*LIST_PERMS)
    with pytest.raises(ValidationError) as e:
        dnsbl_lists.dnsbl_update(dnsbl=target, actor=manager, **changes)
    assert RULE in e.value.message_dict["action"][0]
    target.refresh_from_db()
    assert {f: getattr(target, f) for f in before} == before
    # The positive control: the same change by someone who may also change sending IPs goes through.
    ops = staff_with(*LIST_PERMS, "deliverability.change_sendingip", email="ops2@example.com")
    changed = dnsbl_lists.dnsbl_update(dnsbl=target, actor=ops, **changes)
    assert any(getattr(changed, f) != v for f, v in before.items())


def test_a_list_manager_may_still_rename_a_standby_list_or_change_an_alert_list():
    standby = make_list("standby.test", action=Dnsbl.STANDBY)
    alert = make_list("alert.test", action=Dnsbl.ALERT)
    manager = staff_with(*LIST_PERMS)
    assert dnsbl_lists.dnsbl_update(dnsbl=standby, actor=manager, name="Renamed").name == "Renamed"
    assert dnsbl_lists.dnsbl_update(dnsbl=alert, actor=manager, zone="other.test").zone == "other.test"
    assert dnsbl_lists.dnsbl_update(dnsbl=alert, actor=manager, is_enabled=False).is_enabled is False


@pytest.mark.parametrize("changes", [{"action": Dnsbl.ALERT}, {"is_enabled": False}, "remove"])
def test_taking_standby_away_disabling_or_removing_a_standby_list_needs_change_sendingip(changes):
    # An IP the list rested stays resting while listed there: without the list's standby, quarantine release would
    # bring it back while it is still listed.
    standby = make_list("standby.test", action=Dnsbl.STANDBY)
    manager = staff_with(*LIST_PERMS, "deliverability.delete_dnsbl")
    with pytest.raises(ValidationError) as e:
        if changes == "remove":
            dnsbl_lists.dnsbl_remove(dnsbl=standby, actor=manager)
        else:
            dnsbl_lists.dnsbl_update(dnsbl=standby, actor=manager, **changes)
    assert RULE in e.value.message_dict["action"][0]
    standby.refresh_from_db()
    assert (standby.action, standby.is_enabled) == (Dnsbl.STANDBY, True)
    # The positive control: someone who may also change sending IPs does it.
    ops = staff_with(*LIST_PERMS, "deliverability.delete_dnsbl", "deliverability.change_sendingip", email="o@x.test")
    if changes == "remove":
        dnsbl_lists.dnsbl_remove(dnsbl=standby, actor=ops)
        assert not Dnsbl.objects.filter(pk=standby.pk).exists()
    else:
        dnsbl_lists.dnsbl_update(dnsbl=standby, actor=ops, **changes)


def test_turning_a_disabled_standby_list_on_needs_change_sendingip():
    standby = make_list("standby.test", action=Dnsbl.STANDBY, is_enabled=False)
    with pytest.raises(ValidationError, match="also needs the permission to change sending IPs"):
        dnsbl_lists.dnsbl_update(dnsbl=standby, actor=staff_with(*LIST_PERMS), is_enabled=True)
    standby.refresh_from_db()
    assert standby.is_enabled is False


def test_removing_the_key_variable_of_a_keyed_list_needs_manage_key():
    keyed = make_list("alert.test", action=Dnsbl.ALERT, key_zone="alert.dq.test", access_key_env="DOCKSPACE_DNSBL_X")
    with pytest.raises(ValidationError, match="manage_dnsbl_key"):
        dnsbl_lists.dnsbl_update(dnsbl=keyed, actor=staff_with(*LIST_PERMS), access_key_env="")
    keyed.refresh_from_db()
    assert keyed.access_key_env == "DOCKSPACE_DNSBL_X"


def test_a_removal_page_typed_without_a_scheme_is_an_https_one():
    from deliverability.forms import DnsblForm

    form = DnsblForm(data={"removal_url": "check.example.org/remove"})
    form.is_valid()
    assert form.cleaned_data["removal_url"] == "https://check.example.org/remove"


# --- where an access key goes --------------------------------------------------------------------------------------

KEY = "secretdqskey12345"


@pytest.mark.parametrize(
    "changes",
    [
        {"key_zone": "evil.attacker.test"},  # the stored key would go to the attacker's servers
        {"access_key_env": "DOCKSPACE_DNSBL_SPAMHAUS_KEY", "key_zone": "evil.attacker.test"},  # another list's key
        {"access_key": ""},  # removing the key
    ],
)
def test_a_list_manager_without_manage_key_cannot_send_a_key_elsewhere(changes):
    keyed = make_list("alert.test", action=Dnsbl.ALERT, key_zone="alert.dq.test", access_key=KEY)
    before = (keyed.key_zone, keyed.access_key_env, keyed.access_key_encrypted)
    manager = staff_with(*LIST_PERMS, "deliverability.change_sendingip")
    with pytest.raises(ValidationError) as e:
        dnsbl_lists.dnsbl_update(dnsbl=keyed, actor=manager, **changes)
    [field] = e.value.message_dict
    assert "needs the permission 'deliverability.manage_dnsbl_key'" in e.value.message_dict[field][0]
    keyed.refresh_from_db()
    assert (keyed.key_zone, keyed.access_key_env, keyed.access_key_encrypted) == before
    # The positive control: with the permission the change is made, and the audit says where questions now go.
    keeper = staff_with(*LIST_PERMS, "deliverability.manage_dnsbl_key", email="keys@example.com")
    dnsbl_lists.dnsbl_update(dnsbl=keyed, actor=keeper, **changes)
    if "key_zone" in changes:
        event = AuditEvent.objects.filter(action="deliverability.dnsbl.change").latest("pk")
        assert "key_zone alert.dq.test -> evil.attacker.test" in event.description
        assert KEY not in event.description


def test_a_new_list_with_a_key_or_a_key_variable_needs_manage_key_and_one_without_does_not():
    manager = staff_with(*LIST_PERMS)
    for keyed in ({"access_key": KEY}, {"access_key_env": "DOCKSPACE_DNSBL_SPAMHAUS_KEY"}):
        with pytest.raises(ValidationError, match="manage_dnsbl_key"):
            add(manager, action=Dnsbl.ALERT, key_zone="mine.dq.test", **keyed)
    assert not Dnsbl.objects.filter(zone="mine.test").exists()
    # The positive control: the same list without a key, and a key zone on a keyless list, need nothing more.
    mine = add(manager, action=Dnsbl.ALERT, key_zone="mine.dq.test")
    assert dnsbl_lists.dnsbl_update(dnsbl=mine, actor=manager, key_zone="other.dq.test").key_zone == "other.dq.test"


def zone_of(length):
    """A valid zone of `length` characters (labels of at most 63)."""
    labels, left = [], length - len(".test")
    while left > 0:
        size = min(63, left - 1 if left > 63 else left)
        labels.append("z" * size)
        left -= size + 1
    return ".".join(labels) + ".test"


@pytest.mark.parametrize(
    "field, limit, extra",
    [("zone", 189, {}), ("key_zone", 124, {"access_key": KEY})],  # an IPv6 question (and key) then fits 253
)
def test_a_zone_too_long_for_every_question_to_fit_is_refused_naming_the_field(field, limit, extra):
    assert len(zone_of(limit + 1)) == limit + 1
    with pytest.raises(ValidationError) as e:
        add(SYSTEM, action=Dnsbl.ALERT, **{field: zone_of(limit + 1)}, **extra)
    assert list(e.value.message_dict) == [field] and "must fit DNS's 253" in e.value.message_dict[field][0]
    assert not Dnsbl.objects.filter(name="Mine").exists()
    # The positive control: the longest zone allowed is accepted.
    assert getattr(add(SYSTEM, action=Dnsbl.ALERT, **{field: zone_of(limit)}, **extra), field) == zone_of(limit)
