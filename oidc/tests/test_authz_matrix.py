"""Who may act on whom (docs/security.md), as a matrix: each staff permission set x each action on a
person x each kind of person, through the real admin (test client) and the real commands (--as).

The superuser column (and the people column for the people actions) is every attack's positive
control: the same request that a staff member is refused does the thing when it is allowed."""

import io

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User, UserSession
from accounts.tests.factories import StaffFactory, UserFactory, totp_device
from mail import services
from mail.models import Alias, Group, Mailbox
from mail.tests.test_admin import address_fields

pytestmark = pytest.mark.django_db

ROLES = ["mail", "people", "oidc", "superuser"]
TARGETS = ["ordinary", "staff", "superuser", "no_mailbox"]
PEOPLE_ACTIONS = ["set_password", "change_email", "reset_2fa", "sign_out", "deactivate"]
ACTIONS = [*PEOPLE_ACTIONS, "make_superuser", "adopt", "capture", "catch_all", "gate_membership"]
NEW_PASSWORD = "a matrix pass phrase 31"
OUTSIDE = "thief@outside.test"


def expected(role, action, target):
    """The rule: acting on a sign-in needs the permission to change people (a superuser's: being one);
    granting powers is for superusers; mail actions on a person also need the mail permissions."""
    if role == "superuser":
        return True
    if action in PEOPLE_ACTIONS:
        return role == "people" and target != "superuser"
    if action == "catch_all":
        # A catch-all never takes a mailbox's mail: only a person without one is at risk.
        return role == "mail" and target != "no_mailbox"
    return False  # make_superuser, adopt, capture, gate_membership


@pytest.fixture(autouse=True)
def _dms_dir(settings, tmp_path):
    settings.DMS_DIR = tmp_path / "dms"
    settings.DMS_HISTORY_DIR = tmp_path / "dms-history"


def make_actor(role):
    if role == "superuser":
        return StaffFactory(email="super-actor@team.example")
    actor = UserFactory(email=f"{role}-actor@team.example", is_staff=True)
    perms = {
        "mail": Permission.objects.filter(content_type__app_label="mail"),
        "people": Permission.objects.filter(content_type__app_label="accounts", codename__endswith="_user"),
        "oidc": Permission.objects.filter(content_type__app_label="oidc"),
    }[role]
    actor.user_permissions.set(perms)
    return actor


def make_target(kind):
    domain = {
        "ordinary": "ordinary.test",
        "staff": "staff.test",
        "superuser": "super.test",
        "no_mailbox": "nomail.test",
    }
    services.domain_create(name=domain[kind])
    email = f"{kind.replace('_', '')}@{domain[kind]}"
    person = UserFactory(email=email, is_staff=kind in ("staff", "superuser"), is_superuser=kind == "superuser")
    if kind == "staff":
        person.user_permissions.set(Permission.objects.filter(codename="view_mailbox"))
    if kind != "no_mailbox":
        services.mailbox_create(address=email, person=person)
    totp_device(person)
    UserSession.objects.create(
        session_key=f"{kind:x<64}"[:64],
        session_data="",
        expire_date=timezone.now() + timezone.timedelta(days=1),
        user=person,
    )
    return person


@pytest.fixture
def gate():
    from oidc.tests.factories import make_client

    group = services.group_create(name="grafana-admins")
    make_client(name="Grafana", groups=["grafana-admins"])
    return group


def domain_of(person):
    return person.email.split("@")[1]


def capture_alias(person):
    """(address, keep_copy): a kept copy of their mailbox, or an alias on their sign-in address."""
    has_mailbox = Mailbox.objects.filter(person=person).exists()
    return person.email, has_mailbox


def effect(action, target, gate):
    """Did the action happen to the target?"""
    target.refresh_from_db()
    if action == "set_password":
        return target.check_password(NEW_PASSWORD)
    if action == "change_email":
        return target.email.startswith("renamed-")
    if action == "make_superuser":
        return target.is_superuser and target.user_permissions.filter(codename="delete_user").exists()
    if action == "reset_2fa":
        return not TOTPDevice.objects.filter(user=target).exists()
    if action == "sign_out":
        return not UserSession.objects.filter(user=target).exists()
    if action == "deactivate":
        return not target.is_active and not UserSession.objects.filter(user=target).exists()
    if action == "adopt":
        return Mailbox.objects.filter(person=target).exists()
    if action == "capture":
        return Alias.objects.filter(address=target.email).exists()
    if action == "catch_all":
        return Alias.objects.filter(address="@" + domain_of(target)).exists()
    if action == "gate_membership":
        return gate.members.filter(pk=target.pk).exists()
    raise AssertionError(action)


def prepare(action, target):
    if action == "adopt":
        Mailbox.objects.filter(person=target).delete()


# --- through the admin ---------------------------------------------------------------------------------


