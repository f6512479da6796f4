"""manage.py mailbox: add, list, show, update, remove, suspend, disable and resume, checked in the
database, at sign-in and in the DMS files the next sync writes."""

import json
import shutil
import subprocess

import pytest
from django.contrib.auth import authenticate
from django.core.management.base import CommandError

from accounts.mail_hashes import verify_mail_hash
from accounts.models import AuditEvent, User
from mail import services
from mail.dms.parse import parse_accounts
from mail.dms.sync import dms_sync
from mail.models import Mailbox
from mail.tests.factories import (
    PASSWORD,
    dms_file,
    dms_lines,
    make_domain,
    make_mailbox,
    make_tier,
    refused,
    run,
)

pytestmark = pytest.mark.django_db
G = 1024**3


@pytest.fixture
def domain():
    return make_domain("example.com", default_quota=2 * G)


def suspended_in_dms(settings, address):
    """Whether the account line refuses sign-in (the renderer's passdb field, read back by the parser)."""
    dms_sync()
    (account,) = [a for a in parse_accounts(dms_file(settings, "postfix-accounts.cf"))[0] if a.address == address]
    return account.is_suspended


def account_line(settings, address):
    dms_sync()
    lines = [line for line in dms_lines(settings, "postfix-accounts.cf") if line.startswith(address + "|")]
    assert len(lines) <= 1
    return lines[0] if lines else None


# --- add -----------------------------------------------------------------------------------------


def test_add_with_a_password_from_stdin_lets_the_person_sign_in_to_dockspace_and_dovecot(domain, settings):
    out = run("mailbox", "add", "Bob@Example.com", "--name", "Bob Stone", "--password-stdin", stdin=PASSWORD + "\n")
    assert "Created bob@example.com (quota 2G)." in out
    person = User.objects.get(email="bob@example.com")
    assert person.full_name == "Bob Stone"
    assert authenticate(email="bob@example.com", password=PASSWORD) == person
    assert authenticate(email="bob@example.com", password=PASSWORD + "x") is None

    address, hashed = account_line(settings, "bob@example.com").split("|")
    assert address == "bob@example.com"
    assert hashed.startswith("{SHA512-CRYPT}$6$")
    assert "bob@example.com:2G" in dms_lines(settings, "dovecot-quotas.cf")
    if shutil.which("doveadm") is None:
        pytest.skip("doveadm (Debian package dovecot-core) is not installed")
    for password, verified in ((PASSWORD, True), (PASSWORD + "x", False)):
        result = subprocess.run(["doveadm", "pw", "-t", hashed, "-p", password], capture_output=True, text=True)
        assert (result.returncode == 0 and "(verified)" in result.stdout) is verified, result.stderr


def test_add_without_a_password_writes_an_account_line_nobody_can_sign_in_with(domain, settings):
    out = run("mailbox", "add", "nopw@example.com")
    assert "No password yet" in out
    person = User.objects.get(email="nopw@example.com")
    assert not person.has_usable_password()
    assert account_line(settings, "nopw@example.com").startswith("nopw@example.com|{SHA512-CRYPT}$6$")


def test_add_writes_an_audit_event_naming_the_command(domain):
    run("mailbox", "add", "bob@example.com")
    event = AuditEvent.objects.get(action="mail.mailbox.add")
    assert (event.actor_label, event.target_label) == ("manage.py mailbox", "bob@example.com")


@pytest.mark.parametrize("quota, expected", [("10k", 10 * 1024), ("1536M", 1536 * 1024**2), ("0", 0)])
def test_add_takes_a_quota_written_the_dms_way(domain, quota, expected):
    run("mailbox", "add", "bob@example.com", "--quota", quota)
    assert Mailbox.objects.get().quota == expected


