"""One spelling per address: Root@Example.COM, root@example.com. and root@ｅxample.com (fullwidth e) are all
root@example.com, on every path that stores or looks up a person's address."""

import importlib
import re

import pytest
from django.apps import apps
from django.core import mail
from django.core.cache import cache
from django.test import Client

from accounts.models import AppSettings, User
from accounts.tests.factories import PASSWORD, StaffFactory, UserFactory
from dockspace.canonical import canonical_email
from dockspace.tests.admin_pages import change

PW = "mallory pass phrase 9"
LOOKALIKES = [
    "root@ｅxample.com",
    "root@example.com.",
    "ROOT@Example.COM",
    "root@ＥＸＡＭＰＬＥ．ＣＯＭ",
    " root@example.com ",
]


@pytest.mark.parametrize(
    "typed, canonical",
    [
        ("root@ｅxample.com", "root@example.com"),
        ("root@example.ｃom", "root@example.com"),
        ("Root@Example.COM.", "root@example.com"),
        ("bob@Bücher.de", "bob@xn--bcher-kva.de"),
        ("bob@straße.de", "bob@xn--strae-oqa.de"),
        ("bob@example.com。", "bob@example.com"),
        ("not an address", "not an address"),
        ("x@exa mple.cöm", "x@exa mple.cöm"),  # no valid domain: left for the form's validation, never raises
        ("", ""),
    ],
)
def test_canonical_email_spells_each_address_one_way(typed, canonical):
    assert canonical_email(typed) == canonical


@pytest.fixture
def registration_open():
    AppSettings.objects.update_or_create(pk=1, defaults={"self_registration_enabled": True})
    cache.clear()


def register(email, ip="198.51.100.7"):
    form = {"email": email, "full_name": "Mallory", "password1": PW, "password2": PW}
    return Client(REMOTE_ADDR=ip).post("/register/", form)


@pytest.mark.django_db
@pytest.mark.parametrize("spelling", ["root@ｅxample.com", "root@example.com.", "ROOT@EXAMPLE.COM"])
def test_registering_another_spelling_of_an_existing_address_only_tells_its_owner(registration_open, spelling):
    StaffFactory(email="root@example.com")
    assert register(spelling)["Location"] == "/register/sent/"
    assert User.objects.count() == 1
    assert [(m.to, m.subject.startswith("You already have")) for m in mail.outbox] == [(["root@example.com"], True)]
    # positive control: a new address still gets a pending account and the confirmation link, stored canonical
    assert register("new@ｅxample.org")["Location"] == "/register/sent/"
    new = User.objects.get(email="new@example.org")
    assert new.is_pending_registration and not new.is_active
    assert mail.outbox[-1].to == ["new@example.org"] and mail.outbox[-1].subject.startswith("Confirm")


@pytest.mark.django_db
def test_the_per_address_mail_limit_counts_every_spelling_as_one_address(registration_open):
    StaffFactory(email="root@example.com")
    spellings = ["root@ｅxample.com", "root@eｘample.com", "root@exａmple.com", "root@example.com.", "Root@example.com"]
    for i, spelling in enumerate(spellings):
        register(spelling, ip=f"198.51.100.{i + 10}")
    assert len([m for m in mail.outbox if m.to == ["root@example.com"]]) == 3  # MAILS_PER_ADDRESS
    assert User.objects.count() == 1
    # positive control: another address is not held back by root's limit
    register("other@example.com", ip="198.51.100.99")
    assert mail.outbox[-1].to == ["other@example.com"]


@pytest.mark.django_db
@pytest.mark.parametrize("typed", LOOKALIKES)
def test_an_existing_person_signs_in_with_whatever_spelling_they_type(typed):
    UserFactory(email="root@example.com")
    assert Client().post("/login/", {"email": typed, "password": PASSWORD})["Location"] == "/profile/"
    # control: the wrong password with the same spelling is refused
    assert Client().post("/login/", {"email": typed, "password": "wrong " + PASSWORD}).status_code == 200


