"""What an attacker or a sloppy client tries: ID tokens as credentials, the password grant as a password
oracle, malformed parameters, tampered consent forms. None of it works and none of it is a 500."""

import base64
import json

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from accounts.models import AuditEvent
from accounts.tests.factories import PASSWORD, UserFactory
from oidc.models import Consent
from oidc.tests.factories import authorize_query, consent_form_data, make_client, pkce_pair, query_of, signed_in
from oidc.tests.tokens import introspecting_client, person_with_mailbox, tokens_for, webmail_client

pytestmark = pytest.mark.django_db


def basic(client_id, secret):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_an_id_token_opens_neither_mail_nor_introspection_nor_userinfo():
    person = person_with_mailbox()
    app, secret = webmail_client()
    id_token = tokens_for(person, app, secret)["id_token"]
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {id_token}"}
    assert Client().get("/oauth/mail-userinfo/", **bearer).status_code == 401
    assert Client().get("/oauth/userinfo/", **bearer).status_code == 401
    rs, rs_secret = introspecting_client()
    answer = Client().post("/oauth/introspect/", {"token": id_token}, HTTP_AUTHORIZATION=basic(rs.client_id, rs_secret))
    assert answer.json() == {"active": False}


@pytest.mark.parametrize(
    "token", ["eyJ.x.y", "eyJhbGciOiJub25lIn0.eyJ9.", "a.b.c.d.e", "eyJhbGciOiJub25lIn0.eyJhdWQiOjV9."]
)
def test_garbage_jwt_shaped_bearer_tokens_are_401_not_500(token):
    assert Client().get("/oauth/mail-userinfo/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    assert Client().get("/oauth/userinfo/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_the_password_grant_answers_the_same_for_a_right_and_a_wrong_password():
    person = UserFactory()
    app, secret = make_client(public=True)
    answers = []
    for password in (PASSWORD, "wrong password"):
        response = Client().post(
            "/oauth/token/",
            {"grant_type": "password", "username": person.email, "password": password, "client_id": app.client_id},
        )
        answers.append((response.status_code, response.json()["error"]))
    assert answers == [(400, "unsupported_grant_type")] * 2


def test_resource_indicators_are_refused_at_the_token_endpoint():
    app, secret = make_client(name="Job", redirect_uris=[], client_credentials=True, scopes=["introspection"])
    response = Client().post(
        "/oauth/token/",
        {"grant_type": "client_credentials", "resource": "https://api.example.net/"},
        HTTP_AUTHORIZATION=basic(app.client_id, secret),
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_target"


def test_the_device_grant_is_not_offered():
    app, secret = make_client()
    response = Client().post(
        "/oauth/token/",
        {"grant_type": "urn:ietf:params:oauth:grant-type:device_code"},
        HTTP_AUTHORIZATION=basic(app.client_id, secret),
    )
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"claims": "1"}, "invalid_request"),
        ({"claims": "[1, 2]"}, "invalid_request"),
        ({"claims": json.dumps({"id_token": "x"})}, "invalid_request"),
        (
            {"claims": json.dumps({"id_token": {"acr": {"essential": True, "values": "urn:dockspace:acr:mfa"}}})},
            "invalid_request",
        ),
        ({"resource": "https://api.example.net/"}, "invalid_target"),
        ({"nonce": "n" * 256}, "invalid_request"),
        ({"code_challenge": "c" * 129}, "invalid_request"),
    ],
)
def test_malformed_or_unsupported_parameters_are_refused_to_the_app_with_state_and_issuer(extra, error):
    app, _secret = make_client(skip_consent=True)
    _v, challenge = pkce_pair()
    response = signed_in(UserFactory()).get("/oauth/authorize/", authorize_query(app, challenge, **extra))
    assert response.status_code == 302
    params = query_of(response["Location"])
    assert params["error"] == error and params["state"] == "st-123" and params["iss"] == "https://dockspace.test"


def test_errors_found_by_oauthlib_also_name_the_issuer():
    app, _secret = make_client(skip_consent=True)
    _v, challenge = pkce_pair()
    response = signed_in(UserFactory()).get("/oauth/authorize/", authorize_query(app, challenge, scope="openid mail"))
    params = query_of(response["Location"])
    assert params["error"] == "invalid_scope" and params["iss"] == "https://dockspace.test"


