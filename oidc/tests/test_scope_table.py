"""What the OIDC scopes and claims look like from outside: discovery, the claims each scope set releases in the
ID token and at userinfo, and every text that describes a scope. Written before the scopes and claims became
one table (oidc.scopes.SCOPES); the table must reproduce all of it exactly."""

import argparse

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from oauth2_provider.scopes import get_scopes_backend

from accounts.tests.factories import UserFactory
from mail.models import Group
from oidc.admin import ClientForm
from oidc.management.commands.oidc_client import Command as OidcClientCommand
from oidc.models import Application
from oidc.scopes import GUARDED_SCOPES, REQUESTABLE_CLAIMS
from oidc.tests.factories import make_client
from oidc.tests.test_code_flow import id_token_claims
from oidc.tests.tokens import person_with_mailbox, tokens_for
from oidc.validator import DockspaceValidator

pytestmark = pytest.mark.django_db

SCOPES = ["openid", "profile", "email", "groups", "mail", "introspection"]
DESCRIPTIONS = {
    "openid": "Sign you in",
    "profile": "Your name",
    "email": "Your email address",
    "groups": "The groups you belong to",
    "mail": "Read and send your mail",
    "introspection": "Check other apps' tokens",
}
PROTOCOL = ["iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "at_hash"]
PERSON_CLAIMS = ["sub", "name", "preferred_username", "email", "email_verified", "groups", "mailbox"]
# Every ID token carries these, whatever the scopes (jti is DOT's, not advertised).
ID_TOKEN_ALWAYS = {*PROTOCOL, "jti", "sub"}

ADA = {
    "name": "Ada L",
    "preferred_username": "ada@example.com",
    "email": "ada@example.com",
    "email_verified": True,
    "groups": ["admins", "staff"],
    "mailbox": "ada@example.com",
}
RELEASED = {
    "openid": [],
    "openid profile": ["name", "preferred_username"],
    "openid email": ["email", "email_verified"],
    "openid groups": ["groups"],
    "openid mail": ["mailbox"],
    "openid profile email groups mail": ["name", "preferred_username", "email", "email_verified", "groups", "mailbox"],
}


@pytest.fixture
def ada():
    person = person_with_mailbox("ada@example.com", email="ada@example.com")
    person.full_name = "Ada L"
    person.save()
    for name in ("staff", "admins"):
        Group.objects.create(name=name).members.add(person)
    return person


@pytest.fixture
def every_person_scope():
    return make_client(scopes=["openid", "profile", "email", "groups", "mail"], skip_consent=True)


def claims_for(person, app, secret, scope):
    tokens = tokens_for(person, app, secret, scope)
    assert tokens["scope"] == scope
    userinfo = Client().get("/oauth/userinfo/", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}").json()
    return id_token_claims(Client(), tokens["id_token"]), userinfo


def test_discovery_lists_the_scopes_and_claims():
    document = Client().get("/.well-known/openid-configuration").json()
    assert document["scopes_supported"] == SCOPES
    assert document["claims_supported"] == ["sub", *PROTOCOL, *PERSON_CLAIMS[1:]]


@pytest.mark.parametrize("scope", list(RELEASED))
def test_each_scope_set_releases_its_claims_in_the_id_token_and_at_userinfo(ada, every_person_scope, scope):
    id_token, userinfo = claims_for(ada, *every_person_scope, scope)
    expected = {"sub": str(ada.uuid), **{name: ADA[name] for name in RELEASED[scope]}}
    assert list(userinfo.items()) == list(expected.items())  # same claims, same order
    assert set(id_token) == ID_TOKEN_ALWAYS | set(RELEASED[scope])
    assert {name: id_token[name] for name in expected} == expected


def test_a_person_without_a_mailbox_gets_no_mailbox_claim_and_an_unverified_email(every_person_scope):
    person = UserFactory(email="bob@example.com", full_name="")
    id_token, userinfo = claims_for(person, *every_person_scope, "openid profile email groups mail")
    assert userinfo == {
        "sub": str(person.uuid),
        "name": "bob@example.com",
        "preferred_username": "bob@example.com",
        "email": "bob@example.com",
        "email_verified": False,
        "groups": [],
    }
    assert set(id_token) == ID_TOKEN_ALWAYS | set(userinfo)


def test_each_claim_is_released_by_its_scope():
    scope_of = DockspaceValidator.oidc_claim_scope
    assert {name: scope_of[name] for name in PERSON_CLAIMS} == {
        "sub": "openid",
        "name": "profile",
        "preferred_username": "profile",
        "email": "email",
        "email_verified": "email",
        "groups": "groups",
        "mailbox": "mail",
    }


def test_the_claims_parameter_may_ask_for_every_person_claim_but_the_subject_and_the_mailbox():
    assert REQUESTABLE_CLAIMS == {
        "name": "profile",
        "preferred_username": "profile",
        "email": "email",
        "email_verified": "email",
        "groups": "groups",
    }


def test_the_consent_page_and_the_profile_describe_each_scope():
    assert list(get_scopes_backend().get_all_scopes().items()) == list(DESCRIPTIONS.items())


def test_only_mail_and_introspection_are_guarded():
    assert sorted(GUARDED_SCOPES) == ["introspection", "mail"]


def test_the_admin_offers_each_scope_with_its_description():
    field = ClientForm.base_fields["allowed_scopes"]
    assert list(field.choices) == [(scope, f"{scope}: {DESCRIPTIONS[scope]}") for scope in SCOPES]
    assert field.help_text == "What the app may ask for. A client-credentials client uses introspection only."
    assert Application._meta.get_field("allowed_scopes").help_text == (
        "Space-separated scopes this client may ask for: openid profile email groups mail introspection."
    )


def test_the_oidc_client_command_names_the_known_scopes():
    parser = OidcClientCommand().create_parser("manage.py", "oidc_client")
    [subcommands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]

    def scope_help(action):
        [option] = [a for a in subcommands.choices[action]._actions if a.dest == "scopes"]
        return option.help

    assert scope_help("add") == (
        "A scope the app may ask for (repeatable). Known: openid profile email groups mail introspection. "
        "Default: openid profile email groups; a client-credentials client needs --scope introspection."
    )
    assert scope_help("update") == (
        "The scopes from now on (repeatable; replaces the current ones). "
        "Known: openid profile email groups mail introspection."
    )


def test_an_unknown_scope_is_refused_naming_the_known_ones():
    app = Application(name="X", allowed_scopes="openid telepathy")
    with pytest.raises(ValidationError) as refused:
        app.clean()
    assert "Unknown scope(s): telepathy. Known: openid profile email groups mail introspection." in str(
        refused.value.message_dict["allowed_scopes"]
    )


def test_each_claim_is_declared_under_one_scope_only():
    from oidc.scopes import CLAIMS_SUPPORTED

    assert len(CLAIMS_SUPPORTED) == len(set(CLAIMS_SUPPORTED))
