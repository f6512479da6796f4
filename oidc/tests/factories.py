"""Clients and authorization-request helpers for the OIDC tests."""

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

from django.test import Client

from accounts.tests.factories import PASSWORD, totp_code, totp_device
from oidc import services

REDIRECT_URI = "https://app.example.net/callback"


def make_client(name="Grafana", **kwargs):
    """An OIDC client created as an operator would; returns (application, plaintext secret)."""
    kwargs.setdefault("redirect_uris", [REDIRECT_URI])
    return services.client_create(name=name, actor_label="test", **kwargs)


def pkce_pair():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_query(app, challenge, **extra):
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile email groups",
        "state": "st-123",
        "nonce": "n-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def query_of(url):
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def signed_in(user, *, with_totp=False, client=None):
    """A browser signed in through the real pages (password, then the code when the person has a device)."""
    client = client or Client()
    response = client.post("/login/", {"email": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.content
    if with_totp:
        device = user.totpdevice_set.filter(confirmed=True).first() or totp_device(user)
        response = client.post("/login/code/", {"code": totp_code(device)})
        assert response.status_code == 302, response.content
    return client


def exchange(client, app, code, verifier, secret=None, **extra):
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        "client_id": app.client_id,
    }
    if secret:
        data["client_secret"] = secret
    data.update(extra)
    return client.post("/oauth/token/", data)


def consent_form_data(page, **changes):
    """What the consent page's form posts: its hidden fields and the signed request binding."""
    fields = {k: v for k, v in page.context["form"].initial.items() if v is not None}
    fields[page.context["binding_field"]] = page.context["binding"]
    return {**fields, **changes}
