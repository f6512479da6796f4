"""Dovecot password hashes: the shapes we write, what we verify, and agreement with the real doveadm."""

import functools
import re
import shutil
import subprocess

import pytest
from django.core.exceptions import ValidationError

from accounts.mail_hashes import (
    BCRYPT_MAX_PASSWORD_BYTES,
    DEFAULT_SCHEME,
    SCHEMES,
    VERIFIABLE_SCHEMES,
    hash_scheme,
    is_valid_mail_hash,
    mail_hash,
    verify_mail_hash,
)
from dockspace.validation import error_lines

PASSWORDS = [
    "correct horse battery staple",
    "pässwörd ☃ ünïcödé",
    "pipe|and:colon",
    " spaces around and|:inside ",
]

# Written by Dovecot 2.3.19's `doveadm pw -s <scheme> -p 'pässword x|:'`.
DOVECOT_PASSWORD = "pässword x|:"
DOVECOT_HASHES = {
    "SHA512-CRYPT": "{SHA512-CRYPT}$6$xT72gb9Tsjegvbup$27y7HpmrI/W3Ujx4OHmINQJNOHanhBSBN3CLWXUt6AV0mJrcrk4opAX5F"
    "/SdFBo5AE3dpM/667ggsWFDLdmch.",
    "SHA512-CRYPT rounds=10000": "{SHA512-CRYPT}$6$rounds=10000$tknBT1AZr8ByGPSL$H32jIQxBXqnCXxNok0LaUEvbrtMsr3LWK7a"
    "VhRVV2XH8OwkAD4HAxnzsOxznJBH.0G8q6Z2AiB6SREffwln8k.",
    "SHA256-CRYPT": "{SHA256-CRYPT}$5$L4GF7CEydCEvRuSQ$QHch7pm12ux4zx522dc6UeiIysfzf2ax3GsZcvhABJ8",
    "MD5-CRYPT": "{MD5-CRYPT}$1$a8qK/9X9$OuwXfobZdEemQizwQSTip/",
    "MD5": "{MD5}$1$m1SookFy$.ElaIAMHE87uhvK.2RFKz0",
    "BLF-CRYPT": "{BLF-CRYPT}$2y$05$2h35JQ1/j8AdQ1Qsiu/Te.z.nIkli/TrpBNxcasqg29Bj6x1uvRfC",
    "ARGON2ID": "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$Y8ZwosZcvCBAbM3NWLATPA$"
    "mkU+mBGcB2AA2nbGuoXO5L6Sk+sVoxEV/+8oC3mfAxA",
    "ARGON2I": "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$/GK/4BKDL7EYTSk8WnOCgQ$"
    "+M3lWkxxSdk0aRTFPSq6apIClsTW09+AmMvichDtfvo",
    "CRYPT": "{CRYPT}$2y$05$dCaEWz2J2s/d7ngdTgXn/uASw4LzVcJtjSO8pjGSGM1K/ME4qR9IS",
    "CRYPT over SHA512-CRYPT": "{CRYPT}$6$xT72gb9Tsjegvbup$27y7HpmrI/W3Ujx4OHmINQJNOHanhBSBN3CLWXUt6AV0mJrcrk4opAX5F"
    "/SdFBo5AE3dpM/667ggsWFDLdmch.",
    "CRYPT over MD5-CRYPT": "{CRYPT}$1$a8qK/9X9$OuwXfobZdEemQizwQSTip/",
    "CRYPT over DES": "{CRYPT}VB52naJtKAgFY",
    "DES-CRYPT": "{DES-CRYPT}VB52naJtKAgFY",
    "SSHA512": "{SSHA512}VZN1Cd2ml8l3VT/msGcVAFIIray7q0KStOdSFPtT+wMrbf3vPaEJtu2jU5CwKy2WY7vordoxNZNL/vWrb/MUBWHQHyg=",
    "SSHA256": "{SSHA256}gDUmFR6lfx6Ix0JA1o2RcJ7WmVmSBIU4KgGLgEQ05tXjWKiG",
    "SSHA": "{SSHA}hjY6rGjNQMSAVGEoa9dXjVcXpeOiFMhx",
    "SMD5": "{SMD5}lfLPjF1DCeWe9mrWpGPH0I+HI5I=",
    "SHA512": "{SHA512}ZYKHwc97YdQYzz+TTd3FcA2NcNy7yxUniJDHwjPkq+uFK9CCdz7bzKnxGA5pOJpf6y4S+Gby6ay/HNoLN0LOWw==",
    "SHA256": "{SHA256}VOaxFpyT4hPskimdEbp2olrQ/xuE+fhEVGtA1S2+bYQ=",
    "SHA": "{SHA}NfvHiz3YjGcmShJJL1RA1QwM8wk=",
    "SHA1": "{SHA1}NfvHiz3YjGcmShJJL1RA1QwM8wk=",
    "PLAIN-MD5": "{PLAIN-MD5}0e7897ea43581e69a26f52c993983b89",
    "LDAP-MD5": "{LDAP-MD5}DniX6kNYHmmib1LJk5g7iQ==",
    "lower-case scheme name": "{sha512-crypt}$6$xT72gb9Tsjegvbup$27y7HpmrI/W3Ujx4OHmINQJNOHanhBSBN3CLWXUt6AV0mJrcrk4"
    "opAX5F/SdFBo5AE3dpM/667ggsWFDLdmch.",
}