def test_a_consent_form_without_its_binding_or_with_other_scopes_is_refused_and_records_nothing():
    app, _secret = make_client()
    browser = signed_in(UserFactory())
    _v, challenge = pkce_pair()
    page = browser.get("/oauth/authorize/", authorize_query(app, challenge))
    unbound = {k: v for k, v in consent_form_data(page, allow="Allow").items() if k != "ds_request"}
    assert browser.post("/oauth/authorize/", unbound).status_code == 400
    widened = consent_form_data(page, allow="Allow", scope="openid profile email groups mail introspection")
    assert browser.post("/oauth/authorize/", widened).status_code == 400
    assert not Consent.objects.exists()
    response = browser.post("/oauth/authorize/", consent_form_data(page, allow="Allow"))
    assert "code" in query_of(response["Location"]) and Consent.objects.count() == 1


def test_people_never_get_tokens_that_introspect_other_tokens():
    app, _secret = make_client(skip_consent=True, scopes=["openid", "introspection"])
    _v, challenge = pkce_pair()
    response = signed_in(UserFactory()).get(
        "/oauth/authorize/", authorize_query(app, challenge, scope="openid introspection")
    )
    assert query_of(response["Location"])["error"] == "invalid_scope"


def test_logout_with_an_unknown_client_is_an_error_page_and_without_a_return_address_goes_to_sign_in():
    assert Client().get("/oauth/logout/", {"client_id": "nope"}).status_code == 400
    person = UserFactory()
    browser = signed_in(person)
    page = browser.get("/oauth/logout/")
    assert page.status_code == 200
    fields = {"allow": "Logout", **{k: v for k, v in page.context["form"].initial.items() if v}}
    response = browser.post("/oauth/logout/", fields)
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert browser.get("/profile/").status_code == 302  # signed out


def test_two_clients_cannot_share_a_name_people_see_on_the_consent_page():
    make_client("Grafana")
    with pytest.raises(ValidationError) as raised:
        make_client("grafana ")
    assert "already exists" in raised.value.message_dict["name"][0]


def test_each_sign_in_to_an_app_is_audited_with_what_was_proved():
    person = UserFactory()
    app, _secret = make_client(skip_consent=True)
    _v, challenge = pkce_pair()
    browser = signed_in(person)
    for _ in range(2):
        browser.get("/oauth/authorize/", authorize_query(app, challenge))
    events = AuditEvent.objects.filter(action="oidc.signin", actor=person)
    assert events.count() == 2 and "pwd" in events.first().description and events.first().ip == "127.0.0.1"


def test_removing_a_client_counts_the_access_tokens_it_revoked():
    person = person_with_mailbox()
    app, secret = webmail_client()
    tokens_for(person, app, secret)
    tokens_for(person, app, secret)
    from oidc import services

    services.client_remove(application=app, actor_label="test")
    assert "2 access token" in AuditEvent.objects.get(action="oidc.client.remove").description


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"request": "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9."}, "request_not_supported"),
        ({"request_uri": "https://app.example.net/request.jwt"}, "request_uri_not_supported"),
    ],
)
@pytest.mark.parametrize("signed_in_first", [True, False])
def test_request_objects_are_refused_to_the_app_with_state_and_issuer(extra, error, signed_in_first):
    app, _secret = make_client(skip_consent=True)
    _v, challenge = pkce_pair()
    browser = signed_in(UserFactory()) if signed_in_first else Client()
    response = browser.get("/oauth/authorize/", authorize_query(app, challenge, **extra))
    assert response.status_code == 302 and response["Location"].startswith("https://app.example.net/callback?")
    params = query_of(response["Location"])
    assert params["error"] == error and params["state"] == "st-123" and params["iss"] == "https://dockspace.test"
    assert "code" not in params
    # Control: the same request without the parameter gets a code (or, signed out, the sign-in page).
    plain = browser.get("/oauth/authorize/", authorize_query(app, challenge))
    if signed_in_first:
        assert "code" in query_of(plain["Location"])
    else:
        assert plain["Location"].startswith("/login/")


def test_a_request_object_with_an_unregistered_redirect_uri_is_not_redirected_there():
    app, _secret = make_client(skip_consent=True)
    _v, challenge = pkce_pair()
    response = Client().get(
        "/oauth/authorize/",
        authorize_query(app, challenge, request="x.y.z", redirect_uri="https://evil.example.org/cb"),
    )
    assert not response.get("Location", "").startswith("https://evil.example.org")
