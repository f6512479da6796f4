"""The profile's list of apps a person signed into, and withdrawing one app's access."""

import re

import pytest
from django.test import Client

from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory, totp_device
from oidc import services
from oidc.models import Consent
from oidc.selectors import apps_of
from oidc.tests.factories import (
    authorize_query,
    consent_form_data,
    exchange,
    make_client,
    pkce_pair,
    query_of,
    signed_in,
)

pytestmark = pytest.mark.django_db


def sign_into(browser, app, secret, **extra):
    """Walk the code flow in a signed-in browser, allowing the app on the consent page if it asks."""
    verifier, challenge = pkce_pair()
    query = authorize_query(app, challenge, **extra)
    response = browser.get("/oauth/authorize/", query)
    if response.status_code == 200:
        response = browser.post("/oauth/authorize/", consent_form_data(response, allow="Allow"))
    assert response.status_code == 302, response.content
    response = exchange(Client(), app, query_of(response["Location"])["code"], verifier, secret)
    assert response.status_code == 200, response.content
    return response.json()


def refresh(app, secret, tokens):
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": app.client_id}
    return Client().post("/oauth/token/", {**data, "client_secret": secret})


def userinfo(tokens):
    return Client().get("/oauth/userinfo/", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")


def revoke_url(app):
    return f"/profile/apps/{app.pk}/revoke/"


def test_the_profile_lists_an_app_the_person_signed_into_with_a_revoke_button():
    person = UserFactory()
    app, secret = make_client(name="Grafana", skip_consent=True)
    browser = signed_in(person)
    sign_into(browser, app, secret)
    page = browser.get("/profile/").content.decode()
    assert "Apps you signed into" in page and "Grafana" in page
    assert "Your email address" in page and "The groups you belong to" in page
    form = re.search(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', page[page.index('id="apps"') :], re.S)
    assert form.group(1) == revoke_url(app)
    assert "csrfmiddlewaretoken" in form.group(2) and "Revoke access" in form.group(2)


def test_the_profile_says_so_when_the_person_signed_into_no_app():
    person = UserFactory()
    other = UserFactory()
    app, secret = make_client(skip_consent=True)
    sign_into(signed_in(other), app, secret)
    page = signed_in(person).get("/profile/").content.decode()
    assert "You have not signed into any app" in page
    assert "Revoke access" not in page


def test_an_app_shows_what_was_allowed_when_and_whether_a_second_factor_was_proved():
    person = UserFactory()
    wiki, wiki_secret = make_client(name="Wiki")
    chat, chat_secret = make_client(name="Chat", skip_consent=True)
    sign_into(signed_in(person), chat, chat_secret, scope="openid profile")
    totp_device(person)
    sign_into(signed_in(person, with_totp=True), wiki, wiki_secret, scope="openid email")
    chat_row, wiki_row = apps_of(person)  # sorted by name
    consent = Consent.objects.get(user=person, application=wiki)
    assert wiki_row.application == wiki and wiki_row.name == "Wiki"
    assert wiki_row.scopes == ("openid", "email")
    assert wiki_row.first_signed_in == consent.granted_at
    assert wiki_row.last_used >= consent.granted_at
    assert wiki_row.second_factor is True
    # No consent for a first-party app: its scopes come from the token it holds.
    assert chat_row.scopes == ("openid", "profile")
    assert chat_row.first_signed_in is not None and chat_row.second_factor is False


def test_a_newer_password_only_sign_in_is_not_reported_as_having_a_second_factor():
    person = UserFactory()
    totp_device(person)
    app, secret = make_client(skip_consent=True)
    sign_into(signed_in(person, with_totp=True), app, secret)
    assert apps_of(person)[0].second_factor is True
    device = person.totpdevice_set.get()
    device.confirmed = False
    device.save()
    sign_into(signed_in(person), app, secret)
    assert apps_of(person)[0].second_factor is False


def test_refreshing_keeps_the_app_listed_and_moves_its_last_use():
    person = UserFactory()
    app, secret = make_client(skip_consent=True)
    tokens = sign_into(signed_in(person), app, secret)
    before = apps_of(person)[0]
    assert refresh(app, secret, tokens).status_code == 200
    [after] = apps_of(person)
    assert after.first_signed_in == before.first_signed_in
    assert after.last_used > before.last_used


def test_an_app_that_holds_nothing_any_more_is_not_listed():
    person = UserFactory()
    first_party, secret = make_client(name="Chat", skip_consent=True)
    asks, asks_secret = make_client(name="Wiki")
    browser = signed_in(person)
    sign_into(browser, first_party, secret)
    sign_into(browser, asks, asks_secret)
    # Signing out from the apps ends their tokens; only the remembered consent keeps the second one listed.
    services.app_sessions_end(user=person, application=first_party)
    services.app_sessions_end(user=person, application=asks)
    assert [a.name for a in apps_of(person)] == ["Wiki"]


def test_listing_apps_takes_the_same_few_queries_however_many_apps(django_assert_max_num_queries):
    person = UserFactory()
    browser = signed_in(person)
    for n in range(4):
        app, secret = make_client(name=f"App {n}", skip_consent=n % 2 == 0)
        tokens = sign_into(browser, app, secret)
        refresh(app, secret, tokens)
    with django_assert_max_num_queries(4):
        apps = apps_of(person)
        assert [a.scopes for a in apps] == [("openid", "profile", "email", "groups")] * 4
        assert [a.application.name for a in apps] == ["App 0", "App 1", "App 2", "App 3"]


def test_revoking_an_app_ends_its_tokens_forgets_consent_and_is_audited():
    person, colleague = UserFactory(), UserFactory()
    wiki, wiki_secret = make_client(name="Wiki")
    chat, chat_secret = make_client(name="Chat", skip_consent=True)
    browser = signed_in(person)
    mine = sign_into(browser, wiki, wiki_secret)
    other_app = sign_into(browser, chat, chat_secret)
    theirs = sign_into(signed_in(colleague), wiki, wiki_secret)

    response = browser.post(revoke_url(wiki), follow=True)

    assert response.redirect_chain == [("/profile/", 302)]
    page = response.content.decode()
    assert "Wiki can no longer use your account; it will ask for your permission again next time." in page
    assert [a.name for a in response.context["apps"]] == ["Chat"]
    refused = refresh(wiki, wiki_secret, mine)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert userinfo(mine).status_code == 401
    assert not Consent.objects.filter(user=person, application=wiki).exists()
    event = AuditEvent.objects.get(action="oidc.access_revoke")
    assert event.actor == person and event.target_id == str(wiki.pk)
    # The colleague's sign-in to the same app and the person's other app are untouched.
    assert userinfo(theirs).status_code == 200 and refresh(wiki, wiki_secret, theirs).status_code == 200
    assert userinfo(other_app).status_code == 200 and refresh(chat, chat_secret, other_app).status_code == 200
    assert Consent.objects.filter(user=colleague, application=wiki).exists()


def test_after_revoking_the_next_sign_in_asks_for_consent_again():
    person = UserFactory()
    app, secret = make_client(name="Wiki")
    browser = signed_in(person)
    sign_into(browser, app, secret)
    _, challenge = pkce_pair()
    assert browser.get("/oauth/authorize/", authorize_query(app, challenge)).status_code == 302
    browser.post(revoke_url(app))
    page = browser.get("/oauth/authorize/", authorize_query(app, challenge))
    assert page.status_code == 200 and "Allow Wiki?" in page.content.decode()


def test_revoking_a_first_party_app_does_not_promise_a_consent_page():
    person = UserFactory()
    app, secret = make_client(name="Chat", skip_consent=True)
    browser = signed_in(person)
    sign_into(browser, app, secret)
    page = browser.post(revoke_url(app), follow=True).content.decode()
    assert "Chat can no longer use your account." in page and "ask for your permission" not in page


def test_revoking_needs_the_csrf_token_from_the_page(csrf_client):
    person = UserFactory()
    app, secret = make_client(name="Wiki")
    sign_into(signed_in(person), app, secret)
    csrf_client.force_login(person)
    assert csrf_client.post(revoke_url(app)).status_code == 403
    assert Consent.objects.filter(user=person, application=app).exists()
    page = csrf_client.get("/profile/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert csrf_client.post(revoke_url(app), {"csrfmiddlewaretoken": token}).status_code == 302
    assert not Consent.objects.filter(user=person, application=app).exists()


def test_revoking_an_app_the_person_never_used_changes_nothing_for_others():
    person, colleague = UserFactory(), UserFactory()
    app, secret = make_client(name="Wiki")
    theirs = sign_into(signed_in(colleague), app, secret)
    response = signed_in(person).post(revoke_url(app))
    assert response.status_code == 302 and response["Location"] == "/profile/"
    assert userinfo(theirs).status_code == 200
    assert Consent.objects.filter(user=colleague, application=app).exists()


def test_revoking_an_unknown_app_is_not_found():
    assert signed_in(UserFactory()).post("/profile/apps/999999/revoke/").status_code == 404


def test_the_revoke_url_only_accepts_post():
    app, _ = make_client()
    assert signed_in(UserFactory()).get(revoke_url(app)).status_code == 405


def test_revoking_needs_a_signed_in_person():
    UserFactory()  # past first-run setup
    app, _ = make_client()
    response = Client().post(revoke_url(app))
    assert response.status_code == 302 and response["Location"].startswith("/login/")