SHAPES = {
    # No "rounds=": 5000 rounds, exactly as DMS's `setup email add` writes it.
    "SHA512-CRYPT": r"\{SHA512-CRYPT\}\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}",
    "BLF-CRYPT": r"\{BLF-CRYPT\}\$2y\$10\$[./0-9A-Za-z]{53}",
    "ARGON2ID": r"\{ARGON2ID\}\$argon2id\$v=19\$m=65536,t=3,p=1\$[+/0-9A-Za-z]{22}\$[+/0-9A-Za-z]{43}",
}

UNVERIFIABLE = [
    pytest.param(None, id="None"),
    pytest.param("", id="empty"),
    pytest.param("$6$xT72gb9Tsjegvbup$27y7HpmrI/W3Ujx4OHmINQJNOHanhBSBN3CLWXUt6AV0mJrc", id="no prefix"),
    pytest.param("{CLEAR}pässword x|:", id="plain text is never accepted"),
    pytest.param("{PLAIN}pässword x|:", id="PLAIN"),
    pytest.param("{SCRAM-SHA-256}4096,abc,def,ghi", id="unsupported scheme"),
    pytest.param("{NOPE}$6$xT72gb9Tsjegvbup$27y7", id="unknown scheme"),
    pytest.param("{SHA512-CRYPT}", id="prefix only"),
    pytest.param("{SHA512-CRYPT}$6$xT72gb9Tsjegvbup", id="salt without hash"),
    pytest.param("{SHA512-CRYPT}$6$xT72gb9Tsjegvbup$27y7HpmrI", id="truncated hash"),
    pytest.param("{SHA512-CRYPT}$2y$05$2h35JQ1/j8AdQ1Qsiu/Te.z.nIkli/TrpBNxcasqg29Bj6x1uvRfC", id="scheme mismatch"),
    pytest.param("{BLF-CRYPT}$2y$05$short", id="short bcrypt salt"),
    pytest.param("{ARGON2ID}$argon2id$v=19$m=bad", id="broken argon2 parameters"),
    pytest.param(DOVECOT_HASHES["ARGON2I"].replace("{ARGON2I}", "{ARGON2ID}"), id="argon2i labelled ARGON2ID"),
    pytest.param("{SSHA512}AAAA", id="salted digest too short"),
    pytest.param("{SHA256}not*base64", id="digest not base64"),
    pytest.param("{SHA256}NfvHiz3YjGcmShJJL1RA1QwM8wk=", id="digest of the wrong length"),
    pytest.param("{PLAIN-MD5}zz", id="bad hex"),
    pytest.param("{CRYPT}$y$j9T$abc$def", id="crypt format passlib cannot read"),
]


