"""Client secrets: stored as a fast salted SHA-256 (not Argon2), never re-hashed, checked at the token endpoint."""

import pytest
from django.conf import settings
from django.contrib.auth.hashers import check_password, get_hasher, identify_hasher, make_password
from django.test import Client

from accounts.tests.factories import PASSWORD, UserFactory
from oidc.hashers import ClientSecretSHA256Hasher
from oidc.models import Application
from oidc.tests.factories import make_client

pytestmark = pytest.mark.django_db


def robot():
    return make_client("Robot", redirect_uris=[], client_credentials=True, scopes=["introspection"])


def token_request(app, secret):
    return Client().post(
        "/oauth/token/", {"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": secret}
    )


def test_a_client_secret_is_stored_with_the_client_sha256_hasher():
    app, secret = robot()
    stored = Application.objects.get(pk=app.pk).client_secret
    assert identify_hasher(stored).algorithm == "dockspace_client_sha256"
    assert stored.startswith("dockspace_client_sha256$") and secret not in stored
    assert check_password(secret, stored)


def test_resaving_a_client_keeps_the_hash_and_the_secret_still_works():
    app, secret = robot()
    stored = Application.objects.get(pk=app.pk).client_secret
    loaded = Application.objects.get(pk=app.pk)
    loaded.name = "Robot 2"
    loaded.save()
    loaded.full_clean(exclude=["user"])
    loaded.save()
    assert Application.objects.get(pk=app.pk).client_secret == stored
    response = token_request(app, secret)
    assert response.status_code == 200, response.content
    assert response.json()["token_type"] == "Bearer"


def test_a_wrong_secret_is_refused_at_the_token_endpoint():
    app, secret = robot()
    response = token_request(app, secret[:-1] + ("x" if secret[-1] != "x" else "y"))
    # The secret was sent in the body (client_secret_post): 400, no HTTP authentication challenge.
    assert response.status_code == 400 and response.json()["error"] == "invalid_client"
    assert token_request(app, "").status_code == 400


def test_the_hasher_is_listed_last_so_it_never_hashes_a_persons_password():
    assert settings.PASSWORD_HASHERS[-1] == "oidc.hashers.ClientSecretSHA256Hasher"
    assert get_hasher().algorithm != "dockspace_client_sha256"
    assert identify_hasher(make_password("a person's pass phrase")).algorithm == "argon2"
    assert settings.OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"] == "dockspace_client_sha256"


def test_the_same_secret_gets_a_different_salt_each_time():
    hasher = ClientSecretSHA256Hasher()
    first, second = (hasher.encode("s3cret", hasher.salt()) for _ in range(2))
    assert first != second and hasher.verify("s3cret", first) and hasher.verify("s3cret", second)
    assert not hasher.verify("s3cret!", first)
    assert not hasher.verify("s3cret", "pbkdf2_sha256$1$salt$hash")


def test_a_person_whose_password_hash_came_from_the_client_hasher_cannot_sign_in():
    # Only someone with database access could plant such a hash; the fast hasher must not open the door.
    person = UserFactory(password=make_password(PASSWORD, hasher="dockspace_client_sha256"))
    browser = Client()
    response = browser.post("/login/", {"email": person.email, "password": PASSWORD})
    assert response.status_code == 200 and "_auth_user_id" not in browser.session
