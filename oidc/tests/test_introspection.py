"""Token introspection (RFC 7662) at /oauth/introspect/: only callers trusted with "introspection" may ask, and
tokens of people or clients that can no longer use apps come back inactive."""

import base64
import logging
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import get_access_token_model

from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from mail import services as mail_services
from mail.tests.factories import use_temp_dms_dir
from oidc import services
from oidc.tests.factories import make_client
from oidc.tests.tokens import access_token_for, introspecting_client, person_with_mailbox, tokens_for, webmail_client

URL = "/oauth/introspect/"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _dms_dir(settings, tmp_path):
    use_temp_dms_dir(settings, tmp_path)


def basic(client_id, secret):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.fixture
def resource_server():
    return introspecting_client()


@pytest.fixture
def introspect(resource_server):
    app, secret = resource_server

    def ask(token):
        # Resource servers hold no CSRF cookie: the endpoint is CSRF-exempt.
        return Client(enforce_csrf_checks=True).post(
            URL, {"token": token}, HTTP_AUTHORIZATION=basic(app.client_id, secret)
        )

    return ask


@pytest.fixture
def person():
    return person_with_mailbox("ada@mail.example.net", email="ada@example.com")


@pytest.fixture
def webmail():
    return webmail_client()


@pytest.fixture
def token(person, webmail):
    app, secret = webmail
    return access_token_for(person, app, secret)


def test_a_trusted_client_learns_who_a_token_belongs_to(introspect, token, person, webmail):
    app, _ = webmail
    before = timezone.now().timestamp()
    response = introspect(token)
    assert response.status_code == 200
    data = response.json()
    assert data["active"] is True
    assert data["sub"] == str(person.uuid)
    assert data["username"] == "ada@example.com"
    assert data["client_id"] == app.client_id
    assert data["scope"] == "openid email mail"
    assert data["token_type"] == "Bearer"
    assert before + 3000 < data["exp"] <= before + 3700
    assert "no-store" in response["Cache-Control"]


def test_tokens_are_stored_hashed_and_still_found_by_their_checksum(introspect, token):
    row = get_access_token_model().objects.get()
    assert row.token == "" and token not in row.token_checksum
    assert introspect(token).json()["active"] is True


def test_client_secret_post_authenticates_too(resource_server, token):
    app, secret = resource_server
    response = Client().post(URL, {"token": token, "client_id": app.client_id, "client_secret": secret})
    assert response.status_code == 200 and response.json()["active"] is True


def test_a_bearer_token_with_the_introspection_scope_may_introspect(resource_server, token):
    app, secret = resource_server
    issued = Client().post(
        "/oauth/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic(app.client_id, secret)
    )
    assert issued.status_code == 200, issued.content
    assert issued.json()["scope"] == "introspection"
    caller = issued.json()["access_token"]
    response = Client().post(URL, {"token": token}, HTTP_AUTHORIZATION=f"Bearer {caller}")
    assert response.status_code == 200 and response.json()["active"] is True
    # The client-credentials token itself has no person behind it.
    about_caller = Client().post(URL, {"token": caller}, HTTP_AUTHORIZATION=f"Bearer {caller}").json()
    assert about_caller["active"] is True and "sub" not in about_caller and "username" not in about_caller


