"""The claims request parameter (OpenID Connect Core 5.5): a claim Dockspace has, asked for in the ID token or at
userinfo, is released when the person consented to its scope and the client may use that scope; never otherwise."""

import base64
import json

import pytest
from django.test import Client

from accounts.tests.factories import UserFactory
from mail import services as mail_services
from oidc.models import Consent
from oidc.tests.factories import (
    authorize_query,
    consent_form_data,
    exchange,
    make_client,
    pkce_pair,
    query_of,
    signed_in,
)

pytestmark = pytest.mark.django_db

ASK = {"id_token": {"email": {"essential": True}, "name": None}, "userinfo": {"groups": None, "mailbox": None}}


def id_token_claims(id_token):
    # The signature is checked by the live relying-party test (test_rp_live.py); here only what was put in.
    payload = id_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def sign_in(person, app, secret, claims, scope="openid", browser=None):
    verifier, challenge = pkce_pair()
    browser = browser or signed_in(person)
    response = browser.get("/oauth/authorize/", authorize_query(app, challenge, scope=scope, claims=json.dumps(claims)))
    return browser, response, verifier


def tokens(app, secret, response, verifier):
    answer = exchange(Client(), app, query_of(response["Location"])["code"], verifier, secret)
    assert answer.status_code == 200, answer.content
    return answer.json()


def userinfo(access_token):
    return Client().get("/oauth/userinfo/", HTTP_AUTHORIZATION=f"Bearer {access_token}").json()


@pytest.fixture
def ada():
    person = UserFactory(email="ada@example.com", full_name="Ada Lovelace")
    mail_services.group_create(name="wiki-editors", members=["ada@example.com"], actor_label="test")
    return person


def test_claims_asked_for_with_scope_openid_alone_are_released_for_a_first_party_client(ada):
    app, secret = make_client("Wiki", skip_consent=True)
    _b, response, verifier = sign_in(ada, app, secret, ASK)
    issued = tokens(app, secret, response, verifier)
    claims = id_token_claims(issued["id_token"])
    assert claims["email"] == "ada@example.com" and claims["name"] == "Ada Lovelace"
    info = userinfo(issued["access_token"])
    assert info["groups"] == ["wiki-editors"] and info["email"] == "ada@example.com"
    # "mailbox" comes only with the mail scope, which the claims parameter never grants.
    assert "mailbox" not in info and "mail" not in issued["scope"].split()
    # acr is kept as before.
    assert claims["acr"] == "urn:dockspace:acr:pwd"


def test_without_the_claims_parameter_scope_openid_alone_releases_only_the_subject(ada):
    app, secret = make_client("Wiki", skip_consent=True)
    verifier, challenge = pkce_pair()
    response = signed_in(ada).get("/oauth/authorize/", authorize_query(app, challenge, scope="openid"))
    issued = tokens(app, secret, response, verifier)
    assert "email" not in id_token_claims(issued["id_token"])
    assert userinfo(issued["access_token"]) == {"sub": str(ada.uuid)}


def test_a_claim_whose_scope_the_client_may_not_use_is_not_released(ada):
    app, secret = make_client("Wiki", skip_consent=True, scopes=["openid", "email"])
    _b, response, verifier = sign_in(ada, app, secret, ASK)
    issued = tokens(app, secret, response, verifier)
    claims = id_token_claims(issued["id_token"])
    assert claims["email"] == "ada@example.com"
    assert "name" not in claims and "groups" not in userinfo(issued["access_token"])


def test_the_person_is_asked_to_consent_to_the_scopes_of_the_claims_and_a_refusal_releases_nothing(ada):
    app, secret = make_client("Wiki")
    browser, page, verifier = sign_in(ada, app, secret, {"id_token": {"email": None}})
    assert page.status_code == 200 and page.context["form"].initial["scope"] == "openid email"
    denied = browser.post("/oauth/authorize/", consent_form_data(page))
    assert query_of(denied["Location"])["error"] == "access_denied"
    assert not Consent.objects.exists()
    browser, page, verifier = sign_in(ada, app, secret, {"id_token": {"email": None}}, browser=browser)
    allowed = browser.post("/oauth/authorize/", consent_form_data(page, allow="Allow"))
    issued = tokens(app, secret, allowed, verifier)
    assert id_token_claims(issued["id_token"])["email"] == "ada@example.com"
    assert Consent.objects.get().scope_set == {"openid", "email"}
    # Remembered: the same request goes straight through next time.
    _b, again, _v = sign_in(ada, app, secret, {"id_token": {"email": None}}, browser=browser)
    assert "code" in query_of(again["Location"])


def test_claims_released_through_the_claims_parameter_survive_a_refresh(ada):
    app, secret = make_client("Wiki", skip_consent=True)
    _b, response, verifier = sign_in(ada, app, secret, ASK)
    issued = tokens(app, secret, response, verifier)
    refreshed = (
        Client()
        .post(
            "/oauth/token/",
            {
                "grant_type": "refresh_token",
                "refresh_token": issued["refresh_token"],
                "client_id": app.client_id,
                "client_secret": secret,
            },
        )
        .json()
    )
    assert id_token_claims(refreshed["id_token"])["email"] == "ada@example.com"
    assert userinfo(refreshed["access_token"])["groups"] == ["wiki-editors"]


def test_unknown_claims_are_ignored(ada):
    app, secret = make_client("Wiki", skip_consent=True)
    _b, response, verifier = sign_in(ada, app, secret, {"id_token": {"phone_number": {"essential": True}}})
    issued = tokens(app, secret, response, verifier)
    assert "phone_number" not in id_token_claims(issued["id_token"])
    assert issued["scope"] == "openid"
