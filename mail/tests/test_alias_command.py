"""manage.py alias: aliases, catch-alls and forward-and-keep-a-copy as postfix-virtual.cf gets them,
and the targets, loops and domains it must refuse."""

import contextlib
import json
import shutil
import subprocess

import pytest
from django.core.management.base import CommandError

from accounts.models import AuditEvent
from mail import services
from mail.dms.sync import dms_sync
from mail.models import Alias
from mail.tests.factories import (
    PASSWORD,
    dms_lines,
    make_domain,
    make_mailbox,
    make_tier,
    refused,
    run,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob():
    make_domain("example.com")
    return make_mailbox("bob@example.com")


def virtual_lines(settings):
    dms_sync()
    return dms_lines(settings, "postfix-virtual.cf")


def postmap_query(settings, key):
    """What Postfix itself reads from the written file for key (None when it has no entry)."""
    if shutil.which("postmap") is None:
        pytest.skip("postmap (Debian package postfix) is not installed")
    result = subprocess.run(
        ["postmap", "-q", key, f"texthash:{settings.DMS_DIR / 'postfix-virtual.cf'}"], capture_output=True, text=True
    )
    assert result.returncode in (0, 1), result.stderr
    return result.stdout.strip() if result.returncode == 0 else None


def test_add_forwards_an_address_to_local_and_external_targets(bob, settings):
    out = run("alias", "add", "Sales@Example.com", "bob@example.com", "Partner@Elsewhere.ORG")
    assert out.strip() == "Created sales@example.com -> bob@example.com, partner@elsewhere.org."
    assert "sales@example.com bob@example.com,partner@elsewhere.org" in virtual_lines(settings)
    assert postmap_query(settings, "sales@example.com") == "bob@example.com,partner@elsewhere.org"
    event = AuditEvent.objects.get(action="mail.alias.add")
    assert (event.actor_label, event.target_label) == ("manage.py alias", "sales@example.com")


def test_add_with_keep_copy_forwards_a_mailbox_and_keeps_a_copy_in_it(bob, settings):
    run("alias", "add", "bob@example.com", "bob@elsewhere.org", "--keep-copy")
    assert "bob@example.com bob@elsewhere.org,bob@example.com" in virtual_lines(settings)


def test_keep_copy_needs_a_mailbox_at_the_address(bob):
    message = refused("alias", "add", "nobody@example.com", "bob@elsewhere.org", "--keep-copy")
    assert message == "--keep-copy: keep a copy needs a mailbox at nobody@example.com; there is none."


def test_an_alias_on_a_mailbox_address_without_keep_copy_is_refused_with_the_hint(bob):
    message = refused("alias", "add", "bob@example.com", "bob@elsewhere.org")
    assert message.startswith("address: bob@example.com is already a mailbox")
    assert "keep a copy" in message


def test_a_catch_all_takes_unknown_addresses_but_not_the_real_mailboxes(bob, settings):
    make_mailbox("ann@example.com")
    run("alias", "add", "@Example.com", "bob@example.com")
    lines = virtual_lines(settings)
    assert "@example.com bob@example.com" in lines
    assert "ann@example.com ann@example.com" in lines
    assert "bob@example.com bob@example.com" in lines
    assert postmap_query(settings, "ann@example.com") == "ann@example.com"
    assert postmap_query(settings, "@example.com") == "bob@example.com"
    assert json.loads(run("alias", "show", "@example.com", "--json"))["catch_all"] is True


def test_an_alias_on_an_unmanaged_domain_is_refused(bob):
    message = refused("alias", "add", "sales@unmanaged.org", "bob@example.com")
    assert message.startswith("address: unmanaged.org is not a domain Dockspace manages")


@pytest.mark.parametrize(
    "target, rule",
    [
        ("bob", "targets: 'bob' is not an email address"),
        ("@elsewhere.org", "targets: '@elsewhere.org' is not an address: a target must be a full address"),
        ("bob smith@elsewhere.org", "targets: spaces, line breaks and control characters are not allowed"),
        ("bob|x@elsewhere.org", "targets: a '|' is not allowed"),
        ("bob:x@elsewhere.org", "targets: a ':' is not allowed"),
        ("a@elsewhere.org,b@elsewhere.org", "targets: a ',' is not allowed"),
        ("a@elsewhere.org\nb@elsewhere.org", "targets: spaces, line breaks and control characters are not allowed"),
        ("ghost@example.com", "targets: ghost@example.com is on a managed domain but is not a mailbox, alias or list"),
        ("sales@example.com", "targets: sales@example.com cannot forward to itself"),
    ],
)
def test_add_refuses_a_bad_target_naming_the_rule(bob, target, rule):
    assert rule in refused("alias", "add", "sales@example.com", target)


@pytest.mark.parametrize(
    "address, rule",
    [
        ("sa les@example.com", "address: spaces, line breaks and control characters are not allowed"),
        ("sales|x@example.com", "address: a '|' is not allowed"),
        ("sales:x@example.com", "address: a ':' is not allowed"),
        ("sales,x@example.com", "address: a ',' is not allowed"),
        ("sales\n@example.com", "address: spaces, line breaks and control characters are not allowed"),
        ("@exam ple.com", "address: spaces, line breaks and control characters are not allowed"),
    ],
)
def test_add_refuses_a_bad_alias_address_naming_the_rule(bob, address, rule):
    assert rule in refused("alias", "add", address, "bob@example.com")


def test_a_duplicate_alias_differing_only_in_case_is_refused(bob):
    run("alias", "add", "sales@example.com", "bob@example.com")
    assert refused("alias", "add", "SALES@example.com", "x@elsewhere.org") == (
        "address: sales@example.com is already an alias."
    )


def test_a_loop_between_two_aliases_is_refused_naming_the_loop(bob):
    run("alias", "add", "a@example.com", "x@elsewhere.org")
    run("alias", "add", "b@example.com", "a@example.com")
    message = refused("alias", "update", "a@example.com", "--target", "b@example.com")
    assert message == "targets: this would make a forwarding loop: a@example.com -> b@example.com -> a@example.com."


def test_a_loop_through_a_keep_copy_mailbox_is_refused(bob):
    run("alias", "add", "a@example.com", "bob@example.com")
    message = refused("alias", "add", "bob@example.com", "a@example.com", "--keep-copy")
    assert "forwarding loop: bob@example.com -> a@example.com -> bob@example.com." in message


def test_reactivating_an_alias_that_would_close_a_loop_is_refused(bob):
    run("alias", "add", "a@example.com", "x@elsewhere.org")
    run("alias", "add", "b@example.com", "a@example.com")
    run("alias", "update", "b@example.com", "--inactive")
    run("alias", "update", "a@example.com", "--target", "b@example.com")
    message = refused("alias", "update", "b@example.com", "--active")
    assert "forwarding loop" in message


def test_removing_an_alias_never_leaves_another_alias_forwarding_to_nothing(bob, settings):
    run("alias", "add", "b@example.com", "x@elsewhere.org")
    run("alias", "add", "a@example.com", "b@example.com", "bob@example.com")
    with contextlib.suppress(CommandError):  # refusing (b is still a target of a) keeps the files consistent too
        run("alias", "remove", "b@example.com")
    keys = {line.split()[0] for line in virtual_lines(settings)}
    targets = {t for line in virtual_lines(settings) for t in line.split()[1].split(",")}
    local_targets = {t for t in targets if t.endswith("@example.com")}
    assert local_targets <= keys | {"bob@example.com"}


def test_past_the_tier_limit_an_alias_is_refused_naming_the_limit():
    make_domain("example.com", tier=make_tier(name="tiny", max_aliases=1))
    run("alias", "add", "a@example.com", "x@elsewhere.org")
    message = refused("alias", "add", "b@example.com", "x@elsewhere.org")
    assert message == "address: tier tiny allows at most 1 aliases on example.com (max aliases)."


def test_update_replaces_the_targets_and_an_inactive_alias_leaves_the_file(bob, settings):
    run("alias", "add", "sales@example.com", "x@elsewhere.org")
    run("alias", "update", "sales@example.com", "--target", "bob@example.com", "--target", "y@elsewhere.org")
    assert "sales@example.com bob@example.com,y@elsewhere.org" in virtual_lines(settings)
    run("alias", "update", "sales@example.com", "--inactive")
    assert not any(line.startswith("sales@") for line in virtual_lines(settings))
    assert "nothing to change" in refused("alias", "update", "sales@example.com")


def test_update_refuses_active_and_inactive_together_and_changes_nothing(bob):
    run("alias", "add", "sales@example.com", "x@elsewhere.org")
    assert "not allowed with argument" in refused("alias", "update", "sales@example.com", "--active", "--inactive")
    assert Alias.objects.get(address="sales@example.com").is_active


def test_list_and_show_json_describe_each_alias(bob):
    run("alias", "add", "sales@example.com", "bob@example.com", "x@elsewhere.org", "--description", "Sales desk")
    run("alias", "add", "bob@example.com", "bob@elsewhere.org", "--keep-copy")
    rows = json.loads(run("alias", "list", "--json"))
    assert [(r["address"], r["targets"], r["keep_copy"]) for r in rows] == [
        ("bob@example.com", ["bob@elsewhere.org"], True),
        ("sales@example.com", ["bob@example.com", "x@elsewhere.org"], False),
    ]
    data = json.loads(run("alias", "show", "Sales@example.com", "--json"))
    assert data == {
        "address": "sales@example.com",
        "catch_all": False,
        "targets": ["bob@example.com", "x@elsewhere.org"],
        "keep_copy": False,
        "active": True,
        "description": "Sales desk",
    }


def test_list_filters_by_domain_given_in_any_case_or_in_unicode(bob):
    make_domain("bücher.de")
    run("alias", "add", "info@bücher.de", "bob@example.com")
    run("alias", "add", "sales@example.com", "bob@example.com")
    rows = json.loads(run("alias", "list", "--domain", "BÜCHER.de", "--json"))
    assert [r["address"] for r in rows] == ["info@xn--bcher-kva.de"]
    assert [r["address"] for r in json.loads(run("alias", "list", "--domain", "Example.COM", "--json"))] == [
        "sales@example.com"
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["add", "@exam|ple.com", "bob@example.com"], "address: a '|' is not allowed in a domain name."),
        (["show", "@exam|ple.com"], "ADDRESS: a '|' is not allowed in a domain name."),
        (["list", "--domain", "exam|ple.com"], "--domain: a '|' is not allowed in a domain name."),
        (["add", "sa|les@example.com", "bob@example.com"], "address: a '|' is not allowed in an address."),
    ],
)
def test_a_bad_domain_is_refused_as_a_domain_name_and_a_bad_address_as_an_address(bob, args, message):
    assert refused("alias", *args) == message


