import re

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AuditEvent, BackupCodeDevice, UserSession
from accounts.tests.factories import PASSWORD, UserFactory, totp_code, totp_device

pytestmark = pytest.mark.django_db

CODE = r"<code>((?:[a-z0-9]{4}-){3}[a-z0-9]{4})</code>"


@pytest.fixture
def ann(client):
    """Ann, signed in with her password; she has no second factor yet."""
    user = UserFactory(email="ann@example.com")
    client.post("/login/", {"email": "ann@example.com", "password": PASSWORD})
    return user


@pytest.fixture
def phone(client):
    """Bob has an authenticator app ("Phone") and signed in with password and code."""
    user = UserFactory(email="bob@example.com")
    device = totp_device(user, name="Phone")
    client.post("/login/", {"email": user.email, "password": PASSWORD})
    assert client.post("/login/code/", {"code": totp_code(device)})["Location"] == "/profile/"
    return device


def test_enrolment_shows_a_local_qr_code_and_the_secret(client, ann):
    response = client.post("/security/totp/add/", {"name": "Phone"})
    assert response["Location"] == "/security/totp/confirm/"
    page = client.get("/security/totp/confirm/").content.decode()
    assert "<svg" in page and "http" not in page.split("<svg", 1)[1].split("</svg>", 1)[0].replace(
        "http://www.w3.org", ""
    )
    # The code scales to the page's box without cropping: a viewBox and no fixed size of its own.
    svg_tag = page.split("<svg", 1)[1].split(">", 1)[0]
    assert "viewBox=" in svg_tag and "width=" not in svg_tag
    assert "backup codes" not in page.split('id="totp-secret"', 1)[1]  # none exist yet, none are offered
    device = TOTPDevice.objects.get(user=ann)
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    assert device.confirmed is False
    import base64

    assert base64.b32decode(secret + "=" * (-len(secret) % 8)) == device.bin_key


def test_a_device_counts_only_after_a_correct_code(client, ann):
    client.post("/security/totp/add/", {"name": "Phone"})
    device = TOTPDevice.objects.get(user=ann)
    response = client.post("/security/totp/confirm/", {"code": "123"})
    assert "Enter the 6-digit code" in response.content.decode()
    wrong = f"{(int(totp_code(device)) + 1) % 1000000:06d}"
    response = client.post("/security/totp/confirm/", {"code": wrong})
    assert "That code is wrong or already used" in response.content.decode()
    device.refresh_from_db()
    assert not device.confirmed
    # django-otp slows down guessing: right after a wrong code even a right one must wait.
    assert "wait a few seconds" in client.post("/security/totp/confirm/", {"code": totp_code(device)}).content.decode()
    device.throttle_reset()
    response = client.post("/security/totp/confirm/", {"code": totp_code(device)})
    assert response["Location"] == "/security/"
    device.refresh_from_db()
    assert device.confirmed
    assert AuditEvent.objects.filter(action="totp.add", target_label="ann@example.com").exists()
    # From now on, signing in asks for a code.
    fresh = Client()
    assert fresh.post("/login/", {"email": "ann@example.com", "password": PASSWORD})["Location"] == "/login/code/"


def test_several_named_devices_and_no_duplicate_names(client, phone):
    response = client.post("/security/totp/add/", {"name": "Phone"})
    assert response.status_code == 400
    assert "already have a device named" in response.content.decode()
    assert client.post("/security/totp/add/", {"name": "x" * 65}).status_code == 400
    assert client.post("/security/totp/add/", {"name": "Laptop"})["Location"] == "/security/totp/confirm/"
    assert TOTPDevice.objects.filter(user=phone.user, name="Laptop", confirmed=False).exists()


def test_removing_a_device_needs_the_password(client, phone):
    device = phone
    url = f"/security/devices/totp/{device.pk}/remove/"
    response = client.post(url, {"password": "not my password"})
    assert "That is not your current password." in response.content.decode()
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert client.post(url, {"password": PASSWORD})["Location"] == "/security/"
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    assert AuditEvent.objects.filter(action="totp.remove").exists()


def test_nobody_can_remove_another_persons_device(client, ann):
    other = UserFactory()
    device = totp_device(other)
    assert client.post(f"/security/devices/totp/{device.pk}/remove/", {"password": PASSWORD}).status_code == 404
    assert TOTPDevice.objects.filter(pk=device.pk).exists()


