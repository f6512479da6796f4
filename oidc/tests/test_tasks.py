"""The periodic OIDC clean-up: expired tokens, codes and finished sign-ins go, live ones stay."""

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_grant_model, get_refresh_token_model

from accounts.tests.factories import UserFactory
from dockspace.schedule import Crontab, declared_periodic_tasks
from oidc.models import TokenFamily
from oidc.tasks import clear_expired_tokens
from oidc.tests.factories import authorize_query, exchange, make_client, pkce_pair, query_of, signed_in

pytestmark = pytest.mark.django_db

IDLE_LIMIT = timedelta(days=30)  # DOCKSPACE_OIDC_REFRESH_IDLE_DAYS default


def code_for(browser, app):
    verifier, challenge = pkce_pair()
    response = browser.get("/oauth/authorize/", authorize_query(app, challenge))
    assert response.status_code == 302, response.content
    return query_of(response["Location"])["code"], verifier


def sign_into(person, app, secret):
    code, verifier = code_for(signed_in(person), app)
    response = exchange(Client(), app, code, verifier, secret)
    assert response.status_code == 200, response.content
    return response.json()


def refresh(app, secret, tokens):
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": app.client_id}
    return Client().post("/oauth/token/", {**data, "client_secret": secret})


def test_a_sign_in_left_idle_past_the_limit_is_cleared_and_a_recent_one_kept():
    idle, active = UserFactory(), UserFactory()
    app, secret = make_client(skip_consent=True)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        old = sign_into(idle, app, secret)
    with time_machine.travel(start + IDLE_LIMIT + timedelta(days=1), tick=False):
        fresh = sign_into(active, app, secret)
        summary = clear_expired_tokens()
        assert summary == "cleared expired tokens; deleted 1 finished sign-ins and 0 expired codes"
        assert list(TokenFamily.objects.values_list("user", flat=True)) == [active.pk]
        assert not get_refresh_token_model().objects.filter(user=idle).exists()
        assert not get_access_token_model().objects.filter(user=idle).exists()
        assert refresh(app, secret, old).status_code == 400
        assert refresh(app, secret, fresh).status_code == 200


def test_a_person_who_keeps_refreshing_is_never_cleared():
    person = UserFactory()
    app, secret = make_client(skip_consent=True)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        tokens = sign_into(person, app, secret)
    for step in (1, 2, 3):
        with time_machine.travel(start + step * IDLE_LIMIT * 0.9, tick=False):
            response = refresh(app, secret, tokens)
            assert response.status_code == 200, response.content
            tokens = response.json()
            clear_expired_tokens()
            assert TokenFamily.objects.filter(user=person).count() == 1


def test_codes_are_cleared_once_expired_and_used_ones_after_their_replay_window():
    person = UserFactory()
    app, secret = make_client(skip_consent=True)
    browser = signed_in(person)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        used, verifier = code_for(browser, app)
        exchange(Client(), app, used, verifier, secret)
        unused, _ = code_for(browser, app)
    Grant = get_grant_model()
    with time_machine.travel(start + timedelta(minutes=2), tick=False):
        clear_expired_tokens()
        # The unused code lived 60 seconds; the used one is kept 10 minutes to spot a replay.
        assert list(Grant.objects.values_list("code", flat=True)) == [used]
    with time_machine.travel(start + timedelta(minutes=11), tick=False):
        clear_expired_tokens()
        assert not Grant.objects.exists()
        # The sign-in the code produced is still live.
        assert TokenFamily.objects.filter(user=person).count() == 1


def test_a_revoked_family_stays_while_its_refresh_tokens_can_still_reveal_a_replay():
    person = UserFactory()
    app, secret = make_client(skip_consent=True)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        first = sign_into(person, app, secret)
        assert refresh(app, secret, first).status_code == 200
        # Reusing the rotated token revokes the whole family.
        assert refresh(app, secret, first).status_code == 400
        clear_expired_tokens()
        assert TokenFamily.objects.filter(user=person).count() == 1
    with time_machine.travel(start + IDLE_LIMIT + timedelta(hours=2), tick=False):
        clear_expired_tokens()
        assert not get_refresh_token_model().objects.exists()
        assert not TokenFamily.objects.exists()


def test_it_is_scheduled_under_its_task_name():
    from dockspace.celery import app

    app.loader.import_default_modules()
    [spec] = [s for s in declared_periodic_tasks() if s.task == "oidc.clear_expired_tokens"]
    assert "oidc.clear_expired_tokens" in app.tasks
    assert spec.crontab == Crontab(minute="41")
    assert spec.expires_seconds == 30 * 60
