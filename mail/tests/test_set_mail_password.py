"""manage.py set_mail_password: one new password for web sign-in and for the DMS account line."""

import shutil
import subprocess

import pytest
from django.contrib.auth import authenticate

from accounts.mail_hashes import verify_mail_hash
from accounts.models import AuditEvent
from mail.dms.sync import dms_sync
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


class Terminal:
    """Standard input that is a terminal (getpass itself is replaced in these tests)."""

    def isatty(self):
        return True


def test_asked_on_a_terminal_the_two_entries_must_match(bob, monkeypatch):
    monkeypatch.setattr("sys.stdin", Terminal())
    answers = iter([PASSWORD, PASSWORD + "!"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert refused("set_mail_password", "bob@example.com") == "password: the two entries differ; nothing changed."


def test_asked_on_a_terminal_matching_entries_set_the_password(bob, monkeypatch):
    monkeypatch.setattr("sys.stdin", Terminal())
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


def test_without_a_terminal_it_says_to_use_password_stdin_instead_of_a_traceback(bob, tmp_path):
    import os
    import sys

    from django.conf import settings as django_settings

    env = {**os.environ, "DOCKSPACE_DMS_DIR": str(tmp_path / "dms")}
    result = subprocess.run(
        [sys.executable, "manage.py", "set_mail_password", "bob@example.com"],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "there is no terminal to ask on" in result.stderr
    assert "set_mail_password bob@example.com --password-stdin" in result.stderr


def test_without_a_terminal_the_command_refuses_and_changes_nothing(bob):
    import io

    from django.core.management import call_command
    from django.core.management.base import CommandError

    bob.person.refresh_from_db()
    before = bob.person.password
    with pytest.raises(CommandError, match="no terminal to ask on.*--password-stdin"):
        call_command("set_mail_password", "bob@example.com", stdout=io.StringIO())
    bob.person.refresh_from_db()
    assert bob.person.password == before
    # Positive control: the same command with --password-stdin sets it.
    run("set_mail_password", "bob@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    bob.person.refresh_from_db()
    assert bob.person.password != before
