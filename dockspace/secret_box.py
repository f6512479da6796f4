"""Secrets kept out of a database dump: stored encrypted with a key derived from SECRET_KEY (HKDF-SHA256, salt
"dockspace", one `info` per use so one use's ciphertext is no other's), or read from an environment variable (or
NAME_FILE). The part monitoring's channel secrets and deliverability's blocklist keys share; each keeps its own rules
(which variables it may read) and its own exception."""

import base64
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from dockspace.env import env_str


def _fernet(secret_key: str, info: bytes) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"dockspace", info=info).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


@dataclass(frozen=True)
class SecretBox:
    """One use's secrets. `unavailable` is raised with a message that names no secret: `undecryptable` when no key
    (SECRET_KEY, then SECRET_KEY_FALLBACKS, a key being rotated) decrypts a stored value."""

    info: bytes
    unavailable: type[Exception]
    undecryptable: str

    def encrypt(self, value: str) -> str:
        return _fernet(settings.SECRET_KEY, self.info).encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        for key in [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]:
            try:
                return _fernet(key, self.info).decrypt(token.encode()).decode()
            except InvalidToken:
                continue
        raise self.unavailable(self.undecryptable)

    def from_environment(self, name: str) -> str:
        """The value of the variable `name` (or the file NAME_FILE names) in this process."""
        try:
            value = env_str(name, "")
        except ImproperlyConfigured as exc:
            raise self.unavailable(str(exc)) from None
        if not value:
            raise self.unavailable(f"the environment variable {name} is not set in this process")
        return value