@pytest.mark.parametrize(
    "quota, hint",
    [
        ("10 GB", "Write it without spaces, like 10G"),
        ("-1", "A quota cannot be negative."),
        ("10K", "Write a lower-case k: 10k."),
        ("1.5G", "For example 10G or 1536M, not 10GB or 1.5G."),
        ("10", "Add a unit letter, like 10M"),
    ],
)
def test_add_refuses_a_bad_quota_with_a_hint(domain, quota, hint):
    message = refused("mailbox", "add", "bob@example.com", "--quota", quota)
    assert message.startswith(f"--quota: '{quota}' is not a quota: use a whole number followed by one unit letter")
    assert hint in message


def test_add_refuses_an_address_on_a_domain_dockspace_does_not_manage(domain):
    message = refused("mailbox", "add", "bob@unmanaged.org")
    assert message.startswith("address: unmanaged.org is not a domain Dockspace manages")


def test_add_refuses_an_address_that_is_already_an_alias(domain):
    services.alias_create(address="sales@example.com", targets=["someone@elsewhere.org"])
    message = refused("mailbox", "add", "sales@example.com")
    assert message == "address: sales@example.com is already an alias."


def test_add_refuses_a_duplicate_that_differs_only_in_case(domain):
    run("mailbox", "add", "bob@example.com")
    assert refused("mailbox", "add", "BOB@Example.COM") == "address: bob@example.com is already a mailbox."


@pytest.mark.parametrize(
    "address, rule",
    [
        ("bob smith@example.com", "spaces, line breaks and control characters are not allowed"),
        ("bob|x@example.com", "a '|' is not allowed"),
        ("bob:x@example.com", "a ':' is not allowed"),
        ("bob,x@example.com", "a ',' is not allowed"),
        ("bob\n@example.com", "spaces, line breaks and control characters are not allowed"),
        ("bob", "is not an email address"),
        ("bob@@example.com", "is not an email address"),
    ],
)
def test_add_refuses_a_bad_address_naming_the_rule(domain, address, rule):
    message = refused("mailbox", "add", address)
    assert message.startswith("address: ")
    assert rule in message


def test_add_refuses_a_weak_password_and_creates_no_person(domain):
    message = refused("mailbox", "add", "bob@example.com", "--password-stdin", stdin="short\n")
    assert message.startswith("password: ")
    assert "too short" in message
    assert not User.objects.filter(email="bob@example.com").exists()


def test_add_refuses_an_empty_stdin_for_password_stdin(domain):
    message = refused("mailbox", "add", "bob@example.com", "--password-stdin", stdin="")
    assert message.startswith("password: --password-stdin read nothing")


def test_add_past_the_tier_limit_is_refused_naming_the_limit():
    make_domain("example.com", tier=make_tier(name="solo", max_mailboxes=1))
    run("mailbox", "add", "one@example.com")
    message = refused("mailbox", "add", "two@example.com")
    assert message == "address: tier solo allows at most 1 mailboxes on example.com (max mailboxes)."


# --- list, show, update ----------------------------------------------------------------------------


def test_list_and_show_json_describe_the_mailbox_and_what_reaches_it(domain):
    make_mailbox("bob@example.com", full_name="Bob Stone")
    services.alias_create(address="sales@example.com", targets=["bob@example.com"])
    services.group_create(name="team", address="team@example.com", members=["bob@example.com"])
    rows = json.loads(run("mailbox", "list", "--json"))
    assert [(r["address"], r["name"], r["quota"], r["state"]) for r in rows] == [
        ("bob@example.com", "Bob Stone", "2G", "active")
    ]
    data = json.loads(run("mailbox", "show", "BOB@example.com", "--json"))
    assert data["person"] == "bob@example.com"
    assert (data["aliases"], data["lists"], data["groups"]) == (["sales@example.com"], ["team@example.com"], ["team"])


def test_list_filters_by_domain(domain):
    make_mailbox("bob@example.com")
    make_mailbox("ann@example.org")
    out = run("mailbox", "list", "--domain", "Example.ORG")
    assert "ann@example.org" in out and "bob@example.com" not in out


