"""A reset link sent by an administrator says so; one asked for on the reset page says "Someone asked"."""

import pytest
from django.core import mail
from django.test import Client

from accounts.tests.factories import PASSWORD, StaffFactory, UserFactory
from mail.tests.factories import make_mailbox

pytestmark = pytest.mark.django_db


def signed_in_admin():
    staff = StaffFactory(email="root@example.com")
    browser = Client()
    browser.post("/login/", {"email": staff.email, "password": PASSWORD})
    return browser


def test_a_link_sent_from_the_people_admin_says_an_administrator_sent_it():
    ann = UserFactory(email="ann@example.com")
    signed_in_admin().post("/admin/accounts/user/", {"action": "send_password_reset", "_selected_action": [ann.pk]})
    (message,) = [m for m in mail.outbox if m.to == ["ann@example.com"]]
    assert message.body.startswith("An administrator of ")
    assert "Someone asked" not in message.body
    assert "/password/reset/" in message.body


def test_a_link_sent_from_the_mailbox_admin_says_an_administrator_sent_it():
    mailbox = make_mailbox("bob@example.com")
    signed_in_admin().post("/admin/mail/mailbox/", {"action": "send_reset_link", "_selected_action": [mailbox.pk]})
    (message,) = [m for m in mail.outbox if m.to == ["bob@example.com"]]
    assert message.body.startswith("An administrator of ")


def test_a_link_asked_for_on_the_reset_page_still_says_someone_asked():
    UserFactory(email="ann@example.com")
    Client().post("/password/reset/", {"email": "ann@example.com"})
    (message,) = mail.outbox
    assert message.body.startswith("Someone asked to reset the password")
    assert "An administrator" not in message.body
