import logging
import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import AppSettings, AuditEvent, User
from accounts.tests.factories import PASSWORD, UserFactory
from dockspace.access_log import MaskSecretPathsFilter

pytestmark = pytest.mark.django_db

FORM = {"full_name": "New Person", "password1": "a long pass phrase 9", "password2": "a long pass phrase 9"}


@pytest.fixture(autouse=True)
def registration_on():
    UserFactory(email="existing@example.com")
    AppSettings.objects.update_or_create(pk=1, defaults={"self_registration_enabled": True})


def link():
    return re.search(r"https://dockspace\.test(/register/confirm/\S+/)", mail.outbox[-1].body).group(1)


def test_sign_up_activates_only_through_the_mailed_link(client):
    response = client.post("/register/", {**FORM, "email": "New@Example.com"})
    assert response["Location"] == "/register/sent/"
    person = User.objects.get(email="new@example.com")
    assert not person.is_active and person.is_pending_registration
    assert Client().post("/login/", {"email": "new@example.com", "password": FORM["password1"]}).status_code == 200
    response = client.post(link())
    assert response["Location"] == "/login/"
    person.refresh_from_db()
    assert person.is_active and person.email_verified_at and not person.is_staff
    assert "sign in with your password" in client.get("/login/").content.decode()
    signed_in = Client()
    assert signed_in.post("/login/", {"email": "new@example.com", "password": FORM["password1"]})["Location"] == (
        "/profile/"
    )
    assert AuditEvent.objects.filter(action="user.create", target_label="new@example.com").exists()
    # The link works once.
    assert Client().get(link()).status_code == 400
    assert Client().post(link()).status_code == 400


def test_opening_the_link_only_asks_for_confirmation_and_a_prefetch_activates_nothing(client, csrf_client):
    client.post("/register/", {**FORM, "email": "new@example.com"})
    scanner = Client()
    for _ in range(2):  # a mail scanner fetching the link, twice
        page = scanner.get(link())
        assert page.status_code == 200 and "Activate my account" in page.content.decode()
    person = User.objects.get(email="new@example.com")
    assert not person.is_active and person.is_pending_registration and person.email_verified_at is None
    # The button is a POST that needs the page's CSRF token: a forged cross-site post activates nothing.
    assert Client(enforce_csrf_checks=True).post(link()).status_code == 403
    person.refresh_from_db()
    assert not person.is_active

    # The person opens the link and presses the button: activated, and not signed in.
    page = csrf_client.get(link())
    response = csrf_client.post(link(), {"csrfmiddlewaretoken": page.context["csrf_token"]})
    assert response["Location"] == "/login/"
    person.refresh_from_db()
    assert person.is_active and not person.is_pending_registration and person.email_verified_at
    assert csrf_client.get("/profile/")["Location"].startswith("/login/")


def test_the_page_says_the_same_for_a_taken_address_and_mails_its_owner(client):
    new = client.post("/register/", {**FORM, "email": "fresh@example.com"})
    taken = client.post("/register/", {**FORM, "email": "EXISTING@example.com"})
    assert new["Location"] == taken["Location"] == "/register/sent/"
    assert mail.outbox[-1].to == ["existing@example.com"]
    assert "already has one" in mail.outbox[-1].body and "/register/confirm/" not in mail.outbox[-1].body
    existing = User.objects.get(email="existing@example.com")
    assert existing.check_password(PASSWORD)  # untouched


def test_a_second_sign_up_replaces_the_pending_one(client):
    client.post("/register/", {**FORM, "email": "new@example.com"})
    first = link()
    client.post(
        "/register/",
        {**FORM, "email": "new@example.com", "password1": "another phrase 77", "password2": "another phrase 77"},
    )
    assert Client().get(first).status_code == 400  # the earlier link no longer works
    assert Client().post(link())["Location"] == "/login/"
    assert User.objects.get(email="new@example.com").check_password("another phrase 77")


def test_bad_input_is_explained_and_creates_nothing(client):
    response = client.post("/register/", {**FORM, "email": "not-an-address"})
    assert "Enter a valid email address" in response.content.decode()
    response = client.post("/register/", {**FORM, "email": "x@example.com", "password2": "different 123"})
    assert "The two passwords differ." in response.content.decode()
    assert not User.objects.filter(email="x@example.com").exists()
    assert Client().get("/register/confirm/Zm9v/garbage/").status_code == 400


def test_registration_is_gone_when_switched_off(client):
    AppSettings.objects.update_or_create(pk=1, defaults={"self_registration_enabled": False})
    assert client.get("/register/").status_code == 404
    assert client.post("/register/", {**FORM, "email": "n@example.com"}).status_code == 404


def later_sign_up_attack(client, *, activate, give_mailbox=None):
    """An operator takes a pending sign-up over (a password of their choosing, then activation and/or a mailbox,
    `give_mailbox(person)`), then someone signs up again with that address: neither that sign-up nor the first
    link changes the person."""
    client.post("/register/", {**FORM, "email": "victim@example.com"})
    first_link = link()
    person = User.objects.get(email="victim@example.com")
    assert person.is_pending_registration  # the flag is still set, as it was when this attack worked
    person.set_password("operator chosen 31")
    person.is_active = activate
    person.save()
    if give_mailbox:
        give_mailbox(person)

    attacker = {
        **FORM,
        "email": "victim@example.com",
        "password1": "attacker phrase 66",
        "password2": "attacker phrase 66",
    }
    response = Client().post("/register/", attacker)

    assert response["Location"] == "/register/sent/"  # the same answer as for anyone
    person.refresh_from_db()
    assert person.check_password("operator chosen 31") and not person.check_password("attacker phrase 66")
    assert person.is_active is activate
    assert "/register/confirm/" not in mail.outbox[-1].body  # the owner is told, no link to finish a sign-up
    # The link of the first sign-up activates nothing either.
    Client().post(first_link)
    person.refresh_from_db()
    assert person.is_active is activate and person.email_verified_at is None
    assert person.check_password("operator chosen 31")


def test_a_later_sign_up_never_replaces_the_password_of_an_activated_person(client):
    later_sign_up_attack(client, activate=True)  # with a mailbox: mail/tests/test_registration_mailbox.py


# Finding 14: the token of a refused registration link never reaches a log line (dockspace.access_log).
LOGGED_TOKEN = "cn0abc-0123456789abcdef0123456789abcdef"


def test_djangos_own_log_line_for_a_refused_registration_link_is_masked(client, caplog):
    settings_row = AppSettings.load()
    settings_row.self_registration_enabled = True
    settings_row.save()
    UserFactory()  # past the first-run page
    caplog.handler.addFilter(MaskSecretPathsFilter())
    register = reverse("accounts:register_confirm", kwargs={"uidb64": "MQ", "token": LOGGED_TOKEN})
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get(register)
    assert response.status_code == 400
    assert "/register/confirm/MQ/***/" in caplog.text  # positive control: the line is there
    assert LOGGED_TOKEN not in caplog.text
    # The filter is what settings.LOGGING puts on the console handler every process logs through.
    assert any(isinstance(f, MaskSecretPathsFilter) for h in logging.getLogger().handlers for f in h.filters)
