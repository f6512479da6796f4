"""Mail login with tokens: /oauth/mail-userinfo/ answers Dovecot's oauth2 passdb (DMS ENABLE_OAUTH2=1) with the
mailbox a token opens, and a real Dovecot lets IMAP XOAUTH2 in only while Dockspace says yes."""

import base64
import contextlib
import imaplib
import logging
from datetime import timedelta
from urllib.parse import quote

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from mail import services as mail_services
from mail.tests.dovecot_server import hash_password, skip_unless_dovecot_23, skip_unless_protocol
from mail.tests.factories import use_temp_dms_dir
from oidc import services
from oidc.tests.dovecot_oauth2 import (
    imap_authenticate,
    oauthbearer,
    running_dovecot_with_oauth2,
    sasl_auth,
    xoauth2,
)
from oidc.tests.factories import authorize_query, pkce_pair, query_of, signed_in
from oidc.tests.tokens import (
    access_token_for,
    introspecting_client,
    person_with_mailbox,
    tokens_for,
    webmail_client,
)

URL = "/oauth/mail-userinfo/"
ADDRESS = "ada@mail.example.net"


@pytest.fixture(autouse=True)
def _dms_dir(settings, tmp_path):
    use_temp_dms_dir(settings, tmp_path)


def ask(token, client=None):
    """What Dovecot sends with introspection_mode = auth."""
    return (client or Client()).get(URL, HTTP_AUTHORIZATION=f"Bearer {token}")


def ask_by_post(token, client_id=None, secret=None, content_type=None):
    """introspection_mode = post: a `token=` body and Basic auth (Dovecot takes it from the URL). No Content-Type
    unless given: the endpoint must not depend on one."""
    headers = {}
    if client_id is not None:
        headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    body = f"token={quote(token, safe='')}"
    return Client().generic("POST", URL, body, content_type=content_type or "", **headers)


def assert_refused(response):
    assert response.status_code == 401
    # "active": false is what makes Dovecot 2.3 call it a failed login rather than a temporary failure.
    assert response.json() == {"error": "invalid_token", "active": False}
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


