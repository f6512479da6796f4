"""End to end in headless Chromium: first run, TOTP enrolment, sign out, sign in with password and code.

Saves a screenshot of each page to docs/images/ for the README's gallery.
"""

import re

import pytest
from django.core import mail

from accounts.first_run import setup_code_issue
from dockspace.tests.chromium import click_and_wait, current_code, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a long pass phrase 9"


def test_first_run_totp_enrolment_and_sign_in_with_code(page):
    page.goto(page.base + "/")
    assert page.url.endswith("/setup/")
    assert page.locator("h1").inner_text() == "Welcome to Dockspace"
    shot(page, "01-first-run")

    # A bad address is explained next to the field and nothing is created.
    page.fill("#id_email", "admin@")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    click_and_wait(page, "main button[type=submit]")
    assert "Enter a valid email address" in page.locator("#id_email-error").inner_text()

    # The setup code is what `make run` printed; the test reads it from the same file.
    page.fill("#id_setup_code", setup_code_issue())
    page.fill("#id_email", "Admin@Example.com")
    page.fill("#id_full_name", "Ada Admin")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    click_and_wait(page, "main button[type=submit]")
    assert page.url.endswith("/security/")
    shot(page, "02-security")

    page.fill("#id_name", "Phone")
    click_and_wait(page, "text=Add authenticator app")
    assert page.url.endswith("/security/totp/confirm/")
    assert page.locator(".qr svg").count() == 1
    secret = page.locator("#totp-secret").inner_text()
    assert re.fullmatch(r"[A-Z2-7 ]+", secret)
    shot(page, "03-totp-enrol")
    page.fill("#id_code", current_code(secret))
    click_and_wait(page, "main button[type=submit]")
    assert page.url.endswith("/security/")
    assert "Phone" in page.locator("table.list").first.inner_text()

    click_and_wait(page, "text=Generate backup codes")
    assert page.locator("#backup-codes li").count() == 10
    shot(page, "04-backup-codes")
    click_and_wait(page, "text=I have saved them")

    page.goto(page.base + "/profile/")
    assert "admin@example.com" in page.content()
    shot(page, "05-profile")

    click_and_wait(page, "text=Sign out")
    assert page.url.endswith("/login/")
    shot(page, "06-sign-in")

    page.fill("#id_email", "admin@example.com")
    page.fill("#id_password", PASSWORD)
    click_and_wait(page, "main button[type=submit]")
    assert page.url.endswith("/login/code/")
    shot(page, "07-code")

    # The enrolment code was used up (replay refused), so the app's next code is the one to type.
    code = current_code(secret, steps_ahead=1)
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    page.fill("#id_code", wrong)
    click_and_wait(page, "main button[type=submit]")
    assert page.url.endswith("/login/code/")
    assert "wrong" in page.locator("#id_code-error").inner_text()
    shot(page, "08-wrong-code")

    # django-otp makes a device wait a moment after a wrong code: the page says so, then the code works.
    page.wait_for_timeout(2100)
    # Read off the app now (on a loaded machine the steps above can take longer than a code lives).
    page.fill("#id_code", current_code(secret, steps_ahead=1))
    click_and_wait(page, "main button[type=submit]")
    assert page.url.endswith("/profile/"), page.locator("main").inner_text()

    page.goto(page.base + "/security/")
    assert "(this browser)" in page.content()
    shot(page, "09-sessions")

    page.goto(page.base + "/admin/")
    assert "Dockspace administration" in page.content()
    page.goto(page.base + "/admin/accounts/auditevent/")
    log = page.locator("#result_list").inner_text()
    for action in [
        "user.create",
        "totp.add",
        "backup_codes.generate",
        "signout",
        "signin.code_failure",
        "signin.success",
    ]:
        assert action in log
    shot(page, "10-audit-log")

    page.goto(page.base + "/profile/edit/")
    shot(page, "11-profile-edit")
    page.goto(page.base + "/no-access/")
    shot(page, "12-no-access")

    # Password reset from a fresh browser: request, "sent", the mailed link, a new password.
    page.context.clear_cookies()
    page.goto(page.base + "/password/reset/")
    shot(page, "13-password-reset")
    page.fill("#id_email", "admin@example.com")
    click_and_wait(page, "main button[type=submit]")
    assert page.url.endswith("/password/reset/sent/")
    shot(page, "14-password-reset-sent")
    link = re.search(r"https?://[^/\s]+(/password/reset/\S+/)", mail.outbox[-1].body).group(1)
    page.goto(page.base + link)
    assert page.locator("h1").inner_text() == "Set a new password"
    shot(page, "15-password-set-new")
    page.fill("#id_new_password1", "a different pass phrase 3")
    page.fill("#id_new_password2", "a different pass phrase 3")
    click_and_wait(page, "main button[type=submit]")
    assert page.url.endswith("/password/reset/done/")
