import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AuditEvent, User
from accounts.tests.factories import PASSWORD, StaffFactory, UserFactory, totp_device

pytestmark = pytest.mark.django_db


def test_reset_2fa_lets_the_person_in_with_the_password_alone(capsys):
    ann = UserFactory(email="ann@example.com")
    totp_device(ann)
    call_command("person", "reset-2fa", "ANN@example.com")
    assert "Removed every second factor of ann@example.com." in capsys.readouterr().out
    assert not TOTPDevice.objects.filter(user=ann).exists()
    assert Client().post("/login/", {"email": ann.email, "password": PASSWORD})["Location"] == "/profile/"
    assert AuditEvent.objects.get(action="totp.reset").actor_label == "manage.py person"


def test_unlock_clears_a_lockout():
    ann = UserFactory(email="ann@example.com")
    for _ in range(5):
        Client().post("/login/", {"email": ann.email, "password": "wrong password 1"})
    call_command("person", "unlock", "ann@example.com")
    assert Client().post("/login/", {"email": ann.email, "password": PASSWORD})["Location"] == "/profile/"
    assert AuditEvent.objects.get(action="signin.lockout_cleared").actor_label == "manage.py person"


def test_sign_out_ends_every_session():
    ann = UserFactory(email="ann@example.com")
    browser = Client()
    browser.post("/login/", {"email": ann.email, "password": PASSWORD})
    call_command("person", "sign-out", "ann@example.com")
    assert browser.get("/profile/").status_code == 302


def test_an_unknown_address_is_a_clear_error_and_changes_nothing():
    with pytest.raises(CommandError, match="email: no person has the address 'ghost@example.com'"):
        call_command("person", "reset-2fa", "ghost@example.com")
    assert AuditEvent.objects.count() == 0


def test_list_as_json(capsys):
    ann = UserFactory(email="ann@example.com")
    totp_device(ann)
    call_command("person", "list", "--json")
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["email"] == "ann@example.com" and rows[0]["totp"] is True


def test_createsuperuser_is_audited():
    call_command("createsuperuser", "--noinput", "--email", "Root@Example.com")
    root = User.objects.get()
    assert root.email == "root@example.com" and root.is_superuser
    event = AuditEvent.objects.get(action="user.create")
    assert event.actor_label == "manage.py createsuperuser" and event.target_label == "root@example.com"


@pytest.mark.parametrize("password", ["short", " " * 12])
def test_createsuperuser_without_a_terminal_keeps_the_password_rules(monkeypatch, password):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", password)
    with pytest.raises(CommandError, match="DJANGO_SUPERUSER_PASSWORD: "):
        call_command("createsuperuser", "--noinput", "--email", "root@example.com")
    assert not User.objects.exists()

    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a long enough root phrase 7")
    call_command("createsuperuser", "--noinput", "--email", "root@example.com")
    assert User.objects.get().check_password("a long enough root phrase 7")


def test_changepassword_is_audited_and_ends_sessions(monkeypatch):
    ann = UserFactory(email="ann@example.com")
    browser = Client()
    browser.post("/login/", {"email": ann.email, "password": PASSWORD})
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "a command set phrase 4")
    call_command("changepassword", "ann@example.com")
    ann.refresh_from_db()
    assert ann.check_password("a command set phrase 4")
    assert browser.get("/profile/").status_code == 302
    assert AuditEvent.objects.get(action="password.change").actor_label == "manage.py changepassword"


# --- deactivate and activate --------------------------------------------------------------------------


def signs_in(person):
    return Client().post("/login/", {"email": person.email, "password": PASSWORD}).get("Location") == "/profile/"


def staff_with(app_label, email):
    from django.contrib.auth.models import Permission

    staff = UserFactory(email=email, is_staff=True)
    perms = Permission.objects.filter(content_type__app_label=app_label)
    staff.user_permissions.set(perms.filter(codename__endswith="_user") if app_label == "accounts" else perms)
    return staff


