"""manage.py oidc_client: what an operator types to register an app, and what the app then gets to use."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from oauth2_provider.models import get_access_token_model

from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from mail.models import Group
from oidc.models import Application
from oidc.tests.factories import REDIRECT_URI, authorize_query, exchange, make_client, pkce_pair, query_of, signed_in

pytestmark = pytest.mark.django_db

ISSUER = "https://id.example.com"


@pytest.fixture(autouse=True)
def issuer(settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": ISSUER}


def run(*args):
    out = io.StringIO()
    call_command("oidc_client", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def snapshot():
    return {
        "clients": list(Application.objects.values_list()),
        "groups": list(Application.allowed_groups.through.objects.values_list()),
        "audit": list(AuditEvent.objects.values_list("id")),
    }


def refused(*args):
    """Run a command that must fail; returns its message after checking that nothing changed."""
    before = snapshot()
    with pytest.raises(CommandError) as e:
        run(*args)
    assert snapshot() == before
    return str(e.value)


def field(out, label):
    """The value on the `label   value` line of the command's output."""
    return next(line[len(label) :].strip() for line in out.splitlines() if line.startswith(label + " "))


def client_credentials_token(client_id, secret):
    return Client().post(
        "/oauth/token/", {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )


def test_add_prints_the_client_id_the_secret_once_and_the_discovery_url():
    out = run("add", "--name", "Grafana", "--redirect-uri", "https://grafana.example.com/login/generic_oauth")
    client_id, secret = field(out, "client id"), field(out, "client secret")
    assert field(out, "issuer") == ISSUER
    assert field(out, "discovery URL") == ISSUER + "/.well-known/openid-configuration"
    assert "never shown again" in out
    app = Application.objects.get(client_id=client_id)
    assert app.name == "Grafana" and app.redirect_uris == "https://grafana.example.com/login/generic_oauth"
    assert len(secret) == 128 and secret not in app.client_secret
    assert app.client_type == "confidential" and app.authorization_grant_type == "authorization-code"
    assert app.algorithm == "RS256" and app.requires_pkce and not app.skip_authorization
    event = AuditEvent.objects.get(action="oidc.client.add")
    assert (event.actor_label, event.target_label) == ("manage.py oidc_client", "Grafana")
    assert secret not in event.description and client_id in event.description


def test_add_json_is_one_object_an_app_can_be_configured_from():
    data = json.loads(
        run("add", "--name", "Wiki", "--redirect-uri", "https://wiki.example.com/cb", "--skip-consent", "--json")
    )
    assert data["client_id"] == Application.objects.get().client_id and len(data["client_secret"]) == 128
    assert data["issuer"] == ISSUER and data["discovery_url"] == ISSUER + "/.well-known/openid-configuration"
    assert data["redirect_uris"] == ["https://wiki.example.com/cb"] and data["skip_consent"] is True
    assert data["scopes"] == ["openid", "profile", "email", "groups"] and data["grant_type"] == "authorization_code"


def test_a_public_client_gets_no_secret_and_always_pkce():
    data = json.loads(
        run("add", "--name", "CLI", "--redirect-uri", "http://127.0.0.1:8765/callback", "--public", "--json")
    )
    assert data["client_secret"] is None and data["client_type"] == "public" and data["requires_pkce"] is True
    out = run("show", data["client_id"])
    assert field(out, "client secret") == "none (public client: PKCE instead)"


def test_add_with_every_option_stores_each_setting():
    Group.objects.create(name="admins")
    Group.objects.create(name="ops")
    out = run(
        "add",
        "--name",
        "Nextcloud",
        "--redirect-uri",
        "https://cloud.example.com/a",
        "--redirect-uri",
        "https://cloud.example.com/b",
        "--post-logout-redirect-uri",
        "https://cloud.example.com/bye",
        "--require-totp",
        "--group",
        "admins",
        "--group",
        "OPS",
        "--skip-consent",
        "--scope",
        "openid",
        "--scope",
        "email mail",
        "--no-pkce",
    )
    shown = json.loads(run("show", field(out, "client id"), "--json"))
    assert shown["redirect_uris"] == ["https://cloud.example.com/a", "https://cloud.example.com/b"]
    assert shown["post_logout_redirect_uris"] == ["https://cloud.example.com/bye"]
    assert shown["groups"] == ["admins", "ops"] and shown["scopes"] == ["openid", "email", "mail"]
    assert shown["requires_totp"] is True and shown["skip_consent"] is True and shown["requires_pkce"] is False


def test_a_client_credentials_client_gets_tokens_with_its_secret():
    out = run("add", "--name", "Dovecot", "--client-credentials", "--scope", "introspection")
    response = client_credentials_token(field(out, "client id"), field(out, "client secret"))
    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "introspection"


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--name", "X", "--redirect-uri", "http://app.example.com/cb"],
            "--redirect-uri: 'http://app.example.com/cb' ",
        ),
        (["--name", "X", "--redirect-uri", "https://app.example.com/cb#top"], "--redirect-uri: "),
        (["--name", "X", "--redirect-uri", "https://app.example.com/*"], "must not contain wildcards"),
        (["--name", "X", "--redirect-uri", "https://u:pw@app.example.com/cb"], "must not contain a user name"),
        (["--name", "X", "--redirect-uri", "https://bücher.example/cb"], "write a host as xn--"),
        (["--name", "X", "--redirect-uri", "https://app.example.com/c|b"], "may only contain URI characters"),
        (["--name", "two\nlines", "--redirect-uri", REDIRECT_URI], "--name: The name must be one line"),
        (["--name", "X", "--redirect-uri", REDIRECT_URI, "--group", "nobody"], "--group: No such group: nobody."),
        (["--name", "X", "--redirect-uri", REDIRECT_URI, "--scope", "admin"], "--scope: Unknown scope(s): admin."),
        (["--name", "  ", "--redirect-uri", REDIRECT_URI], "--name: A client needs a name."),
        (["--name", "X"], "--redirect-uri: An app that signs people in needs a redirect URI."),
        (["--name", "X", "--redirect-uri", REDIRECT_URI, "--public", "--no-pkce"], "--no-pkce: A public client"),
        (["--name", "X", "--client-credentials"], "--scope: A client-credentials client needs a scope"),
        (["--name", "X", "--client-credentials", "--scope", "openid"], "--scope: A client-credentials client acts"),
        (["--name", "X", "--client-credentials", "--scope", "introspection", "--public"], "--public: "),
        (
            ["--name", "X", "--redirect-uri", REDIRECT_URI, "--post-logout-redirect-uri", "http://x.example/"],
            "--post-logout-redirect-uri: 'http",
        ),
    ],
)
def test_bad_input_names_the_option_and_the_rule_and_changes_nothing(args, message):
    text = refused("add", *args)
    assert message in text
    assert "Traceback" not in text