def test_a_bearer_token_without_the_introspection_scope_is_refused(token):
    response = Client().post(URL, {"token": token}, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_authenticated_client_without_the_introspection_scope_is_refused(token, webmail):
    app, secret = webmail
    response = Client().post(URL, {"token": token}, HTTP_AUTHORIZATION=basic(app.client_id, secret))
    assert response.status_code == 403
    assert response.json()["error"] == "unauthorized_client"
    assert "introspection" in response.json()["error_description"]


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic d3Jvbmc6c2VjcmV0", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Digest x"],
)
def test_callers_that_do_not_authenticate_get_a_401(token, authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = Client().post(URL, {"token": token}, **headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_a_wrong_secret_is_refused(resource_server, token):
    app, _ = resource_server
    response = Client().post(URL, {"token": token}, HTTP_AUTHORIZATION=basic(app.client_id, "wrong"))
    assert response.status_code == 401


def test_a_public_client_cannot_introspect_even_with_the_scope(token):
    app, _ = make_client("Native app", public=True, scopes=["openid", "introspection"])
    response = Client().post(URL, {"token": token, "client_id": app.client_id})
    assert response.status_code == 401


def test_an_inactive_introspecting_client_is_refused(resource_server, introspect, token):
    app, _ = resource_server
    app.is_active = False
    app.save(update_fields=["is_active"])
    assert introspect(token).status_code == 401


def test_get_with_the_token_in_the_query_string_is_not_answered(resource_server, token):
    app, secret = resource_server
    response = Client().get(URL, {"token": token}, HTTP_AUTHORIZATION=basic(app.client_id, secret))
    assert response.status_code == 405
    assert response.json()["error"] == "invalid_request"


def test_a_missing_token_is_a_400(introspect):
    response = introspect("")
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("garbage", ["x" * 30, "a b", "\x00", "é" * 5, "A" * 10000, "%zz"])
def test_unknown_or_malformed_tokens_are_inactive(introspect, garbage):
    response = introspect(garbage)
    assert response.status_code == 200 and response.json() == {"active": False}


def test_an_expired_token_is_inactive(introspect, token):
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        assert introspect(token).json() == {"active": False}


def test_a_revoked_token_is_inactive(introspect, token, webmail):
    app, secret = webmail
    revoked = Client().post("/oauth/revoke/", {"token": token, "client_id": app.client_id, "client_secret": secret})
    assert revoked.status_code == 200
    assert introspect(token).json() == {"active": False}


@pytest.mark.parametrize("state", ["suspended", "disabled"])
def test_the_token_of_a_suspended_or_disabled_mailbox_is_inactive(introspect, token, person, state):
    mail_services.mailbox_set_state(mailbox=person.mailbox, state=state, actor_label="test")
    assert introspect(token).json() == {"active": False}


def test_the_token_of_an_inactive_account_is_inactive(introspect, token, person):
    person.is_active = False
    person.save(update_fields=["is_active"])
    assert introspect(token).json() == {"active": False}


def test_the_token_of_an_inactive_client_is_inactive(introspect, token, webmail):
    app, _ = webmail
    app.is_active = False
    app.save(update_fields=["is_active"])
    assert introspect(token).json() == {"active": False}


def test_the_token_of_a_removed_client_is_inactive(introspect, token, webmail):
    app, _ = webmail
    services.client_remove(application=app, actor_label="test")
    assert introspect(token).json() == {"active": False}


def test_a_person_without_a_mailbox_is_active_with_their_sign_in_address(introspect, webmail):
    app, secret = webmail
    token = access_token_for(UserFactory(email="bob@example.com"), app, secret, scope="openid email")
    data = introspect(token).json()
    assert data["active"] is True and data["username"] == "bob@example.com"


def test_introspection_writes_no_audit_entry_and_logs_no_token(introspect, token, caplog):
    before = AuditEvent.objects.count()
    with caplog.at_level(logging.DEBUG):
        introspect(token)
        Client().post(URL, {"token": token}, HTTP_AUTHORIZATION=f"Bearer {token}")
        Client().post(URL, {"token": token}, HTTP_AUTHORIZATION=basic("nobody", "nothing"))
    assert AuditEvent.objects.count() == before
    assert token not in caplog.text


def test_discovery_advertises_the_introspection_endpoint():
    metadata = Client().get("/.well-known/openid-configuration").json()
    assert metadata["introspection_endpoint"].endswith(URL)
    assert metadata["introspection_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post"]
    assert metadata["dockspace_introspection_requires_scope"] == "introspection"


@pytest.fixture
def tokens(person, webmail):
    app, secret = webmail
    return tokens_for(person, app, secret)


def refresh(webmail, refresh_token):
    app, secret = webmail
    return Client().post(
        "/oauth/token/",
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": app.client_id,
            "client_secret": secret,
        },
    )


def test_a_live_refresh_token_is_active_with_who_it_belongs_to(introspect, tokens, person, webmail):
    app, _ = webmail
    before = timezone.now().timestamp()
    data = introspect(tokens["refresh_token"]).json()
    assert data["active"] is True
    assert data["token_type"] == "refresh_token"
    assert data["client_id"] == app.client_id
    assert data["sub"] == str(person.uuid) and data["username"] == "ada@example.com"
    assert data["scope"] == "openid email mail"
    # Idle lifetime: 30 days after the access token paired with it expires.
    assert before + 30 * 86400 + 3000 < data["exp"] <= before + 30 * 86400 + 3700
    assert before - 60 <= data["iat"] <= before + 60
    # The access token of the same response is still told apart.
    assert introspect(tokens["access_token"]).json()["token_type"] == "Bearer"


def test_a_rotated_refresh_token_is_inactive_and_its_successor_active(introspect, tokens, webmail):
    rotated = refresh(webmail, tokens["refresh_token"])
    assert rotated.status_code == 200
    assert introspect(tokens["refresh_token"]).json() == {"active": False}
    assert introspect(rotated.json()["refresh_token"]).json()["active"] is True


def test_a_refresh_token_revoked_by_the_app_or_by_a_sign_in_reset_is_inactive(introspect, tokens, webmail, person):
    app, secret = webmail
    revoked = Client().post(
        "/oauth/revoke/",
        {"token": tokens["refresh_token"], "client_id": app.client_id, "client_secret": secret},
    )
    assert revoked.status_code == 200
    assert introspect(tokens["refresh_token"]).json() == {"active": False}
    other = tokens_for(person, app, secret)
    assert introspect(other["refresh_token"]).json()["active"] is True
    services.person_tokens_revoke(user=person, reason="test")
    assert introspect(other["refresh_token"]).json() == {"active": False}


def test_a_refresh_token_past_its_idle_lifetime_or_of_a_suspended_person_is_inactive(introspect, tokens, person):
    assert introspect(tokens["refresh_token"]).json()["active"] is True
    with time_machine.travel(timezone.now() + timedelta(days=30, hours=2)):
        assert introspect(tokens["refresh_token"]).json() == {"active": False}
    person.is_active = False
    person.save(update_fields=["is_active"])
    assert introspect(tokens["refresh_token"]).json() == {"active": False}


def test_only_callers_trusted_with_introspection_learn_about_refresh_tokens(tokens, webmail):
    app, secret = webmail
    answer = Client().post(URL, {"token": tokens["refresh_token"]}, HTTP_AUTHORIZATION=basic(app.client_id, secret))
    assert answer.status_code == 403 and "active" not in answer.json()
