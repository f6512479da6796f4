"""A client that opens people's mailboxes (scope mail) or looks up tokens (introspection) is set up by a superuser:
staff with only the OIDC permissions cannot register one, point one elsewhere or re-key one, through the admin or
`oidc_client --as`; and consent is only skipped for mail when a superuser set the client up so."""

import io
import re

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from accounts.models import AuditEvent
from accounts.tests.factories import StaffFactory, UserFactory
from mail.tests.factories import make_mailbox
from oidc.models import Application
from oidc.tests.factories import REDIRECT_URI, pkce_pair, query_of, signed_in
from oidc.tests.tokens import introspecting_client, webmail_client

pytestmark = pytest.mark.django_db
EVIL = "https://evil.test/cb"
CLIENTS = "/admin/oidc/application/"


@pytest.fixture
def oidc_staff():
    actor = UserFactory(email="oidc-actor@team.example", is_staff=True)
    actor.user_permissions.set(Permission.objects.filter(content_type__app_label="oidc"))
    browser = Client()
    browser.force_login(actor)
    return browser


@pytest.fixture
def superuser_admin():
    admin = StaffFactory(email="boss@example.com")
    browser = Client()
    browser.force_login(admin)
    return browser


@pytest.fixture
def root():
    person = StaffFactory(email="root@example.com")
    make_mailbox("root@example.com", person=person)
    return person


def add_form(name, scopes, redirect=EVIL, skip=True):
    data = {
        "name": name,
        "client_type": "confidential",
        "authorization_grant_type": "authorization-code",
        "redirect_uris": redirect,
        "post_logout_redirect_uris": "",
        "allowed_scopes": scopes,
        "requires_pkce": "on",
    }
    if skip:
        data["skip_authorization"] = "on"
    return data


