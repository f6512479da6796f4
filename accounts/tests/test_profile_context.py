"""The profile page shows what the apps above accounts add (AppConfig.profile_context), without accounts importing
them: mail adds the mailbox, oidc the apps signed into; a new app adds its own entry the same way."""

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from accounts.selectors import profile_context
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

EXTENSION = type(apps.get_app_config("extension_app"))


def test_each_installed_app_adds_its_entries_to_the_profile_page(monkeypatch):
    monkeypatch.setattr(EXTENSION, "profile_context", lambda self, person: {"greeting": f"hi {person.email}"}, False)
    browser = Client()
    browser.force_login(UserFactory(email="ann@example.com"))

    response = browser.get("/profile/")

    assert response.status_code == 200
    assert response.context["greeting"] == "hi ann@example.com"
    assert response.context["mail"] is None  # mail's entry: ann has no mailbox
    assert list(response.context["apps"]) == []  # oidc's entry
    assert "No mailbox" in response.content.decode()


def test_two_apps_setting_the_same_entry_is_refused(monkeypatch):
    monkeypatch.setattr(EXTENSION, "profile_context", lambda self, person: {"mail": "mine"}, False)

    with pytest.raises(ImproperlyConfigured, match="extension_app sets 'mail'"):
        profile_context(UserFactory())
