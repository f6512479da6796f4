"""A successful sign-in does its work once: one session row, the attempt given back with the account's failures
cleared, and the mail hash checked again only when a hash changed. Failed sign-ins: test_sign_in_backend."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.mail_hashes import verify_mail_hash
from accounts.models import LoginThrottle, UserSession, hash_session_key
from mail import services

pytestmark = pytest.mark.django_db

PASSWORD = "river stone lantern 42"
IP = "198.51.100.7"


def sign_in(client, email, password=PASSWORD):
    return client.post("/login/", {"email": email, "password": password}, REMOTE_ADDR=IP, HTTP_USER_AGENT="Test/1")


@pytest.fixture
def ann(db):
    services.domain_create(name="example.com", actor_label="test")
    return services.mailbox_create(address="ann@example.com", password=PASSWORD, actor_label="test").person


def test_signing_in_writes_one_session_row_under_a_new_key_and_keeps_the_data(client, ann):
    session = client.session
    session["kept"] = "yes"
    session.save()
    old_key = session.session_key

    with CaptureQueriesContext(connection) as queries:
        response = sign_in(client, "ann@example.com")

    assert response["Location"] == "/profile/"
    writes = [
        q["sql"] for q in queries if "accounts_usersession" in q["sql"] and q["sql"].startswith(("INSERT", "UPDATE"))
    ]
    assert len(writes) == 1 and writes[0].startswith("INSERT")
    new_key = client.cookies["dockspace_session"].value
    assert new_key != old_key  # no session fixation
    assert not UserSession.objects.filter(session_key=hash_session_key(old_key)).exists()
    row = UserSession.objects.get(session_key=hash_session_key(new_key))
    assert (row.user_id, row.ip, row.user_agent) == (ann.pk, IP, "Test/1")
    assert client.session["kept"] == "yes"
    assert client.get("/profile/").status_code == 200  # positive control: the new cookie is signed in


def test_a_session_key_that_clashes_with_a_stored_row_is_drawn_again(client, ann, monkeypatch):
    from accounts import sessions

    taken = UserSession.objects.create(
        session_key=hash_session_key("k" * 32), session_data="", expire_date=timezone.now() + timedelta(days=1)
    )
    draws = iter(["k" * 32, "n" * 32])
    monkeypatch.setattr(sessions, "get_random_string", lambda length, chars: next(draws))
    monkeypatch.setattr(sessions.DbSessionStore, "_get_new_session_key", lambda self: "m" * 32)

    assert sign_in(client, "ann@example.com")["Location"] == "/profile/"

    assert client.cookies["dockspace_session"].value == "m" * 32
    assert UserSession.objects.get(session_key=hash_session_key("m" * 32)).user_id == ann.pk
    taken.refresh_from_db()
    assert taken.user_id is None  # the stored row was not taken over


def test_a_successful_sign_in_gives_back_its_attempt_and_clears_the_accounts_failures(client, ann):
    for _ in range(2):
        assert "password is wrong" in sign_in(client, "ann@example.com", "a wrong password").content.decode()
    assert LoginThrottle.objects.get(scope="account").failures == 2

    assert sign_in(client, "ann@example.com")["Location"] == "/profile/"

    assert not LoginThrottle.objects.filter(scope="account").exists()
    assert LoginThrottle.objects.get(scope="ip", key=IP).failures == 2  # the failures stay, the success does not count


def test_a_mail_hash_replaced_since_the_last_sign_in_is_aligned_at_the_next(client, ann):
    assert sign_in(client, "ann@example.com")["Location"] == "/profile/"
    ann.refresh_from_db()
    assert verify_mail_hash(PASSWORD, ann.mail_password_hash)
    client.logout()
    # Mail is locked, as when a person who already signed in to Dockspace is given a mailbox.
    ann.lock_mail_password()
    ann.save()
    assert not verify_mail_hash(PASSWORD, ann.mail_password_hash)

    assert sign_in(client, "ann@example.com")["Location"] == "/profile/"

    ann.refresh_from_db()
    assert verify_mail_hash(PASSWORD, ann.mail_password_hash)


def test_an_aligned_mail_hash_is_not_checked_or_rewritten_at_every_sign_in(client, ann, monkeypatch):
    from accounts import mail_hashes

    assert sign_in(client, "ann@example.com")["Location"] == "/profile/"
    client.logout()
    ann.refresh_from_db()
    before = ann.mail_password_hash
    checked = []
    real_verify = mail_hashes.verify_mail_hash
    monkeypatch.setattr(mail_hashes, "verify_mail_hash", lambda *a: checked.append(1) or real_verify(*a))

    assert sign_in(client, "ann@example.com")["Location"] == "/profile/"

    ann.refresh_from_db()
    assert ann.mail_password_hash == before and checked == []