def test_it_produces_the_three_schemes_dms_accepts_with_sha512_crypt_first():
    assert SCHEMES == ("SHA512-CRYPT", "BLF-CRYPT", "ARGON2ID")
    assert DEFAULT_SCHEME == "SHA512-CRYPT"
    assert set(SCHEMES) <= set(VERIFIABLE_SCHEMES)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_it_writes_each_scheme_in_the_shape_dovecot_writes(scheme):
    assert re.fullmatch(SHAPES[scheme], mail_hash("correct horse battery staple", scheme))


def test_it_hashes_with_sha512_crypt_by_default():
    assert re.fullmatch(SHAPES["SHA512-CRYPT"], mail_hash("correct horse battery staple"))


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_its_own_hashes_verify_and_a_wrong_password_does_not(scheme, password):
    hashed = mail_hash(password, scheme)
    assert is_valid_mail_hash(hashed)
    assert hash_scheme(hashed) == scheme
    assert verify_mail_hash(password, hashed)
    assert not verify_mail_hash(password + "x", hashed)
    assert not verify_mail_hash(password.upper() if password != password.upper() else password.lower(), hashed)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_it_salts_every_hash_afresh(scheme):
    assert mail_hash("same password", scheme) != mail_hash("same password", scheme)


def test_it_refuses_a_scheme_it_cannot_produce():
    with pytest.raises(ValueError, match="scheme: 'SHA256-CRYPT' is not one of"):
        mail_hash("correct horse battery staple", "SHA256-CRYPT")


@pytest.mark.parametrize(
    "scheme, password, message",
    [
        ("SHA512-CRYPT", "", "password: a password is required."),
        ("ARGON2ID", None, "password: a password is required."),
        ("SHA512-CRYPT", "with\x00nul", "password: a NUL character is not allowed."),
        ("BLF-CRYPT", "x" * 73, "password: BLF-CRYPT uses at most 72 bytes"),
        ("BLF-CRYPT", "é" * 37, "password: BLF-CRYPT uses at most 72 bytes"),  # 37 characters, 74 bytes
    ],
)
def test_it_rejects_a_password_it_cannot_hash_faithfully_with_a_clear_message(scheme, password, message):
    with pytest.raises(ValidationError) as excinfo:
        mail_hash(password, scheme)
    assert error_lines(excinfo.value)[0].startswith(message)


@pytest.mark.parametrize("scheme", ["SHA512-CRYPT", "ARGON2ID"])
def test_long_passwords_are_fine_outside_bcrypt(scheme):
    password = "long " * 40
    hashed = mail_hash(password, scheme)
    assert verify_mail_hash(password, hashed)
    assert not verify_mail_hash(password[:72], hashed)


def test_blf_crypt_takes_a_password_of_exactly_72_bytes():
    password = "é" * 36
    assert len(password.encode()) == BCRYPT_MAX_PASSWORD_BYTES
    assert verify_mail_hash(password, mail_hash(password, "BLF-CRYPT"))


@pytest.mark.parametrize("label", DOVECOT_HASHES)
def test_it_verifies_hashes_dovecot_wrote(label):
    hashed = DOVECOT_HASHES[label]
    assert is_valid_mail_hash(hashed)
    assert verify_mail_hash(DOVECOT_PASSWORD, hashed)
    assert not verify_mail_hash("Pässword x|:", hashed)
    assert not verify_mail_hash("", hashed)


def test_blf_crypt_verification_reads_only_the_first_72_bytes_like_dovecot():
    # doveadm pw -s BLF-CRYPT -p <80 x>: Dovecot truncates instead of refusing.
    hashed = "{BLF-CRYPT}$2y$05$/Kyjh5EnBY5GHlNt6XZoB.fW1YcRGsUrju.ex9fPU5PwBJeEp4Yd2"
    assert verify_mail_hash("x" * 80, hashed)
    assert verify_mail_hash("x" * 72, hashed)
    assert not verify_mail_hash("x" * 71, hashed)


@pytest.mark.parametrize("hashed", UNVERIFIABLE)
def test_it_answers_false_rather_than_raising_for_a_hash_it_cannot_verify(hashed):
    assert verify_mail_hash(DOVECOT_PASSWORD, hashed) is False
    assert is_valid_mail_hash(hashed) is False


