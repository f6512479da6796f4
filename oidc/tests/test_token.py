"""The token endpoint: client credentials for automation, refresh rules, audit of failures."""

import pytest
from django.test import Client

from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from oidc.tests.factories import authorize_query, exchange, make_client, pkce_pair, query_of, signed_in

pytestmark = pytest.mark.django_db


def test_an_automation_client_gets_a_token_with_client_credentials_and_no_person_scopes():
    app, secret = make_client(name="Backup job", redirect_uris=[], client_credentials=True, scopes=["introspection"])
    response = Client().post(
        "/oauth/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic(app.client_id, secret)
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["scope"] == "introspection" and "id_token" not in body and "refresh_token" not in body


def test_a_wrong_client_secret_is_refused_and_audited_without_the_secret():
    app, secret = make_client(name="Backup job", redirect_uris=[], client_credentials=True, scopes=["introspection"])
    response = Client().post(
        "/oauth/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic(app.client_id, "wrong")
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    event = AuditEvent.objects.get(action="oidc.token_failure")
    assert app.client_id in event.description and "invalid_client" in event.description
    assert "wrong" not in event.description and secret not in event.description


def test_the_password_and_implicit_grants_do_not_exist():
    app, secret = make_client(skip_consent=True)
    response = Client().post(
        "/oauth/token/",
        {"grant_type": "password", "username": "a@example.com", "password": "x"},
        HTTP_AUTHORIZATION=basic(app.client_id, secret),
    )
    assert response.status_code == 400 and "access_token" not in response.json()
    _v, challenge = pkce_pair()
    browser = signed_in(UserFactory())
    response = browser.get("/oauth/authorize/", authorize_query(app, challenge, response_type="token"))
    assert "access_token" not in response.get("Location", "")


def test_userinfo_returns_only_the_claims_of_the_granted_scopes():
    person = UserFactory(email="kim@example.com")
    app, secret = make_client(skip_consent=True)
    verifier, challenge = pkce_pair()
    browser = signed_in(person)
    response = browser.get("/oauth/authorize/", authorize_query(app, challenge, scope="openid"))
    tokens = exchange(Client(), app, query_of(response["Location"])["code"], verifier, secret).json()
    info = Client().get("/oauth/userinfo/", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}").json()
    assert info == {"sub": str(person.uuid)}


def test_a_scope_the_client_may_not_ask_for_is_refused():
    app, _secret = make_client(skip_consent=True, scopes=["openid", "email"])
    _v, challenge = pkce_pair()
    response = signed_in(UserFactory()).get("/oauth/authorize/", authorize_query(app, challenge, scope="openid mail"))
    assert query_of(response["Location"])["error"] == "invalid_scope"


def basic(client_id, secret):
    import base64

    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_a_wrong_secret_sent_with_http_basic_gets_a_basic_challenge_not_a_bearer_one():
    app, secret = make_client(name="Backup job", redirect_uris=[], client_credentials=True, scopes=["introspection"])
    wrong = Client().post(
        "/oauth/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic(app.client_id, "wrong")
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong["WWW-Authenticate"] == 'Basic realm="Dockspace"'
    right = Client().post(
        "/oauth/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic(app.client_id, secret)
    )
    assert right.status_code == 200 and "WWW-Authenticate" not in right


def test_a_wrong_secret_sent_in_the_body_gets_invalid_client_without_any_challenge():
    app, secret = make_client(name="Backup job", redirect_uris=[], client_credentials=True, scopes=["introspection"])
    body = {"grant_type": "client_credentials", "client_id": app.client_id}
    wrong = Client().post("/oauth/token/", {**body, "client_secret": "wrong"})
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_client"
    assert "WWW-Authenticate" not in wrong
    assert Client().post("/oauth/token/", {**body, "client_secret": secret}).status_code == 200


def test_a_wrong_secret_at_the_revocation_endpoint_is_answered_in_the_scheme_the_client_used():
    app, secret = make_client(name="Backup job", redirect_uris=[], client_credentials=True, scopes=["introspection"])
    token = (
        Client()
        .post("/oauth/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic(app.client_id, secret))
        .json()["access_token"]
    )
    wrong = Client().post("/oauth/revoke/", {"token": token}, HTTP_AUTHORIZATION=basic(app.client_id, "wrong"))
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"] == 'Basic realm="Dockspace"'
    in_body = Client().post("/oauth/revoke/", {"token": token, "client_id": app.client_id, "client_secret": "wrong"})
    assert in_body.status_code == 400 and "WWW-Authenticate" not in in_body
    right = Client().post("/oauth/revoke/", {"token": token}, HTTP_AUTHORIZATION=basic(app.client_id, secret))
    assert right.status_code == 200
