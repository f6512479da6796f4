"""Argon2id with the configured cost: new hashes use it, and older hashes are rewritten at the next sign-in."""

import os
import subprocess
import sys

import argon2
import pytest
from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher, check_password, get_hasher, make_password

from accounts.models import User
from accounts.tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def params(encoded):
    decoded = get_hasher("argon2").decode(encoded)
    return decoded["variety"], decoded["memory_cost"], decoded["time_cost"], decoded["parallelism"]


def sign_in(client, email, password=PASSWORD):
    return client.post("/login/", {"email": email, "password": password}, REMOTE_ADDR="198.51.100.7")


@pytest.fixture(autouse=True)
def real_cost(settings):
    """The suite hashes at the cheapest cost (dockspace.testenv); these tests work at the real default."""
    settings.ARGON2_MEMORY_KIB, settings.ARGON2_TIME_COST, settings.ARGON2_PARALLELISM = 7168, 5, 1


def test_the_default_cost_is_owasps_7_mib_five_passes_one_lane():
    # What a process started without DOCKSPACE_ARGON2_* (as the test run sets them) hashes with.
    env = {name: value for name, value in os.environ.items() if not name.startswith("DOCKSPACE_ARGON2_")}
    code = (
        "import django; django.setup()\n"
        "from django.conf import settings\n"
        "from django.contrib.auth.hashers import get_hasher, make_password\n"
        "d = get_hasher('argon2').decode(make_password('a password of some length'))\n"
        "print(settings.ARGON2_MEMORY_KIB, settings.ARGON2_TIME_COST, settings.ARGON2_PARALLELISM,"
        " settings.PASSWORD_HASHERS[0], d['variety'], d['memory_cost'], d['time_cost'], d['parallelism'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "7168", "5", "1", "accounts.hashers.DockspaceArgon2PasswordHasher", "argon2id", "7168", "5", "1"
    ]  # fmt: skip


def test_new_hashes_follow_the_settings(settings):
    settings.ARGON2_MEMORY_KIB, settings.ARGON2_TIME_COST, settings.ARGON2_PARALLELISM = 12288, 3, 2

    encoded = make_password(PASSWORD)

    assert params(encoded) == ("argon2id", 12288, 3, 2)
    assert check_password(PASSWORD, encoded) and not check_password("another password", encoded)


def test_a_hash_with_djangos_default_cost_is_rewritten_at_the_next_sign_in(client):
    old = Argon2PasswordHasher().encode(PASSWORD, Argon2PasswordHasher().salt())
    assert params(old) == ("argon2id", 102400, 2, 8)
    User.objects.create(email="ann@example.com", password=old)
    User.objects.create(email="bob@example.com", password=old)

    assert sign_in(client, "ann@example.com")["Location"] == "/profile/"
    assert sign_in(client, "bob@example.com", password="not bob's password").status_code == 200

    ann, bob = User.objects.get(email="ann@example.com"), User.objects.get(email="bob@example.com")
    assert params(ann.password) == ("argon2id", 7168, 5, 1)
    assert ann.check_password(PASSWORD)
    assert bob.password == old  # a wrong password changes nothing


def test_raising_the_cost_rewrites_a_hash_at_the_next_sign_in(client, settings):
    User.objects.create(email="ann@example.com", password=make_password(PASSWORD))
    settings.ARGON2_TIME_COST = 6

    assert sign_in(client, "ann@example.com")["Location"] == "/profile/"

    assert params(User.objects.get(email="ann@example.com").password) == ("argon2id", 7168, 6, 1)


def test_a_hash_at_the_earlier_default_of_19_mib_two_passes_is_rewritten_at_the_next_sign_in(client, settings):
    settings.ARGON2_MEMORY_KIB, settings.ARGON2_TIME_COST = 19456, 2
    User.objects.create(email="ann@example.com", password=make_password(PASSWORD))
    settings.ARGON2_MEMORY_KIB, settings.ARGON2_TIME_COST = 7168, 5

    assert sign_in(client, "ann@example.com")["Location"] == "/profile/"

    ann = User.objects.get(email="ann@example.com")
    assert params(ann.password) == ("argon2id", 7168, 5, 1)
    assert ann.check_password(PASSWORD)


def test_a_hash_at_the_configured_cost_is_left_alone(client):
    encoded = make_password(PASSWORD)
    User.objects.create(email="ann@example.com", password=encoded)

    assert sign_in(client, "ann@example.com")["Location"] == "/profile/"

    assert User.objects.get(email="ann@example.com").password == encoded


def test_a_wrong_password_against_a_cheaper_hash_spends_the_missing_passes(settings, monkeypatch):
    cheap = make_password(PASSWORD)  # 7 MiB x 5 passes
    settings.ARGON2_TIME_COST = 8
    computed = []
    original = argon2.low_level.hash_secret

    def counting(*args, **kwargs):
        computed.append((kwargs["memory_cost"], kwargs["time_cost"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(argon2.low_level, "hash_secret", counting)

    assert check_password(PASSWORD, cheap)
    assert computed == []  # the right password is not slowed down
    assert not check_password("not the password", cheap)
    assert computed == [(7168, 3)]  # 8 passes configured, 5 done by the check