def test_backup_codes_are_shown_once_stored_hashed_and_each_works_once(client, phone):
    ann = phone.user
    page = client.post("/security/backup-codes/").content.decode()
    codes = re.findall(CODE, page)
    assert len(codes) == 10
    stored = " ".join(BackupCodeDevice.objects.get(user=ann).codes.values_list("code_hash", flat=True))
    assert not any(code.replace("-", "") in stored for code in codes)

    fresh = Client()
    fresh.post("/login/", {"email": ann.email, "password": PASSWORD})
    assert fresh.post("/login/code/", {"code": codes[0].upper()})["Location"] == "/profile/"
    again = Client()
    again.post("/login/", {"email": ann.email, "password": PASSWORD})
    assert "already been used" in again.post("/login/code/", {"code": codes[0]}).content.decode()
    assert "9 unused backup codes left" in client.get("/security/").content.decode()


def test_new_backup_codes_replace_the_old_ones(client, phone):
    first = re.findall(CODE, client.post("/security/backup-codes/").content.decode())
    second = re.findall(CODE, client.post("/security/backup-codes/").content.decode())
    assert len(first) == len(second) == 10 and not set(first) & set(second)
    fresh = Client()
    fresh.post("/login/", {"email": phone.user.email, "password": PASSWORD})
    assert "wrong or has already been used" in fresh.post("/login/code/", {"code": first[1]}).content.decode()
    assert fresh.post("/login/code/", {"code": second[1]})["Location"] == "/profile/"


def test_sessions_are_listed_and_revoking_one_signs_that_browser_out(client, ann):
    phone = Client(HTTP_USER_AGENT="PhoneBrowser/1.0")
    phone.post("/login/", {"email": "ann@example.com", "password": PASSWORD}, REMOTE_ADDR="192.0.2.44")
    page = client.get("/security/").content.decode()
    assert "PhoneBrowser/1.0" in page and "192.0.2.44" in page and "(this browser)" in page
    phone_row = UserSession.objects.get(user=ann, user_agent="PhoneBrowser/1.0")
    response = client.post(f"/security/sessions/{phone_row.session_key}/revoke/")
    assert response["Location"] == "/security/"
    assert phone.get("/profile/").status_code == 302
    assert client.get("/profile/").status_code == 200
    assert AuditEvent.objects.filter(action="session.revoke").exists()


def test_one_cannot_revoke_another_persons_session(client, ann):
    bob = UserFactory(email="bob@example.com")
    bobs = Client()
    bobs.post("/login/", {"email": "bob@example.com", "password": PASSWORD})
    row = UserSession.objects.get(user=bob)
    client.post(f"/security/sessions/{row.session_key}/revoke/")
    assert bobs.get("/profile/").status_code == 200


def test_sign_out_everywhere_else_keeps_this_browser(client, ann):
    others = [Client() for _ in range(2)]
    for other in others:
        other.post("/login/", {"email": "ann@example.com", "password": PASSWORD})
    client.post("/security/sessions/revoke-others/")
    assert all(other.get("/profile/").status_code == 302 for other in others)
    assert client.get("/profile/").status_code == 200


