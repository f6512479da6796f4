"""The Content-Security-Policy header: strict everywhere; the origins of registered apps are added to
form-action only on the pages whose form ends in a redirect to an app."""

import pytest
from django.test import Client

from accounts.tests.factories import PASSWORD, UserFactory
from oidc import services as oidc_services
from oidc.csp import redirect_origins

pytestmark = pytest.mark.django_db


def policy(response):
    return dict(
        (part.strip().split(" ", 1) + [""])[:2] for part in response["Content-Security-Policy"].split(";") if part
    )


def test_every_page_gets_a_strict_policy():
    UserFactory(email="ann@example.com")
    found = policy(Client().get("/login/"))
    assert found["default-src"] == "'self'"
    assert found["script-src"] == "'self'"
    assert found["style-src"] == "'self'"
    assert found["frame-ancestors"] == "'none'"
    assert found["object-src"] == "'none'"
    assert found["form-action"] == "'self'"  # no app registered yet
    assert "unsafe" not in " ".join(found.values())


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
