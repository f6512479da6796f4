"""Values that would break a file, a claim or the database are refused on every path that takes
them (admin, profile page, commands, CSV import), next to the same path taking a good value."""

import pytest
from django.test import Client

from accounts.models import User
from accounts.tests.factories import UserFactory
from dockspace.tests.admin_pages import errors as form_errors
from mail.models import Domain, Group
from mail.tests.factories import database_fingerprint, make_domain, make_mailbox, refused, run

pytestmark = pytest.mark.django_db


# --- group names ---------------------------------------------------------------------------------


def group_form(name):
    return {"name": name, "description": ""}


@pytest.mark.parametrize("name", ["ops|admins", "ops\nadmins", "ops\radmins", "ops\x00admins", "ops\u2028x"])
def test_the_admin_refuses_a_group_name_with_a_pipe_or_a_line_break(browser, name):
    before = database_fingerprint()

    response = browser.post("/admin/mail/group/add/", group_form(name))

    assert "name" in form_errors(response)
    assert database_fingerprint() == before


def test_the_admin_creates_a_group_with_an_ordinary_name(browser):
    response = browser.post("/admin/mail/group/add/", group_form("grafana-admins (ops)"))

    assert response.status_code == 302
    assert Group.objects.get().name == "grafana-admins (ops)"


def test_the_group_command_refuses_a_pipe_in_a_name_and_takes_a_good_one():
    message = refused("group", "add", "ops|admins")
    assert "name: a group name cannot contain '|'." in message

    run("group", "add", "ops-admins")
    assert Group.objects.filter(name="ops-admins").exists()


def test_renaming_a_group_to_a_name_with_a_line_break_is_refused_in_the_admin(browser):
    group = Group.objects.create(name="ops")
    response = browser.post(f"/admin/mail/group/{group.pk}/change/", group_form("ops\nroot"))
    assert "name" in form_errors(response)
    group.refresh_from_db()
    assert group.name == "ops"

    renamed = browser.post(f"/admin/mail/group/{group.pk}/change/", group_form("ops team"))
    assert renamed.status_code == 302
    group.refresh_from_db()
    assert group.name == "ops team"


# --- full names ----------------------------------------------------------------------------------


