"""Password-reset and registration mails are limited per address and per client, without a visible change."""

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.mail_limits import MAILS_PER_ADDRESS, MAILS_PER_CLIENT
from accounts.models import AppSettings, AuditEvent, User
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

REGISTRATION = {"full_name": "New Person", "password1": "a long pass phrase 9", "password2": "a long pass phrase 9"}


def reset(email, ip="198.51.100.7"):
    return Client().post("/password/reset/", {"email": email}, REMOTE_ADDR=ip)


def answer(response):
    return response.status_code, response["Location"]


def test_25_reset_requests_for_one_address_send_only_the_limit_and_look_the_same():
    UserFactory(email="ann@example.com")
    first = reset("ann@example.com")
    assert len(mail.outbox) == 1  # the legitimate request is mailed
    answers = {answer(first)} | {answer(reset("ann@example.com", ip=f"198.51.100.{n}")) for n in range(24)}
    assert answers == {(302, "/password/reset/sent/")}
    assert len(mail.outbox) == MAILS_PER_ADDRESS
    assert (
        "Not sent: too many requests"
        in AuditEvent.objects.filter(action="password.reset_requested").first().description
    )
    # Another address is not held back by ann's limit.
    UserFactory(email="bob@example.com")
    reset("bob@example.com", ip="192.0.2.50")
    assert mail.outbox[-1].to == ["bob@example.com"]


def test_the_limit_for_an_address_lifts_after_an_hour():
    UserFactory(email="ann@example.com")
    for _ in range(MAILS_PER_ADDRESS + 2):
        reset("ann@example.com")
    assert len(mail.outbox) == MAILS_PER_ADDRESS
    with time_machine.travel(timezone.now() + timezone.timedelta(minutes=61)):
        reset("ann@example.com")
    assert len(mail.outbox) == MAILS_PER_ADDRESS + 1


def test_one_client_cannot_mail_many_addresses_and_an_ipv6_client_counts_by_its_64():
    for n in range(25):
        UserFactory(email=f"p{n}@example.com")
    answers = {answer(reset(f"p{n}@example.com", ip=f"2001:db8:7:7::{n + 1:x}")) for n in range(25)}
    assert answers == {(302, "/password/reset/sent/")}
    assert len(mail.outbox) == MAILS_PER_CLIENT
    # Another client is served.
    reset("p24@example.com", ip="2001:db8:7:8::1")
    assert mail.outbox[-1].to == ["p24@example.com"]
    assert len(mail.outbox) == MAILS_PER_CLIENT + 1


def test_25_sign_ups_for_one_address_send_only_the_limit_and_look_the_same():
    UserFactory(email="admin@example.com")  # past the first run
    AppSettings.objects.update_or_create(pk=1, defaults={"self_registration_enabled": True})
    answers = {
        answer(Client().post("/register/", {**REGISTRATION, "email": "new@example.com"}, REMOTE_ADDR=f"192.0.2.{n}"))
        for n in range(25)
    }
    assert answers == {(302, "/register/sent/")}
    assert len(mail.outbox) == MAILS_PER_ADDRESS
    assert all("/register/confirm/" in message.body for message in mail.outbox)
    assert User.objects.filter(email="new@example.com", is_pending_registration=True).count() == 1
    # A sign-up for another address from a fresh client is mailed as usual.
    Client().post("/register/", {**REGISTRATION, "email": "other@example.com"}, REMOTE_ADDR="203.0.113.1")
    assert mail.outbox[-1].to == ["other@example.com"]
