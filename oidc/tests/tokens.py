"""Access tokens obtained the way an app obtains them (browser sign-in, authorization code, exchange), and the
people and clients the resource-endpoint tests share."""

from django.test import Client

from accounts.tests.factories import UserFactory
from mail.tests.factories import make_mailbox
from oidc.tests.factories import authorize_query, exchange, make_client, pkce_pair, query_of, signed_in

MAIL_SCOPES = ["openid", "email", "mail"]


def webmail_client(name="Webmail", **kwargs):
    """A first-party webmail client allowed the "mail" scope; returns (application, secret)."""
    kwargs.setdefault("scopes", MAIL_SCOPES)
    kwargs.setdefault("skip_consent", True)
    return make_client(name, **kwargs)


def introspecting_client(name="Resource server", **kwargs):
    """A confidential client trusted to introspect tokens (and to call the mail endpoint in POST mode)."""
    kwargs.setdefault("scopes", ["introspection"])
    kwargs.setdefault("client_credentials", True)
    kwargs.setdefault("redirect_uris", [])
    return make_client(name, **kwargs)


def person_with_mailbox(address="ada@mail.example.net", *, email="ada@example.com"):
    """A person who signs in to Dockspace as `email` and owns the mailbox `address`."""
    person = UserFactory(email=email)
    make_mailbox(address, person=person)
    person.refresh_from_db()
    return person


def tokens_for(person, app, secret, scope="openid email mail"):
    """Sign in through the real pages, authorize `app` for `scope` and exchange the code: the token response."""
    browser = signed_in(person)
    verifier, challenge = pkce_pair()
    response = browser.get("/oauth/authorize/", authorize_query(app, challenge, scope=scope))
    assert response.status_code == 302, response.content
    code = query_of(response["Location"])["code"]
    answer = exchange(Client(), app, code, verifier, secret)
    assert answer.status_code == 200, answer.content
    return answer.json()


def access_token_for(person, app, secret, scope="openid email mail"):
    return tokens_for(person, app, secret, scope)["access_token"]
