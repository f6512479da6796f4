"""manage.py set_mail_password: one new password for web sign-in and for the DMS account line."""

import shutil
import subprocess

import pytest
from django.contrib.auth import authenticate

from accounts.models import AuditEvent
from mail.passwords import verify_mail_hash
from mail.sync import dms_sync
from mail.tests.factories import PASSWORD, dms_lines, make_mailbox, refused, run

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob():
    return make_mailbox("bob@example.com")


def account_hash(settings, address):
    dms_sync()
    (line,) = [line for line in dms_lines(settings, "postfix-accounts.cf") if line.startswith(address + "|")]
    return line.split("|")[1]


def test_a_password_from_stdin_works_for_web_sign_in_and_in_the_dms_file(bob, settings):
    old_hash = account_hash(settings, "bob@example.com")
    out = run("set_mail_password", "Bob@Example.com", "--password-stdin", stdin=PASSWORD + "\n")
    assert out.strip() == "Password set for bob@example.com (mail and Dockspace)."
    assert authenticate(email="bob@example.com", password=PASSWORD) == bob.person
    new_hash = account_hash(settings, "bob@example.com")
    assert new_hash != old_hash
    assert verify_mail_hash(PASSWORD, new_hash)
    event = AuditEvent.objects.get(action="password.set")
    assert (event.actor_label, event.target_label) == ("manage.py set_mail_password", "bob@example.com")
    if shutil.which("doveadm") is None:
        pytest.skip("doveadm (Debian package dovecot-core) is not installed")
    result = subprocess.run(["doveadm", "pw", "-t", new_hash, "-p", PASSWORD], capture_output=True, text=True)
    assert result.returncode == 0 and "(verified)" in result.stdout, result.stderr


def test_a_windows_line_ending_on_stdin_is_not_part_of_the_password(bob):
    run("set_mail_password", "bob@example.com", "--password-stdin", stdin=PASSWORD + "\r\n")
    bob.person.refresh_from_db()
    assert verify_mail_hash(PASSWORD, bob.person.mail_password_hash)


def test_asked_on_a_terminal_the_two_entries_must_match(bob, monkeypatch):
    answers = iter([PASSWORD, PASSWORD + "!"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert refused("set_mail_password", "bob@example.com") == "password: the two entries differ; nothing changed."


def test_asked_on_a_terminal_matching_entries_set_the_password(bob, monkeypatch):
    monkeypatch.setattr("getpass.getpass", lambda prompt="": PASSWORD)
    run("set_mail_password", "bob@example.com")
    bob.person.refresh_from_db()
    assert verify_mail_hash(PASSWORD, bob.person.mail_password_hash)
    assert bob.person.has_usable_password()


@pytest.mark.parametrize(
    "stdin, message",
    [
        ("short\n", "password: This password is too short."),
        ("password123\n", "password: This password is too common."),
        ("bob@example.com1\n", "password: The password is too similar to the email address."),
        ("", "password: --password-stdin read nothing"),
        ("\n", "password: --password-stdin read nothing"),
    ],
)
def test_a_password_the_validators_refuse_changes_nothing(bob, stdin, message):
    assert message in refused("set_mail_password", "bob@example.com", "--password-stdin", stdin=stdin)


def test_an_unknown_mailbox_is_refused(bob):
    message = refused("set_mail_password", "ghost@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    assert message == "ADDRESS: no mailbox 'ghost@example.com'."


def test_a_bad_address_is_refused_naming_the_rule(bob):
    message = refused("set_mail_password", "bob|x@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    assert message == "ADDRESS: a '|' is not allowed in an address."
