"""Dovecot password hashes (`{SCHEME}hash`) as DMS account files hold them: made, checked and verified.
In accounts because a person's one password is stored here twice (User.password and User.mail_password_hash).

Pure: takes and returns strings. Hashing and constant-time comparison are passlib's (libpass).
"""

import base64
import hashlib
import hmac
import re
import secrets

from django.core.exceptions import ValidationError
from passlib.hash import (
    argon2,
    bcrypt,
    des_crypt,
    hex_md5,
    ldap_md5,
    ldap_salted_md5,
    ldap_salted_sha1,
    ldap_salted_sha256,
    ldap_salted_sha512,
    ldap_sha1,
    md5_crypt,
    sha256_crypt,
    sha512_crypt,
)

from accounts.validators import check_password_limits, is_password_over_limit
from dockspace.validation import field_error

# The schemes mail_hash can produce; the first is what DMS's own `setup email add` writes.
SCHEMES = ("SHA512-CRYPT", "BLF-CRYPT", "ARGON2ID")
DEFAULT_SCHEME = "SHA512-CRYPT"

# bcrypt reads only the first 72 bytes of a password; Dovecot silently truncates, bcrypt 5 raises.
BCRYPT_MAX_PASSWORD_BYTES = 72

_MAKERS = {
    # 5000 rounds is glibc's implicit default, so the string carries no "rounds=" (as doveadm writes it).
    "SHA512-CRYPT": sha512_crypt.using(rounds=5000, salt_size=16),
    # Dovecot's own default cost is 5; 10 costs ~70 ms per login and doveadm verifies it.
    "BLF-CRYPT": bcrypt.using(ident="2y", rounds=10),
    # What Dovecot 2.3's doveadm writes (libsodium): 64 MiB, 3 passes, one lane, 16-byte salt, 32-byte hash.
    "ARGON2ID": argon2.using(type="ID", memory_cost=65536, time_cost=3, parallelism=1, salt_size=16, digest_size=32),
}

# Verifiable scheme -> (passlib handler, text passlib wants in front of the Dovecot body, required body start).
_PASSLIB_SCHEMES = {
    "SHA512-CRYPT": (sha512_crypt, "", "$6$"),
    "SHA256-CRYPT": (sha256_crypt, "", "$5$"),
    "MD5-CRYPT": (md5_crypt, "", "$1$"),
    # Dovecot's "MD5" is MD5-CRYPT, not a bare digest (that one is PLAIN-MD5 or LDAP-MD5).
    "MD5": (md5_crypt, "", "$1$"),
    "BLF-CRYPT": (bcrypt, "", "$2"),
    "ARGON2ID": (argon2, "", "$argon2id$"),
    "ARGON2I": (argon2, "", "$argon2i$"),
    "DES-CRYPT": (des_crypt, "", ""),
    "SSHA512": (ldap_salted_sha512, "{SSHA512}", ""),
    "SSHA256": (ldap_salted_sha256, "{SSHA256}", ""),
    "SSHA": (ldap_salted_sha1, "{SSHA}", ""),
    "SMD5": (ldap_salted_md5, "{SMD5}", ""),
    "SHA": (ldap_sha1, "{SHA}", ""),
    "SHA1": (ldap_sha1, "{SHA}", ""),
    "LDAP-MD5": (ldap_md5, "{MD5}", ""),
    "PLAIN-MD5": (hex_md5, "", ""),
}

# Dovecot's CRYPT asks libc's crypt(), which picks the algorithm from the hash itself.
_CRYPT_FORMATS = (("$6$", sha512_crypt), ("$5$", sha256_crypt), ("$1$", md5_crypt), ("$2", bcrypt))

# Unsalted base64 digests passlib has no handler for: compared with hmac.compare_digest.
_PLAIN_DIGESTS = {"SHA256": ("sha256", 32), "SHA512": ("sha512", 64)}

# Everything verify_mail_hash understands. Not here on purpose: CLEAR/PLAIN (plain text), CRAM-MD5,
# DIGEST-MD5, SCRAM-* and OTP (challenge-response secrets), PBKDF2, and ".HEX"/".B64" encoding suffixes.
VERIFIABLE_SCHEMES = tuple(sorted({*_PASSLIB_SCHEMES, "CRYPT", *_PLAIN_DIGESTS}))

_PREFIX_RE = re.compile(r"^\{([A-Za-z0-9][A-Za-z0-9._-]*)\}")


def hash_scheme(hashed):
    """The upper-cased scheme of '{scheme}...' (Dovecot ignores its case), or None without such a prefix.

    The scheme is returned whether or not this module can verify it; see VERIFIABLE_SCHEMES.
    """
    if not isinstance(hashed, str):
        return None
    match = _PREFIX_RE.match(hashed)
    return match.group(1).upper() if match else None


def _validate_password(raw_password, scheme):
    if not isinstance(raw_password, str) or not raw_password:
        raise field_error("password", "a password is required.")
    # SASL PLAIN separates its fields with NUL, so such a password could never be used to log in.
    if "\x00" in raw_password:
        raise field_error("password", "a NUL character is not allowed.")
    if scheme == "BLF-CRYPT" and len(raw_password.encode("utf-8")) > BCRYPT_MAX_PASSWORD_BYTES:
        raise field_error(
            "password",
            f"BLF-CRYPT uses at most {BCRYPT_MAX_PASSWORD_BYTES} bytes (UTF-8); "
            "choose a shorter password or another scheme.",
        )


