"""A Django password hasher for Dovecot hashes, so a person adopted from a DMS accounts file or imported from a
CSV file signs in to Dockspace with their mail password; Django re-hashes it with the preferred hasher (Argon2)
on that sign-in. An import thus costs one mail hash per row, not a mail hash and an Argon2 hash.
"""

from django.contrib.auth.hashers import BasePasswordHasher, mask_hash
from django.utils.translation import gettext_noop as _

from accounts.mail_hashes import (
    DEFAULT_SCHEME,
    VERIFIABLE_SCHEMES,
    hash_scheme,
    is_valid_mail_hash,
    mail_hash,
    verify_mail_hash,
)
from dockspace.validation import field_error

ALGORITHM = "dms"
# accounts.User.password is a CharField(max_length=255) (widened from 128 for adopted hashes).
DJANGO_PASSWORD_MAX_LENGTH = 255


def django_password_from_mail_hash(hashed):
    """'dms$' + the Dovecot hash, ready for User.password. Raises ValidationError naming 'password_hash'
    for a hash this hasher cannot verify or one too long for the password column."""
    if not is_valid_mail_hash(hashed):
        scheme = hash_scheme(hashed)
        if scheme is None:
            reason = "it has no {SCHEME} prefix"
        elif scheme not in VERIFIABLE_SCHEMES:
            reason = f"Dockspace cannot verify the {scheme} scheme"
        else:
            reason = f"it is not a well-formed {scheme} hash"
        raise field_error("password_hash", f"{reason}.")
    encoded = f"{ALGORITHM}${hashed}"
    if len(encoded) > DJANGO_PASSWORD_MAX_LENGTH:
        raise field_error(
            "password_hash",
            f"too long to keep as a Dockspace password "
            f"({len(encoded)} characters, at most {DJANGO_PASSWORD_MAX_LENGTH}); the person must reset it.",
        )
    return encoded


class DmsCryptPasswordHasher(BasePasswordHasher):
    """Encoded form: "dms$" + a Dovecot hash, e.g. "dms${SHA512-CRYPT}$6$salt$hash".

    Django's identify_hasher reads the algorithm up to the first '$', so the Dovecot hash can hold
    '$' freely. Listed after the preferred hasher in PASSWORD_HASHERS, never first.
    """

    algorithm = ALGORITHM
    scheme = DEFAULT_SCHEME
    # Read by accounts.backends: a failed check against this hash is topped up with an Argon2 decoy.
    checks_mail_hash = True

    def _mail_hash(self, encoded):
        algorithm, _sep, hashed = encoded.partition("$")
        if algorithm != self.algorithm:
            raise ValueError(f"not a {self.algorithm} password")
        return hashed

    def encode(self, password, salt):
        # The Dovecot scheme makes its own salt; Django's is checked for the contract and then unused.
        self._check_encode_args(password, salt)
        return f"{self.algorithm}${mail_hash(password, self.scheme)}"

    def decode(self, encoded):
        hashed = self._mail_hash(encoded)
        scheme = hash_scheme(hashed)
        body = hashed[len(scheme) + 2 :] if scheme else hashed
        return {"algorithm": self.algorithm, "scheme": scheme, "hash": body, "salt": ""}

    def verify(self, password, encoded):
        try:
            hashed = self._mail_hash(encoded)
        except ValueError:
            return False
        return verify_mail_hash(password, hashed)

    def safe_summary(self, encoded):
        decoded = self.decode(encoded)
        return {
            _("algorithm"): decoded["algorithm"],
            _("scheme"): decoded["scheme"],
            _("hash"): mask_hash(decoded["hash"]),
        }

    def must_update(self, encoded):
        # Always: a Dovecot hash is only a bridge until the first successful sign-in.
        return True

    def harden_runtime(self, password, encoded):
        # Nothing to bridge: the work factor is whatever the adopted hash carries.
        pass