def test_remove_deletes_the_alias_and_its_line(bob, settings):
    run("alias", "add", "sales@example.com", "bob@example.com")
    assert "Removed sales@example.com." in run("alias", "remove", "sales@example.com")
    assert not Alias.objects.exists()
    assert not any(line.startswith("sales@") for line in virtual_lines(settings))
    assert refused("alias", "remove", "sales@example.com") == "ADDRESS: no alias 'sales@example.com'."


def test_an_alias_of_an_inactive_domain_is_not_written(bob, settings):
    make_domain("example.org", is_active=False)
    services.alias_create(address="info@example.org", targets=["bob@example.com"])
    assert not any(line.startswith("info@") for line in virtual_lines(settings))


@pytest.fixture
def mail_only_staff():
    from django.contrib.auth.models import Permission

    from accounts.models import User

    staff = User.objects.create_user("mailstaff@example.com", PASSWORD, is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="mail"))
    return staff.email


def test_add_as_mail_only_staff_refuses_aliases_that_capture_a_superusers_mail(mail_only_staff):
    from accounts.models import User

    make_domain("example.com")
    root = User.objects.create_superuser("root@example.com", PASSWORD)
    as_staff = ("--as", mail_only_staff)

    on_sign_in = refused("alias", "add", "root@example.com", "thief@elsewhere.test", *as_staff)
    catch_all = refused("alias", "add", "@example.com", "thief@elsewhere.test", *as_staff)
    services.mailbox_create(address="root@example.com", person=root)
    keep_copy = refused("alias", "add", "root@example.com", "thief@elsewhere.test", "--keep-copy", *as_staff)

    assert "address: root@example.com would receive mail meant for root@example.com" in on_sign_in
    assert "address: @example.com would receive mail meant for" in catch_all
    assert "--keep-copy: root@example.com would receive mail meant for root@example.com" in keep_copy
    # Positive controls: the same staff member adds an alias nobody signs in with, and the host may do all.
    assert "Created info@example.com" in run("alias", "add", "info@example.com", "help@elsewhere.test", *as_staff)
    assert "Created root@example.com" in run("alias", "add", "root@example.com", "r@elsewhere.test", "--keep-copy")


def test_remove_as_mail_only_staff_cannot_hand_a_sign_in_address_to_a_catch_all(mail_only_staff):
    from accounts.models import User

    make_domain("example.com")
    User.objects.create_superuser("root@example.com", PASSWORD)
    services.alias_create(address="root@example.com", targets=["root@elsewhere.test"])
    services.alias_create(address="info@example.com", targets=["help@elsewhere.test"])
    services.alias_create(address="@example.com", targets=["postmaster@elsewhere.test"])

    message = refused("alias", "remove", "root@example.com", "--as", mail_only_staff)
    run("alias", "remove", "info@example.com", "--as", mail_only_staff)  # positive control

    assert "address: without this alias, the catch-all @example.com would receive mail meant for root@" in message
    assert sorted(Alias.objects.values_list("address", flat=True)) == ["@example.com", "root@example.com"]