def test_every_problem_is_reported_at_once():
    text = refused("add", "--name", "X", "--redirect-uri", "http://a.example/", "--group", "nobody", "--scope", "x")
    assert [line.split(":")[0] for line in text.splitlines()] == ["--group", "--redirect-uri", "--scope"]


def test_list_shows_each_client_with_its_policy():
    Group.objects.create(name="admins")
    make_client("Grafana", groups=["admins"], requires_totp=True, skip_consent=True)
    make_client("Dovecot", redirect_uris=[], client_credentials=True, scopes=["introspection"])
    lines = run("list").splitlines()
    assert lines[0].split() == ["NAME", "CLIENT", "ID", "TYPE", "TOTP", "GROUPS", "CONSENT", "ACTIVE"]
    dovecot, grafana = (line.split() for line in lines[1:])
    assert grafana[2:] == ["confidential", "yes", "admins", "skipped", "yes"]
    assert dovecot[2:] == ["client-credentials", "-", "-", "-", "yes"]
    rows = json.loads(run("list", "--json"))
    assert [r["name"] for r in rows] == ["Dovecot", "Grafana"]
    assert all("client_secret" not in r for r in rows)


def test_list_says_how_to_add_the_first_client():
    assert "oidc_client add" in run("list")


def test_show_gives_everything_but_the_secret():
    app, secret = make_client("Grafana")
    out = run("show", app.client_id)
    assert field(out, "client id") == app.client_id and field(out, "redirect URIs") == REDIRECT_URI
    assert field(out, "discovery URL") == ISSUER + "/.well-known/openid-configuration"
    assert field(out, "groups") == "everyone with an account"
    assert secret not in out and app.client_secret not in out and "sha256" not in out
    data = json.loads(run("show", app.client_id, "--json"))
    assert data["has_secret"] is True and app.client_secret not in json.dumps(data)


