"""The authorization endpoint: bad requests never redirect anywhere unregistered, consent is asked once,
second factors are required per client, and every decision is made again on each request."""

import pytest
from django.contrib.auth.hashers import make_password
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEvent
from accounts.tests.factories import PASSWORD, UserFactory, totp_code
from mail import services as mail_services
from oidc.models import Consent
from oidc.tests.factories import (
    REDIRECT_URI,
    authorize_query,
    consent_form_data,
    make_client,
    pkce_pair,
    query_of,
    signed_in,
)

pytestmark = pytest.mark.django_db

AUTHORIZE = "/oauth/authorize/"


def consent_fields(page, **changes):
    return consent_form_data(page, **changes)


def authorize(browser, app, **extra):
    _verifier, challenge = pkce_pair()
    return browser.get(AUTHORIZE, authorize_query(app, challenge, **extra))


def test_an_unknown_client_or_unregistered_redirect_uri_gets_an_error_page_not_a_redirect():
    app, _secret = make_client()
    browser = signed_in(UserFactory())
    for extra in ({"client_id": "nope"}, {"redirect_uri": "https://evil.example/cb"}):
        response = authorize(browser, app, **extra)
        assert response.status_code == 400, extra
        assert "cannot be used" in response.content.decode()


def test_a_request_without_pkce_or_with_plain_pkce_is_refused_to_the_app():
    app, _secret = make_client(skip_consent=True)
    browser = signed_in(UserFactory())
    response = authorize(browser, app, code_challenge=None, code_challenge_method=None)
    assert response.status_code == 302 and query_of(response["Location"])["error"] == "invalid_request"
    response = authorize(browser, app, code_challenge="a" * 43, code_challenge_method="plain")
    assert query_of(response["Location"])["error"] == "invalid_request"


def test_an_anonymous_visitor_is_sent_to_sign_in_and_comes_back_to_the_same_request():
    person = UserFactory()
    app, _secret = make_client(skip_consent=True)
    browser = Client()
    response = authorize(browser, app)
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")
    next_url = query_of(response["Location"])["next"]
    assert next_url.startswith(AUTHORIZE) and "ds_fresh=" in next_url
    response = browser.post(response["Location"], {"email": person.email, "password": PASSWORD})
    assert response["Location"] == next_url
    response = browser.get(next_url)
    assert response["Location"].startswith(REDIRECT_URI) and "code" in query_of(response["Location"])


def test_consent_is_asked_once_remembered_and_asked_again_with_prompt_consent():
    person = UserFactory()
    app, _secret = make_client()
    browser = signed_in(person)
    page = authorize(browser, app)
    assert page.status_code == 200 and "Allow Grafana?" in page.content.decode()
    response = browser.post(AUTHORIZE, consent_fields(page, allow="Allow"))
    assert "code" in query_of(response["Location"])
    assert Consent.objects.get(user=person, application=app).scope_set == {"openid", "profile", "email", "groups"}
    assert AuditEvent.objects.filter(action="oidc.consent", actor=person).exists()
    again = authorize(browser, app)
    assert again.status_code == 302 and "code" in query_of(again["Location"])
    asked = authorize(browser, app, prompt="consent")
    assert asked.status_code == 200


def test_cancelling_consent_tells_the_app_access_denied_with_its_state():
    app, _secret = make_client()
    browser = signed_in(UserFactory())
    page = authorize(browser, app)
    response = browser.post(AUTHORIZE, consent_fields(page))
    params = query_of(response["Location"])
    assert params["error"] == "access_denied" and params["state"] == "st-123"


def test_prompt_none_needing_consent_answers_consent_required():
    app, _secret = make_client()
    response = authorize(signed_in(UserFactory()), app, prompt="none")
    assert query_of(response["Location"])["error"] == "consent_required"


