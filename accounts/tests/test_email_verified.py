"""A verified address stays verified only while it is the same address, whatever path changes it."""

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from accounts.tests.factories import PASSWORD, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_browser():
    browser = Client()
    browser.post("/login/", {"email": StaffFactory(email="root@example.com").email, "password": PASSWORD})
    return browser


@pytest.fixture
def verified():
    return UserFactory(email="ann@example.com", full_name="Ann", email_verified_at=timezone.now())


def change_form_data(browser, person, **changes):
    """What the admin's change form posts back unchanged, plus `changes`: built from the form itself."""
    form = browser.get(f"/admin/accounts/user/{person.pk}/change/").context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value = form.initial.get(name)
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, list | tuple):
            data[name] = [getattr(item, "pk", item) for item in value]
        elif value is not None:
            data[name] = value
    data.update(changes)
    return data


def test_changing_the_address_in_the_admin_drops_its_verification(admin_browser, verified):
    url = f"/admin/accounts/user/{verified.pk}/change/"
    response = admin_browser.post(url, change_form_data(admin_browser, verified, email="ann.new@example.com"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    verified.refresh_from_db()
    assert verified.email == "ann.new@example.com"
    assert verified.email_verified_at is None


def test_saving_the_admin_form_without_changing_the_address_keeps_its_verification(admin_browser, verified):
    url = f"/admin/accounts/user/{verified.pk}/change/"
    response = admin_browser.post(url, change_form_data(admin_browser, verified, full_name="Ann Other"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    verified.refresh_from_db()
    assert verified.full_name == "Ann Other"
    assert verified.email_verified_at is not None


def test_the_same_address_in_other_letter_case_keeps_its_verification(admin_browser, verified):
    url = f"/admin/accounts/user/{verified.pk}/change/"
    admin_browser.post(url, change_form_data(admin_browser, verified, email="ANN@example.com"))
    verified.refresh_from_db()
    assert verified.email == "ann@example.com" and verified.email_verified_at is not None


def test_any_save_that_changes_the_address_drops_its_verification(verified):
    person = User.objects.get(pk=verified.pk)
    person.email = "ann.elsewhere@example.com"
    person.save(update_fields=["email"])
    assert User.objects.get(pk=verified.pk).email_verified_at is None

    person.full_name = "Ann B"
    person.save()  # the address is as stored now: nothing more to drop, nothing restored
    again = User.objects.get(pk=verified.pk)
    assert again.email_verified_at is None and again.full_name == "Ann B"


def test_a_change_that_records_a_new_verification_keeps_it(verified):
    person = User.objects.get(pk=verified.pk)
    person.email = "ann.proved@example.com"
    person.email_verified_at = proved = timezone.now() + timezone.timedelta(seconds=1)
    person.save()
    assert User.objects.get(pk=verified.pk).email_verified_at == proved


def test_a_refreshed_person_is_compared_with_the_address_now_stored(verified):
    person = User.objects.get(pk=verified.pk)
    User.objects.filter(pk=verified.pk).update(email="ann.renamed@example.com")
    person.refresh_from_db()
    person.full_name = "Ann C"
    person.save()
    assert User.objects.get(pk=verified.pk).email_verified_at is not None
