"""Unticking "Active" on a person ends their app tokens and sessions for good: ticking it again revives none."""

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.test import Client

from accounts import services
from accounts.models import AuditEvent, UserSession
from accounts.tests.factories import StaffFactory, UserFactory
from dockspace.tests.admin_pages import change
from oidc.tests.factories import make_client, signed_in
from oidc.tests.test_sign_in_reset import refresh, userinfo
from oidc.tests.tokens import person_with_mailbox, tokens_for, webmail_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def wiki():
    return make_client("Wiki", skip_consent=True)


@pytest.fixture
def admin():
    return signed_in(StaffFactory(email="root@example.com"))


def test_tokens_stay_dead_after_deactivating_and_reactivating_a_person_in_the_admin(wiki, admin):
    app, secret = wiki
    ada = person_with_mailbox("ada@mail.example.net", email="ada@example.com")
    bob = person_with_mailbox("bob@mail.example.net", email="bob@example.com")
    ada_tokens, bob_tokens = tokens_for(ada, app, secret, "openid email"), tokens_for(bob, app, secret, "openid email")
    ada_browser = signed_in(ada)
    assert userinfo(ada_tokens["access_token"]).status_code == 200
    url = f"/admin/accounts/user/{ada.pk}/change/"

    assert change(admin, url, is_active="").status_code == 302
    ada.refresh_from_db()
    assert not ada.is_active
    assert userinfo(ada_tokens["access_token"]).status_code == 401
    assert not UserSession.objects.filter(user=ada).exists()
    event = AuditEvent.objects.get(action="user.deactivate")
    assert event.actor_label == "root@example.com" and event.target_label == "ada@example.com"

    assert change(admin, url, is_active="on").status_code == 302
    ada.refresh_from_db()
    assert ada.is_active
    assert userinfo(ada_tokens["access_token"]).status_code == 401
    assert refresh(app, secret, ada_tokens["refresh_token"]).status_code == 400
    assert ada_browser.get("/profile/").status_code == 302  # the old session is gone too
    # positive control: another person's tokens were never touched, and Ada signs in afresh
    assert userinfo(bob_tokens["access_token"]).status_code == 200
    assert refresh(app, secret, bob_tokens["refresh_token"]).status_code == 200
    assert userinfo(tokens_for(ada, app, secret, "openid email")["access_token"]).status_code == 200


def test_saving_a_person_without_touching_active_keeps_their_tokens(wiki, admin):
    app, secret = wiki
    ada = person_with_mailbox("ada@mail.example.net", email="ada@example.com")
    ada_tokens = tokens_for(ada, app, secret, "openid email")
    assert change(admin, f"/admin/accounts/user/{ada.pk}/change/", full_name="Ada L.").status_code == 302
    assert userinfo(ada_tokens["access_token"]).status_code == 200
    assert not AuditEvent.objects.filter(action="user.deactivate").exists()


def test_the_bulk_deactivate_action_ends_tokens_but_skips_a_superuser_for_people_staff(wiki):
    app, secret = wiki
    ada = person_with_mailbox("ada@mail.example.net", email="ada@example.com")
    boss = StaffFactory(email="boss@example.com")
    ada_tokens, boss_tokens = tokens_for(ada, app, secret, "openid email"), tokens_for(boss, app, secret, "openid")
    people_staff = UserFactory(email="hr@example.com", is_staff=True)
    people_staff.user_permissions.set(Permission.objects.filter(codename__in=["change_user", "view_user"]))
    browser = signed_in(people_staff)
    response = browser.post(
        "/admin/accounts/user/", {"action": "deactivate", "_selected_action": [ada.pk, boss.pk]}, follow=True
    )
    assert response.status_code == 200
    ada.refresh_from_db(), boss.refresh_from_db()
    assert not ada.is_active and boss.is_active
    assert userinfo(ada_tokens["access_token"]).status_code == 401
    assert userinfo(boss_tokens["access_token"]).status_code == 200


def test_the_service_refuses_people_staff_on_a_superuser_and_changes_nothing(wiki):
    app, secret = wiki
    boss = StaffFactory(email="boss@example.com")
    boss_tokens = tokens_for(boss, app, secret, "openid")
    people_staff = UserFactory(email="hr@example.com", is_staff=True)
    people_staff.user_permissions.set(Permission.objects.filter(codename="change_user"))
    with pytest.raises(ValidationError) as refused:
        services.person_deactivate(user=boss, actor=people_staff)
    assert "only a superuser acts on a superuser" in str(refused.value.message_dict["is_active"])
    boss.refresh_from_db()
    assert boss.is_active and userinfo(boss_tokens["access_token"]).status_code == 200


def test_mail_token_of_a_deactivated_person_stays_dead_too(admin):
    app, secret = webmail_client()
    ada = person_with_mailbox("ada@mail.example.net", email="ada@example.com")
    token = tokens_for(ada, app, secret)["access_token"]
    url = f"/admin/accounts/user/{ada.pk}/change/"
    change(admin, url, is_active="")
    change(admin, url, is_active="on")
    assert Client().get("/oauth/mail-userinfo/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_person_deactivate_ends_app_tokens_as_the_admin_does_and_activate_revives_none(wiki):
    import io

    from django.core.management import call_command

    app, secret = wiki
    ada = person_with_mailbox("ada@mail.example.net", email="ada@example.com")
    bob = person_with_mailbox("bob@mail.example.net", email="bob@example.com")
    ada_tokens, bob_tokens = tokens_for(ada, app, secret, "openid email"), tokens_for(bob, app, secret, "openid email")

    call_command("person", "deactivate", "ada@example.com", stdout=io.StringIO())

    assert userinfo(ada_tokens["access_token"]).status_code == 401
    assert userinfo(bob_tokens["access_token"]).status_code == 200  # positive control
    call_command("person", "activate", "ada@example.com", stdout=io.StringIO())
    assert refresh(app, secret, ada_tokens["refresh_token"]).status_code == 400
    assert userinfo(tokens_for(ada, app, secret, "openid email")["access_token"]).status_code == 200