def test_an_unknown_client_id_is_refused():
    assert refused("show", "nope") == "CLIENT_ID: no OIDC client 'nope'."
    assert refused("rotate-secret", "nope") == "CLIENT_ID: no OIDC client 'nope'."
    assert refused("remove", "nope", "--yes") == "CLIENT_ID: no OIDC client 'nope'."


def test_rotate_secret_prints_a_new_secret_and_the_old_one_stops_working():
    app, old = make_client("Robot", redirect_uris=[], client_credentials=True, scopes=["introspection"])
    out = run("rotate-secret", app.client_id)
    new = field(out, "client secret")
    assert new != old and "never shown again" in out
    assert client_credentials_token(app.client_id, old).json()["error"] == "invalid_client"
    assert client_credentials_token(app.client_id, new).status_code == 200
    event = AuditEvent.objects.get(action="oidc.client.rotate_secret")
    assert event.actor_label == "manage.py oidc_client" and new not in event.description
    assert json.loads(run("rotate-secret", app.client_id, "--json"))["client_secret"] not in (old, new)


def test_a_public_client_has_no_secret_to_rotate():
    app, _ = make_client("CLI", public=True)
    assert "CLIENT_ID: A public client has no secret" in refused("rotate-secret", app.client_id)


def test_remove_needs_yes_and_then_revokes_what_the_app_holds():
    person = UserFactory()
    app, secret = make_client("Grafana", skip_consent=True)
    verifier, challenge = pkce_pair()
    response = signed_in(person).get("/oauth/authorize/", authorize_query(app, challenge))
    tokens = exchange(Client(), app, query_of(response["Location"])["code"], verifier, secret).json()

    assert "Run again with --yes" in refused("remove", app.client_id)
    assert Client().get("/oauth/userinfo/", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}").status_code == 200

    assert "its tokens are revoked" in run("remove", app.client_id, "--yes")
    assert not Application.objects.exists() and not get_access_token_model().objects.exists()
    assert Client().get("/oauth/userinfo/", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}").status_code == 401
    event = AuditEvent.objects.get(action="oidc.client.remove")
    assert event.actor_label == "manage.py oidc_client" and app.client_id in event.description


def test_update_changes_the_policy_and_is_audited():
    Group.objects.create(name="admins")
    app, _ = make_client("Grafana", groups=["admins"])
    run("update", app.client_id, "--require-totp", "--everyone", "--skip-consent", "--name", "Grafana Prod")
    data = json.loads(run("show", app.client_id, "--json"))
    assert data["requires_totp"] is True and data["groups"] == [] and data["skip_consent"] is True
    assert data["name"] == "Grafana Prod"
    event = AuditEvent.objects.get(action="oidc.client.change")
    assert event.actor_label == "manage.py oidc_client" and "allowed_groups" in event.description
    run("update", app.client_id, "--deactivate")
    assert Application.objects.get().is_active is False