def mail_hash(raw_password, scheme=DEFAULT_SCHEME):
    """'{SCHEME}hash' for a DMS account line, salted freshly each call.

    Raises ValueError for a scheme not in SCHEMES, ValidationError naming 'password' for an empty
    password, one holding NUL, one over 4,096 bytes, or (BLF-CRYPT) one over 72 bytes.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: {scheme!r} is not one of {', '.join(SCHEMES)}.")
    _validate_password(raw_password, scheme)
    # The lowest level every mail password goes through: nothing over the limit is hashed.
    check_password_limits(raw_password)
    return f"{{{scheme}}}{_MAKERS[scheme].hash(raw_password)}"


def _passlib_form(scheme, body):
    """(handler, string passlib parses) for a Dovecot body. Raises ValueError when unsupported."""
    if scheme == "CRYPT":
        for start, handler in _CRYPT_FORMATS:
            if body.startswith(start):
                return handler, body
        if len(body) == 13:
            return des_crypt, body
        raise ValueError("crypt format not supported")
    if scheme not in _PASSLIB_SCHEMES:
        raise ValueError("scheme not supported")
    handler, passlib_prefix, body_start = _PASSLIB_SCHEMES[scheme]
    if not body.startswith(body_start):
        raise ValueError("hash does not match its scheme")
    return handler, passlib_prefix + body


def _checker(hashed):
    """A function bytes -> bool for a verifiable hash. Raises ValueError when unknown or malformed."""
    scheme = hash_scheme(hashed)
    if scheme is None:
        raise ValueError("no {SCHEME} prefix")
    body = hashed[hashed.index("}") + 1 :]
    if scheme in _PLAIN_DIGESTS:
        algorithm, size = _PLAIN_DIGESTS[scheme]
        digest = base64.b64decode(body, validate=True)
        if len(digest) != size:
            raise ValueError("digest has the wrong length")
        return lambda secret: hmac.compare_digest(hashlib.new(algorithm, secret).digest(), digest)
    handler, stored = _passlib_form(scheme, body)
    if not handler.from_string(stored).checksum:
        # passlib parses "$6$salt" as a configuration string: a salt without a hash.
        raise ValueError("hash has no checksum")
    if handler is bcrypt:
        # Mirror Dovecot, which verifies only the first 72 bytes rather than refusing longer passwords.
        return lambda secret: handler.verify(secret[:BCRYPT_MAX_PASSWORD_BYTES], stored)
    return lambda secret: handler.verify(secret, stored)


def verify_mail_hash(raw_password, hashed):
    """True when raw_password matches the Dovecot hash. False (never an exception) for a wrong password,
    an unsupported scheme (see VERIFIABLE_SCHEMES) or a malformed hash. Comparison is constant-time."""
    if not isinstance(raw_password, str) or not isinstance(hashed, str):
        return False
    if is_password_over_limit(raw_password):
        # No password that long was ever set (mail_hash refuses it), so it matches nothing: not hashed.
        return False
    try:
        return bool(_checker(hashed)(raw_password.encode("utf-8")))
    except Exception:
        # A stored hash that a library cannot read, for whatever reason, simply does not verify.
        return False


_DECOY_HASHES = {}


def spend_mail_hash_check(scheme=DEFAULT_SCHEME):
    """The work of verify_mail_hash against a hash of `scheme` made by mail_hash, for a failed sign-in that
    checked no mail hash: every failed sign-in then costs the same. The decoy hash is made once per process."""
    decoy = _DECOY_HASHES.get(scheme)
    if decoy is None:
        decoy = _DECOY_HASHES[scheme] = mail_hash(secrets.token_urlsafe(24), scheme)
    verify_mail_hash(secrets.token_urlsafe(24), decoy)


def is_valid_mail_hash(hashed):
    """True for a hash that can go into a DMS account line and that verify_mail_hash can check:
    a verifiable {SCHEME} prefix, a well-formed body, and no '|', ':', whitespace or control characters."""
    if not isinstance(hashed, str) or not hashed:
        return False
    if any(ch in "|:" or ch.isspace() or not ch.isprintable() for ch in hashed):
        return False
    if hash_scheme(hashed) not in VERIFIABLE_SCHEMES:
        return False
    try:
        _checker(hashed)
    except Exception:
        return False
    return True


class MailPasswordValidator:
    """AUTH_PASSWORD_VALIDATORS entry: refuses, in every password form, what the configured DMS
    hash scheme cannot take (a NUL, or over 72 bytes with BLF-CRYPT)."""

    def validate(self, password, user=None):
        from django.conf import settings

        try:
            _validate_password(password, settings.MAIL_HASH_SCHEME)
        except ValidationError as e:
            raise ValidationError(e.messages, code="mail_password") from None

    def get_help_text(self):
        # Shown to people without a mailbox too (the first administrator, a new sign-up).
        return "Once you have a mailbox, your password also signs you in to mail."
