"""The Content-Security-Policy header: strict everywhere. The origins of registered apps, added to form-action where
a form ends in a redirect to an app, are oidc's (oidc/tests/test_csp.py)."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db


def policy(response):
    return dict(
        (part.strip().split(" ", 1) + [""])[:2] for part in response["Content-Security-Policy"].split(";") if part
    )


def test_every_page_gets_a_strict_policy():
    get_user_model().objects.create_user("ann@example.com")  # past the first-run page
    found = policy(Client().get("/login/"))
    assert found["default-src"] == "'self'"
    assert found["script-src"] == "'self'"
    assert found["style-src"] == "'self'"
    assert found["frame-ancestors"] == "'none'"
    assert found["object-src"] == "'none'"
    assert found["form-action"] == "'self'"  # no app registered yet
    assert "unsafe" not in " ".join(found.values())
