"""The Content-Security-Policy's form-action: the origins of registered apps are added only on the pages whose form
ends in a redirect to an app (oidc.csp; the strict policy itself is dockspace/tests/test_csp.py)."""

import pytest
from django.test import Client

from accounts.tests.factories import PASSWORD, UserFactory
from dockspace.tests.test_csp import policy
from oidc import services as oidc_services
from oidc.csp import redirect_origins

pytestmark = pytest.mark.django_db


def test_app_origins_are_allowed_as_form_targets_only_where_sign_in_ends_at_an_app():
    oidc_services.client_create(
        name="Wiki",
        redirect_uris=["https://wiki.example.com/oauth/callback"],
        post_logout_redirect_uris=["https://wiki.example.com/bye"],
        actor_label="test",
    )
    UserFactory(email="ann@example.com")
    browser = Client()
    assert policy(browser.get("/login/"))["form-action"] == "'self' https://wiki.example.com"
    browser.post("/login/", {"email": "ann@example.com", "password": PASSWORD})
    # Positive control: pages whose forms stay on this site keep form-action 'self' alone.
    assert policy(browser.get("/profile/edit/"))["form-action"] == "'self'"
    assert policy(browser.get("/security/"))["form-action"] == "'self'"


def test_a_redirect_uri_that_could_break_the_header_is_left_out():
    oidc_services.client_create(name="Good", redirect_uris=["https://good.example.com/cb"], actor_label="test")
    from oidc.models import Application

    Application.objects.create(
        name="Odd",
        client_type="public",
        authorization_grant_type="authorization-code",
        redirect_uris="https://evil.example.com;script-src:*/cb https://ok.example.com:8443/cb",
    )
    assert redirect_origins() == {"https://good.example.com", "https://ok.example.com:8443"}


def test_a_client_added_changed_or_removed_shows_on_the_next_sign_in_page_at_once():
    UserFactory(email="ann@example.com")
    browser = Client()
    assert browser.get("/login/").status_code == 200
    assert policy(browser.get("/login/"))["form-action"] == "'self'"  # read once, and kept
    wiki, _secret = oidc_services.client_create(
        name="Wiki", redirect_uris=["https://wiki.example.com/cb"], actor_label="test"
    )
    assert policy(browser.get("/login/"))["form-action"] == "'self' https://wiki.example.com"

    wiki.redirect_uris = "https://docs.example.com/cb"
    wiki.save()
    assert policy(browser.get("/login/"))["form-action"] == "'self' https://docs.example.com"

    wiki.delete()
    assert policy(browser.get("/login/"))["form-action"] == "'self'"
