"""The client-secret hasher: salted SHA-256, for generated 128-character secrets only.

A password KDF (Argon2 at 100 MiB here) buys nothing against a secret with ~760 bits of entropy and
would make every token request cost a KDF run. Never used for people's passwords: it is listed last
in PASSWORD_HASHERS, a system check keeps it there, and a person's password stored with it never matches.
"""

import hashlib

from django.contrib.auth.hashers import BasePasswordHasher, mask_hash
from django.utils.crypto import constant_time_compare

ALGORITHM = "dockspace_client_sha256"


class ClientSecretSHA256Hasher(BasePasswordHasher):
    algorithm = ALGORITHM
    for_passwords = False  # accounts.User.check_password refuses a person's password hashed with it

    def encode(self, password, salt):
        self._check_encode_args(password, salt)
        digest = hashlib.sha256(f"{salt}${password}".encode()).hexdigest()
        return f"{self.algorithm}${salt}${digest}"

    def decode(self, encoded):
        algorithm, salt, digest = encoded.split("$", 2)
        if algorithm != self.algorithm:
            raise ValueError("not a client-secret hash")
        return {"algorithm": algorithm, "salt": salt, "hash": digest}

    def verify(self, password, encoded):
        try:
            salt = self.decode(encoded)["salt"]
        except ValueError:
            return False
        return constant_time_compare(encoded, self.encode(password, salt))

    def safe_summary(self, encoded):
        decoded = self.decode(encoded)
        return {
            "algorithm": decoded["algorithm"],
            "salt": mask_hash(decoded["salt"], show=2),
            "hash": mask_hash(decoded["hash"]),
        }

    def harden_runtime(self, password, encoded):
        pass