def test_update_replaces_the_redirect_uris_and_refuses_bad_ones():
    app, _ = make_client("Grafana")
    run("update", app.client_id, "--redirect-uri", "https://new.example.com/cb")
    assert Application.objects.get().redirect_uris == "https://new.example.com/cb"
    assert "--redirect-uri: 'http://new.example.com/cb'" in refused(
        "update", app.client_id, "--redirect-uri", "http://new.example.com/cb"
    )
    assert "--group: No such group: staff." in refused("update", app.client_id, "--group", "staff")
    assert refused("update", app.client_id).startswith("nothing to change")


def test_update_with_the_same_settings_writes_nothing():
    app, _ = make_client("Grafana", scopes=["email", "openid"])
    before = snapshot()
    run("update", app.client_id, "--scope", "openid", "--scope", "email", "--redirect-uri", REDIRECT_URI)
    assert snapshot() == before


def test_a_client_can_be_named_instead_of_its_id():
    app, _ = make_client("Team Wiki")
    out = io.StringIO()
    call_command("oidc_client", "show", "team wiki", "--json", stdout=out)
    assert json.loads(out.getvalue())["client_id"] == app.client_id


@pytest.mark.django_db
@pytest.mark.parametrize("option", ["--redirect-uri", "--post-logout-redirect-uri"])
def test_a_uri_with_a_line_break_or_space_is_refused_not_split_in_two(option):
    base = ["add", "--name", "Wiki", "--redirect-uri", "https://wiki.example.com/cb"]
    for bad in ("https://wiki.example.com/cb\nhttps://evil.test/cb", "https://wiki.example.com/c b"):
        args = [*base, option, bad] if option != "--redirect-uri" else ["add", "--name", "Wiki", option, bad]
        message = refused(*args)
        assert "is not one URI: give each URI on its own" in message
    # Positive control: two URIs given as two options are two URIs.
    out = run(*base, "--redirect-uri", "https://wiki.example.com/cb2")
    assert Application.objects.get(name="Wiki").redirect_uris.split() == [
        "https://wiki.example.com/cb",
        "https://wiki.example.com/cb2",
    ]
    assert "Wiki" in out


@pytest.mark.django_db
def test_an_empty_group_name_does_not_open_the_client_to_everyone():
    Group.objects.create(name="wiki-users")
    message = refused("add", "--name", "Wiki", "--redirect-uri", "https://wiki.example.com/cb", "--group", "")
    assert "a group name cannot be empty" in message
    run("add", "--name", "Wiki", "--redirect-uri", "https://wiki.example.com/cb", "--group", "wiki-users")
    assert list(Application.objects.get(name="Wiki").allowed_groups.values_list("name", flat=True)) == ["wiki-users"]


@pytest.mark.django_db
def test_update_with_an_empty_group_name_keeps_the_gate_instead_of_opening_the_client_to_everyone():
    Group.objects.create(name="wiki-users")
    run("add", "--name", "Wiki", "--redirect-uri", "https://wiki.example.com/cb", "--group", "wiki-users")

    message = refused("update", "Wiki", "--group", "")

    assert message == "--group: a group name cannot be empty; --everyone removes the group gate."
    assert list(Application.objects.get(name="Wiki").allowed_groups.values_list("name", flat=True)) == ["wiki-users"]
    run("update", "Wiki", "--everyone")  # positive control: the explicit way to open it
    assert not Application.objects.get(name="Wiki").allowed_groups.exists()


@pytest.mark.django_db
def test_the_update_service_refuses_an_empty_group_name_too():
    from django.core.exceptions import ValidationError

    from oidc import services

    Group.objects.create(name="wiki-users")
    app, _ = make_client(name="Wiki", groups=["wiki-users"])
    with pytest.raises(ValidationError, match="a group name cannot be empty"):
        services.client_update(application=app, groups=[" "], actor_label="test")
    assert list(app.allowed_groups.values_list("name", flat=True)) == ["wiki-users"]
