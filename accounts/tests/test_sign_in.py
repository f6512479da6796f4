import pytest
import time_machine
from django.utils import timezone

from accounts.models import AppSettings, AuditEvent, LoginThrottle
from accounts.tests.factories import PASSWORD, UserFactory, totp_code, totp_device

pytestmark = pytest.mark.django_db


def sign_in(client, email, password=PASSWORD, ip="198.51.100.7", **extra):
    return client.post("/login/", {"email": email, "password": password, **extra}, REMOTE_ADDR=ip)


def test_it_signs_in_with_password_when_no_second_factor(client):
    user = UserFactory(email="ann@example.com")
    response = sign_in(client, "ann@example.com")
    assert response.status_code == 302 and response["Location"] == "/profile/"
    assert client.get("/profile/").context["user"] == user
    event = AuditEvent.objects.get(action="signin.success")
    assert event.actor == user and event.ip == "198.51.100.7"


def test_it_accepts_the_address_in_any_letter_case(client):
    UserFactory(email="ann@example.com")
    assert sign_in(client, "  ANN@Example.COM ")["Location"] == "/profile/"


def test_it_follows_a_safe_next_url_and_ignores_an_outside_one(client):
    UserFactory(email="ann@example.com")
    assert sign_in(client, "ann@example.com", next="/security/")["Location"] == "/security/"
    client.logout()
    assert sign_in(client, "ann@example.com", next="https://evil.example/")["Location"] == "/profile/"


def test_wrong_password_and_unknown_account_get_the_same_answer(client):
    UserFactory(email="ann@example.com")
    wrong = sign_in(client, "ann@example.com", password="nope nope nope")
    unknown = sign_in(client, "nobody@example.com", password="nope nope nope")
    assert wrong.status_code == unknown.status_code == 200
    text = "The email address or password is wrong."
    assert text in wrong.content.decode() and text in unknown.content.decode()
    assert AuditEvent.objects.filter(action="signin.failure").count() == 2
    assert "nope" not in "".join(AuditEvent.objects.values_list("description", flat=True))


def test_inactive_person_cannot_sign_in(client):
    UserFactory(email="ann@example.com", is_active=False)
    assert "password is wrong" in sign_in(client, "ann@example.com").content.decode()


def test_a_person_with_a_device_is_asked_for_a_code_and_a_code_works_once(client):
    user = UserFactory(email="ann@example.com")
    device = totp_device(user)
    response = sign_in(client, "ann@example.com")
    assert response["Location"] == "/login/code/"
    assert client.get("/profile/").status_code == 302  # not signed in yet
    code = totp_code(device)
    response = client.post("/login/code/", {"code": code})
    assert response["Location"] == "/profile/"
    assert client.get("/profile/").status_code == 200
    assert AuditEvent.objects.get(action="signin.success").description == "Signed in with password and second factor."

    # The same code, replayed in a second sign-in, is refused.
    other = client.__class__()
    sign_in(other, "ann@example.com")
    response = other.post("/login/code/", {"code": code})
    assert "wrong or has already been used" in response.content.decode()
    # Someone who just confirmed a new app with this very code learns why, and what to do.
    assert "If you just set up your authenticator app, wait for the next code (codes change every 30 seconds)." in (
        response.content.decode()
    )
    assert other.get("/profile/").status_code == 302


def test_a_wrong_code_is_refused_and_audited(client):
    user = UserFactory(email="ann@example.com")
    device = totp_device(user)
    sign_in(client, "ann@example.com")
    wrong = f"{(int(totp_code(device)) + 1) % 1000000:06d}"
    response = client.post("/login/code/", {"code": wrong})
    assert response.status_code == 200
    assert response.context["form"].errors["code"] == [
        "That code is wrong or has already been used. If you just set up your authenticator app, wait for the "
        "next code (codes change every 30 seconds)."
    ]
    assert client.get("/profile/").status_code == 302
    assert AuditEvent.objects.filter(action="signin.code_failure", target_label="ann@example.com").exists()


@pytest.mark.parametrize("code", ["", "abc", "1" * 21, "12 34 56 78 90 12 34 5"])
def test_malformed_codes_get_a_clear_message(client, code):
    user = UserFactory(email="ann@example.com")
    totp_device(user)
    sign_in(client, "ann@example.com")
    response = client.post("/login/code/", {"code": code})
    assert response.status_code == 200
    assert response.context["form"].errors["code"]
    assert client.get("/profile/").status_code == 302


def test_the_code_step_expires_after_five_minutes(client):
    user = UserFactory(email="ann@example.com")
    device = totp_device(user)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        sign_in(client, "ann@example.com")
        traveller.shift(301)
        response = client.post("/login/code/", {"code": totp_code(device)})
    assert response["Location"] == "/login/"
    assert client.get("/profile/").status_code == 302


def test_the_code_page_without_a_password_step_sends_to_sign_in(client):
    UserFactory()
    assert client.get("/login/code/")["Location"] == "/login/"


