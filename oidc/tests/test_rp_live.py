"""A strict relying party (Authlib) drives the provider on a live server, through the real sign-in pages."""

import pytest
import requests
from django.core.management import call_command

from accounts.tests.factories import PASSWORD, UserFactory, totp_code, totp_device
from mail import services as mail_services
from oidc import services
from oidc.tests.factories import query_of
from oidc.tests.live_rp import CALLBACK, Browser, RelyingParty
from oidc.tests.relying_party import RelyingParty as TeamWiki

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def issuer(live_server, settings):
    settings.OAUTH2_PROVIDER = {
        **settings.OAUTH2_PROVIDER,
        "OIDC_ISS_ENDPOINT": live_server.url,
        "ALWAYS_RELOAD_OAUTHLIB_CORE": True,
    }
    # requests, like any client, does not send Secure cookies over plain http.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    return live_server.url


def make_rp(issuer, **kwargs):
    kwargs.setdefault("skip_consent", True)
    app, secret = services.client_create(name="Wiki", redirect_uris=[CALLBACK], actor_label="test", **kwargs)
    return app, RelyingParty(issuer, app.client_id, secret)


def sign_in_to_app(issuer, rp, person, browser=None, code=None, **extra):
    browser = browser or Browser(issuer)
    url, remembered = rp.start(**extra)
    result = browser.go(url)
    if not isinstance(result, str):  # the sign-in page
        result = browser.submit(result, {"email": person.email, "password": PASSWORD})
        if not isinstance(result, str) and code is not None:
            result = browser.submit(result, {"code": code()})
    assert isinstance(result, str), result.text[:500]
    return browser, result, remembered


def test_discovery_names_this_issuer_and_every_advertised_endpoint_answers(issuer):
    app, rp = make_rp(issuer)
    d = rp.discovery
    assert d["issuer"] == issuer
    assert d["response_types_supported"] == ["code"]
    assert "client_credentials" in d["grant_types_supported"] and "password" not in d["grant_types_supported"]
    assert d["acr_values_supported"] == ["urn:dockspace:acr:pwd", "urn:dockspace:acr:mfa"]
    assert {"sub", "email", "groups", "amr", "acr", "auth_time"} <= set(d["claims_supported"])
    for name in ("jwks_uri", "authorization_endpoint", "userinfo_endpoint"):
        assert Browser(issuer).http.get(d[name], timeout=10).status_code in (200, 400, 401), name
    for name in ("token_endpoint", "revocation_endpoint", "introspection_endpoint"):
        assert Browser(issuer).http.post(d[name], timeout=10).status_code in (400, 401, 403), name
    assert Browser(issuer).http.get(d["end_session_endpoint"], timeout=10).status_code in (200, 302, 400)


def test_a_strict_client_signs_a_person_in_and_every_id_token_check_passes(issuer):
    person = UserFactory(email="ada@example.com", full_name="Ada Lovelace")
    group = mail_services.group_create(name="wiki-editors", members=["ada@example.com"], actor_label="test")
    app, rp = make_rp(issuer)
    _browser, callback, remembered = sign_in_to_app(issuer, rp, person, max_age=3600)
    assert query_of(callback)["state"] == remembered["state"]
    assert query_of(callback)["iss"] == issuer
    token, claims = rp.finish(callback, remembered)
    assert claims["sub"] == str(person.uuid)
    assert claims["email"] == "ada@example.com" and claims["email_verified"] is False
    assert claims["groups"] == [group.name]
    assert claims["amr"] == ["pwd"] and claims["acr"] == "urn:dockspace:acr:pwd"
    info = rp.userinfo(token["access_token"])
    assert info.status_code == 200 and info.json()["sub"] == claims["sub"]
    bad = rp.userinfo("not-a-token")
    assert bad.status_code == 401 and "Bearer" in bad.headers["WWW-Authenticate"]


