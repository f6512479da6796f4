"""The OIDC client admin: created, changed, re-keyed and removed through the services; a secret is shown once."""

import re

import pytest
from django.contrib.auth.hashers import check_password
from django.test import Client
from oauth2_provider.models import get_access_token_model

from accounts.models import AuditEvent
from accounts.tests.factories import StaffFactory, UserFactory, totp_device
from mail.models import Group
from oidc import keys
from oidc.models import Application, SigningKey
from oidc.tests.factories import REDIRECT_URI, authorize_query, exchange, make_client, pkce_pair, query_of, signed_in

pytestmark = pytest.mark.django_db

CLIENTS = "/admin/oidc/application/"


@pytest.fixture
def admin_browser():
    """An administrator signed in through the real pages, second factor included (the admin requires it)."""
    staff = StaffFactory(email="root@example.com")
    totp_device(staff)
    return signed_in(staff, with_totp=True)


def shown_secret(response):
    found = re.findall(r'<code class="client-secret"[^>]*>([^<]+)</code>', response.content.decode())
    assert len(found) == 1, "exactly one secret on the page"
    return found[0]


def new_client_form(**overrides):
    data = {
        "name": "Grafana",
        "client_type": "confidential",
        "authorization_grant_type": "authorization-code",
        "redirect_uris": "https://grafana.example.com/cb\r\nhttps://grafana.example.com/cb2",
        "post_logout_redirect_uris": "",
        "allowed_scopes": ["openid", "profile", "email"],
        "requires_pkce": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def change_form(app, **overrides):
    data = {
        "name": app.name,
        "redirect_uris": "\n".join(app.redirect_uris.split()),
        "post_logout_redirect_uris": app.post_logout_redirect_uris,
        "allowed_scopes": app.allowed_scopes.split(),
        "allowed_groups": [g.pk for g in app.allowed_groups.all()],
        "requires_pkce": "on" if app.requires_pkce else None,
        "requires_totp": "on" if app.requires_totp else None,
        "skip_authorization": "on" if app.skip_authorization else None,
        "is_active": "on" if app.is_active else None,
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def token_request(client_id, secret):
    return Client().post(
        "/oauth/token/", {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )


def test_the_add_form_has_no_secret_and_no_dot_field_dockspace_does_not_support(admin_browser):
    response = admin_browser.get(CLIENTS + "add/")
    assert response.status_code == 200
    fields = set(response.context["adminform"].form.fields)
    assert fields >= {"name", "client_type", "authorization_grant_type", "redirect_uris", "allowed_groups"}
    for unsupported in ("client_secret", "algorithm", "user", "allowed_origins", "hash_client_secret"):
        assert unsupported not in fields
        assert f'name="{unsupported}"' not in response.content.decode()


def test_creating_a_client_shows_its_secret_once_and_stores_only_its_hash(admin_browser):
    Group.objects.create(name="admins")
    admins = Group.objects.get(name="admins")
    response = admin_browser.post(
        CLIENTS + "add/", new_client_form(allowed_groups=[admins.pk], requires_totp="on", skip_authorization="on")
    )
    assert response.status_code == 200, response.context["adminform"].form.errors if response.context else ""
    app = Application.objects.get()
    secret = shown_secret(response)
    page = response.content.decode()
    assert app.client_id in page and "https://dockspace.test/.well-known/openid-configuration" in page
    assert "never shown again" in page
    assert "no-store" in response["Cache-Control"]
    assert all(secret not in morsel.value for morsel in response.cookies.values())
    assert check_password(secret, app.client_secret) and secret not in app.client_secret
    assert app.redirect_uris == "https://grafana.example.com/cb https://grafana.example.com/cb2"
    assert app.allowed_scopes == "openid profile email" and app.algorithm == "RS256"
    assert list(app.allowed_groups.all()) == [admins] and app.requires_totp and app.skip_authorization
    event = AuditEvent.objects.get(action="oidc.client.add")
    assert event.actor_label == "root@example.com" and secret not in event.description
    assert AuditEvent.objects.filter(action="admin.add", target_label="Grafana").exists()

    later = admin_browser.get(f"{CLIENTS}{app.pk}/change/").content.decode()
    assert secret not in later and app.client_secret not in later and "Stored hashed" in later


def test_a_client_credentials_client_made_in_the_admin_works_with_the_secret_shown(admin_browser):
    response = admin_browser.post(
        CLIENTS + "add/",
        new_client_form(
            name="Dovecot",
            authorization_grant_type="client-credentials",
            redirect_uris="",
            allowed_scopes=["introspection"],
        ),
    )
    app = Application.objects.get()
    assert token_request(app.client_id, shown_secret(response)).status_code == 200


def test_a_public_client_is_created_without_a_secret(admin_browser):
    response = admin_browser.post(
        CLIENTS + "add/", new_client_form(client_type="public", redirect_uris="http://127.0.0.1:8400/cb")
    )
    assert response.status_code == 200
    assert 'class="client-secret"' not in response.content.decode()
    assert "public client has no secret" in response.content.decode()
    assert Application.objects.get().client_type == "public"


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"redirect_uris": "http://grafana.example.com/cb"}, "redirect_uris", "must be an https:// URL"),
        ({"redirect_uris": ""}, "redirect_uris", "needs a redirect URI"),
        ({"post_logout_redirect_uris": "https://x.example/#a"}, "post_logout_redirect_uris", "#fragment"),
        ({"client_type": "public", "requires_pkce": None}, "requires_pkce", "always uses PKCE"),
        ({"allowed_scopes": []}, "allowed_scopes", "Choose the scopes"),
        (
            {"authorization_grant_type": "client-credentials", "redirect_uris": ""},
            "allowed_scopes",
            "acts for no person",
        ),
        ({"authorization_grant_type": "implicit"}, "authorization_grant_type", "Select a valid choice"),
        ({"name": ""}, "name", "required"),
    ],
)
def test_a_refused_client_shows_the_rule_next_to_the_field_and_nothing_is_written(
    admin_browser, overrides, field, message
):
    events = AuditEvent.objects.count()
    response = admin_browser.post(CLIENTS + "add/", new_client_form(**overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field]), errors
    assert not Application.objects.exists() and AuditEvent.objects.count() == events


