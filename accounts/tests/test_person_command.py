import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AuditEvent, User
from accounts.tests.factories import PASSWORD, UserFactory, totp_device

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
