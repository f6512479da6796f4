"""manage.py oidc_keys: signing keys are listed and rotated in a running server, without a restart."""

import base64
import io
import json
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from jwcrypto import jwk, jwt

from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from oidc import keys
from oidc.models import SigningKey
from oidc.tests.factories import authorize_query, exchange, make_client, pkce_pair, query_of, signed_in

pytestmark = pytest.mark.django_db


def run(*args):
    out = io.StringIO()
    call_command("oidc_keys", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def id_token(person, app, secret):
    """A fresh sign-in through the real pages and the token endpoint, as an app does it."""
    verifier, challenge = pkce_pair()
    response = signed_in(person).get("/oauth/authorize/", authorize_query(app, challenge))
    tokens = exchange(Client(), app, query_of(response["Location"])["code"], verifier, secret).json()
    return tokens["id_token"]


def kid_of(token):
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def published_kids():
    return [key["kid"] for key in Client().get("/.well-known/jwks.json").json()["keys"]]


def verified_claims(token):
    """What a relying party does: verify the ID token against the JWKS it fetches now."""
    key_set = jwk.JWKSet.from_json(Client().get("/.well-known/jwks.json").content)
    return json.loads(jwt.JWT(key=key_set, jwt=token, check_claims=False).claims)


@pytest.fixture
def key_pair():
    keys.ensure_signing_keys()
    return SigningKey.objects.get(state="active"), SigningKey.objects.get(state="next")


def test_list_shows_the_active_and_the_next_key(key_pair):
    active, upcoming = key_pair
    lines = run("list").splitlines()
    assert lines[0].split() == ["KID", "STATE", "CREATED", "ACTIVATED", "PUBLISHED", "UNTIL"]
    assert [line.split()[:2] for line in lines[1:]] == [[active.kid, "active"], [upcoming.kid, "next"]]
    rows = json.loads(run("list", "--json"))
    assert [(r["kid"], r["state"], r["published"]) for r in rows] == [
        (active.kid, "active", True),
        (upcoming.kid, "next", True),
    ]
    assert "PRIVATE" not in run("list") + run("list", "--json")


def test_rotate_makes_the_next_key_active_and_says_until_when_the_old_one_is_published(key_pair):
    active, upcoming = key_pair
    with time_machine.travel(timezone.now(), tick=False):
        out = run("rotate")
        until = timezone.now() + timedelta(seconds=3600 + 300)
    assert f"New active key {upcoming.kid}" in out
    assert f"Old key {active.kid} stays published in JWKS until {until:%Y-%m-%d %H:%M:%S} UTC" in out
    assert "No restart needed" in out
    assert SigningKey.objects.get(state="active").kid == upcoming.kid
    assert SigningKey.objects.get(state="retiring").kid == active.kid
    event = AuditEvent.objects.get(action="oidc.key.rotate")
    assert event.actor_label == "manage.py oidc_keys" and "BEGIN" not in event.description
    rotated = json.loads(run("rotate", "--json"))
    assert rotated["retiring_kid"] == upcoming.kid and rotated["active_kid"] != upcoming.kid


def test_after_rotate_new_id_tokens_carry_the_new_kid_and_earlier_ones_still_verify(key_pair):
    active, upcoming = key_pair
    person = UserFactory()
    app, secret = make_client(skip_consent=True)
    before = id_token(person, app, secret)
    assert kid_of(before) == active.kid

    rotated = json.loads(run("rotate", "--json"))

    after = id_token(person, app, secret)
    assert kid_of(after) == rotated["active_kid"] == upcoming.kid
    assert verified_claims(after)["sub"] == str(person.uuid)
    assert verified_claims(before)["sub"] == str(person.uuid)
    assert set(published_kids()) == {active.kid, upcoming.kid, rotated["next_kid"]}


def test_a_retiring_key_leaves_jwks_once_its_tokens_have_expired(key_pair):
    active, _ = key_pair
    with time_machine.travel(timezone.now(), tick=False) as clock:
        run("rotate")
        clock.shift(timedelta(minutes=64))
        assert active.kid in published_kids()
        clock.shift(timedelta(minutes=2))
        assert active.kid not in published_kids()
        listed = {row["kid"]: row for row in json.loads(run("list", "--json"))}
        assert listed[active.kid]["state"] == "retiring" and listed[active.kid]["published"] is False
        assert "no longer published" in run("list")