def test_a_replayed_code_fails_and_the_first_access_token_stops_working(issuer):
    person = UserFactory()
    app, rp = make_rp(issuer)
    _b, callback, remembered = sign_in_to_app(issuer, rp, person)
    token, _claims = rp.finish(callback, remembered)
    code = query_of(callback)["code"]
    again = rp.raw_token_request(
        grant_type="authorization_code", code=code, redirect_uri=CALLBACK, code_verifier=remembered["verifier"]
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    gone = rp.userinfo(token["access_token"])
    assert gone.status_code == 401 and "WWW-Authenticate" in gone.headers


def test_a_wrong_verifier_or_redirect_uri_gets_invalid_grant(issuer):
    person = UserFactory()
    app, rp = make_rp(issuer)
    for changes in ({"code_verifier": "x" * 50}, {"redirect_uri": "http://127.0.0.1:9/other"}):
        _b, callback, remembered = sign_in_to_app(issuer, rp, person)
        data = {
            "grant_type": "authorization_code",
            "code": query_of(callback)["code"],
            "redirect_uri": CALLBACK,
            "code_verifier": remembered["verifier"],
            **changes,
        }
        response = rp.raw_token_request(**data)
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant", changes


def test_refresh_rotates_and_a_replayed_refresh_token_revokes_the_family(issuer):
    person = UserFactory()
    app, rp = make_rp(issuer)
    _b, callback, remembered = sign_in_to_app(issuer, rp, person)
    first, claims = rp.finish(callback, remembered)
    second = rp.refresh(first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    refreshed_claims = rp.verify_id_token(second["id_token"], access_token=second["access_token"])
    assert refreshed_claims["sub"] == claims["sub"] and refreshed_claims["auth_time"] == claims["auth_time"]
    replay = rp.raw_token_request(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # The whole family is revoked: the newest refresh token and its access token stop working too.
    assert rp.raw_token_request(grant_type="refresh_token", refresh_token=second["refresh_token"]).status_code == 400
    assert rp.userinfo(second["access_token"]).status_code == 401


def test_prompt_none_without_a_session_returns_login_required_and_with_one_a_code(issuer):
    person = UserFactory()
    app, rp = make_rp(issuer)
    url, remembered = rp.start(prompt="none")
    result = Browser(issuer).go(url)
    assert query_of(result)["error"] == "login_required" and query_of(result)["state"] == remembered["state"]
    browser, _cb, _r = sign_in_to_app(issuer, rp, person)
    url, remembered = rp.start(prompt="none")
    result = browser.go(url)
    assert "code" in query_of(result)
    rp.finish(result, remembered)


def test_max_age_zero_asks_for_the_password_again_once_and_reports_the_new_auth_time(issuer):
    person = UserFactory()
    app, rp = make_rp(issuer)
    browser, callback, remembered = sign_in_to_app(issuer, rp, person)
    _t, first = rp.finish(callback, remembered)
    url, remembered = rp.start(max_age=0)
    page = browser.go(url)
    assert not isinstance(page, str) and "password" in page.text  # the sign-in page, despite the session
    callback = browser.submit(page, {"email": person.email, "password": PASSWORD})
    assert isinstance(callback, str), "signed in again, back at the app without a second prompt"
    _t, second = rp.finish(callback, remembered)
    assert second["auth_time"] >= first["auth_time"]


def test_the_group_gate_refuses_outsiders_and_stops_refresh_when_a_member_is_removed(issuer):
    insider = UserFactory(email="in@example.com")
    outsider = UserFactory(email="out@example.com")
    group = mail_services.group_create(name="ops", members=["in@example.com"], actor_label="test")
    app, rp = make_rp(issuer, groups=["ops"])
    browser = Browser(issuer)
    url, _r = rp.start()
    page = browser.go(url)
    page = browser.submit(page, {"email": outsider.email, "password": PASSWORD})
    assert page.status_code == 403 and "No access to Wiki" in page.text
    url, remembered = rp.start(prompt="none")
    assert query_of(browser.go(url))["error"] == "access_denied"

    _b, callback, remembered = sign_in_to_app(issuer, rp, insider)
    token, _claims = rp.finish(callback, remembered)
    mail_services.group_update(group=group, members=[], actor_label="test")
    refused = rp.raw_token_request(grant_type="refresh_token", refresh_token=token["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


def test_a_totp_client_asks_for_the_code_and_the_id_token_says_mfa(issuer):
    person = UserFactory()
    device = totp_device(person)
    app, rp = make_rp(issuer, requires_totp=True)
    _b, callback, remembered = sign_in_to_app(issuer, rp, person, code=lambda: totp_code(device))
    _t, claims = rp.finish(callback, remembered)
    assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["acr"] == "urn:dockspace:acr:mfa"


def test_a_suspended_person_can_no_longer_refresh_or_use_userinfo(issuer):
    person = UserFactory(email="sam@example.com")
    mail_services.domain_create(name="example.com", actor_label="test")
    mailbox = mail_services.mailbox_create(address="sam@example.com", person=person, actor_label="test")
    app, rp = make_rp(issuer)
    _b, callback, remembered = sign_in_to_app(issuer, rp, person)
    token, claims = rp.finish(callback, remembered)
    assert claims["email_verified"] is True  # the address is a mailbox Dockspace manages
    mail_services.mailbox_set_state(mailbox=mailbox, state="suspended", actor_label="test")
    assert rp.userinfo(token["access_token"]).status_code == 401
    assert rp.raw_token_request(grant_type="refresh_token", refresh_token=token["refresh_token"]).status_code == 400


def test_key_rotation_while_tokens_are_live_keeps_old_tokens_verifiable(issuer):
    person = UserFactory()
    app, rp = make_rp(issuer)
    browser, callback, remembered = sign_in_to_app(issuer, rp, person)
    old_token, _c = rp.finish(callback, remembered)
    call_command("oidc_keys", "rotate")
    rp.verify_id_token(old_token["id_token"], access_token=old_token["access_token"])
    url, remembered = rp.start()
    new_token, _c = rp.finish(browser.go(url), remembered)
    from joserfc import jws

    assert (
        jws.extract_compact(new_token["id_token"].encode()).protected["kid"]
        != jws.extract_compact(old_token["id_token"].encode()).protected["kid"]
    )


def test_logout_with_an_id_token_hint_ends_the_session_and_returns_to_the_app_with_state(issuer):
    person = UserFactory()
    app, rp = make_rp(issuer, post_logout_redirect_uris=["http://127.0.0.1:9/bye"])
    browser, callback, remembered = sign_in_to_app(issuer, rp, person)
    token, _c = rp.finish(callback, remembered)
    result = browser.go(
        rp.discovery["end_session_endpoint"]
        + "?"
        + __import__("urllib.parse").parse.urlencode(
            {"id_token_hint": token["id_token"], "post_logout_redirect_uri": "http://127.0.0.1:9/bye", "state": "s1"}
        )
    )
    assert isinstance(result, str) and result.startswith("http://127.0.0.1:9/bye") and query_of(result)["state"] == "s1"
    assert rp.raw_token_request(grant_type="refresh_token", refresh_token=token["refresh_token"]).status_code == 400
    url, remembered = rp.start(prompt="none")
    assert query_of(browser.go(url))["error"] == "login_required"


def test_the_team_wiki_asking_for_claims_with_scope_openid_alone_gets_them_in_a_verified_id_token(issuer):
    person = UserFactory(email="ada@example.com", full_name="Ada Lovelace")
    mail_services.group_create(name="wiki-editors", members=["ada@example.com"], actor_label="test")
    asked = {"id_token": {"email": {"essential": True}, "name": None, "groups": None}}
    with TeamWiki(issuer, scope="openid", claims=asked) as wiki:
        app, secret = services.client_create(
            name="Team Wiki", redirect_uris=[wiki.redirect_uri], skip_consent=True, actor_label="test"
        )
        wiki.client_id, wiki.client_secret = app.client_id, secret
        wiki_browser = requests.Session()
        wiki_browser.trust_env = False
        authorize_url = wiki_browser.get(f"{wiki.url}/login", allow_redirects=False, timeout=10).headers["Location"]
        dockspace = Browser(issuer)
        page = dockspace.go(authorize_url)
        callback = dockspace.submit(page, {"email": person.email, "password": PASSWORD})
        assert isinstance(callback, str) and callback.startswith(wiki.redirect_uri), callback
        home = wiki_browser.get(callback, timeout=10)
        assert "Signed in as ada@example.com" in home.text, (home.text, wiki.errors)
        claims = wiki.signed_in[-1]
        assert claims["email"] == "ada@example.com" and claims["name"] == "Ada Lovelace"
        assert claims["groups"] == ["wiki-editors"]
        # Control: the same wiki without the claims parameter gets the subject alone.
        wiki.claims = None
        authorize_url = wiki_browser.get(f"{wiki.url}/login", allow_redirects=False, timeout=10).headers["Location"]
        wiki_browser.get(dockspace.go(authorize_url), timeout=10)
        assert "email" not in wiki.signed_in[-1] and wiki.signed_in[-1]["sub"] == str(person.uuid)
