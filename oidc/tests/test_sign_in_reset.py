"""Resetting a person's sign-in ends every app token they hold: password set, changed or reset, sign out
everywhere, second factor reset, mailbox suspended or disabled. Each path is driven the way an operator or the
person drives it (admin, Security page, reset link, commands); another person's tokens keep working."""

import io
import re

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client

from accounts.models import AuditEvent
from accounts.tests.factories import PASSWORD, StaffFactory
from dockspace.tests.admin_pages import change
from mail.models import Mailbox
from mail.tests.factories import use_temp_dms_dir
from oidc.models import Consent
from oidc.services import consent_grant
from oidc.tests.factories import make_client, signed_in
from oidc.tests.tokens import person_with_mailbox, tokens_for, webmail_client

pytestmark = pytest.mark.django_db

NEW = "a brand new pass phrase 7"


@pytest.fixture(autouse=True)
def _dms_dir(settings, tmp_path):
    use_temp_dms_dir(settings, tmp_path)


def admin_browser():
    # A superuser without a TOTP device, signed in through the real sign-in page.
    return signed_in(StaffFactory(email="root@example.com"))


def userinfo(access_token):
    return Client().get("/oauth/userinfo/", HTTP_AUTHORIZATION=f"Bearer {access_token}")


def refresh(app, secret, refresh_token):
    return Client().post(
        "/oauth/token/",
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": app.client_id,
            "client_secret": secret,
        },
    )


def mailbox_state(ada, state):
    call_command("mailbox", state, ada.mailbox.address, stdout=io.StringIO())


def reset_link(ada):
    browser = Client()
    browser.post("/password/reset/", {"email": ada.email})
    link = re.search(r"https://dockspace\.test(/password/reset/\S+/)", mail.outbox[-1].body).group(1)
    form_page = browser.get(link, follow=True)
    return browser.post(form_page.redirect_chain[-1][0], {"new_password1": NEW, "new_password2": NEW})


# Each path: what it does to Ada, and what shows that it really happened (so a renamed field or a refused form
# cannot pass for a revocation).
PATHS = {
    "admin password form": (
        lambda ada: admin_browser().post(
            f"/admin/accounts/user/{ada.pk}/password/", {"password1": NEW, "password2": NEW, "usable_password": "true"}
        ),
        lambda ada, answer: answer.status_code == 302 and ada.check_password(NEW),
    ),
    "admin sign out everywhere": (
        lambda ada: admin_browser().post(
            "/admin/accounts/user/", {"action": "revoke_sessions", "_selected_action": [ada.pk]}
        ),
        lambda ada, answer: AuditEvent.objects.filter(action="session.revoke_all", target_label=ada.email).exists(),
    ),
    "admin reset second factor": (
        lambda ada: admin_browser().post(
            "/admin/accounts/user/", {"action": "reset_second_factor", "_selected_action": [ada.pk]}
        ),
        lambda ada, answer: AuditEvent.objects.filter(action="totp.reset", target_label=ada.email).exists(),
    ),
    "Security page password change": (
        lambda ada: signed_in(ada).post(
            "/security/password/", {"old_password": PASSWORD, "new_password1": NEW, "new_password2": NEW}
        ),
        lambda ada, answer: answer["Location"] == "/security/" and ada.check_password(NEW),
    ),
    "Security page sign out other sessions": (
        lambda ada: signed_in(ada).post("/security/sessions/revoke-others/"),
        lambda ada, answer: answer.status_code == 302,
    ),
    "reset link": (
        reset_link,
        lambda ada, answer: answer["Location"] == "/password/reset/done/" and ada.check_password(NEW),
    ),
    "set_mail_password command": (
        lambda ada: call_command(
            "set_mail_password",
            ada.mailbox.address,
            "--password-stdin",
            stdin=io.StringIO(NEW + "\n"),
            stdout=io.StringIO(),
        ),
        lambda ada, answer: ada.check_password(NEW),
    ),
    "mailbox admin new password": (
        lambda ada: change(admin_browser(), f"/admin/mail/mailbox/{ada.mailbox.pk}/change/", new_password=NEW),
        lambda ada, answer: answer.status_code == 302 and ada.check_password(NEW),
    ),
    "person sign-out command": (
        lambda ada: call_command("person", "sign-out", ada.email, stdout=io.StringIO()),
        lambda ada, answer: AuditEvent.objects.filter(action="session.revoke_all", target_label=ada.email).exists(),
    ),
    "person reset-2fa command": (
        lambda ada: call_command("person", "reset-2fa", ada.email, stdout=io.StringIO()),
        lambda ada, answer: AuditEvent.objects.filter(action="totp.reset", target_label=ada.email).exists(),
    ),
    # A suspended account's tokens are refused anyway; the attack is that they came back on resume.
    "mailbox suspended, then resumed": (
        lambda ada: (mailbox_state(ada, "suspend"), mailbox_state(ada, "resume")),
        lambda ada, answer: (
            ada.mailbox.state == Mailbox.ACTIVE and AuditEvent.objects.filter(action="mail.mailbox.suspend").exists()
        ),
    ),
    "mailbox disabled, then resumed": (
        lambda ada: (mailbox_state(ada, "disable"), mailbox_state(ada, "resume")),
        lambda ada, answer: (
            ada.mailbox.state == Mailbox.ACTIVE and AuditEvent.objects.filter(action="mail.mailbox.disable").exists()
        ),
    ),
}