def test_an_account_is_locked_after_repeated_failures_and_unlocks_later(client):
    UserFactory(email="ann@example.com")
    settings_row = AppSettings.load()
    for _ in range(settings_row.lockout_account_failures):
        sign_in(client, "ann@example.com", password="wrong password 1")
    response = sign_in(client, "ann@example.com")  # even the right password
    assert "Try again in 15 minutes." in response.content.decode()
    assert client.get("/profile/").status_code == 302
    assert AuditEvent.objects.filter(action="signin.lockout").count() == 1
    with time_machine.travel(timezone.now() + timezone.timedelta(minutes=16)):
        assert sign_in(client, "ann@example.com")["Location"] == "/profile/"


def test_an_unknown_account_locks_exactly_like_a_real_one(client):
    UserFactory(email="ann@example.com")
    for _ in range(5):
        sign_in(client, "ghost@example.com", password="wrong password 1")
    assert "Try again in 15 minutes" in sign_in(client, "ghost@example.com").content.decode()


def test_one_ip_address_is_locked_across_accounts(client):
    AppSettings.objects.update_or_create(pk=1, defaults={"lockout_ip_failures": 3})
    UserFactory(email="ann@example.com")
    for n in range(3):
        sign_in(client, f"guess{n}@example.com", password="wrong password 1", ip="203.0.113.9")
    assert "Try again in" in sign_in(client, "ann@example.com", ip="203.0.113.9").content.decode()
    assert sign_in(client, "ann@example.com", ip="203.0.113.10")["Location"] == "/profile/"


def test_an_ipv6_client_is_locked_by_its_64_whatever_address_of_it_guesses_from(client):
    AppSettings.objects.update_or_create(pk=1, defaults={"lockout_ip_failures": 3})
    UserFactory(email="ann@example.com")
    for n in range(3):  # each guess from a fresh address of the same /64
        sign_in(client, f"guess{n}@example.com", password="wrong password 1", ip=f"2001:db8:1:2::{n + 1:x}")
    assert "Try again in" in sign_in(client, "ann@example.com", ip="2001:db8:1:2:ffff::9").content.decode()
    assert LoginThrottle.objects.get(scope="ip").key == "2001:db8:1:2::/64"
    # The neighbouring /64 is another client.
    assert sign_in(client, "ann@example.com", ip="2001:db8:1:3::1")["Location"] == "/profile/"


def test_wrong_codes_count_towards_the_account_lockout(client):
    user = UserFactory(email="ann@example.com")
    totp_device(user)
    sign_in(client, "ann@example.com")
    for _ in range(5):
        client.post("/login/code/", {"code": "000000"})
    assert LoginThrottle.objects.get(scope="account", key="ann@example.com").is_locked()


def test_a_successful_sign_in_resets_the_account_counter(client):
    UserFactory(email="ann@example.com")
    for _ in range(4):
        sign_in(client, "ann@example.com", password="wrong password 1")
    sign_in(client, "ann@example.com")
    client.logout()
    sign_in(client, "ann@example.com", password="wrong password 1")
    assert sign_in(client, "ann@example.com")["Location"] == "/profile/"


def test_sign_in_without_csrf_token_is_refused_with_a_clear_page(csrf_client):
    UserFactory(email="ann@example.com")
    response = csrf_client.post("/login/", {"email": "ann@example.com", "password": PASSWORD})
    assert response.status_code == 403
    assert "security token" in response.content.decode()
    assert csrf_client.get("/profile/").status_code == 302


def test_sign_out_needs_a_post_and_is_audited(client):
    user = UserFactory(email="ann@example.com")
    client.force_login(user)
    assert client.get("/logout/").status_code == 405
    assert client.post("/logout/")["Location"] == "/login/"
    assert client.get("/profile/").status_code == 302
    assert AuditEvent.objects.filter(action="signout", actor=user).exists()


def test_an_expired_code_is_refused(client):
    user = UserFactory(email="ann@example.com")
    device = totp_device(user)
    sign_in(client, "ann@example.com")
    response = client.post("/login/code/", {"code": totp_code(device, offset_steps=-3)})
    assert "wrong or has already been used" in response.content.decode()
    assert client.get("/profile/").status_code == 302


def test_guesses_in_flight_at_once_cannot_pass_the_limit():
    """Each attempt is counted before the password is checked, so parallel requests cannot overshoot."""
    from accounts import services

    UserFactory(email="ann@example.com")
    in_flight = [services.signin_attempt_start(email="ann@example.com", ip="192.0.2.9") for _ in range(5)]
    assert all(a.locked_minutes is None for a in in_flight)
    assert services.signin_attempt_start(email="ann@example.com", ip="192.0.2.9").locked_minutes == 15


def test_a_right_password_does_not_reset_the_count_of_wrong_codes(client):
    """Otherwise alternating a right password and a guessed code would never lock."""
    user = UserFactory(email="ann@example.com")
    totp_device(user)
    for _ in range(5):
        sign_in(client, "ann@example.com")
        client.post("/login/code/", {"code": "000000"})
    assert "Try again in" in sign_in(client, "ann@example.com").content.decode()