def test_a_tampered_consent_form_is_refused_without_an_error_page_crash():
    app, _secret = make_client()
    browser = signed_in(UserFactory())
    page = authorize(browser, app)
    response = browser.post(AUTHORIZE, consent_fields(page, client_id="unknown", allow="Allow"))
    assert response.status_code == 400
    response = browser.post(AUTHORIZE, consent_fields(page, redirect_uri="https://evil.example/cb", allow="Allow"))
    assert response.status_code == 400 and "evil" not in response.get("Location", "")


def test_the_consent_form_checks_the_group_gate_again():
    person = UserFactory(email="p@example.com")
    group = mail_services.group_create(name="ops", members=["p@example.com"], actor_label="test")
    app, _secret = make_client(groups=["ops"])
    browser = signed_in(person)
    page = authorize(browser, app)
    mail_services.group_update(group=group, members=[], actor_label="test")
    response = browser.post(AUTHORIZE, consent_fields(page, allow="Allow"))
    assert response.status_code == 403
    assert not Consent.objects.exists()


def test_an_outsider_sees_the_no_access_page_and_it_is_audited():
    mail_services.group_create(name="finance", actor_label="test")
    app, _secret = make_client(groups=["finance"], skip_consent=True)
    person = UserFactory()
    response = authorize(signed_in(person), app)
    assert response.status_code == 403 and "No access to Grafana" in response.content.decode()
    assert AuditEvent.objects.filter(action="oidc.access_denied", actor=person).exists()


def test_a_totp_app_sends_a_person_without_a_device_to_enrol_and_then_back_to_the_app():
    person = UserFactory()
    app, _secret = make_client(requires_totp=True, skip_consent=True)
    browser = signed_in(person)
    response = authorize(browser, app)
    assert response["Location"] == reverse("accounts:security")
    page = browser.get(response["Location"])
    assert "Grafana needs a second factor" in page.content.decode()
    browser.post(reverse("accounts:totp_add"), {"name": "Phone"})
    device = person.totpdevice_set.get()
    response = browser.post(reverse("accounts:totp_confirm"), {"code": totp_code(device)})
    assert response["Location"].startswith(AUTHORIZE)
    response = browser.get(response["Location"])
    assert "code" in query_of(response["Location"])


def test_bad_max_age_and_foreign_id_token_hints_are_invalid_requests():
    app, _secret = make_client(skip_consent=True)
    browser = signed_in(UserFactory())
    for extra in ({"max_age": "soon"}, {"id_token_hint": "not.a.token"}):
        response = authorize(browser, app, **extra)
        assert query_of(response["Location"])["error"] == "invalid_request", extra


def test_an_inactive_client_cannot_start_a_sign_in():
    app, _secret = make_client(skip_consent=True)
    app.is_active = False
    app.save()
    response = authorize(signed_in(UserFactory()), app)
    assert response.status_code in (302, 400)
    assert "code" not in query_of(response.get("Location", ""))


def test_a_person_whose_password_hash_is_a_client_secret_hash_cannot_sign_in():
    person = UserFactory()
    person.password = make_password(PASSWORD, hasher="dockspace_client_sha256")
    person.save()
    response = Client().post("/login/", {"email": person.email, "password": PASSWORD})
    assert response.status_code == 200 and "wrong" in response.content.decode()


def test_a_redirect_uri_that_differs_only_by_a_trailing_slash_is_explained_on_the_error_page():
    app, _secret = make_client()
    response = authorize(signed_in(UserFactory()), app, redirect_uri=REDIRECT_URI + "/")
    page = response.content.decode()
    assert response.status_code == 400 and "trailing slash" in page and REDIRECT_URI + "/" in page


def test_the_consent_page_shows_an_international_address_in_its_own_letters():
    app, _secret = make_client()
    browser = signed_in(UserFactory(email="ada@xn--bcher-kva.de"))

    page = authorize(browser, app).content.decode()

    assert "You are signed in as <strong>ada@bücher.de</strong>." in page
