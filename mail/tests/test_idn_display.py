"""International domain names are stored in ASCII (punycode) but shown in their own letters: on the person's
profile page and, with the stored form beside them, on the admin's lists, change pages and filters."""

import pytest

from dockspace.tests.admin_pages import change
from mail import services
from mail.models import Alias, DkimKey, Domain, Group, Mailbox
from mail.tests.factories import make_mailbox
from mail.tests.test_profile_mail import facts, profile_of

pytestmark = pytest.mark.django_db

STORED = "xn--bcher-kva.example"
SHOWN = "bücher.example"


@pytest.fixture
def anna():
    mailbox = make_mailbox(f"anna@{STORED}")
    services.alias_create(address=f"info@{STORED}", targets=[mailbox.address], actor_label="t")
    services.group_create(name="team", address=f"team@{STORED}", members=[mailbox.address], actor_label="t")
    return mailbox


def test_the_stored_names_stay_in_ascii(anna):
    assert Domain.objects.get().name == STORED
    assert anna.address == f"anna@{STORED}"
    assert Alias.objects.get().address == f"info@{STORED}"
    assert Group.objects.get().list_address == f"team@{STORED}"


def test_the_profile_shows_the_mailbox_aliases_and_lists_in_unicode(anna):
    page = facts(profile_of(anna.person))

    assert page["Email address"] == f"anna@{SHOWN}"
    assert page["Mailbox"].startswith(f"anna@{SHOWN}")
    assert page["Aliases to you"] == f"info@{SHOWN}"
    assert page["Lists you are on"] == f"team@{SHOWN} (team)"


def test_the_profile_gives_the_ascii_form_of_an_international_mailbox_for_mail_apps_and_not_of_others(anna):
    assert f"Mail apps that need plain ASCII: anna@{STORED}" in facts(profile_of(anna.person))["Mailbox"]

    plain = make_mailbox("bob@example.com")
    assert facts(profile_of(plain.person))["Mailbox"] == "bob@example.com"


@pytest.mark.parametrize(
    "model, shown",
    [
        ("domain", f"{SHOWN} ({STORED})"),
        ("mailbox", f"anna@{SHOWN} (anna@{STORED})"),
        ("alias", f"info@{SHOWN} (info@{STORED})"),
        ("group", f"team@{SHOWN} (team@{STORED})"),
        ("dkimkey", f"{SHOWN} ({STORED})"),
    ],
)
def test_admin_lists_show_international_names_in_unicode_with_the_stored_form_beside(browser, anna, model, shown):
    services.dkim_generate(domain=anna.domain, actor_label="t")

    page = browser.get(f"/admin/mail/{model}/").content.decode()

    assert shown in page


def test_the_people_list_shows_international_addresses_in_unicode(browser, anna):
    page = browser.get("/admin/accounts/user/").content.decode()

    assert f"anna@{SHOWN} (anna@{STORED})" in page
    assert "root@example.com (" not in page  # ASCII names are shown once


@pytest.mark.parametrize("model", ["mailbox", "alias"])
def test_the_by_domain_filter_shows_international_names_in_unicode(browser, anna, model):
    make_mailbox("bob@example.com")  # Django offers the filter once there are two domains to pick from

    filters = browser.get(f"/admin/mail/{model}/").context["cl"].filter_specs
    (domain_filter,) = [f for f in filters if f.title == "domain"]

    assert [label for _, label in domain_filter.lookup_choices] == ["example.com", f"{SHOWN} ({STORED})"]


@pytest.mark.parametrize(
    "model, row",
    [
        ("domain", lambda: Domain.objects.get()),
        ("mailbox", lambda: Mailbox.objects.get()),
        ("alias", lambda: Alias.objects.get()),
        ("group", lambda: Group.objects.get()),
        ("dkimkey", lambda: DkimKey.objects.get()),
    ],
)
def test_admin_change_pages_show_international_names_in_unicode(browser, anna, model, row):
    services.dkim_generate(domain=anna.domain, actor_label="t")

    response = browser.get(f"/admin/mail/{model}/{row().pk}/change/")

    assert response.status_code == 200
    assert SHOWN in response.content.decode()


def test_the_heading_of_a_change_page_names_the_row_in_unicode(browser, anna):
    page = browser.get(f"/admin/mail/mailbox/{anna.pk}/change/").content.decode()

    assert f"<h2>anna@{SHOWN} (anna@{STORED})</h2>" in page


def test_saving_an_unchanged_domain_page_keeps_its_stored_name(browser, anna):
    domain = anna.domain

    response = change(browser, f"/admin/mail/domain/{domain.pk}/change/")

    assert response.status_code == 302
    domain.refresh_from_db()
    assert domain.name == STORED


def test_the_mailbox_page_shows_what_reaches_the_mailbox_in_unicode(browser, anna):
    page = browser.get(f"/admin/mail/mailbox/{anna.pk}/change/").content.decode()

    assert f"info@{SHOWN} (info@{STORED})" in page
    assert f"team@{SHOWN} (team@{STORED})" in page
    assert f'/admin/accounts/user/{anna.person.pk}/change/">anna@{SHOWN}' in page
