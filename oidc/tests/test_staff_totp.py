""" "TOTP required for staff" covers signing into apps: staff without a device are sent to enrol before any code is
issued; machine endpoints stay open; people who are not staff are unaffected."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AppSettings
from accounts.tests.factories import StaffFactory, UserFactory, totp_code, totp_device
from oidc.tests.factories import authorize_query, exchange, make_client, pkce_pair, query_of, signed_in

pytestmark = pytest.mark.django_db

AUTHORIZE = "/oauth/authorize/"


@pytest.fixture
def totp_for_staff():
    AppSettings.objects.update_or_create(pk=1, defaults={"totp_required_for_staff": True})


@pytest.fixture
def app():
    return make_client("Grafana", skip_consent=True)


def authorize(browser, app, verifier_challenge=None):
    _verifier, challenge = verifier_challenge or pkce_pair()
    return browser.get(AUTHORIZE, authorize_query(app[0], challenge))


def test_staff_without_a_device_are_sent_to_enrol_and_get_no_code_then_come_back_to_the_app(totp_for_staff, app):
    staff = StaffFactory(email="root@example.com")
    browser = signed_in(staff)
    verifier, challenge = pkce_pair()

    response = authorize(browser, app, (verifier, challenge))

    assert response.status_code == 302 and response["Location"] == reverse("accounts:security")
    assert "code" not in query_of(response["Location"])
    # Enrolling takes them back to the app's request, which now issues a code that works.
    browser.post(reverse("accounts:totp_add"), {"name": "Phone"})
    device = staff.totpdevice_set.get()
    response = browser.post(reverse("accounts:totp_confirm"), {"code": totp_code(device)})
    assert response["Location"].startswith(AUTHORIZE)
    code = query_of(browser.get(response["Location"])["Location"])["code"]
    assert exchange(Client(), app[0], code, verifier, app[1]).status_code == 200


def test_staff_with_a_device_sign_into_apps(totp_for_staff, app):
    staff = StaffFactory(email="root@example.com")
    totp_device(staff)
    browser = signed_in(staff, with_totp=True)
    response = authorize(browser, app)
    assert "code" in query_of(response["Location"])


def test_people_who_are_not_staff_are_unaffected(totp_for_staff, app):
    response = authorize(signed_in(UserFactory()), app)
    assert "code" in query_of(response["Location"])


def test_without_the_setting_staff_without_a_device_sign_into_apps(app):
    response = authorize(signed_in(StaffFactory(email="root@example.com")), app)
    assert "code" in query_of(response["Location"])


def test_machine_endpoints_answer_a_staff_browser_without_a_device(totp_for_staff, app):
    browser = signed_in(StaffFactory(email="root@example.com"))
    assert browser.get("/.well-known/openid-configuration").status_code == 200
    assert browser.get("/.well-known/jwks.json").status_code == 200
    # The token endpoint answers as an OAuth endpoint (an error about the grant), not with a redirect to enrol.
    response = browser.post("/oauth/token/", {"grant_type": "authorization_code", "code": "nope"})
    assert response.status_code in (400, 401) and "error" in response.json()
    assert browser.get("/oauth/userinfo/").status_code == 401
    # The pages of Dockspace itself stay closed until enrolment (control: the rule is on).
    assert browser.get("/profile/")["Location"] == reverse("accounts:security")
