"""Passwords over 4,096 bytes (UTF-8) or made only of spaces are refused on every path that sets one, naming the
field and the limit (they used to give a 500 or a traceback), and the hashing layer itself refuses what is too
long, so no path hashes a huge value. Each refusal sits next to the same path accepting a password at the limit."""

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.test import Client

from accounts.mail_hashes import mail_hash, verify_mail_hash
from accounts.models import User
from accounts.tests.factories import StaffFactory
from dockspace.validation import error_lines
from mail.csv_io import CsvImportError, mailboxes_import_csv
from mail.models import Mailbox
from mail.tests.factories import make_domain, make_mailbox, refused, run
from mail.tests.test_admin import address_fields

pytestmark = pytest.mark.django_db

TOO_LONG = "long pass phrase " * 241  # 4,097 bytes
AT_THE_LIMIT = TOO_LONG[:-1]  # 4,096 bytes
SPACES = " " * 16
assert len(TOO_LONG.encode()) == 4097 and len(AT_THE_LIMIT.encode()) == 4096


@pytest.fixture
def domain():
    return make_domain("example.com")


@pytest.fixture
def admin_browser():
    client = Client()
    client.force_login(StaffFactory(email="root@example.com"))
    return client


def add_in_admin(browser, address, password):
    return browser.post(
        "/admin/mail/mailbox/add/",
        {**address_fields(address), "quota": "1G", "password1": password, "password2": password},
    )


def form_errors(response):
    assert response.status_code == 200, response.status_code
    return {field: " ".join(messages) for field, messages in response.context["adminform"].form.errors.items()}


# --- the admin's add-mailbox form ------------------------------------------------------------------


def test_the_admin_refuses_a_password_over_4096_bytes_next_to_the_field(admin_browser, domain):
    errors = form_errors(add_in_admin(admin_browser, "ann@example.com", TOO_LONG))

    assert "at most 4,096 bytes" in errors["password1"] and "4,097" in errors["password1"]
    assert not Mailbox.objects.exists() and not User.objects.filter(email="ann@example.com").exists()


def test_the_admin_refuses_a_password_made_only_of_spaces(admin_browser, domain):
    errors = form_errors(add_in_admin(admin_browser, "ann@example.com", SPACES))

    assert "only of spaces" in errors["password1"]
    assert not Mailbox.objects.exists()


def test_the_admin_accepts_a_password_of_exactly_4096_bytes(admin_browser, domain):
    assert add_in_admin(admin_browser, "ann@example.com", AT_THE_LIMIT).status_code == 302

    person = Mailbox.objects.get().person
    assert authenticate(email="ann@example.com", password=AT_THE_LIMIT) == person
    assert verify_mail_hash(AT_THE_LIMIT, person.mail_password_hash)


def test_the_admin_change_page_refuses_a_new_password_over_the_limit(admin_browser, domain):
    mailbox = make_mailbox("ann@example.com")
    url = f"/admin/mail/mailbox/{mailbox.pk}/change/"

    refused_page = admin_browser.post(url, {"full_name": "", "quota": "1G", "new_password": TOO_LONG})
    accepted_page = admin_browser.post(url, {"full_name": "", "quota": "1G", "new_password": AT_THE_LIMIT})

    assert "at most 4,096 bytes" in form_errors(refused_page)["new_password"]
    assert accepted_page.status_code == 302
    assert authenticate(email="ann@example.com", password=AT_THE_LIMIT) == mailbox.person


# --- mailbox add --password-stdin ----------------------------------------------------------------


def test_mailbox_add_refuses_a_password_over_the_limit_with_the_field_and_the_limit(domain):
    message = refused("mailbox", "add", "ann@example.com", "--password-stdin", stdin=TOO_LONG + "\n")

    assert message.startswith("password: ") and "at most 4,096 bytes" in message
    assert not User.objects.filter(email="ann@example.com").exists()


def test_mailbox_add_refuses_a_password_made_only_of_spaces(domain):
    message = refused("mailbox", "add", "ann@example.com", "--password-stdin", stdin=SPACES + "\n")

    assert message.startswith("password: ") and "only of spaces" in message


def test_mailbox_add_accepts_a_password_of_exactly_4096_bytes(domain):
    run("mailbox", "add", "ann@example.com", "--password-stdin", stdin=AT_THE_LIMIT + "\n")

    assert authenticate(email="ann@example.com", password=AT_THE_LIMIT) is not None


def test_set_mail_password_refuses_a_password_over_the_limit_and_accepts_one_at_it(domain):
    make_mailbox("ann@example.com")

    message = refused("set_mail_password", "ann@example.com", "--password-stdin", stdin=TOO_LONG + "\n")
    run("set_mail_password", "ann@example.com", "--password-stdin", stdin=AT_THE_LIMIT + "\n")

    assert message.startswith("password: ") and "at most 4,096 bytes" in message
    assert authenticate(email="ann@example.com", password=AT_THE_LIMIT) is not None


# --- CSV import ----------------------------------------------------------------------------------


def import_csv(tmp_path, rows):
    path = tmp_path / "people.csv"
    path.write_text("address,password\n" + "".join(f"{address},{password}\n" for address, password in rows))
    return mailboxes_import_csv(path, actor_label="test import")


def test_the_csv_import_names_each_row_with_a_password_over_the_limit_or_of_spaces(tmp_path, domain):
    with pytest.raises(CsvImportError) as caught:
        import_csv(
            tmp_path,
            [("ann@example.com", AT_THE_LIMIT), ("bob@example.com", TOO_LONG), ("cy@example.com", SPACES)],
        )

    errors = caught.value.errors
    assert len(errors) == 2
    assert errors[0].startswith("line 3: password: ") and "at most 4,096 bytes" in errors[0]
    assert errors[1].startswith("line 4: password: ") and "only of spaces" in errors[1]
    assert not Mailbox.objects.exists()


def test_the_csv_import_accepts_a_password_of_exactly_4096_bytes(tmp_path, domain):
    assert import_csv(tmp_path, [("ann@example.com", AT_THE_LIMIT)]).created == 1

    assert authenticate(email="ann@example.com", password=AT_THE_LIMIT) is not None


def test_mailbox_import_exits_non_zero_naming_the_line_and_the_limit(tmp_path, domain):
    path = tmp_path / "people.csv"
    path.write_text(f"address,password\nann@example.com,{AT_THE_LIMIT}\nbob@example.com,{TOO_LONG}\n")
    good = tmp_path / "good.csv"
    good.write_text(f"address,password\nann@example.com,{AT_THE_LIMIT}\n")

    message = refused("mailbox", "import", "--csv", str(path))
    run("mailbox", "import", "--csv", str(good))

    assert "line 3: password: This password is too long: at most 4,096 bytes" in message
    assert authenticate(email="ann@example.com", password=AT_THE_LIMIT) is not None


# --- the hashing layer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda password: User(email="ann@example.com").set_password(password),
        lambda password: make_password(password),
        lambda password: mail_hash(password),
    ],
    ids=["set_password", "make_password", "mail_hash"],
)
def test_hashing_refuses_a_password_over_the_limit_even_unvalidated(make):
    make(AT_THE_LIMIT)
    make("é" * 2048)  # 4,096 bytes

    for too_long in (TOO_LONG, "é" * 2049):
        with pytest.raises(ValidationError) as caught:
            make(too_long)
        assert error_lines(caught.value)[0].startswith("password: at most 4,096 bytes")
