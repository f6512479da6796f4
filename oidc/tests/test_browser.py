"""End to end in headless Chromium: people sign into a small relying party ("Team Wiki") through Dockspace,
with a second factor the app requires, enrolling one on the way, or finding they have no access.

The relying party (oidc/tests/relying_party.py) runs on 127.0.0.1 and knows only the issuer (the live server),
its client id and secret. Tests run with DEBUG off, so Dockspace's cookies are Secure: Chromium keeps and sends them
over http because the live server is on localhost, a secure context. Saves screenshots to docs/images/ for the
README's gallery.
"""

import pytest

from accounts.tests.factories import PASSWORD, UserFactory, totp_code, totp_device
from dockspace.tests.chromium import click_and_wait, current_code, shot
from mail import services as mail_services
from oidc import services
from oidc.tests.relying_party import RelyingParty

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def issuer(live_server, settings):
    # DOT caches its settings; overriding OAUTH2_PROVIDER fires setting_changed, which reloads them (and again
    # when the fixture restores the original). The cached oauthlib server is rebuilt on every request.
    settings.OAUTH2_PROVIDER = {
        **settings.OAUTH2_PROVIDER,
        "OIDC_ISS_ENDPOINT": live_server.url,
        "ALWAYS_RELOAD_OAUTHLIB_CORE": True,
    }
    return live_server.url


@pytest.fixture
def team_wiki(issuer):
    with RelyingParty(issuer) as rp:
        yield rp


def register(rp, **kwargs):
    app, secret = services.client_create(
        name="Team Wiki", redirect_uris=[rp.redirect_uri], requires_totp=True, actor_label="test", **kwargs
    )
    rp.client_id, rp.client_secret = app.client_id, secret
    return app


def start_sign_in(page, rp, person):
    """From the app's home page to Dockspace's sign-in page, then the password."""
    page.goto(rp.url + "/")
    click_and_wait(page, "text=Sign in with Dockspace")
    assert page.url.startswith(page.base + "/login/"), page.url
    page.fill("#id_email", person.email)
    page.fill("#id_password", PASSWORD)
    click_and_wait(page, "main button[type=submit]")


def test_a_person_with_an_authenticator_signs_into_a_totp_app_and_it_sees_mfa(page, team_wiki):
    register(team_wiki)
    person = UserFactory(email="ada@example.com", full_name="Ada Lovelace")
    device = totp_device(person)

    start_sign_in(page, team_wiki, person)
    assert page.url.startswith(page.base + "/login/code/"), page.url
    page.fill("#id_code", totp_code(device))
    click_and_wait(page, "main button[type=submit]")

    assert page.locator("h1").inner_text() == "Allow Team Wiki?"
    assert "ada@example.com" in page.locator("main").inner_text()
    shot(page, "20-oidc-consent")
    click_and_wait(page, "button[name=allow]")

    assert page.url == team_wiki.url + "/", page.locator("body").inner_text()
    assert page.locator("#signed-in").inner_text() == "Signed in as ada@example.com (amr: pwd otp mfa)"
    shot(page, "21-oidc-signed-in")
    assert team_wiki.errors == []
    assert team_wiki.signed_in[-1]["sub"] == str(person.uuid)
    assert team_wiki.signed_in[-1]["acr"] == "urn:dockspace:acr:mfa"


def test_a_person_without_an_authenticator_enrols_one_and_is_taken_back_to_finish_signing_in(page, team_wiki):
    register(team_wiki)
    person = UserFactory(email="grace@example.com")

    start_sign_in(page, team_wiki, person)
    assert page.url == page.base + "/security/", page.url
    assert "Team Wiki needs a second factor" in page.locator(".messages").inner_text()

    page.fill("#id_name", "Phone")
    click_and_wait(page, "text=Add authenticator app")
    assert page.url.endswith("/security/totp/confirm/")
    page.fill("#id_code", current_code(page.locator("#totp-secret").inner_text()))
    click_and_wait(page, "main button[type=submit]")

    assert page.locator("h1").inner_text() == "Allow Team Wiki?", page.url
    click_and_wait(page, "button[name=allow]")
    assert page.url == team_wiki.url + "/", page.locator("body").inner_text()
    assert page.locator("#signed-in").inner_text() == "Signed in as grace@example.com (amr: pwd otp mfa)"
    assert team_wiki.errors == []


def test_a_person_outside_the_apps_group_is_told_they_have_no_access(page, team_wiki):
    member = UserFactory(email="member@example.com")
    mail_services.group_create(name="wiki-editors", members=[member], actor_label="test")
    register(team_wiki, groups=["wiki-editors"])
    outsider = UserFactory(email="eve@example.com")
    device = totp_device(outsider)

    start_sign_in(page, team_wiki, outsider)
    page.fill("#id_code", totp_code(device))
    click_and_wait(page, "main button[type=submit]")

    assert page.locator("h1").inner_text() == "No access to Team Wiki"
    assert "You are signed in as eve@example.com" in page.locator("main").inner_text()
    shot(page, "22-oidc-no-access")
    assert team_wiki.signed_in == []