@pytest.mark.django_db
class TestMailTokenEndpoint:
    @pytest.fixture
    def person(self):
        return person_with_mailbox(ADDRESS, email="ada@example.com")

    @pytest.fixture
    def webmail(self):
        return webmail_client()

    @pytest.fixture
    def token(self, person, webmail):
        app, secret = webmail
        return access_token_for(person, app, secret)

    def test_a_mail_token_names_the_mailbox_address_not_the_sign_in_address(self, person, token):
        response = ask(token)
        assert response.status_code == 200
        assert response.json() == {
            "email": ADDRESS,
            "active": True,
            "sub": str(person.uuid),
            "scope": "openid email mail",
        }
        assert "no-store" in response["Cache-Control"]

    def test_a_token_without_the_mail_scope_is_refused(self, person, webmail):
        app, secret = webmail
        token = access_token_for(person, app, secret, scope="openid email")
        assert_refused(ask(token))

    @pytest.mark.parametrize("state", ["suspended", "disabled"])
    def test_a_suspended_or_disabled_mailbox_is_refused(self, person, token, state):
        mail_services.mailbox_set_state(mailbox=person.mailbox, state=state, actor_label="test")
        assert_refused(ask(token))

    def test_a_resumed_mailbox_needs_a_new_token_the_old_one_was_revoked_on_suspension(self, person, token, webmail):
        mail_services.mailbox_set_state(mailbox=person.mailbox, state="suspended", actor_label="test")
        mail_services.mailbox_set_state(mailbox=person.mailbox, state="active", actor_label="test")
        assert_refused(ask(token))
        app, secret = webmail
        assert ask(access_token_for(person, app, secret)).status_code == 200

    def test_a_person_without_a_mailbox_is_refused(self, webmail):
        app, secret = webmail
        token = access_token_for(UserFactory(), app, secret)
        assert_refused(ask(token))

    def test_an_inactive_account_is_refused(self, person, token):
        person.is_active = False
        person.save(update_fields=["is_active"])
        assert_refused(ask(token))

    def test_a_token_of_an_inactive_client_is_refused(self, token, webmail):
        app, _ = webmail
        app.is_active = False
        app.save(update_fields=["is_active"])
        assert_refused(ask(token))

    def test_someone_taken_out_of_the_clients_groups_is_refused(self, person):
        staff = mail_services.group_create(name="staff", members=[person], actor_label="test")
        app, secret = webmail_client(groups=["staff"])
        token = access_token_for(person, app, secret)
        assert ask(token).status_code == 200
        mail_services.group_update(group=staff, remove=[person], actor_label="test")
        assert_refused(ask(token))

    def test_a_token_revoked_at_the_revocation_endpoint_is_refused(self, token, webmail):
        app, secret = webmail
        revoked = Client().post("/oauth/revoke/", {"token": token, "client_id": app.client_id, "client_secret": secret})
        assert revoked.status_code == 200
        assert_refused(ask(token))

    def test_a_token_is_refused_once_the_person_revokes_the_apps_access(self, person, token, webmail):
        app, _ = webmail
        services.app_access_revoke(user=person, application=app)
        assert_refused(ask(token))

    def test_an_expired_token_is_refused(self, token):
        with time_machine.travel(timezone.now() + timedelta(hours=2)):
            assert_refused(ask(token))

    def test_an_unknown_token_is_refused(self):
        assert_refused(ask("x" * 30))

    @pytest.mark.parametrize(
        "header",
        [
            "",
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer \x00\x01",
            "Bearer ÿþ-latin1",
            "Bearer " + "A" * 10000,
            "Bearer %zz",
            "Basic Zm9vOmJhcg==",
            "Basic !!!",
            "Negotiate abc",
        ],
    )
    def test_garbage_in_the_authorization_header_is_a_401_never_a_500(self, header):
        assert_refused(Client().get(URL, HTTP_AUTHORIZATION=header))

    def test_no_authorization_header_at_all_is_refused(self):
        assert_refused(Client().get(URL))

    def test_a_token_in_the_query_string_is_not_accepted(self, token):
        assert_refused(Client().get(URL, {"access_token": token}))

    def test_get_works_without_a_csrf_token_and_post_too(self, token):
        response = Client(enforce_csrf_checks=True).post(URL, HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 200

    def test_other_methods_are_not_allowed(self, token):
        assert Client().put(URL, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 405

    def test_post_mode_with_an_introspecting_client_and_no_content_type_answers(self, token):
        resource, secret = introspecting_client()
        response = ask_by_post(token, resource.client_id, secret)
        assert response.status_code == 200
        assert response.json()["email"] == ADDRESS

    def test_post_mode_reads_the_form_dovecot_2_3_sends(self, token):
        # Dovecot 2.3.19 sends a form Content-Type and empty client_id/client_secret fields next to Basic auth.
        resource, secret = introspecting_client()
        auth = "Basic " + base64.b64encode(f"{resource.client_id}:{secret}".encode()).decode()
        body = f"token={quote(token, safe='')}&client_id=&client_secret="
        response = Client().generic(
            "POST", URL, body, content_type="application/x-www-form-urlencoded", HTTP_AUTHORIZATION=auth
        )
        assert response.status_code == 200
        assert response.json()["email"] == ADDRESS

    def test_post_mode_still_refuses_a_suspended_mailbox(self, person, token):
        resource, secret = introspecting_client()
        mail_services.mailbox_set_state(mailbox=person.mailbox, state="suspended", actor_label="test")
        assert_refused(ask_by_post(token, resource.client_id, secret))

    def test_post_mode_refuses_a_client_without_the_introspection_scope(self, token, webmail):
        app, secret = webmail
        response = ask_by_post(token, app.client_id, secret)
        assert response.status_code == 401
        assert response.json() == {"error": "invalid_client"}
        assert response["WWW-Authenticate"].startswith("Basic")

    @pytest.mark.parametrize("credentials", ["wrong-secret", None])
    def test_post_mode_refuses_bad_or_missing_client_credentials(self, token, credentials):
        resource, _ = introspecting_client()
        response = ask_by_post(token, resource.client_id if credentials else None, credentials)
        assert response.status_code == 401
        assert response.json() == {"error": "invalid_client"}

    def test_post_mode_refuses_garbage_bodies(self):
        resource, secret = introspecting_client()
        auth = "Basic " + base64.b64encode(f"{resource.client_id}:{secret}".encode()).decode()
        for body in [b"", b"token=", b"token=%zz%00", b"\xff\xfe\x00", b"a=1&" * 50, b"token=a&token=" + b"b" * 5000]:
            response = Client().generic("POST", URL, body, content_type="", HTTP_AUTHORIZATION=auth)
            assert response.status_code == 401, body

    def test_a_webmail_client_needs_mail_in_its_allowed_scopes_to_ask_for_it(self, person):
        app, _ = webmail_client(scopes=["openid", "email"])
        verifier, challenge = pkce_pair()
        response = signed_in(person).get("/oauth/authorize/", authorize_query(app, challenge, scope="openid mail"))
        assert response.status_code == 302
        assert query_of(response["Location"])["error"] == "invalid_scope"

    def test_the_id_token_of_a_mail_token_carries_the_mailbox_claim_for_webmail(self, person, webmail):
        app, secret = webmail
        tokens = tokens_for(person, app, secret)
        userinfo = Client().get("/oauth/userinfo/", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}").json()
        assert userinfo["mailbox"] == ADDRESS

    def test_answers_write_no_audit_entry_and_log_no_token(self, token, caplog):
        before = AuditEvent.objects.count()
        with caplog.at_level(logging.DEBUG):
            ask(token)
            ask("y" * 30)
            ask_by_post(token, "nobody", "nothing")
        assert AuditEvent.objects.count() == before
        assert token not in caplog.text


# --- A real Dovecot 2.3 with DMS's oauth2 passdb, asking the live Dockspace --------------------------------

MAILBOX_PASSWORD = "mailbox password 42"
FAILED = "AUTHENTICATIONFAILED"


@pytest.fixture
def start_dovecot(live_server):
    """Start a DMS-like Dovecot whose oauth2 passdb asks this test's live Dockspace; stopped after the test."""
    skip_unless_dovecot_23()
    skip_unless_protocol("imap")
    # An IP literal: Dovecot's HTTP client then needs no DNS lookup (its dns-client service) for "localhost".
    host = live_server.url.removeprefix("http://").replace("localhost", "127.0.0.1")
    account = f"{ADDRESS}|{hash_password(MAILBOX_PASSWORD)}\n"
    with contextlib.ExitStack() as stack:

        def start(mode="auth", credentials=""):
            url = f"http://{credentials}{host}{URL}"
            return stack.enter_context(
                running_dovecot_with_oauth2(account, introspection_url=url, introspection_mode=mode)
            )

        yield start


def login(server, address, token):
    return imap_authenticate(server, "XOAUTH2", xoauth2(address, token))


def password_login(server, address, password):
    client = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=10)
    try:
        return client.login(address, password)[0] == "OK"
    except imaplib.IMAP4.error:
        return False
    finally:
        client.shutdown()


@pytest.mark.django_db(transaction=True)
def test_dovecot_lets_a_mail_token_in_over_imap_until_the_mailbox_is_suspended(start_dovecot):
    dovecot = start_dovecot()
    person = person_with_mailbox(ADDRESS, email="ada@example.com")
    app, secret = webmail_client()
    token = access_token_for(person, app, secret)

    ok, answer = login(dovecot, ADDRESS, token)
    assert ok, f"{answer}\n{dovecot.log_tail()}"
    ok, answer = imap_authenticate(dovecot, "OAUTHBEARER", oauthbearer(ADDRESS, token, dovecot.imap_port))
    assert ok, f"{answer}\n{dovecot.log_tail()}"
    # Postfix's SMTP AUTH asks the same Dovecot auth socket.
    assert sasl_auth(dovecot, "XOAUTH2", xoauth2(ADDRESS, token), service="smtp")
    # The same token under another mailbox's name: Dovecot compares the login with the "email" answered.
    ok, answer = login(dovecot, "eve@mail.example.net", token)
    assert not ok and FAILED in answer
    # The passwd-file passdb DMS keeps still takes the mailbox password.
    assert password_login(dovecot, ADDRESS, MAILBOX_PASSWORD)

    mail_services.mailbox_set_state(mailbox=person.mailbox, state="suspended", actor_label="test")
    ok, answer = login(dovecot, ADDRESS, token)
    assert not ok and FAILED in answer, answer
    assert not sasl_auth(dovecot, "XOAUTH2", xoauth2(ADDRESS, token), service="smtp")


@pytest.mark.django_db(transaction=True)
def test_dovecot_refuses_a_revoked_token_and_a_token_without_the_mail_scope(start_dovecot):
    dovecot = start_dovecot()
    person = person_with_mailbox(ADDRESS, email="ada@example.com")
    app, secret = webmail_client()
    token = access_token_for(person, app, secret)
    no_mail = access_token_for(person, app, secret, scope="openid email")

    ok, answer = login(dovecot, ADDRESS, no_mail)
    assert not ok and FAILED in answer, answer
    ok, answer = login(dovecot, ADDRESS, token)
    assert ok, f"{answer}\n{dovecot.log_tail()}"

    services.app_access_revoke(user=person, application=app)
    ok, answer = login(dovecot, ADDRESS, token)
    assert not ok and FAILED in answer, answer


@pytest.mark.django_db(transaction=True)
def test_dovecot_in_post_mode_authenticates_as_an_introspecting_client(start_dovecot):
    person = person_with_mailbox(ADDRESS, email="ada@example.com")
    app, secret = webmail_client()
    token = access_token_for(person, app, secret)
    resource, resource_secret = introspecting_client()
    dovecot = start_dovecot(mode="post", credentials=f"{resource.client_id}:{resource_secret}@")

    ok, answer = login(dovecot, ADDRESS, token)
    assert ok, f"{answer}\n{dovecot.log_tail()}"
    mail_services.mailbox_set_state(mailbox=person.mailbox, state="disabled", actor_label="test")
    ok, answer = login(dovecot, ADDRESS, token)
    assert not ok and FAILED in answer, answer


@pytest.mark.django_db(transaction=True)
def test_dovecot_in_post_mode_with_wrong_client_credentials_fails_every_login_as_temporary(start_dovecot):
    person = person_with_mailbox(ADDRESS, email="ada@example.com")
    app, secret = webmail_client()
    token = access_token_for(person, app, secret)
    # A webmail client holds no "introspection": a misconfigured DMS, which Dovecot reports as its own trouble.
    dovecot = start_dovecot(mode="post", credentials=f"{app.client_id}:{secret}@")

    ok, answer = login(dovecot, ADDRESS, token)
    assert not ok and "UNAVAILABLE" in answer, answer
