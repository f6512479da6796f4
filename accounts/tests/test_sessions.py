import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from accounts.models import AppSettings, UserSession
from accounts.tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_the_database_never_holds_the_session_cookie_value(client):
    UserFactory(email="ann@example.com")
    client.post("/login/", {"email": "ann@example.com", "password": PASSWORD})
    cookie = client.cookies["dockspace_session"].value
    row = UserSession.objects.get()
    assert cookie not in row.session_key and len(row.session_key) == 64
    assert row.user.email == "ann@example.com"


def test_session_cookie_is_secure_and_http_only_in_production_settings(client):
    UserFactory(email="ann@example.com")
    response = client.post("/login/", {"email": "ann@example.com", "password": PASSWORD})
    morsel = response.cookies["dockspace_session"]
    assert morsel["secure"] and morsel["httponly"] and morsel["samesite"] == "Lax"


def test_an_idle_session_is_signed_out_after_the_configured_timeout():
    AppSettings.objects.update_or_create(pk=1, defaults={"session_idle_timeout_minutes": 30})
    UserFactory(email="ann@example.com")
    browser = Client()
    start = timezone.now()
    with time_machine.travel(start, tick=False) as traveller:
        browser.post("/login/", {"email": "ann@example.com", "password": PASSWORD})
        traveller.shift(25 * 60)
        assert browser.get("/profile/").status_code == 200  # activity resets the clock
        traveller.shift(25 * 60)
        assert browser.get("/profile/").status_code == 200
        traveller.shift(31 * 60)
        response = browser.get("/profile/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_last_seen_and_address_are_recorded():
    UserFactory(email="ann@example.com")
    browser = Client(HTTP_USER_AGENT="Firefox/140")
    browser.post("/login/", {"email": "ann@example.com", "password": PASSWORD}, REMOTE_ADDR="192.0.2.1")
    browser.get("/profile/", REMOTE_ADDR="192.0.2.1")
    row = UserSession.objects.get()
    assert row.ip == "192.0.2.1" and row.user_agent == "Firefox/140"
    assert abs((timezone.now() - row.last_seen_at).total_seconds()) < 60