def test_list_finds_the_mailboxes_of_an_international_domain_by_its_unicode_name(domain):
    make_mailbox("anna@bücher.de")
    rows = json.loads(run("mailbox", "list", "--domain", "Bücher.de", "--json"))
    assert [r["address"] for r in rows] == ["anna@xn--bcher-kva.de"]
    assert refused("mailbox", "list", "--domain", "bad domain").startswith("--domain: spaces")


def test_update_with_a_password_from_stdin_changes_the_dms_hash(domain, settings):
    make_mailbox("bob@example.com")
    old_line = account_line(settings, "bob@example.com")
    run("mailbox", "update", "bob@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    new_line = account_line(settings, "bob@example.com")
    assert new_line != old_line
    assert verify_mail_hash(PASSWORD, new_line.split("|")[1])
    assert User.objects.get(email="bob@example.com").has_usable_password()


def test_show_refuses_an_unknown_mailbox(domain):
    assert refused("mailbox", "show", "ghost@example.com") == "ADDRESS: no mailbox 'ghost@example.com'."


def test_update_changes_the_quota_and_the_name(domain, settings):
    make_mailbox("bob@example.com")
    run("mailbox", "update", "bob@example.com", "--quota", "512M", "--name", "Robert")
    mailbox = Mailbox.objects.select_related("person").get()
    assert (mailbox.quota, mailbox.person.full_name) == (512 * 1024**2, "Robert")
    dms_sync()
    assert "bob@example.com:512M" in dms_lines(settings, "dovecot-quotas.cf")


def test_update_refuses_when_there_is_nothing_to_change_or_the_quota_is_bad(domain):
    make_mailbox("bob@example.com")
    assert "nothing to change" in refused("mailbox", "update", "bob@example.com")
    assert "Write a lower-case k: 5k." in refused("mailbox", "update", "bob@example.com", "--quota", "5K")


# --- suspend, disable, resume --------------------------------------------------------------------


def test_suspend_keeps_delivery_but_blocks_sign_in_and_sending_until_resumed(domain, settings):
    make_mailbox("bob@example.com", password=PASSWORD)
    assert "suspended" in run("mailbox", "suspend", "bob@example.com")
    assert authenticate(email="bob@example.com", password=PASSWORD) is None
    assert suspended_in_dms(settings, "bob@example.com")
    assert account_line(settings, "bob@example.com").count("|") == 2
    assert dms_lines(settings, "postfix-send-access.cf") == ["bob@example.com\tREJECT"]
    assert dms_lines(settings, "postfix-receive-access.cf") == []
    assert "was already suspended" in run("mailbox", "suspend", "bob@example.com")

    run("mailbox", "resume", "bob@example.com")
    assert authenticate(email="bob@example.com", password=PASSWORD) is not None
    assert not suspended_in_dms(settings, "bob@example.com")
    assert account_line(settings, "bob@example.com").count("|") == 1
    assert dms_lines(settings, "postfix-send-access.cf") == []
    assert [e.action for e in AuditEvent.objects.filter(action__startswith="mail.mailbox.").order_by("id")] == [
        "mail.mailbox.add",
        "mail.mailbox.suspend",
        "mail.mailbox.resume",
    ]


def test_disable_removes_the_account_line_and_rejects_incoming_mail(domain, settings):
    make_mailbox("bob@example.com")
    make_mailbox("ann@example.com")
    run("mailbox", "disable", "bob@example.com")
    assert Mailbox.objects.get(address="bob@example.com").state == Mailbox.DISABLED
    assert account_line(settings, "bob@example.com") is None
    assert account_line(settings, "ann@example.com") is not None
    assert dms_lines(settings, "postfix-receive-access.cf") == ["bob@example.com\tREJECT"]
    assert "bob@example.com" not in "\n".join(dms_lines(settings, "dovecot-quotas.cf"))

    run("mailbox", "resume", "bob@example.com")
    assert account_line(settings, "bob@example.com") is not None
    assert dms_lines(settings, "postfix-receive-access.cf") == []


def test_state_changes_refuse_an_unknown_mailbox(domain):
    for verb in ("suspend", "disable", "resume"):
        assert refused("mailbox", verb, "ghost@example.com") == "ADDRESS: no mailbox 'ghost@example.com'."


# --- remove --------------------------------------------------------------------------------------


def test_remove_keeps_the_person_and_drops_the_account_line(domain, settings):
    make_mailbox("bob@example.com")
    make_mailbox("ann@example.com")
    out = run("mailbox", "remove", "bob@example.com")
    assert "stored mail stays on the DMS volume" in out
    assert not Mailbox.objects.filter(address="bob@example.com").exists()
    assert User.objects.filter(email="bob@example.com").exists()
    assert account_line(settings, "bob@example.com") is None


def test_remove_with_delete_person_deletes_the_person_too(domain):
    make_mailbox("bob@example.com")
    run("mailbox", "remove", "bob@example.com", "--delete-person")
    assert not User.objects.filter(email="bob@example.com").exists()
    assert AuditEvent.objects.filter(action="person.remove", target_label="bob@example.com").exists()


def test_remove_takes_the_mailbox_out_of_the_aliases_that_pointed_at_it(domain):
    make_mailbox("bob@example.com")
    services.alias_create(address="sales@example.com", targets=["bob@example.com", "x@elsewhere.org"])
    run("mailbox", "remove", "bob@example.com")
    assert json.loads(run("alias", "show", "sales@example.com", "--json"))["targets"] == ["x@elsewhere.org"]


def test_export_to_a_directory_that_does_not_exist_is_a_clean_error(domain, tmp_path):
    make_mailbox("bob@example.com")
    with pytest.raises(CommandError) as e:
        run("mailbox", "export", "--csv", str(tmp_path / "missing" / "people.csv"))
    assert str(e.value).startswith("--csv: cannot write")


@pytest.fixture
def mail_clerk_email():
    """A staff member with the mail app's permissions only."""
    from django.contrib.auth.models import Permission

    clerk = User.objects.create_user("clerk@example.com", PASSWORD, is_staff=True)
    clerk.user_permissions.set(Permission.objects.filter(content_type__app_label="mail"))
    return clerk.email


@pytest.mark.parametrize("spelling", ["root@example.com", "root@example.com.", "root@ｅxample.com"])
def test_add_as_mail_only_staff_never_adopts_an_existing_person(domain, mail_clerk_email, spelling):
    User.objects.create_superuser("root@example.com", PASSWORD)

    message = refused(
        "mailbox", "add", spelling, "--password-stdin", "--as", mail_clerk_email, stdin="takeover pw 77\n"
    )

    assert "address: root@example.com is the sign-in address of the existing person root@example.com" in message
    message = refused(
        "mailbox", "add", spelling, "--person", "root@example.com", "--as", mail_clerk_email, stdin="takeover pw 77\n"
    )
    assert "person: you may not act on the sign-in of root@example.com" in message
    assert authenticate(email="root@example.com", password=PASSWORD) is not None


def test_add_as_mail_only_staff_creates_a_new_persons_mailbox(domain, mail_clerk_email):
    out = run("mailbox", "add", "new@example.com", "--as", mail_clerk_email)

    assert "Created new@example.com" in out
    event = AuditEvent.objects.get(action="mail.mailbox.add")
    assert event.actor_label == "manage.py mailbox --as clerk@example.com" and event.actor.email == mail_clerk_email


def test_add_with_person_adopts_them_from_the_host_and_says_so_in_the_audit(domain):
    person = User.objects.create_user("ann@example.com", PASSWORD)

    run("mailbox", "add", "ann@example.com", "--person", "ann@example.com")

    assert Mailbox.objects.get().person == person
    assert authenticate(email="ann@example.com", password=PASSWORD) == person
    event = AuditEvent.objects.get(action="mail.mailbox.add")
    assert "adopting the existing person ann@example.com" in event.description


def test_add_with_person_and_a_password_replaces_theirs_with_its_own_audit_entry(domain):
    person = User.objects.create_user("ann@example.com", PASSWORD)

    run("mailbox", "add", "ann@example.com", "--person", "ann@example.com", "--password-stdin", stdin="a new pass 42\n")

    assert authenticate(email="ann@example.com", password="a new pass 42") == person
    assert authenticate(email="ann@example.com", password=PASSWORD) is None
    event = AuditEvent.objects.get(action="password.set", target_label="ann@example.com")
    assert event.description.startswith("Password replaced for web and mail while adopting them for the mailbox")
    assert event.actor_label.startswith("manage.py mailbox")


def test_add_refuses_an_empty_person_instead_of_creating_a_new_one(domain):
    message = refused("mailbox", "add", "ann@example.com", "--person", "")
    assert message == "--person: an email address is required; leave --person out to create a new person."


@pytest.mark.parametrize("command", ["mailbox", "alias"])
def test_list_refuses_an_empty_domain_instead_of_listing_everything(domain, command):
    make_mailbox("bob@example.com")
    assert refused(command, "list", "--domain", "") == "--domain: a domain name is required."


def test_update_with_an_empty_name_clears_the_name(domain):
    make_mailbox("bob@example.com", full_name="Bob")
    run("mailbox", "update", "bob@example.com", "--name", "")
    assert User.objects.get(email="bob@example.com").full_name == ""


def test_an_empty_as_is_refused_instead_of_acting_as_the_host(domain):
    message = refused("mailbox", "add", "new@example.com", "--as", "")
    assert message == "--as: an email address is required; leave --as out to act as the host."
    assert not Mailbox.objects.exists()


def test_as_must_name_an_active_staff_member(domain):
    User.objects.create_user("ann@example.com", PASSWORD)

    assert "--as: 'ann@example.com' is not an active staff member" in refused(
        "mailbox", "add", "new@example.com", "--as", "ann@example.com"
    )


@pytest.mark.parametrize(
    ("command", "read"),
    [
        ("mailbox", ["list"]),
        ("mailbox", ["show", "bob@example.com"]),
        ("alias", ["list"]),
        ("alias", ["show", "info@example.com"]),
        ("group", ["list"]),
        ("group", ["show", "team"]),
    ],
)
def test_reads_as_staff_need_the_view_permission(domain, command, read):
    from django.contrib.auth.models import Permission

    run("mailbox", "add", "bob@example.com", "--name", "Bob Secret")
    run("alias", "add", "info@example.com", "bob@example.com")
    run("group", "add", "team", "--member", "bob@example.com")
    staff = User.objects.create_user("ops@example.com", PASSWORD, is_staff=True)

    message = refused(command, *read, "--as", "ops@example.com")
    model = {"mailbox": "mailbox", "alias": "alias", "group": "group"}[command]
    assert f"you do not have the permission 'mail.view_{model}'" in message

    staff.user_permissions.add(Permission.objects.get(content_type__app_label="mail", codename=f"view_{model}"))
    out = run(command, *read, "--as", "ops@example.com")
    assert {"mailbox": "bob@example.com", "alias": "info@example.com", "group": "team"}[command] in out


def test_export_as_staff_needs_the_view_permission(domain, tmp_path):
    run("mailbox", "add", "bob@example.com")
    User.objects.create_user("ops@example.com", PASSWORD, is_staff=True)
    target = tmp_path / "people.csv"

    assert "mail.view_mailbox" in refused("mailbox", "export", "--csv", str(target), "--as", "ops@example.com")
    assert not target.exists()
