"""Limits every password meets, whichever way it is set: at most 4,096 bytes, and not only spaces.

The validator runs in every password form, command and import (AUTH_PASSWORD_VALIDATORS); the byte limit
is also checked where passwords are hashed (accounts.hashers, accounts.mail_hashes), so no path hashes a huge value.
"""

from django.core.exceptions import ValidationError

# passlib (the mail hashes) refuses longer secrets; nobody types more.
PASSWORD_MAX_BYTES = 4096


def _too_long(password, max_bytes):
    size = len(password.encode("utf-8", "surrogatepass"))
    if size <= max_bytes:
        return None
    return f"at most {max_bytes:,} bytes (UTF-8) are allowed; this one has {size:,}."


def check_password_limits(password, max_bytes=PASSWORD_MAX_BYTES):
    """Raises ValidationError({'password': ...}) for a password over the byte limit. For the hashing layer:
    forms report the same rule through PasswordLimitsValidator first."""
    if isinstance(password, bytes):
        password = password.decode("utf-8", "replace")
    problem = _too_long(password, max_bytes)
    if problem:
        raise ValidationError({"password": ValidationError(problem, code="password_too_long")})


def is_password_over_limit(password, max_bytes=PASSWORD_MAX_BYTES):
    return isinstance(password, str) and _too_long(password, max_bytes) is not None


class PasswordLimitsValidator:
    """AUTH_PASSWORD_VALIDATORS entry: at most `max_bytes` bytes (UTF-8), and not only whitespace."""

    def __init__(self, max_bytes=PASSWORD_MAX_BYTES):
        self.max_bytes = max_bytes

    def validate(self, password, user=None):
        problem = _too_long(password, self.max_bytes)
        if problem:
            raise ValidationError(f"This password is too long: {problem}", code="password_too_long")
        if not password.strip():
            raise ValidationError("A password made only of spaces is not allowed.", code="password_blank")

    def get_help_text(self):
        return f"At most {self.max_bytes:,} bytes, and not only spaces."