def admin_attempt(browser, action, target, gate):
    user_url = f"/admin/accounts/user/{target.pk}/"
    person_form = {"email": target.email, "full_name": target.full_name, "is_active": "on"}
    if action == "set_password":
        data = {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"}
        return browser.post(user_url + "password/", data)
    if action == "change_email":
        return browser.post(user_url + "change/", {**person_form, "email": "renamed-" + target.email})
    if action == "make_superuser":
        grant = Permission.objects.get(codename="delete_user").pk
        data = {**person_form, "is_staff": "on", "is_superuser": "on", "user_permissions": [grant]}
        return browser.post(user_url + "change/", data)
    if action in ("reset_2fa", "sign_out", "deactivate"):
        name = {"reset_2fa": "reset_second_factor", "sign_out": "revoke_sessions"}.get(action, action)
        return browser.post("/admin/accounts/user/", {"action": name, "_selected_action": [target.pk]})
    if action == "adopt":
        data = {**address_fields(target.email), "person": target.email, "quota": ""}
        return browser.post("/admin/mail/mailbox/add/", data)
    if action in ("capture", "catch_all"):
        address, keep_copy = capture_alias(target) if action == "capture" else ("@" + domain_of(target), False)
        data = {**address_fields(address), "targets_text": OUTSIDE, "is_active": "on", "description": ""}
        return browser.post("/admin/mail/alias/add/", {**data, **({"keep_copy": "on"} if keep_copy else {})})
    if action == "gate_membership":
        data = {"name": gate.name, "description": "", "list_local_part": "", "list_domain": "", "members": [target.pk]}
        return browser.post(f"/admin/mail/group/{gate.pk}/change/", data)
    raise AssertionError(action)


@pytest.mark.parametrize("target_kind", TARGETS)
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("role", ROLES)
def test_admin(role, action, target_kind, gate):
    target = make_target(target_kind)
    prepare(action, target)
    browser = Client()
    browser.force_login(make_actor(role))

    response = admin_attempt(browser, action, target, gate)

    assert response.status_code < 500
    assert effect(action, target, gate) is expected(role, action, target_kind)


# --- through the commands, with --as ---------------------------------------------------------------------

COMMAND_ACTIONS = [
    "set_password",
    "reset_2fa",
    "sign_out",
    "deactivate",
    "adopt",
    "capture",
    "catch_all",
    "gate_membership",
]


def command_args(action, target, gate):
    """(argv, stdin) for the command that performs the action."""
    if action == "set_password":
        mailbox = Mailbox.objects.get(person=target)
        return ["set_mail_password", mailbox.address, "--password-stdin"], NEW_PASSWORD + "\n"
    if action == "reset_2fa":
        return ["person", "reset-2fa", target.email], None
    if action in ("sign_out", "deactivate"):
        return ["person", action.replace("_", "-"), target.email], None
    if action == "adopt":
        return ["mailbox", "add", target.email, "--person", target.email], None
    if action == "capture":
        address, keep_copy = capture_alias(target)
        return ["alias", "add", address, OUTSIDE, *(["--keep-copy"] if keep_copy else [])], None
    if action == "catch_all":
        return ["alias", "add", "@" + domain_of(target), OUTSIDE], None
    if action == "gate_membership":
        return ["group", "update", gate.name, "--add", target.email], None
    raise AssertionError(action)


# set_mail_password works on a mailbox's owner: no command sets the password of a person without one.
COMMAND_CASES = [
    (role, action, target)
    for role in ROLES
    for action in COMMAND_ACTIONS
    for target in TARGETS
    if not (action == "set_password" and target == "no_mailbox")
]


@pytest.mark.parametrize("role, action, target_kind", COMMAND_CASES)
def test_command(role, action, target_kind, gate):
    target = make_target(target_kind)
    prepare(action, target)
    actor = make_actor(role)
    argv, stdin = command_args(action, target, gate)
    extra = {"stdin": io.StringIO(stdin)} if stdin else {}

    allowed = expected(role, action, target_kind)
    try:
        call_command(*argv, "--as", actor.email, stdout=io.StringIO(), stderr=io.StringIO(), **extra)
    except CommandError as e:
        assert not allowed, str(e)
        assert "Traceback" not in str(e)
    else:
        assert allowed, f"{argv} as {role} was not refused"

    assert effect(action, target, gate) is allowed


def test_commands_without_as_act_as_the_host():
    target = make_target("superuser")

    call_command("person", "reset-2fa", target.email, stdout=io.StringIO())

    assert not TOTPDevice.objects.filter(user=target).exists()


def test_as_names_a_staff_member_not_just_anyone():
    target = make_target("ordinary")
    UserFactory(email="member@team.example")

    with pytest.raises(CommandError, match="--as: 'member@team.example' is not an active staff member"):
        call_command("person", "sign-out", target.email, "--as", "member@team.example", stdout=io.StringIO())

    assert UserSession.objects.filter(user=target).exists()
    assert User.objects.filter(email="member@team.example").exists()
    assert not Group.objects.exists()
