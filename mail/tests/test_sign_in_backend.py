"""Every failed sign-in does the same work, whatever the address: one Argon2 check at the configured cost and
one mail-hash check (real or decoy), so its timing does not tell which accounts exist or came from DMS.

Timings themselves are measured by bench/signin_timing.py, never asserted here."""

import pytest
from django.contrib.auth.hashers import make_password

from accounts import mail_hashes
from accounts.hashers import DockspaceArgon2PasswordHasher
from accounts.mail_hashes import mail_hash
from accounts.models import User
from accounts.tests.factories import PASSWORD
from mail import hashers as mail_hashers
from mail import services
from mail.hashers import django_password_from_mail_hash
from mail.tests.factories import make_mailbox, use_temp_dms_dir

pytestmark = pytest.mark.django_db

WRONG = "a wrong password guess"


@pytest.fixture
def work(monkeypatch, settings, tmp_path):
    """Counts the password work done: Argon2 hashes and checks at the configured cost, and mail-hash checks."""
    use_temp_dms_dir(settings, tmp_path)
    User.objects.create_superuser("admin@example.com", None)  # past the first-run page
    mail_hashes.spend_mail_hash_check(settings.MAIL_HASH_SCHEME)  # the per-process decoy exists already
    done = {"argon2": 0, "mail": 0}
    encode, verify, verify_mail = (
        DockspaceArgon2PasswordHasher.encode,
        DockspaceArgon2PasswordHasher.verify,
        mail_hashes.verify_mail_hash,
    )

    def counting_encode(self, password, salt):
        done["argon2"] += 1
        return encode(self, password, salt)

    def counting_verify(self, password, encoded):
        stored = self.decode(encoded)
        assert (stored["memory_cost"], stored["time_cost"], stored["parallelism"]) == (
            self.memory_cost,
            self.time_cost,
            self.parallelism,
        ), "a check at another cost"
        done["argon2"] += 1
        return verify(self, password, encoded)

    def counting_verify_mail(password, hashed):
        done["mail"] += 1
        return verify_mail(password, hashed)

    monkeypatch.setattr(DockspaceArgon2PasswordHasher, "encode", counting_encode)
    monkeypatch.setattr(DockspaceArgon2PasswordHasher, "verify", counting_verify)
    monkeypatch.setattr(mail_hashes, "verify_mail_hash", counting_verify_mail)
    monkeypatch.setattr(mail_hashers, "verify_mail_hash", counting_verify_mail)
    return done


def sign_in(client, email, password):
    return client.post("/login/", {"email": email, "password": password}, REMOTE_ADDR="198.51.100.7")


def argon2_person(email="argon@example.com", **extra):
    return User.objects.create(email=email, password=make_password(PASSWORD), **extra)


def dms_person(email="adopted@example.com"):
    hashed = mail_hash(PASSWORD)
    return User.objects.create(email=email, password=django_password_from_mail_hash(hashed), mail_password_hash=hashed)


def imported_person(email="imported@example.com"):
    from mail import csv_io

    mailbox = make_mailbox(email, password_hashes=csv_io._hash_pair(PASSWORD, "SHA512-CRYPT"))
    return mailbox.person


def suspended_person(email="suspended@example.com"):
    mailbox = make_mailbox(email, password=PASSWORD)
    services.mailbox_set_state(mailbox=mailbox, state="suspended", actor_label="test")
    return mailbox.person


PEOPLE = {
    "unknown address": lambda: None,
    "Argon2 password": argon2_person,
    "adopted from DMS (dms$ mail hash)": dms_person,
    "imported from CSV (dms$ mail hash)": imported_person,
    "no usable password": lambda: User.objects.create_user("unusable@example.com", None),
    "inactive person": lambda: argon2_person("inactive@example.com", is_active=False),
    "suspended mailbox": suspended_person,
}


@pytest.mark.parametrize("kind", PEOPLE)
def test_a_wrong_password_costs_one_argon2_check_and_one_mail_hash_check(client, work, kind):
    person = PEOPLE[kind]()
    email = person.email if person else "nobody@example.com"
    work.update(argon2=0, mail=0)

    response = sign_in(client, email, WRONG)

    assert "password is wrong" in response.content.decode()
    assert work == {"argon2": 1, "mail": 1}


def inactive_dms_person():
    person = dms_person("inactive-adopted@example.com")
    person.is_active = False
    person.save()
    return person


def suspended_imported_person():
    person = imported_person("suspended-imported@example.com")
    services.mailbox_set_state(mailbox=person.mailbox, state="suspended", actor_label="test")
    return person


MAY_NOT_SIGN_IN = {
    "inactive person": PEOPLE["inactive person"],
    "suspended mailbox": PEOPLE["suspended mailbox"],
    "inactive, adopted from DMS": inactive_dms_person,
    "suspended, imported from CSV": suspended_imported_person,
}


@pytest.mark.parametrize("kind", MAY_NOT_SIGN_IN)
def test_the_right_password_of_someone_who_may_not_sign_in_costs_the_same_and_upgrades_nothing(client, work, kind):
    person = MAY_NOT_SIGN_IN[kind]()
    stored = User.objects.get(pk=person.pk).password
    work.update(argon2=0, mail=0)

    response = sign_in(client, person.email, PASSWORD)

    assert "password is wrong" in response.content.decode()
    assert work == {"argon2": 1, "mail": 1}
    assert User.objects.get(pk=person.pk).password == stored


@pytest.mark.parametrize("kind", ["Argon2 password", "adopted from DMS (dms$ mail hash)", "suspended mailbox"])
def test_a_password_over_the_limit_is_not_hashed_and_costs_the_same(client, work, kind):
    person = PEOPLE[kind]()
    work.update(argon2=0, mail=0)

    response = sign_in(client, person.email, PASSWORD + "x" * 5000)

    assert "password is wrong" in response.content.decode()
    assert work == {"argon2": 1, "mail": 1}  # decoys: the long value itself was never hashed


@pytest.mark.parametrize(
    "kind", ["Argon2 password", "adopted from DMS (dms$ mail hash)", "imported from CSV (dms$ mail hash)"]
)
def test_the_right_password_still_signs_in(client, work, kind):
    person = PEOPLE[kind]()

    assert sign_in(client, person.email, PASSWORD)["Location"] == "/profile/"
    assert client.get("/profile/").context["user"] == person


def test_a_known_address_costs_the_same_queries_as_an_unknown_one(work, django_assert_num_queries):
    from django.contrib.auth import authenticate

    suspended_person()
    argon2_person()

    for email in ("nobody@example.com", "argon@example.com", "suspended@example.com"):
        with django_assert_num_queries(1):  # the person and their mailbox, in one query
            assert authenticate(email=email, password=WRONG) is None
