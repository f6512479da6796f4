"""Capturing a person's mail by a path other than their own address: one or more aliases or lists away,
through a '+' sub-address, or through a catch-all. Setup: example.com managed, root@example.com a
superuser WITHOUT a mailbox; "mail staff" hold only the mail app's permissions. Each attack goes through
the real admin or command next to the same path doing the legitimate thing."""

import shutil
import subprocess

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.management import CommandError
from django.test import Client

from accounts.models import User
from accounts.tests.factories import UserFactory
from mail import services
from mail.dms.sync import dms_sync
from mail.models import Alias, Group, Mailbox
from mail.tests.factories import database_fingerprint, dms_lines, make_mailbox, run
from mail.tests.test_admin import address_fields

pytestmark = pytest.mark.django_db
OUTSIDE = "thief@outside.test"


@pytest.fixture
def root():
    services.domain_create(name="example.com")
    return UserFactory(email="root@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def staff():
    actor = UserFactory(email="mail-actor@team.example", is_staff=True)
    actor.user_permissions.set(Permission.objects.filter(content_type__app_label="mail"))
    return actor


@pytest.fixture
def browser(staff):
    client = Client()
    client.force_login(staff)
    return client


def as_staff(staff, *args):
    return run(*args, "--as", staff.email)


def refused_as(staff, *args):
    before = database_fingerprint()
    with pytest.raises(CommandError) as error:
        run(*args, "--as", staff.email)
    assert database_fingerprint() == before
    return str(error.value)


def form_errors(response):
    assert response.status_code == 200, response.status_code
    return " ".join(str(e) for e in response.context["adminform"].form.errors.values())


def mailbox_form(address):
    pw = "a long spy pass 123"
    return {**address_fields(address), "full_name": "", "quota": "", "password1": pw, "password2": pw, "person": ""}


def postmap_query(settings, key, table):
    """What Postfix itself reads for key from a written table (None: no entry)."""
    if shutil.which("postmap") is None:
        pytest.skip("postmap (Debian package postfix) is not installed")
    result = subprocess.run(
        ["postmap", "-q", key, f"texthash:{settings.DMS_DIR / table}"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode in (0, 1), result.stderr
    return result.stdout.strip() if result.returncode == 0 else None


# --- 1. one hop (or more) away -----------------------------------------------------------------------


@pytest.fixture
def chain(root):
    """Set up by the host: root@ -> ops@ -> alice@outside; sales@ -> team@ -> alice@outside, nobody signs in there."""
    services.alias_create(address="ops@example.com", targets=["alice@outside.test"])
    services.alias_create(address="root@example.com", targets=["ops@example.com"])
    services.alias_create(address="team@example.com", targets=["alice@outside.test"])
    services.alias_create(address="sales@example.com", targets=["team@example.com"])


def test_mail_staff_may_not_repoint_an_alias_that_a_superusers_address_forwards_to_in_the_admin(chain, browser):
    team, ops = Alias.objects.get(address="team@example.com"), Alias.objects.get(address="ops@example.com")
    form = {"targets_text": OUTSIDE, "is_active": "on", "description": ""}
    response = browser.post(f"/admin/mail/alias/{team.pk}/change/", form)
    assert response.status_code == 302
    assert Alias.objects.get(pk=team.pk).target_list == [OUTSIDE]

    response = browser.post(f"/admin/mail/alias/{ops.pk}/change/", form)
    assert "ops@example.com would receive mail meant for root@example.com" in form_errors(response)
    assert Alias.objects.get(pk=ops.pk).target_list == ["alice@outside.test"]


def test_mail_staff_may_not_repoint_an_alias_two_hops_from_a_superuser_with_the_command(chain, staff):
    services.alias_create(address="deep@example.com", targets=["alice@outside.test"])
    services.alias_update(alias=Alias.objects.get(address="ops@example.com"), targets=["deep@example.com"])
    as_staff(staff, "alias", "update", "team@example.com", "--target", OUTSIDE)
    assert Alias.objects.get(address="team@example.com").target_list == [OUTSIDE]

    message = refused_as(staff, "alias", "update", "deep@example.com", "--target", OUTSIDE)
    assert message.startswith("targets: deep@example.com would receive mail meant for root@example.com")


def test_a_switched_off_alias_still_counts_so_switching_it_back_on_reveals_nothing_new(chain, staff):
    services.alias_update(alias=Alias.objects.get(address="root@example.com"), is_active=False)
    message = refused_as(staff, "alias", "update", "ops@example.com", "--target", OUTSIDE)
    assert "root@example.com" in message


def test_mail_staff_may_not_remove_an_alias_a_superusers_mail_flows_through(chain, staff):
    services.alias_update(
        alias=Alias.objects.get(address="root@example.com"), targets=["ops@example.com", "alice@outside.test"]
    )
    services.alias_update(
        alias=Alias.objects.get(address="sales@example.com"), targets=["team@example.com", "alice@outside.test"]
    )
    as_staff(staff, "alias", "remove", "team@example.com")
    assert not Alias.objects.filter(address="team@example.com").exists()

    message = refused_as(staff, "alias", "remove", "ops@example.com")
    assert "root@example.com" in message


@pytest.fixture
def lists(root):
    """root@ -> admins@ (a list of bob); helpers@ is a list of bob that nobody's sign-in forwards to."""
    bob = make_mailbox("bob@example.com")
    services.group_create(name="admins", address="admins@example.com", members=["bob@example.com"])
    services.group_create(name="helpers", address="helpers@example.com", members=["bob@example.com"])
    services.alias_create(address="root@example.com", targets=["admins@example.com"])
    return bob


def test_mail_staff_may_not_add_their_own_mailbox_to_a_list_a_superuser_forwards_to_in_the_admin(lists, browser):
    assert browser.post("/admin/mail/mailbox/add/", mailbox_form("spy@example.com")).status_code == 302
    spy = Mailbox.objects.get(address="spy@example.com").person
    bob = lists.person
    for name in ("helpers", "admins"):
        group = Group.objects.get(name=name)
        form = {
            "name": name,
            "description": "",
            "list_local_part": name,
            "list_domain": str(group.list_domain_id),
            "members": [bob.pk, spy.pk],
        }
        response = browser.post(f"/admin/mail/group/{group.pk}/change/", form)
        if name == "helpers":
            assert response.status_code == 302
            assert group.members.filter(pk=spy.pk).exists()
        else:
            assert "admins@example.com would receive mail meant for root@example.com" in form_errors(response)
            assert not group.members.filter(pk=spy.pk).exists()


def test_mail_staff_may_not_change_the_members_of_a_list_a_superuser_forwards_to_with_the_command(lists, staff):
    as_staff(staff, "mailbox", "add", "spy@example.com")
    as_staff(staff, "group", "update", "helpers", "--add", "spy@example.com")
    assert Group.objects.get(name="helpers").members.filter(email="spy@example.com").exists()

    message = refused_as(staff, "group", "update", "admins", "--add", "spy@example.com")
    assert message.startswith("members: admins@example.com would receive mail meant for root@example.com")
    message = refused_as(staff, "group", "update", "admins", "--remove", "bob@example.com")
    assert "root@example.com" in message
    as_staff(staff, "group", "update", "admins", "--description", "Admins")  # the members stay: allowed
    assert Group.objects.get(name="admins").description == "Admins"


def test_mail_staff_may_not_remove_a_list_a_superusers_mail_flows_through(lists, staff):
    services.alias_update(
        alias=Alias.objects.get(address="root@example.com"), targets=["admins@example.com", "alice@outside.test"]
    )
    message = refused_as(staff, "group", "remove", "admins")
    assert "root@example.com" in message
    as_staff(staff, "group", "remove", "helpers")
    assert not Group.objects.filter(name="helpers").exists()


def test_an_emptied_list_is_refused_at_smtp_so_a_catch_all_does_not_take_the_mail_sent_through_it(lists, settings):
    # The host (who may) adds a catch-all and empties the list that root@ forwards to.
    run("alias", "add", "@example.com", OUTSIDE)
    run("group", "update", "admins", "--remove", "bob@example.com")
    run("group", "update", "helpers", "--remove", "bob@example.com")
    run("group", "update", "helpers", "--add", "bob@example.com")
    dms_sync()
    virtual = dms_lines(settings, "postfix-virtual.cf")
    assert f"@example.com {OUTSIDE}" in virtual
    assert not [line for line in virtual if line.startswith(("admins@", "root@"))]
    assert postmap_query(settings, "helpers@example.com", "postfix-virtual.cf") == "bob@example.com"
    # Postfix refuses both at RCPT time: neither the list nor the alias that only led to it reaches the catch-all.
    assert postmap_query(settings, "admins@example.com", "postfix-receive-access.cf") == "REJECT"
    assert postmap_query(settings, "root@example.com", "postfix-receive-access.cf") == "REJECT"
    assert postmap_query(settings, "helpers@example.com", "postfix-receive-access.cf") is None


def test_an_alias_left_only_with_dead_targets_two_hops_away_is_refused_too(lists, settings):
    services.alias_create(address="ops@example.com", targets=["admins@example.com"])
    services.alias_update(alias=Alias.objects.get(address="root@example.com"), targets=["ops@example.com"])
    run("alias", "add", "@example.com", OUTSIDE)
    dms_sync()
    assert postmap_query(settings, "root@example.com", "postfix-virtual.cf") == "ops@example.com"
    run("group", "update", "admins", "--remove", "bob@example.com")
    dms_sync()
    for address in ("root@example.com", "ops@example.com", "admins@example.com"):
        assert postmap_query(settings, address, "postfix-virtual.cf") is None
        assert postmap_query(settings, address, "postfix-receive-access.cf") == "REJECT"


# --- 2. '+' sub-addresses ---------------------------------------------------------------------------


@pytest.fixture
def plus_admin(root):
    return UserFactory(email="admin+dockspace@example.com", is_staff=True, is_superuser=True)


def test_mail_staff_may_not_make_the_mailbox_a_superusers_plus_address_is_delivered_to(plus_admin, browser):
    assert browser.post("/admin/mail/mailbox/add/", mailbox_form("admin2@example.com")).status_code == 302
    response = browser.post("/admin/mail/mailbox/add/", mailbox_form("admin@example.com"))
    assert "would receive mail meant for admin+dockspace@example.com" in form_errors(response)
    assert not Mailbox.objects.filter(address="admin@example.com").exists()


def test_mail_staff_may_not_make_an_alias_or_list_where_a_superusers_plus_address_is_delivered(plus_admin, staff):
    make_mailbox("bob@example.com")
    as_staff(staff, "alias", "add", "admins@example.com", OUTSIDE)
    message = refused_as(staff, "alias", "add", "admin@example.com", OUTSIDE)
    assert message.startswith("address: admin@example.com would receive mail meant for admin+dockspace@example.com")
    message = refused_as(staff, "group", "add", "team", "--address", "admin@example.com", "--member", "bob@example.com")
    assert "admin+dockspace@example.com" in message


def test_a_superuser_may_give_a_plus_address_person_the_mailbox_their_mail_goes_to(plus_admin):
    services.mailbox_create(address="admin@example.com", person=plus_admin, actor=plus_admin)
    assert Mailbox.objects.get(address="admin@example.com").person == plus_admin


def test_a_catch_all_is_refused_over_a_plus_sign_in_unless_its_base_address_is_delivered(plus_admin, staff):
    message = refused_as(staff, "alias", "add", "@example.com", OUTSIDE)
    assert message.startswith("address: @example.com would receive mail meant for admin+dockspace@example.com")
    services.mailbox_create(address="admin@example.com", person=plus_admin)
    services.mailbox_create(address="root@example.com", person=User.objects.get(email="root@example.com"))
    as_staff(staff, "alias", "add", "@example.com", OUTSIDE)
    assert Alias.objects.filter(address="@example.com").exists()


# --- 3. a catch-all over what DMS does not write ------------------------------------------------------


def test_a_catch_all_is_refused_over_a_superusers_switched_off_alias(root, staff):
    services.alias_create(address="root@example.com", targets=["ops@outside.test"])
    as_staff(staff, "alias", "add", "@example.com", OUTSIDE)  # root@ has a line of its own: allowed
    as_staff(staff, "alias", "remove", "@example.com")

    services.alias_update(alias=Alias.objects.get(address="root@example.com"), is_active=False)
    message = refused_as(staff, "alias", "add", "@example.com", OUTSIDE)
    assert message.startswith("address: @example.com would receive mail meant for root@example.com")


def test_a_catch_all_the_host_adds_over_a_switched_off_alias_does_not_take_its_mail(root, settings):
    services.alias_create(address="root@example.com", targets=["ops@outside.test"], is_active=False)
    run("alias", "add", "@example.com", OUTSIDE)
    dms_sync()
    assert postmap_query(settings, "root@example.com", "postfix-virtual.cf") is None
    assert postmap_query(settings, "root@example.com", "postfix-receive-access.cf") == "REJECT"
    services.alias_update(alias=Alias.objects.get(address="root@example.com"), is_active=True)
    dms_sync()
    assert postmap_query(settings, "root@example.com", "postfix-virtual.cf") == "ops@outside.test"
    assert postmap_query(settings, "root@example.com", "postfix-receive-access.cf") is None


def test_a_catch_all_may_be_added_over_a_superusers_emptied_list_which_is_refused_at_smtp(root, staff):
    make_mailbox("bob@example.com")
    services.group_create(name="roots", address="root@example.com", members=["bob@example.com"])
    as_staff(staff, "alias", "add", "@example.com", OUTSIDE)
    as_staff(staff, "alias", "remove", "@example.com")
    # The list loses its only member: DMS writes no line for it, and refuses it at SMTP.
    services.group_update(group=Group.objects.get(name="roots"), remove=["bob@example.com"])
    as_staff(staff, "alias", "add", "@example.com", OUTSIDE)  # refused at SMTP, so not caught


# --- 4. a catch-all made before the person -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # each change commits, and its sync runs as it would in production
def test_a_person_created_after_a_catch_all_is_refused_at_smtp_not_caught(root, staff, settings):
    services.mailbox_create(address="root@example.com", person=root)
    make_mailbox("bob@example.com")
    as_staff(staff, "alias", "add", "@example.com", OUTSIDE)  # every sign-in on the domain has a mailbox
    assert postmap_query(settings, "@example.com", "postfix-virtual.cf") == OUTSIDE
    superuser = Client()
    superuser.force_login(UserFactory(email="boss@corp.test", is_staff=True, is_superuser=True))
    pw = "another pass phrase 44"
    form = {"email": "admin2@example.com", "full_name": "", "password1": pw, "password2": pw, "usable_password": "true"}
    assert superuser.post("/admin/accounts/user/add/", form).status_code == 302
    # The new person's commit synced the files: Postfix refuses admin2@ at RCPT time instead of the catch-all.
    assert postmap_query(settings, "admin2@example.com", "postfix-receive-access.cf") == "REJECT"
    assert postmap_query(settings, "admin2@example.com", "postfix-virtual.cf") is None
    # Mailboxes keep their mail; the catch-all still takes unknown addresses.
    assert postmap_query(settings, "bob@example.com", "postfix-receive-access.cf") is None
    assert postmap_query(settings, "bob@example.com", "postfix-virtual.cf") == "bob@example.com"
    assert postmap_query(settings, "nobody@example.com", "postfix-receive-access.cf") is None


@pytest.mark.django_db(transaction=True)
def test_a_sign_in_address_changed_onto_or_off_a_catch_all_domain_updates_the_refusals(root, settings):
    services.mailbox_create(address="root@example.com", person=root)
    run("alias", "add", "@example.com", OUTSIDE)
    person = UserFactory(email="carol@corp.test")
    assert postmap_query(settings, "carol@example.com", "postfix-receive-access.cf") is None
    person.email = "carol@example.com"
    person.save()
    assert postmap_query(settings, "carol@example.com", "postfix-receive-access.cf") == "REJECT"
    person.email = "carol@corp.test"
    person.save()
    assert postmap_query(settings, "carol@example.com", "postfix-receive-access.cf") is None
    dave = UserFactory(email="dave@example.com")
    assert postmap_query(settings, "dave@example.com", "postfix-receive-access.cf") == "REJECT"
    dave.delete()
    assert postmap_query(settings, "dave@example.com", "postfix-receive-access.cf") is None


def test_staff_who_manage_people_may_not_remove_a_mailbox_a_superusers_mail_flows_into(root):
    actor = UserFactory(email="people-actor@team.example", is_staff=True)
    actor.user_permissions.set(
        Permission.objects.filter(content_type__app_label="mail")
        | Permission.objects.filter(codename="change_user", content_type__app_label="accounts")
    )
    make_mailbox("bob@example.com")
    make_mailbox("carol@example.com")
    services.alias_create(address="root@example.com", targets=["bob@example.com", "alice@outside.test"])
    as_staff(actor, "mailbox", "remove", "carol@example.com")
    assert not Mailbox.objects.filter(address="carol@example.com").exists()

    message = refused_as(actor, "mailbox", "remove", "bob@example.com")
    assert message.startswith("address: removing bob@example.com changes where mail meant for root@example.com goes")


# --- 4. removing the line at someone's own sign-in address --------------------------------------------


def test_mail_staff_may_not_remove_the_alias_at_a_superusers_plus_sign_in_so_its_base_mailbox_gets_the_mail(
    plus_admin, staff, browser
):
    services.alias_create(address="admin+dockspace@example.com", targets=["admin-real@outside.test"])
    services.alias_create(address="bob+x@example.com", targets=["bob-real@outside.test"])
    as_staff(staff, "alias", "remove", "bob+x@example.com")  # nobody signs in there: allowed
    assert not Alias.objects.filter(address="bob+x@example.com").exists()

    message = refused_as(staff, "alias", "remove", "admin+dockspace@example.com")
    assert message.startswith(
        "address: removing admin+dockspace@example.com changes where mail meant for admin+dockspace@example.com goes"
    )
    alias = Alias.objects.get(address="admin+dockspace@example.com")
    response = browser.post(
        "/admin/mail/alias/", {"action": "delete_selected", "_selected_action": [alias.pk], "post": "yes"}
    )
    assert response.status_code in (200, 302, 403)
    assert Alias.objects.filter(address="admin+dockspace@example.com").exists()


def test_mail_staff_may_not_move_or_remove_a_list_at_a_superusers_sign_in(root, staff):
    make_mailbox("bob@example.com")
    services.group_create(name="boss", address="root@example.com", members=["bob@example.com"])
    services.group_create(name="team", address="team@example.com", members=["bob@example.com"])
    as_staff(staff, "group", "update", "team", "--address", "crew@example.com")  # control
    assert Group.objects.get(name="team").list_address == "crew@example.com"

    assert "root@example.com" in refused_as(staff, "group", "update", "boss", "--address", "other@example.com")
    assert "root@example.com" in refused_as(staff, "group", "remove", "boss")
    assert Group.objects.get(name="boss").list_address == "root@example.com"


def test_a_switched_off_alias_at_a_superusers_plus_sign_in_does_not_hide_the_base_mailbox_capture(plus_admin, staff):
    services.alias_create(address="admin+dockspace@example.com", targets=["admin-real@outside.test"])
    message = refused_as(staff, "alias", "update", "admin+dockspace@example.com", "--inactive")
    assert "admin+dockspace@example.com" in message
    services.alias_update(alias=Alias.objects.get(address="admin+dockspace@example.com"), is_active=False)

    with pytest.raises(ValidationError) as error:
        services.mailbox_create(address="admin@example.com", password="a long spy pass 123", actor=staff)
    assert "would receive mail meant for admin+dockspace@example.com" in str(error.value)
    assert not Mailbox.objects.filter(address="admin@example.com").exists()
    services.mailbox_create(address="bob@example.com", password="a long spy pass 123", actor=staff)  # control
