"""The authorization code flow through Dockspace's views: codes, tokens, ID token claims, replay."""

import json

import pytest
from django.test import Client
from jwcrypto import jwk, jwt

from accounts.tests.factories import UserFactory, totp_device
from oidc.tests.factories import authorize_query, exchange, make_client, pkce_pair, query_of, signed_in

pytestmark = pytest.mark.django_db


def id_token_claims(client, id_token):
    keys = jwk.JWKSet.from_json(client.get("/.well-known/jwks.json").content)
    return json.loads(jwt.JWT(key=keys, jwt=id_token).claims)


def code_for(browser, app, **extra):
    verifier, challenge = pkce_pair()
    response = browser.get("/oauth/authorize/", authorize_query(app, challenge, **extra))
    assert response.status_code == 302, response.content
    return query_of(response["Location"]).get("code"), verifier, response


def test_a_person_signs_in_to_a_first_party_app_and_gets_a_verified_id_token():
    person = UserFactory(email="ada@example.com", full_name="Ada L")
    app, secret = make_client(skip_consent=True)
    browser = signed_in(person)
    code, verifier, response = code_for(browser, app)
    assert query_of(response["Location"])["state"] == "st-123"
    tokens = exchange(Client(), app, code, verifier, secret).json()
    claims = id_token_claims(Client(), tokens["id_token"])
    assert claims["sub"] == str(person.uuid)
    assert claims["email"] == "ada@example.com" and claims["name"] == "Ada L"
    assert claims["amr"] == ["pwd"] and claims["acr"] == "urn:dockspace:acr:pwd"
    assert claims["azp"] == app.client_id and claims["nonce"] == "n-456"
    userinfo = Client().get("/oauth/userinfo/", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}").json()
    assert userinfo["sub"] == str(person.uuid)


def test_a_replayed_code_is_refused_and_revokes_the_tokens_it_gave():
    person = UserFactory()
    app, secret = make_client(skip_consent=True)
    code, verifier, _ = code_for(signed_in(person), app)
    first = exchange(Client(), app, code, verifier, secret).json()
    again = exchange(Client(), app, code, verifier, secret)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    userinfo = Client().get("/oauth/userinfo/", HTTP_AUTHORIZATION=f"Bearer {first['access_token']}")
    assert userinfo.status_code == 401
    refreshed = Client().post(
        "/oauth/token/",
        {
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": app.client_id,
            "client_secret": secret,
        },
    )
    assert refreshed.status_code == 400


def test_a_totp_app_sends_a_password_only_session_to_the_code_step_and_then_issues_mfa_claims():
    person = UserFactory()
    device = totp_device(person)
    app, secret = make_client(skip_consent=True, requires_totp=True)
    browser = Client()
    # The person has a device but this session only proved the password (signed in before enrolling).
    device.confirmed = False
    device.save()
    browser = signed_in(person, client=browser)
    device.confirmed = True
    device.save()
    verifier, challenge = pkce_pair()
    response = browser.get("/oauth/authorize/", authorize_query(app, challenge))
    assert response.status_code == 302 and response["Location"].startswith("/login/verify/")
    from accounts.tests.factories import totp_code

    response = browser.post(response["Location"], {"code": totp_code(device)})
    assert response.status_code == 302 and response["Location"].startswith("/oauth/authorize/")
    response = browser.get(response["Location"])
    code = query_of(response["Location"])["code"]
    tokens = exchange(Client(), app, code, verifier, secret).json()
    claims = id_token_claims(Client(), tokens["id_token"])
    assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["acr"] == "urn:dockspace:acr:mfa"
