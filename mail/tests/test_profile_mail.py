"""The mail part of the profile page: the person's mailbox, its quota, and the aliases and lists that reach them."""

import re

import pytest
from django.test import Client

from accounts.tests.factories import UserFactory
from mail import services
from mail.tests.factories import make_domain, make_mailbox

pytestmark = pytest.mark.django_db

GIB = 1024**3
NO_MAILBOX = "No mailbox: this account signs in to Dockspace and connected apps only."


def profile_of(person):
    browser = Client()
    browser.force_login(person)
    response = browser.get("/profile/")
    assert response.status_code == 200
    return response.content.decode()


def facts(page):
    """The profile's facts as {label: text}, tags stripped, so a test reads what a person reads."""
    pairs = re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", page, flags=re.S)
    return {label: re.sub(r"<[^>]+>", "", value).strip() for label, value in pairs}


@pytest.mark.parametrize(("quota", "shown"), [(2 * GIB, "2 GiB"), (1536 * 1024**2, "1.5 GiB"), (0, "no limit")])
def test_a_person_with_a_mailbox_sees_its_address_and_quota(quota, shown):
    mailbox = make_mailbox("ann@example.com", quota=quota)

    page = facts(profile_of(mailbox.person))

    assert page["Mailbox"] == "ann@example.com"
    assert page["Quota"] == shown


def test_the_aliases_and_lists_that_reach_a_person_are_shown_and_no_others():
    ann = make_mailbox("ann@example.com")
    make_mailbox("bob@example.com")
    services.alias_create(address="info@example.com", targets=["ann@example.com", "bob@example.com"], actor_label="t")
    services.alias_create(address="@example.com", targets=["ann@example.com"], actor_label="t")
    services.alias_create(address="sales@example.com", targets=["bob@example.com"], actor_label="t")
    services.alias_create(address="old@example.com", targets=["ann@example.com"], is_active=False, actor_label="t")
    services.group_create(name="team", address="team@example.com", members=["ann@example.com"], actor_label="t")
    services.group_create(name="others", address="others@example.com", members=["bob@example.com"], actor_label="t")
    services.group_create(name="readers", members=["ann@example.com"], actor_label="t")

    page = facts(profile_of(ann.person))

    assert page["Aliases to you"] == "@example.com (catch-all), info@example.com"
    assert page["Lists you are on"] == "team@example.com (team)"
    assert page["Groups"] == "readers, team"


def test_a_person_whom_nothing_forwards_to_sees_none():
    mailbox = make_mailbox("ann@example.com")

    page = facts(profile_of(mailbox.person))

    assert (page["Aliases to you"], page["Lists you are on"]) == ("None", "None")
    assert NO_MAILBOX not in page.values()


def test_a_person_without_a_mailbox_sees_the_no_mailbox_text():
    make_domain("example.com")
    person = UserFactory(email="carol@elsewhere.org")

    page = facts(profile_of(person))

    assert page["Mailbox"] == NO_MAILBOX
    assert "Quota" not in page and "Aliases to you" not in page and "Lists you are on" not in page


def test_an_alias_that_reaches_a_person_through_a_list_is_shown():
    ann = make_mailbox("ann@example.com")
    services.group_create(name="team", address="team@example.com", members=["ann@example.com"], actor_label="t")
    services.alias_create(address="hello@example.com", targets=["team@example.com"], actor_label="t")

    page = facts(profile_of(ann.person))

    assert "hello@example.com" in page["Aliases to you"]
