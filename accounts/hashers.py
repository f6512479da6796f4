"""The hasher of people's passwords: Argon2id with the cost chosen in settings (DOCKSPACE_ARGON2_*), and the
"wasted" check that makes a failed sign-in cost the same whatever the account.

A hash stored with other parameters (Django's default 100 MiB / 8 lanes, or an older setting) still verifies,
and Django rewrites it with the configured parameters at the person's next successful sign-in (must_update).
"""

from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher, make_password
from django.utils.crypto import get_random_string

from accounts.validators import check_password_limits


class DockspaceArgon2PasswordHasher(Argon2PasswordHasher):
    """Django's Argon2id hasher with memory, passes and lanes from settings. The algorithm name stays
    "argon2", so every hash Django's own hasher wrote is read by this one (and upgraded)."""

    @property
    def memory_cost(self):
        return settings.ARGON2_MEMORY_KIB

    @property
    def time_cost(self):
        return settings.ARGON2_TIME_COST

    @property
    def parallelism(self):
        return settings.ARGON2_PARALLELISM

    def encode(self, password, salt):
        # The lowest level every web password goes through (set_password, make_password): nothing
        # over the limit is ever hashed, whichever form or command forgot to validate.
        check_password_limits(password)
        return super().encode(password, salt)

    def harden_runtime(self, password, encoded):
        """A wrong password against a hash cheaper than the configured cost (the parameters were raised
        since) spends the difference, so it takes as long as against an up-to-date hash. A dearer old hash
        (Django's default) cannot be made faster: it stays slower until its owner signs in once."""
        old = self.decode(encoded)["params"]
        missing = self.memory_cost * self.time_cost - old.memory_cost * old.time_cost
        passes = round(missing / self.memory_cost)  # at the configured memory; under half a pass is not worth one
        if passes < 1:
            return
        argon2 = self._load_library()
        argon2.low_level.hash_secret(
            password.encode(),
            get_random_string(16).encode(),
            time_cost=passes,
            memory_cost=self.memory_cost,
            parallelism=1,
            hash_len=argon2.DEFAULT_HASH_LENGTH,
            type=argon2.low_level.Type.ID,
        )


def spend_password_check():
    """The work of checking one password against an up-to-date hash, for a sign-in that has no such hash to
    check (unknown address, a hash adopted from mail): the answer then takes as long as a real check."""
    make_password(get_random_string(32))