BAD_NAMES = ["Ann\x00Lee", "Ann\x01Lee", "Ann\nLee", "Ann\x7fLee", "Ann\u2029Lee"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_mailbox_add_refuses_a_control_character_in_the_name(name):
    make_domain("example.com")
    message = refused("mailbox", "add", "ann@example.com", "--name", name)
    assert "--name: a name cannot contain line breaks or control characters (such as NUL)." in message


def test_mailbox_add_and_update_take_an_ordinary_name():
    make_domain("example.com")
    run("mailbox", "add", "ann@example.com", "--name", "Ann-Sophie d'Été")
    run("mailbox", "update", "ann@example.com", "--name", "Ann Lee")
    assert User.objects.get(email="ann@example.com").full_name == "Ann Lee"


def test_mailbox_update_refuses_a_nul_in_the_name():
    make_mailbox("ann@example.com", full_name="Ann")
    message = refused("mailbox", "update", "ann@example.com", "--name", "Ann\x00")
    assert "--name: a name cannot contain" in message
    assert User.objects.get(email="ann@example.com").full_name == "Ann"


@pytest.mark.parametrize("verb", ["add", "update"])
def test_mailbox_add_and_update_refuse_a_name_too_long_naming_the_option(verb):
    make_mailbox("ann@example.com", full_name="Ann")
    address = "bob@example.com" if verb == "add" else "ann@example.com"
    message = refused("mailbox", verb, address, "--name", "A" * 151)
    assert message == "--name: Ensure this value has at most 150 characters (it has 151)."
    assert User.objects.get(email="ann@example.com").full_name == "Ann"


def test_the_csv_import_refuses_a_row_whose_name_has_a_control_character(tmp_path):
    make_domain("example.com")
    path = tmp_path / "people.csv"
    path.write_text("address,name\nann@example.com,Ann\x01Lee\nbob@example.com,Bob\n")
    message = refused("mailbox", "import", "--csv", str(path))
    assert "line 2: name: a name cannot contain line breaks or control characters" in message

    path.write_text("address,name\nann@example.com,Ann Lee\nbob@example.com,Bob\n")
    run("mailbox", "import", "--csv", str(path))
    assert User.objects.get(email="ann@example.com").full_name == "Ann Lee"


def test_the_mailbox_add_form_refuses_a_control_character_in_the_name(browser):
    make_domain("example.com")
    domain = Domain.objects.get()
    data = {"local_part": "ann", "domain": str(domain.pk), "quota": "", "password1": "", "password2": ""}
    before = database_fingerprint()

    response = browser.post("/admin/mail/mailbox/add/", {**data, "full_name": "Ann\x01Lee"})

    assert "full_name" in form_errors(response)
    assert database_fingerprint() == before
    created = browser.post("/admin/mail/mailbox/add/", {**data, "full_name": "Ann Lee"})
    assert created.status_code == 302
    assert User.objects.get(email="ann@example.com").full_name == "Ann Lee"


def test_the_profile_page_refuses_a_control_character_in_ones_own_name():
    person = UserFactory(email="ann@example.com", full_name="Ann")
    client = Client()
    client.force_login(person)

    response = client.post("/profile/edit/", {"full_name": "Ann\x1bLee"})
    assert response.status_code == 200
    assert "full_name" in response.context["form"].errors
    person.refresh_from_db()
    assert person.full_name == "Ann"

    saved = client.post("/profile/edit/", {"full_name": "Ann Lee"})
    assert saved.status_code == 302
    person.refresh_from_db()
    assert person.full_name == "Ann Lee"


def test_the_person_admin_refuses_a_control_character_in_a_name(browser):
    person = UserFactory(email="ann@example.com", full_name="Ann")
    url = f"/admin/accounts/user/{person.pk}/change/"
    page = browser.get(url)
    data = {}
    for bound in page.context["adminform"].form:
        value = bound.value()
        if bound.field.disabled or value in (None, False):
            continue
        data[bound.html_name] = "on" if value is True else value

    response = browser.post(url, {**data, "full_name": "Ann\x08Lee"})
    assert "full_name" in form_errors(response)
    person.refresh_from_db()
    assert person.full_name == "Ann"

    saved = browser.post(url, {**data, "full_name": "Ann Lee"})
    assert saved.status_code == 302
    person.refresh_from_db()
    assert person.full_name == "Ann Lee"


# --- punycode ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["xn--a.test", "xn--ls8h.example", "mail.xn--bcher-kvaa-.de", "xn--zz.de"])
def test_domain_add_refuses_a_label_that_is_not_valid_punycode(name):
    message = refused("domain", "add", name)
    assert "is not valid punycode" in message or "is not a valid domain name" in message
    assert not Domain.objects.exists()


def test_domain_add_refuses_xn_a_test_naming_the_label():
    message = refused("domain", "add", "xn--a.test")
    assert "NAME" not in message
    assert "'xn--a' is not valid punycode" in message


@pytest.mark.parametrize("name, stored", [("xn--bcher-kva.de", "xn--bcher-kva.de"), ("bücher.de", "xn--bcher-kva.de")])
def test_domain_add_takes_valid_punycode_and_unicode_names(name, stored):
    run("domain", "add", name)
    assert Domain.objects.get().name == stored


def test_the_domain_admin_refuses_invalid_punycode(browser):
    data = {
        "name": "xn--a.test",
        "is_active": "on",
        "tier": "",
        "default_quota": "",
        "dkim_selector": "mail",
        "dkim_algorithm": "rsa",
        "dkim_bits": "2048",
    }
    response = browser.post("/admin/mail/domain/add/", data)
    assert "name" in form_errors(response)
    assert not Domain.objects.exists()

    created = browser.post("/admin/mail/domain/add/", {**data, "name": "xn--strae-oqa.de"})
    assert created.status_code == 302
    assert Domain.objects.get().name == "xn--strae-oqa.de"