@pytest.mark.parametrize("password", [None, b"p\xc3\xa4ssword x|:", 42])
def test_it_answers_false_for_a_password_that_is_not_text(password):
    assert verify_mail_hash(password, DOVECOT_HASHES["SHA512-CRYPT"]) is False


@pytest.mark.parametrize(
    "hashed, scheme",
    [
        ("{SHA512-CRYPT}$6$abc$def", "SHA512-CRYPT"),
        ("{blf-crypt}$2y$...", "BLF-CRYPT"),
        ("{SHA256.HEX}abcdef", "SHA256.HEX"),
        ("{SCRAM-SHA-256}4096,abc", "SCRAM-SHA-256"),
        ("$6$abc$def", None),
        ("{}abc", None),
        ("{SHA512-CRYPT", None),
        (" {SHA512-CRYPT}$6$abc$def", None),
        ("", None),
        (None, None),
    ],
)
def test_it_reads_the_scheme_from_the_prefix(hashed, scheme):
    assert hash_scheme(hashed) == scheme


@pytest.mark.parametrize(
    "hashed",
    [
        pytest.param(DOVECOT_HASHES["SHA512-CRYPT"] + "\n", id="trailing newline"),
        pytest.param(DOVECOT_HASHES["SHA512-CRYPT"] + " ", id="trailing space"),
        pytest.param(" " + DOVECOT_HASHES["SHA512-CRYPT"], id="leading space"),
        pytest.param(DOVECOT_HASHES["SHA512-CRYPT"] + "|nologin=y", id="pipe"),
        pytest.param(DOVECOT_HASHES["SHA512-CRYPT"].replace("$27y7", "$27:7"), id="colon"),
        pytest.param(DOVECOT_HASHES["SHA512-CRYPT"].replace("$27y7", "$27\t7"), id="tab"),
        pytest.param(DOVECOT_HASHES["SHA512-CRYPT"].replace("$27y7", "$27\x007"), id="NUL"),
    ],
)
def test_a_hash_that_would_break_an_account_line_is_not_valid(hashed):
    assert not is_valid_mail_hash(hashed)


# --- Against the real Dovecot -----------------------------------------------------------------------

DOVEADM = shutil.which("doveadm")
needs_doveadm = pytest.mark.skipif(DOVEADM is None, reason="doveadm (Debian package dovecot-core) is not installed")


def doveadm(*args):
    return subprocess.run([DOVEADM, *args], capture_output=True, text=True, timeout=60)


def dovecot_verifies(hashed, password):
    result = doveadm("pw", "-t", hashed, "-p", password)
    return result.returncode == 0 and "(verified)" in result.stdout


@functools.cache
def dovecot_schemes():
    if DOVEADM is None:
        return []
    return doveadm("pw", "-l").stdout.split()


@needs_doveadm
@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_dovecot_verifies_every_hash_it_writes(scheme, password):
    hashed = mail_hash(password, scheme)
    assert dovecot_verifies(hashed, password)
    assert not dovecot_verifies(hashed, "x" + password)


@needs_doveadm
@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize("scheme", VERIFIABLE_SCHEMES)
def test_it_verifies_what_doveadm_writes(scheme, password):
    if scheme not in dovecot_schemes():
        pytest.skip(f"this Dovecot does not list {scheme} in `doveadm pw -l`")
    result = doveadm("pw", "-s", scheme, "-p", password)
    assert result.returncode == 0, result.stderr
    hashed = result.stdout.strip()
    assert hash_scheme(hashed) == scheme
    assert is_valid_mail_hash(hashed)
    assert verify_mail_hash(password, hashed)
    # "x" in front: DES-CRYPT reads only 8 characters, so a suffix would not make it wrong.
    assert not verify_mail_hash("x" + password, hashed)


@needs_doveadm
@pytest.mark.parametrize("label", DOVECOT_HASHES)
def test_the_recorded_dovecot_hashes_still_verify_with_this_dovecot(label):
    if hash_scheme(DOVECOT_HASHES[label]) not in dovecot_schemes():
        pytest.skip(f"this Dovecot does not list {hash_scheme(DOVECOT_HASHES[label])}")
    assert dovecot_verifies(DOVECOT_HASHES[label], DOVECOT_PASSWORD)