def test_password_change_signs_out_other_browsers_and_is_audited(client, ann):
    other = Client()
    other.post("/login/", {"email": "ann@example.com", "password": PASSWORD})
    new = "another long pass phrase 3"
    response = client.post(
        "/security/password/", {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
    )
    assert response["Location"] == "/security/"
    assert client.get("/profile/").status_code == 200
    assert other.get("/profile/").status_code == 302
    ann.refresh_from_db()
    assert ann.check_password(new)
    assert AuditEvent.objects.filter(action="password.change").exists()


def test_a_wrong_old_password_changes_nothing(client, ann):
    response = client.post(
        "/security/password/", {"old_password": "wrong", "new_password1": "x" * 12, "new_password2": "x" * 12}
    )
    assert response.status_code == 200
    assert "That is not your current password." in response.content.decode()
    ann.refresh_from_db()
    assert ann.check_password(PASSWORD)


def test_profile_shows_the_person_and_edit_saves_the_name(client, ann):
    page = client.get("/profile/").content.decode()
    assert "ann@example.com" in page and str(ann.uuid) in page and "No mailbox" in page
    response = client.post("/profile/edit/", {"full_name": "Ann Example"})
    assert response["Location"] == "/profile/"
    ann.refresh_from_db()
    assert ann.full_name == "Ann Example"
    response = client.post("/profile/edit/", {"full_name": "x" * 151})
    assert "at most 150 characters" in response.content.decode()


def test_no_access_page_says_who_is_signed_in(client, ann):
    response = client.get("/no-access/")
    assert response.status_code == 403
    assert "ann@example.com" in response.content.decode()


def test_a_browser_signed_in_before_enrolment_cannot_change_second_factors(client, ann):
    """A session that never passed a code must not be able to add its own device or new backup codes."""
    other = Client()
    other.post("/login/", {"email": "ann@example.com", "password": PASSWORD})
    totp_device(ann, name="Phone")  # Ann enrols in another browser
    for url in ["/security/totp/add/", "/security/backup-codes/"]:
        response = other.post(url, {"name": "Attacker"})
        assert response["Location"].startswith("/login/?next=")
    assert not TOTPDevice.objects.filter(name="Attacker").exists()
    assert not BackupCodeDevice.objects.filter(user=ann).exists()


def test_confirming_the_first_device_signs_out_password_only_browsers(client, ann):
    other = Client()
    other.post("/login/", {"email": "ann@example.com", "password": PASSWORD})
    client.post("/security/totp/add/", {"name": "Phone"})
    device = TOTPDevice.objects.get(user=ann)
    client.post("/security/totp/confirm/", {"code": totp_code(device)})
    assert other.get("/profile/").status_code == 302
    assert client.get("/profile/").status_code == 200


def test_changes_need_the_password_again_after_fifteen_minutes(client, phone):
    with time_machine.travel(timezone.now() + timezone.timedelta(minutes=16)):
        response = client.post("/security/backup-codes/")
        assert response["Location"] == "/security/confirm/?next=%2Fsecurity%2F"
        wrong = client.post("/security/confirm/", {"password": "not it", "next": "/security/"})
        assert "That is not your current password." in wrong.content.decode()
        assert client.post("/security/confirm/", {"password": PASSWORD, "next": "/security/"})["Location"] == (
            "/security/"
        )
        assert len(re.findall(CODE, client.post("/security/backup-codes/").content.decode())) == 10


def test_password_guesses_on_the_confirm_page_are_locked_out_too(client, phone):
    for _ in range(5):
        client.post(f"/security/devices/totp/{phone.pk}/remove/", {"password": "guess guess"})
    response = client.post(f"/security/devices/totp/{phone.pk}/remove/", {"password": PASSWORD})
    assert "Try again in 15 minutes" in response.content.decode()
    assert TOTPDevice.objects.filter(pk=phone.pk).exists()


def test_revoking_this_browsers_own_session_signs_it_out_cleanly(client, ann):
    row = UserSession.objects.get(user=ann)
    response = client.post(f"/security/sessions/{row.session_key}/revoke/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert client.get("/profile/").status_code == 302


def test_staff_made_to_enrol_can_confirm_their_password_and_enrol_after_fifteen_minutes():
    from accounts.models import AppSettings
    from accounts.tests.factories import StaffFactory

    AppSettings.objects.update_or_create(pk=1, defaults={"totp_required_for_staff": True})
    staff = StaffFactory(email="root@example.com")
    browser = Client()
    browser.post("/login/", {"email": staff.email, "password": PASSWORD})
    with time_machine.travel(timezone.now() + timezone.timedelta(minutes=16)):
        response = browser.post("/security/totp/add/", {"name": "Phone"})
        assert response["Location"] == "/security/confirm/?next=%2Fsecurity%2F"
        assert browser.get(response["Location"]).status_code == 200  # not sent back to /security/
        # The confirm page is no way around enrolment: what it leads to is still closed.
        leave = browser.post("/security/confirm/", {"password": PASSWORD, "next": "/profile/"})
        assert leave["Location"] == "/profile/"
        assert browser.get("/profile/")["Location"] == "/security/"

        assert browser.post("/security/totp/add/", {"name": "Phone"})["Location"] == "/security/totp/confirm/"
        device = TOTPDevice.objects.get(user=staff)
        assert browser.post("/security/totp/confirm/", {"code": totp_code(device)})["Location"] == "/security/"
        assert browser.get("/profile/").status_code == 200


def test_backup_codes_are_offered_only_once_an_authenticator_app_is_set_up(client, ann):
    page = client.get("/security/").content.decode()
    assert "Generate backup codes" not in page and "Once your first authenticator app is set up" in page
    response = client.post("/security/backup-codes/")
    assert response["Location"] == "/security/"
    assert not BackupCodeDevice.objects.filter(user=ann).exists()

    client.post("/security/totp/add/", {"name": "Phone"})
    device = TOTPDevice.objects.get(user=ann)
    done = client.post("/security/totp/confirm/", {"code": totp_code(device)}, follow=True).content.decode()
    assert "Now create backup codes below" in done and "Generate backup codes" in done
    assert len(re.findall(CODE, client.post("/security/backup-codes/").content.decode())) == 10
