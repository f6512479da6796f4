"""End to end in headless Chromium: an operator creates a domain, a mailbox and a catch-all in the
admin, the DMS files follow, and the new person signs in and sees their mailbox on the profile page.

Saves screenshots to docs/images/ for the README's gallery.
"""

import pytest
from django.conf import settings

from accounts.tests.factories import StaffFactory
from dockspace.tests.chromium import click_and_wait, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BOB_PASSWORD = "river stone lantern 42"


def sign_in(page, email, password):
    page.goto(page.base + "/login/")
    page.fill("#id_email", email)
    page.fill("#id_password", password)
    click_and_wait(page, "main button[type=submit]")


def test_an_operator_creates_a_mailbox_and_its_owner_signs_in_to_see_it(page):
    StaffFactory(email="admin@example.com")
    sign_in(page, "admin@example.com", "correct horse battery staple")

    page.goto(page.base + "/admin/mail/domain/add/")
    page.fill("#id_name", "Example.COM")
    page.fill("#id_default_quota", "2G")
    click_and_wait(page, "input[name=_save]")
    assert "example.com" in page.locator("#result_list").inner_text()

    page.goto(page.base + "/admin/mail/mailbox/add/")
    page.fill("#id_local_part", "Bob")
    page.select_option("#id_domain", label="example.com")
    page.fill("#id_full_name", "Bob Builder")
    page.fill("#id_quota", "10 GB")
    click_and_wait(page, "input[name=_save]")
    assert "is not a quota" in page.locator(".errorlist").first.inner_text()
    page.fill("#id_quota", "1G")
    page.fill("#id_password1", BOB_PASSWORD)
    page.fill("#id_password2", BOB_PASSWORD)
    shot(page, "16-admin-mailbox-add")
    click_and_wait(page, "input[name=_save]")
    assert "bob@example.com" in page.locator("#result_list").inner_text()

    page.goto(page.base + "/admin/mail/alias/add/")
    page.select_option("#id_domain", label="example.com")
    page.fill("#id_targets_text", "bob@example.com")
    click_and_wait(page, "input[name=_save]")
    shot(page, "17-admin-aliases")

    # Committed changes were synced (tasks run inline in tests): DMS can see Bob now.
    accounts = (settings.DMS_DIR / "postfix-accounts.cf").read_text()
    assert "bob@example.com|{SHA512-CRYPT}$6$" in accounts
    virtual = (settings.DMS_DIR / "postfix-virtual.cf").read_text()
    assert "@example.com bob@example.com" in virtual

    page.goto(page.base + "/admin/mail/dmssyncstate/1/change/")
    assert "postfix-accounts.cf" in page.content()
    shot(page, "18-admin-dms-sync")

    page.goto(page.base + "/profile/")
    click_and_wait(page, "text=Sign out")
    sign_in(page, "bob@example.com", BOB_PASSWORD)
    page.goto(page.base + "/profile/")
    text = page.locator("main").inner_text()
    assert "bob@example.com" in text and "1 GiB" in text and "@example.com (catch-all)" in text
    shot(page, "19-profile-mailbox")
