"""The Security page's password change and the admin's person password page refuse a password over 4,096 bytes or
made only of spaces next to the field (they used to answer 500), and accept one at the limit."""

import pytest

from accounts.tests.factories import PASSWORD, UserFactory
from accounts.validators import PasswordLimitsValidator

pytestmark = pytest.mark.django_db

TOO_LONG = "long pass phrase " * 241  # 4,097 bytes
AT_THE_LIMIT = TOO_LONG[:-1]


@pytest.fixture
def ann(client):
    user = UserFactory(email="ann@example.com")
    assert client.post("/login/", {"email": "ann@example.com", "password": PASSWORD})["Location"] == "/profile/"
    return user


def change_password(client, new):
    return client.post("/security/password/", {"old_password": PASSWORD, "new_password1": new, "new_password2": new})


@pytest.mark.parametrize(
    ("new", "rule"), [(TOO_LONG, "at most 4,096 bytes (UTF-8) are allowed; this one has 4,097."), (" " * 12, "spaces")]
)
def test_the_security_page_refuses_the_password_next_to_the_field(client, ann, new, rule):
    response = change_password(client, new)

    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors.get("new_password2", []))
    assert rule in errors
    ann.refresh_from_db()
    assert ann.check_password(PASSWORD)


def test_the_security_page_accepts_a_password_of_exactly_4096_bytes(client, ann):
    assert change_password(client, AT_THE_LIMIT)["Location"] == "/security/"

    ann.refresh_from_db()
    assert ann.check_password(AT_THE_LIMIT)


def test_the_help_text_states_the_limit():
    assert PasswordLimitsValidator().get_help_text() == "At most 4,096 bytes, and not only spaces."


@pytest.fixture
def admin_browser():
    from django.test import Client

    from accounts.tests.factories import StaffFactory

    browser = Client()
    browser.force_login(StaffFactory(email="root@example.com"))
    return browser


@pytest.mark.parametrize(("new", "rule"), [(TOO_LONG, "at most 4,096 bytes"), (" " * 12, "only of spaces")])
def test_the_admin_person_password_page_refuses_it_next_to_the_field(admin_browser, new, rule):
    person = UserFactory(email="bob@example.com")
    url = f"/admin/accounts/user/{person.pk}/password/"

    response = admin_browser.post(url, {"password1": new, "password2": new, "usable_password": "true"})

    assert response.status_code == 200
    assert rule in " ".join(response.context["form"].errors.get("password2", []))
    person.refresh_from_db()
    assert person.check_password(PASSWORD)


def test_the_admin_person_password_page_accepts_a_password_of_exactly_4096_bytes(admin_browser):
    person = UserFactory(email="bob@example.com")
    url = f"/admin/accounts/user/{person.pk}/password/"

    response = admin_browser.post(
        url, {"password1": AT_THE_LIMIT, "password2": AT_THE_LIMIT, "usable_password": "true"}
    )

    assert response.status_code == 302
    person.refresh_from_db()
    assert person.check_password(AT_THE_LIMIT)