def test_changing_a_client_goes_through_the_service_and_keeps_the_secret(admin_browser):
    Group.objects.create(name="ops")
    app, secret = make_client("Robot", redirect_uris=[], client_credentials=True, scopes=["introspection"])
    stored = Application.objects.get().client_secret
    response = admin_browser.get(f"{CLIENTS}{app.pk}/change/")
    assert set(response.context["adminform"].form.fields) == {
        "name",
        "redirect_uris",
        "post_logout_redirect_uris",
        "allowed_scopes",
        "requires_pkce",
        "allowed_groups",
        "requires_totp",
        "skip_authorization",
        "is_active",
    }
    response = admin_browser.post(f"{CLIENTS}{app.pk}/change/", change_form(app, name="Dovecot"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    app.refresh_from_db()
    assert app.name == "Dovecot" and app.client_secret == stored
    assert token_request(app.client_id, secret).status_code == 200
    event = AuditEvent.objects.get(action="oidc.client.change")
    assert event.actor_label == "root@example.com" and "name" in event.description


def test_a_refused_change_is_shown_on_the_field_and_changes_nothing(admin_browser):
    Group.objects.create(name="ops")
    app, _ = make_client("Robot", redirect_uris=[], client_credentials=True, scopes=["introspection"])
    ops = Group.objects.get(name="ops")
    response = admin_browser.post(f"{CLIENTS}{app.pk}/change/", change_form(app, allowed_groups=[ops.pk]))
    assert response.status_code == 200
    assert "group gate would not apply" in " ".join(response.context["adminform"].form.errors["allowed_groups"])
    assert not Application.objects.get().allowed_groups.exists()
    assert not AuditEvent.objects.filter(action="oidc.client.change").exists()


def test_deactivating_a_client_stops_its_tokens(admin_browser):
    app, secret = make_client("Robot", redirect_uris=[], client_credentials=True, scopes=["introspection"])
    admin_browser.post(f"{CLIENTS}{app.pk}/change/", change_form(app, is_active=None))
    assert Application.objects.get().is_active is False
    assert token_request(app.client_id, secret).status_code != 200


def test_the_rotate_secret_button_shows_a_new_secret_once_and_the_old_one_stops_working(admin_browser):
    app, old = make_client("Robot", redirect_uris=[], client_credentials=True, scopes=["introspection"])
    change_page = admin_browser.get(f"{CLIENTS}{app.pk}/change/").content.decode()
    assert f'href="{CLIENTS}{app.pk}/rotate-secret/"' in change_page and "View on site" not in change_page
    confirm = admin_browser.get(f"{CLIENTS}{app.pk}/rotate-secret/")
    assert confirm.status_code == 200 and "stops working at once" in confirm.content.decode()
    assert token_request(app.client_id, old).status_code == 200  # a GET changes nothing

    confirmation = confirm.context["confirmation"]
    response = admin_browser.post(f"{CLIENTS}{app.pk}/rotate-secret/", {"confirmation": confirmation})
    new = shown_secret(response)
    assert "no-store" in response["Cache-Control"]
    assert token_request(app.client_id, old).json()["error"] == "invalid_client"
    assert token_request(app.client_id, new).status_code == 200
    event = AuditEvent.objects.get(action="oidc.client.rotate_secret")
    assert event.actor_label == "root@example.com" and new not in event.description

    # Reloading the page that showed the secret posts the form again: nothing rotates a second time.
    again = admin_browser.post(f"{CLIENTS}{app.pk}/rotate-secret/", {"confirmation": confirmation}, follow=True)
    assert "already done" in again.content.decode()
    assert token_request(app.client_id, new).status_code == 200
    assert AuditEvent.objects.filter(action="oidc.client.rotate_secret").count() == 1


def test_public_clients_get_no_rotate_button(admin_browser):
    cli, _ = make_client("CLI", public=True)
    assert "rotate-secret" not in admin_browser.get(f"{CLIENTS}{cli.pk}/change/").content.decode()
    confirm = admin_browser.get(f"{CLIENTS}{cli.pk}/rotate-secret/")
    response = admin_browser.post(
        f"{CLIENTS}{cli.pk}/rotate-secret/", {"confirmation": confirm.context["confirmation"]}, follow=True
    )
    assert "public client has no secret" in response.content.decode()


def test_deleting_a_client_revokes_the_tokens_it_holds(admin_browser):
    person = UserFactory()
    app, secret = make_client("Grafana", skip_consent=True)
    verifier, challenge = pkce_pair()
    response = signed_in(person).get("/oauth/authorize/", authorize_query(app, challenge))
    tokens = exchange(Client(), app, query_of(response["Location"])["code"], verifier, secret).json()

    assert admin_browser.get(f"{CLIENTS}{app.pk}/delete/").status_code == 200
    response = admin_browser.post(f"{CLIENTS}{app.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Application.objects.exists() and not get_access_token_model().objects.exists()
    assert Client().get("/oauth/userinfo/", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}").status_code == 401
    event = AuditEvent.objects.get(action="oidc.client.remove")
    assert event.actor_label == "root@example.com" and app.client_id in event.description


def test_deleting_clients_in_bulk_goes_through_the_service_too(admin_browser):
    first, _ = make_client("One")
    second, _ = make_client("Two")
    response = admin_browser.post(
        CLIENTS, {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"}
    )
    assert response.status_code == 302
    assert not Application.objects.exists()
    assert AuditEvent.objects.filter(action="oidc.client.remove").count() == 2


def test_the_list_shows_each_clients_policy_and_can_be_filtered_and_searched(admin_browser):
    Group.objects.create(name="admins")
    make_client("Grafana", groups=["admins"], requires_totp=True)
    make_client("Wiki", redirect_uris=["https://wiki.example.com/cb"])
    page = admin_browser.get(CLIENTS).content.decode()
    assert "Grafana" in page and "Wiki" in page and "admins" in page and "everyone" in page
    for header in ("client ID", "Client type", "Grant", "Requires TOTP", "Only members of", "Active"):
        assert header.lower() in page.lower()
    assert ">Requires TOTP<" in page and "By requires TOTP" in page and "totp" not in page.replace("_totp", "")
    filtered = admin_browser.get(CLIENTS, {"requires_totp__exact": "1"}).content.decode()
    assert "Grafana" in filtered and "Wiki" not in filtered
    searched = admin_browser.get(CLIENTS, {"q": "wiki.example.com"}).content.decode()
    assert "Wiki" in searched and "Grafana" not in searched


def test_the_grant_filter_offers_only_the_grants_dockspace_accepts(admin_browser):
    make_client("Grafana")
    make_client("Robot", redirect_uris=[], client_credentials=True, scopes=["introspection"])

    response = admin_browser.get(CLIENTS)

    changelist = response.context["cl"]
    (grants,) = [f for f in changelist.filter_specs if f.title == "grant"]
    assert [c["display"] for c in grants.choices(changelist)] == ["All", "Authorization code", "Client credentials"]
    assert {value for value, _ in grants.lookup_choices} == set(Application.SUPPORTED_GRANT_TYPES)
    page = response.content.decode()
    refused = [str(label) for value, label in Application.GRANT_TYPES if value not in Application.SUPPORTED_GRANT_TYPES]
    assert "Implicit" in refused and not [label for label in refused if label in page]
    robots = admin_browser.get(CLIENTS, {"grant": Application.GRANT_CLIENT_CREDENTIALS}).content.decode()
    assert "Robot" in robots and "Grafana" not in robots


def test_signing_keys_are_read_only_and_never_show_the_private_key(admin_browser):
    keys.ensure_signing_keys()
    active = SigningKey.objects.get(state="active")
    listing = admin_browser.get("/admin/oidc/signingkey/")
    assert listing.status_code == 200 and active.kid in listing.content.decode()
    assert ">Key ID (kid)<" in listing.content.decode()
    page = admin_browser.get(f"/admin/oidc/signingkey/{active.pk}/change/")
    assert page.status_code == 200 and active.kid in page.content.decode()
    assert "PRIVATE KEY" not in page.content.decode() and "private_pem" not in page.content.decode()
    assert admin_browser.get("/admin/oidc/signingkey/add/").status_code == 403
    assert admin_browser.get(f"/admin/oidc/signingkey/{active.pk}/delete/").status_code == 403
    assert admin_browser.post(f"/admin/oidc/signingkey/{active.pk}/change/", {"state": "retired"}).status_code == 403
    assert SigningKey.objects.get(pk=active.pk).state == "active"


def test_the_redirect_uris_are_listed_one_per_line_in_the_form(admin_browser):
    app, _ = make_client("Two", redirect_uris=[REDIRECT_URI, "https://app.example.net/other"])
    form = admin_browser.get(f"{CLIENTS}{app.pk}/change/").context["adminform"].form
    assert form.initial["redirect_uris"] == REDIRECT_URI + "\nhttps://app.example.net/other"


def test_saving_the_same_redirect_uris_with_browser_line_endings_is_not_logged_as_a_change(admin_browser):
    app, _ = make_client("Wiki", redirect_uris=["https://a.example.com/cb", "https://b.example.com/cb"])
    uris = "https://a.example.com/cb\r\nhttps://b.example.com/cb"
    admin_browser.post(f"{CLIENTS}{app.pk}/change/", change_form(app, redirect_uris=uris, is_active=None))
    event = AuditEvent.objects.filter(action="admin.change").latest("pk")
    assert "Active" in event.description and "Redirect" not in event.description