@pytest.mark.parametrize("path", list(PATHS))
def test_resetting_a_persons_sign_in_ends_every_app_token_of_that_person_only(path):
    act, happened = PATHS[path]
    ada = person_with_mailbox("ada@mail.example.net", email="ada@example.com")
    bob = person_with_mailbox("bob@mail.example.net", email="bob@example.com")
    webmail, webmail_secret = webmail_client()
    wiki, wiki_secret = make_client("Wiki", skip_consent=True)
    ada_mail = tokens_for(ada, webmail, webmail_secret)
    ada_wiki = tokens_for(ada, wiki, wiki_secret, scope="openid email")
    bob_mail = tokens_for(bob, webmail, webmail_secret)
    # Positive control: Ada's tokens work before.
    assert userinfo(ada_mail["access_token"]).status_code == 200
    assert userinfo(ada_wiki["access_token"]).status_code == 200

    answer = act(ada)

    ada.refresh_from_db()
    assert happened(ada, answer), f"{path} did not happen"
    for tokens, app, secret in ((ada_mail, webmail, webmail_secret), (ada_wiki, wiki, wiki_secret)):
        denied = userinfo(tokens["access_token"])
        assert denied.status_code == 401 and "Bearer" in denied["WWW-Authenticate"]
        refused = refresh(app, secret, tokens["refresh_token"])
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    # Bob is untouched: his access token and his refresh token still work.
    assert userinfo(bob_mail["access_token"]).status_code == 200
    assert refresh(webmail, webmail_secret, bob_mail["refresh_token"]).status_code == 200
    # The audit says how many, and the refused refresh is not mistaken for a stolen token being reused.
    event = AuditEvent.objects.get(action="oidc.tokens_revoke", target_label=ada.email)
    assert "2 access token(s), 2 refresh token(s)" in event.description
    assert event.actor_label in ("root@example.com", "ada@example.com") or event.actor_label.startswith("manage.py"), (
        event.actor_label
    )
    assert not AuditEvent.objects.filter(action="oidc.refresh_reuse").exists()


def test_signing_in_again_after_a_reset_gives_working_tokens_and_remembered_consent_stays():
    ada = person_with_mailbox()
    app, secret = make_client("Wiki")
    consent_grant(user=ada, application=app, scopes=["openid", "email"])
    old = tokens_for(ada, app, secret, scope="openid email")
    call_command("person", "sign-out", ada.email, stdout=io.StringIO())
    assert userinfo(old["access_token"]).status_code == 401
    new = tokens_for(ada, app, secret, scope="openid email")
    assert userinfo(new["access_token"]).status_code == 200
    assert Consent.objects.filter(user=ada, application=app).exists()


def test_a_person_without_app_tokens_gets_no_token_audit_entry():
    ada = person_with_mailbox()
    call_command("person", "sign-out", ada.email, stdout=io.StringIO())
    assert AuditEvent.objects.filter(action="session.revoke_all").exists()
    assert not AuditEvent.objects.filter(action="oidc.tokens_revoke").exists()
