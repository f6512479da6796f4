"""The "dms$" Django password hasher: a person adopted from a DMS accounts file signs in with their mail
password, and that sign-in replaces the Dovecot hash with Argon2."""

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.hashers import check_password, identify_hasher, is_password_usable, make_password
from django.core.exceptions import ValidationError
from django.test import override_settings

from accounts.mail_hashes import SCHEMES, mail_hash
from accounts.models import User
from dockspace.validation import error_lines
from mail.hashers import DmsCryptPasswordHasher, django_password_from_mail_hash

HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher", "mail.hashers.DmsCryptPasswordHasher"]

PASSWORD = "pässword x|:"
# Written by Dovecot 2.3.19's `doveadm pw -s <scheme> -p 'pässword x|:'`.
DOVECOT_HASHES = [
    "{SHA512-CRYPT}$6$xT72gb9Tsjegvbup$27y7HpmrI/W3Ujx4OHmINQJNOHanhBSBN3CLWXUt6AV0mJrcrk4opAX5F/SdFBo5AE3dpM/667gg"
    "sWFDLdmch.",
    "{BLF-CRYPT}$2y$05$2h35JQ1/j8AdQ1Qsiu/Te.z.nIkli/TrpBNxcasqg29Bj6x1uvRfC",
    "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$Y8ZwosZcvCBAbM3NWLATPA$mkU+mBGcB2AA2nbGuoXO5L6Sk+sVoxEV/+8oC3mfAxA",
    "{SHA256-CRYPT}$5$L4GF7CEydCEvRuSQ$QHch7pm12ux4zx522dc6UeiIysfzf2ax3GsZcvhABJ8",
    "{SSHA512}VZN1Cd2ml8l3VT/msGcVAFIIray7q0KStOdSFPtT+wMrbf3vPaEJtu2jU5CwKy2WY7vordoxNZNL/vWrb/MUBWHQHyg=",
]


class Setter:
    def __init__(self):
        self.calls = []

    def __call__(self, raw_password):
        self.calls.append(raw_password)


@pytest.fixture(autouse=True)
def _dms_hasher_enabled():
    with override_settings(PASSWORD_HASHERS=HASHERS):
        yield


@pytest.mark.parametrize("hashed", DOVECOT_HASHES)
def test_an_adopted_hash_checks_and_asks_to_be_replaced(hashed):
    setter = Setter()
    assert check_password(PASSWORD, django_password_from_mail_hash(hashed), setter)
    assert setter.calls == [PASSWORD]


@pytest.mark.parametrize("hashed", DOVECOT_HASHES)
def test_a_wrong_password_fails_and_replaces_nothing(hashed):
    setter = Setter()
    assert not check_password("Pässword x|:", django_password_from_mail_hash(hashed), setter)
    assert setter.calls == []


def test_the_encoded_form_is_dms_dollar_then_the_dovecot_hash():
    encoded = django_password_from_mail_hash(DOVECOT_HASHES[0])
    assert encoded == "dms$" + DOVECOT_HASHES[0]
    assert identify_hasher(encoded).algorithm == "dms"
    assert is_password_usable(encoded)


@pytest.mark.parametrize(
    "hashed, message",
    [
        ("$6$xT72gb9Tsjegvbup$27y7", "password_hash: it has no {SCHEME} prefix."),
        ("{CLEAR}secret", "password_hash: Dockspace cannot verify the CLEAR scheme."),
        ("{SHA512-CRYPT}$6$xT72gb9Tsjegvbup", "password_hash: it is not a well-formed SHA512-CRYPT hash."),
        ("{SHA512-CRYPT}" + DOVECOT_HASHES[0][14:] + "|nologin=y", "password_hash: it is not a well-formed"),
    ],
)
def test_it_refuses_to_adopt_a_hash_no_one_could_sign_in_with(hashed, message):
    with pytest.raises(ValidationError) as excinfo:
        django_password_from_mail_hash(hashed)
    assert error_lines(excinfo.value)[0].startswith(message)


@pytest.mark.parametrize("encoded", ["dms$", "dms$garbage", "dms${CLEAR}" + PASSWORD, "argon2$" + DOVECOT_HASHES[0]])
def test_verify_says_no_to_anything_malformed(encoded):
    assert DmsCryptPasswordHasher().verify(PASSWORD, encoded) is False


def test_make_password_with_this_hasher_writes_sha512_crypt_that_checks():
    encoded = make_password(PASSWORD, hasher="dms")
    assert encoded.startswith("dms${SHA512-CRYPT}$6$")
    assert len(encoded) <= 255
    assert check_password(PASSWORD, encoded)
    assert not check_password("wrong", encoded)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_it_can_write_fits_the_password_column(scheme):
    assert len(django_password_from_mail_hash(mail_hash(PASSWORD, scheme))) <= 255


def test_it_always_asks_to_be_replaced_even_when_preferred():
    with override_settings(PASSWORD_HASHERS=list(reversed(HASHERS))):
        setter = Setter()
        assert check_password(PASSWORD, django_password_from_mail_hash(DOVECOT_HASHES[0]), setter)
        assert setter.calls == [PASSWORD]


def test_its_summary_names_the_scheme_and_masks_the_hash():
    summary = DmsCryptPasswordHasher().safe_summary(django_password_from_mail_hash(DOVECOT_HASHES[0]))
    assert summary["algorithm"] == "dms"
    assert summary["scheme"] == "SHA512-CRYPT"
    assert summary["hash"].startswith("$6$xT7")
    assert "27y7HpmrI" not in summary["hash"]
    assert set(summary["hash"][6:]) == {"*"}


@pytest.mark.django_db
def test_an_adopted_person_signs_in_with_their_mail_password_and_gets_argon2():
    user = User.objects.create(email="bob@example.com", password=django_password_from_mail_hash(DOVECOT_HASHES[0]))
    assert authenticate(username="bob@example.com", password="wrong password") is None
    user.refresh_from_db()
    assert user.password.startswith("dms$")

    assert authenticate(username="bob@example.com", password=PASSWORD) == user
    user.refresh_from_db()
    assert user.password.startswith("argon2$")
    assert user.check_password(PASSWORD)


def test_it_adopts_a_hash_with_explicit_rounds_that_is_longer_than_django_default_column():
    hashed = (
        "{SHA512-CRYPT}$6$rounds=10000$tknBT1AZr8ByGPSL$H32jIQxBXqnCXxNok0LaUEvbrtMsr3LWK7aVhRVV2XH8OwkAD4HAxnzsOx"
        "znJBH.0G8q6Z2AiB6SREffwln8k."
    )
    encoded = django_password_from_mail_hash(hashed)
    assert len(encoded) == 137
    assert identify_hasher(encoded).algorithm == "dms"