def change_form(app, **overrides):
    data = {
        "name": app.name,
        "redirect_uris": "\n".join(app.redirect_uris.split()),
        "post_logout_redirect_uris": "",
        "allowed_scopes": app.allowed_scopes.split(),
        "requires_pkce": "on",
        "skip_authorization": "on" if app.skip_authorization else None,
        "is_active": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def shown_secret(response):
    return re.findall(r'<code class="client-secret"[^>]*>([^<]+)</code>', response.content.decode())[0]


def open_link(browser, app, redirect, scope):
    verifier, challenge = pkce_pair()
    response = browser.get(
        "/oauth/authorize/",
        {
            "response_type": "code",
            "client_id": app.client_id,
            "redirect_uri": redirect,
            "scope": scope,
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    return response, verifier


def mailbox_of_token(app, secret, code, verifier, redirect):
    token = Client().post(
        "/oauth/token/",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "code_verifier": verifier,
            "client_id": app.client_id,
            "client_secret": secret,
        },
    )
    assert token.status_code == 200, token.content
    who = Client().get("/oauth/mail-userinfo/", HTTP_AUTHORIZATION=f"Bearer {token.json()['access_token']}")
    return who.status_code, who.json().get("email")


def run(*args):
    out = io.StringIO()
    call_command("oidc_client", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


# --- the admin ---------------------------------------------------------------------------------------


def test_the_add_page_tells_oidc_staff_what_only_a_superuser_sets_up(oidc_staff, superuser_admin):
    note = "Only a superuser sets up a client allowed mail or introspection"
    assert note in oidc_staff.get(CLIENTS + "add/").content.decode()
    assert note not in superuser_admin.get(CLIENTS + "add/").content.decode()


def test_oidc_staff_cannot_add_a_mail_client_that_skips_consent_in_the_admin(oidc_staff, root):
    response = oidc_staff.post(CLIENTS + "add/", add_form("Calendar", ["openid", "email", "mail"]))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "only a superuser may add a client allowed the mail scope" in " ".join(errors["allowed_scopes"])
    assert not Application.objects.filter(name="Calendar").exists()
    assert not AuditEvent.objects.filter(action="oidc.client.add").exists()


def test_oidc_staff_still_add_a_first_party_client_without_mail_and_it_skips_consent(oidc_staff, root):
    response = oidc_staff.post(CLIENTS + "add/", add_form("Calendar", ["openid", "email"], redirect=REDIRECT_URI))
    assert response.status_code == 200 and response.context["title"] == "OIDC client created"
    app = Application.objects.get(name="Calendar")
    assert app.skip_authorization and not app.mail_consent_waived
    response, _ = open_link(signed_in(root), app, REDIRECT_URI, "openid email")
    assert response.status_code == 302 and response["Location"].startswith(REDIRECT_URI + "?code=")


def test_oidc_staff_cannot_add_an_introspection_client(oidc_staff):
    data = add_form("Resource server", ["introspection"], redirect="", skip=False)
    data["authorization_grant_type"] = "client-credentials"
    response = oidc_staff.post(CLIENTS + "add/", data)
    assert response.status_code == 200
    assert "introspection scope" in " ".join(response.context["adminform"].form.errors["allowed_scopes"])
    assert not Application.objects.filter(name="Resource server").exists()


def test_a_superuser_adds_webmail_that_opens_the_mailbox_without_a_consent_page(superuser_admin, root):
    response = superuser_admin.post(CLIENTS + "add/", add_form("Roundcube", ["openid", "email", "mail"], REDIRECT_URI))
    assert response.status_code == 200 and response.context["title"] == "OIDC client created"
    app = Application.objects.get(name="Roundcube")
    assert app.mail_consent_waived
    event = AuditEvent.objects.get(action="oidc.client.mail_without_consent")
    assert event.actor_label == "boss@example.com" and "Roundcube" in event.description
    response, verifier = open_link(signed_in(root), app, REDIRECT_URI, "openid email mail")
    assert response.status_code == 302 and response["Location"].startswith(REDIRECT_URI)
    code = query_of(response["Location"])["code"]
    assert mailbox_of_token(app, shown_secret_for(superuser_admin, app), code, verifier, REDIRECT_URI) == (
        200,
        "root@example.com",
    )


def shown_secret_for(browser, app):
    """A fresh secret through the admin's rotate page (the one shown at creation is not kept by these tests)."""
    page = browser.get(f"{CLIENTS}{app.pk}/rotate-secret/")
    answer = browser.post(f"{CLIENTS}{app.pk}/rotate-secret/", {"confirmation": page.context["confirmation"]})
    return shown_secret(answer)


def test_oidc_staff_cannot_point_a_mail_client_elsewhere_but_may_rename_it(oidc_staff, superuser_admin):
    app, _ = webmail_client(redirect_uris=[REDIRECT_URI])
    response = oidc_staff.post(f"{CLIENTS}{app.pk}/change/", change_form(app, redirect_uris=f"{REDIRECT_URI}\n{EVIL}"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "only a superuser may change the redirect URIs of a client allowed the mail scope" in " ".join(
        errors["redirect_uris"]
    )
    app.refresh_from_db()
    assert app.redirect_uris == REDIRECT_URI
    # positive controls: the same staff member renames it; a superuser changes its redirect URIs
    response = oidc_staff.post(f"{CLIENTS}{app.pk}/change/", change_form(app, name="Webmail 2"))
    assert response.status_code == 302
    app.refresh_from_db()
    response = superuser_admin.post(f"{CLIENTS}{app.pk}/change/", change_form(app, redirect_uris="https://web.ex/cb"))
    assert response.status_code == 302
    app.refresh_from_db()
    assert (app.name, app.redirect_uris) == ("Webmail 2", "https://web.ex/cb")


def test_oidc_staff_cannot_add_mail_to_a_client_or_make_a_mail_client_skip_consent(oidc_staff):
    wiki, _ = webmail_client("Wiki", scopes=["openid", "email"])
    response = oidc_staff.post(f"{CLIENTS}{wiki.pk}/change/", change_form(wiki, allowed_scopes=["openid", "mail"]))
    assert response.status_code == 200 and "allowed_scopes" in response.context["adminform"].form.errors
    mail_app, _ = webmail_client("Mail app", skip_consent=False)
    response = oidc_staff.post(f"{CLIENTS}{mail_app.pk}/change/", change_form(mail_app, skip_authorization="on"))
    assert response.status_code == 200 and "skip_authorization" in response.context["adminform"].form.errors
    wiki.refresh_from_db(), mail_app.refresh_from_db()
    assert wiki.scope_set == {"openid", "email"} and not mail_app.skip_authorization
    # narrowing is anyone's: asking people again, dropping the mail scope
    response = oidc_staff.post(f"{CLIENTS}{mail_app.pk}/change/", change_form(mail_app, allowed_scopes=["openid"]))
    assert response.status_code == 302
    mail_app.refresh_from_db()
    assert mail_app.scope_set == {"openid"}


# --- the command ----------------------------------------------------------------------------------------


def test_oidc_client_add_as_oidc_staff_refuses_a_mail_client_that_skips_consent(oidc_staff):
    args = ["add", "--name", "Calendar", "--redirect-uri", EVIL, "--scope", "openid email mail", "--skip-consent"]
    with pytest.raises(CommandError, match="--scope: only a superuser may add a client allowed the mail scope"):
        run(*args, "--as", "oidc-actor@team.example")
    assert not Application.objects.filter(name="Calendar").exists()
    # positive controls: the same staff member adds a client without mail; the host adds the mail client
    as_staff = ("--as", "oidc-actor@team.example")
    assert "Created OIDC client Wiki" in run("add", "--name", "Wiki", "--redirect-uri", EVIL, *as_staff)
    assert "Created OIDC client Calendar" in run(*args)
    assert Application.objects.get(name="Calendar").mail_consent_waived


def test_oidc_client_update_and_rotate_as_oidc_staff_refuse_a_mail_client(oidc_staff):
    app, _ = webmail_client()
    with pytest.raises(CommandError, match="--redirect-uri: only a superuser"):
        run("update", app.client_id, "--redirect-uri", EVIL, "--as", "oidc-actor@team.example")
    with pytest.raises(CommandError, match="CLIENT_ID: only a superuser may issue a new secret"):
        run("rotate-secret", app.client_id, "--as", "oidc-actor@team.example")
    resource, _ = introspecting_client()
    with pytest.raises(CommandError, match="introspection scope"):
        run("rotate-secret", resource.client_id, "--as", "oidc-actor@team.example")
    app.refresh_from_db()
    assert app.redirect_uris == REDIRECT_URI
    assert "Updated OIDC client" in run("update", app.client_id, "--name", "Mail", "--as", "oidc-actor@team.example")
    assert "Updated OIDC client" in run("update", app.client_id, "--redirect-uri", "https://web.ex/cb")


def test_oidc_client_as_someone_without_oidc_permissions_changes_nothing():
    UserFactory(email="mail-staff@team.example", is_staff=True)
    with pytest.raises(CommandError, match="oidc.add_application"):
        run("add", "--name", "Wiki", "--redirect-uri", REDIRECT_URI, "--as", "mail-staff@team.example")
    assert not Application.objects.exists()


# --- the authorization page (defence in depth) -------------------------------------------------------------


def test_consent_is_asked_for_mail_when_no_superuser_approved_skipping_it(root):
    app, _ = webmail_client()
    assert "skipped (first-party app)" in run("show", app.client_id)
    Application.objects.filter(pk=app.pk).update(mail_consent_waived=False)  # as before the rule, or by the ORM
    assert "skipped, except for mail until a superuser approves" in run("show", app.client_id)
    browser = signed_in(root)
    response, _ = open_link(browser, app, REDIRECT_URI, "openid email mail")
    assert response.status_code == 200 and "mail" in response.context["scopes"]
    # without the mail scope the first-party client still skips consent
    response, _ = open_link(browser, app, REDIRECT_URI, "openid email")
    assert response.status_code == 302 and "code=" in response["Location"]


def test_a_superuser_saving_the_client_approves_skipping_consent_for_mail(superuser_admin, root):
    app, _ = webmail_client()
    Application.objects.filter(pk=app.pk).update(mail_consent_waived=False)
    app.refresh_from_db()
    assert superuser_admin.post(f"{CLIENTS}{app.pk}/change/", change_form(app)).status_code == 302
    app.refresh_from_db()
    assert app.mail_consent_waived
    assert AuditEvent.objects.filter(action="oidc.client.mail_without_consent", actor_label="boss@example.com").exists()
    response, _ = open_link(signed_in(root), app, REDIRECT_URI, "openid email mail")
    assert response.status_code == 302 and "code=" in response["Location"]
