"""Quota use on mail's pages (the mailbox and domain admin pages, the profile) comes through one seam,
mail.quota_usage.mailbox_usage, which asks every app's AppConfig.mailbox_usage(addresses): the test extension app
stands for monitoring here. Nobody answering shows "not measured yet"."""

import re
from datetime import UTC, datetime

import pytest
from django.apps import apps
from django.test import Client

from accounts.tests.factories import StaffFactory
from mail.quota_usage import mailbox_usage
from mail.tests.factories import make_mailbox

pytestmark = pytest.mark.django_db

EXTENSION = type(apps.get_app_config("extension_app"))
MIB = 1024**2
MEASURED = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def answering(monkeypatch, usage):
    def mailbox_usage_hook(self, addresses):
        return {address: usage[address] for address in addresses if address in usage}

    monkeypatch.setattr(EXTENSION, "mailbox_usage", mailbox_usage_hook, False)


def admin_page(url):
    browser = Client()
    browser.force_login(StaffFactory(is_superuser=True))
    response = browser.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_the_seam_returns_what_an_app_measured_and_nothing_for_the_rest(monkeypatch):
    answering(monkeypatch, {"ann@example.com": (256 * MIB, 1024 * MIB, MEASURED)})

    usage = mailbox_usage(["ann@example.com", "bob@example.com"])

    assert list(usage) == ["ann@example.com"]
    assert usage["ann@example.com"].text == "256 MiB of 1 GiB (25 %)"


def test_the_mailbox_page_shows_the_use_an_app_reports_as_a_bar(monkeypatch):
    mailbox = make_mailbox("ann@example.com")
    answering(monkeypatch, {"ann@example.com": (512 * MIB, 1024 * MIB, MEASURED)})

    html = admin_page(f"/admin/mail/mailbox/{mailbox.pk}/change/")

    assert re.search(r'<meter class="quota-bar"[^>]*value="0.500"', html)
    assert "512 MiB of 1 GiB (50 %)" in html


def test_without_an_app_answering_the_mailbox_page_says_not_measured_yet():
    mailbox = make_mailbox("ann@example.com")

    html = admin_page(f"/admin/mail/mailbox/{mailbox.pk}/change/")

    assert "not measured yet" in html and "<meter" not in html