@pytest.mark.django_db
def test_a_person_on_an_international_domain_is_stored_in_punycode_and_signs_in_either_way():
    person = UserFactory(email="Bob@Bücher.de")
    assert person.email == "bob@xn--bcher-kva.de"
    for typed in ("bob@bücher.de", "bob@xn--bcher-kva.de", "BOB@BÜCHER.DE."):
        assert Client().post("/login/", {"email": typed, "password": PASSWORD})["Location"] == "/profile/"


@pytest.mark.django_db
def test_a_reset_asked_for_another_spelling_goes_to_the_stored_address_once():
    UserFactory(email="root@example.com")
    assert Client().post("/password/reset/", {"email": "root@ｅxample.com"})["Location"] == "/password/reset/sent/"
    assert [m.to for m in mail.outbox] == [["root@example.com"]]


@pytest.mark.django_db
def test_the_admin_refuses_another_spelling_of_someone_elses_address():
    StaffFactory(email="boss@example.com")
    ada = UserFactory(email="ada@example.com")
    UserFactory(email="root@example.com")
    browser = Client()
    browser.force_login(User.objects.get(email="boss@example.com"))
    url = f"/admin/accounts/user/{ada.pk}/change/"
    response = change(browser, url, email="root@ｅxample.com")
    assert response.status_code == 200 and "email" in response.context["adminform"].form.errors
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"
    # positive control: a new address is taken, in its canonical spelling
    assert change(browser, url, email="Ada@ＥXAMPLE.net.").status_code == 302
    ada.refresh_from_db()
    assert ada.email == "ada@example.net"


@pytest.mark.django_db
def test_the_migration_canonicalises_rows_and_drops_unfinished_lookalike_sign_ups(capsys):
    migration = importlib.import_module("accounts.migrations.0004_canonical_emails")
    root = UserFactory(email="root@example.com")
    bob, lookalike, held = UserFactory(), UserFactory(), UserFactory()
    User.objects.filter(pk=bob.pk).update(email="bob@bücher.de")  # as stored before the canonical spelling
    pending = {"is_active": False, "is_pending_registration": True}
    User.objects.filter(pk=lookalike.pk).update(email="root@ｅxample.com", **pending)
    User.objects.filter(pk=held.pk).update(email="root@example.com.")  # an active second account: left, reported
    migration.canonicalise(apps, None)
    assert User.objects.get(pk=bob.pk).email == "bob@xn--bcher-kva.de"
    assert not User.objects.filter(pk=lookalike.pk).exists()
    assert User.objects.get(pk=held.pk).email == "root@example.com."
    assert User.objects.get(pk=root.pk).email == "root@example.com"
    assert "merge them by hand" in capsys.readouterr().out
    assert Client().post("/login/", {"email": "bob@bücher.de", "password": PASSWORD})["Location"] == "/profile/"


@pytest.mark.django_db
def test_the_sign_in_pages_show_an_international_address_in_its_own_letters():
    person = UserFactory(email="bob@bücher.de")
    browser = Client()
    browser.force_login(person)

    assert "You are signed in as bob@bücher.de." in browser.get("/login/").content.decode()
    assert "You are signed in as bob@bücher.de," in browser.get("/no-access/").content.decode()
    assert person.email == "bob@xn--bcher-kva.de"  # stored in ASCII all the same


@pytest.mark.django_db
def test_sign_up_confirmation_shows_and_mails_an_international_address_in_its_own_letters(client):
    UserFactory(email="root@example.com")  # past the first-run setup
    AppSettings.objects.update_or_create(pk=1, defaults={"self_registration_enabled": True})
    form = {"full_name": "Bob", "password1": PW, "password2": PW, "email": "bob@xn--bcher-kva.de"}

    assert client.post("/register/", form)["Location"] == "/register/sent/"

    assert "account for bob@bücher.de." in mail.outbox[-1].body
    link = re.search(r"https://dockspace\.test(/register/confirm/\S+/)", mail.outbox[-1].body).group(1)
    assert "Confirm that <strong>bob@bücher.de</strong> is your address" in client.get(link).content.decode()