def test_deactivate_switches_the_person_off_and_ends_their_sessions(capsys):
    ann = UserFactory(email="ann@example.com")
    browser = Client()
    browser.post("/login/", {"email": ann.email, "password": PASSWORD})
    bob = UserFactory(email="bob@example.com")
    bob_browser = Client()
    bob_browser.post("/login/", {"email": bob.email, "password": PASSWORD})

    call_command("person", "deactivate", "Ann@Example.com")

    assert "Deactivated ann@example.com; ended 1 browser session(s) and app token(s)." in capsys.readouterr().out
    ann.refresh_from_db()
    assert not ann.is_active
    assert browser.get("/profile/").status_code == 302
    assert not signs_in(ann)
    event = AuditEvent.objects.get(action="user.deactivate")
    assert (event.actor_label, event.target_label) == ("manage.py person", "ann@example.com")
    assert bob_browser.get("/profile/").status_code == 200  # positive control: nobody else is touched


def test_activate_lets_the_person_sign_in_afresh(capsys):
    ann = UserFactory(email="ann@example.com")
    call_command("person", "deactivate", "ann@example.com")

    call_command("person", "activate", "ann@example.com")

    assert "Activated ann@example.com; they sign in afresh." in capsys.readouterr().out
    assert signs_in(ann)
    assert AuditEvent.objects.get(action="user.activate").actor_label == "manage.py person"
    call_command("person", "activate", "ann@example.com")
    assert "ann@example.com was already active." in capsys.readouterr().out
    assert AuditEvent.objects.filter(action="user.activate").count() == 1


def test_activating_a_pending_registration_ends_it_and_removes_the_chosen_password(capsys):
    pending = UserFactory(email="new@example.com", is_active=False, is_pending_registration=True)

    call_command("person", "activate", "new@example.com")

    assert "ending their pending registration" in capsys.readouterr().out
    pending.refresh_from_db()
    assert pending.is_active and not pending.is_pending_registration
    assert not pending.has_usable_password()


def test_deactivate_as_mail_only_staff_is_refused_and_changes_nothing():
    ann = UserFactory(email="ann@example.com")
    browser = Client()
    browser.post("/login/", {"email": ann.email, "password": PASSWORD})
    clerk = staff_with("mail", "clerk@example.com")

    with pytest.raises(CommandError) as refused:
        call_command("person", "deactivate", ann.email, "--as", clerk.email)

    assert str(refused.value) == (
        "email: you may not act on the sign-in of ann@example.com: that needs the permission to change people."
    )
    ann.refresh_from_db()
    assert ann.is_active and browser.get("/profile/").status_code == 200
    assert not AuditEvent.objects.filter(action="user.deactivate").exists()

    # Positive control: staff allowed to change people may; the audit names them.
    people = staff_with("accounts", "hr@example.com")
    call_command("person", "deactivate", ann.email, "--as", people.email)
    ann.refresh_from_db()
    assert not ann.is_active
    assert AuditEvent.objects.get(action="user.deactivate").actor_label == "manage.py person --as hr@example.com"


def test_only_a_superuser_deactivates_or_activates_a_superuser():
    root = StaffFactory(email="root@example.com")
    people = staff_with("accounts", "hr@example.com")
    other_root = StaffFactory(email="root2@example.com")

    with pytest.raises(CommandError, match="email: .*only a superuser acts on a superuser"):
        call_command("person", "deactivate", root.email, "--as", people.email)
    root.refresh_from_db()
    assert root.is_active

    call_command("person", "deactivate", root.email, "--as", other_root.email)
    root.refresh_from_db()
    assert not root.is_active
    with pytest.raises(CommandError, match="email: .*only a superuser acts on a superuser"):
        call_command("person", "activate", root.email, "--as", people.email)
    root.refresh_from_db()
    assert not root.is_active


def test_deactivate_refuses_the_last_active_superuser_until_there_is_another():
    root = StaffFactory(email="root@example.com")
    StaffFactory(email="old-root@example.com", is_active=False)  # an inactive superuser hands out nothing

    with pytest.raises(CommandError) as refused:
        call_command("person", "deactivate", root.email)

    assert str(refused.value) == ("email: root@example.com is the last active superuser; make another superuser first.")
    root.refresh_from_db()
    assert root.is_active
    assert not AuditEvent.objects.filter(action="user.deactivate").exists()

    # Positive control: with another active superuser, the same command switches root off.
    StaffFactory(email="root2@example.com")
    call_command("person", "deactivate", root.email)
    root.refresh_from_db()
    assert not root.is_active


@pytest.mark.parametrize("action", ["deactivate", "activate"])
def test_deactivate_and_activate_refuse_an_unknown_address(action):
    with pytest.raises(CommandError, match="email: no person has the address 'ghost@example.com'"):
        call_command("person", action, "ghost@example.com")
    assert AuditEvent.objects.count() == 0
