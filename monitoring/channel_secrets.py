"""Notification channels' secrets (a webhook's signing secret, a Telegram bot token): read from an environment
variable the channel names, or stored encrypted in the database with a key derived from SECRET_KEY, so a database
dump or backup alone does not reveal them. Never rendered, never logged."""

import base64
import re

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from dockspace.env import env_str

# A channel may only read variables made for it, never another of Dockspace's secrets (SECRET_KEY, DATABASE_URL...)
# that a Telegram channel would then send to Telegram as its token.
ENV_PREFIX = "DOCKSPACE_ALERT_"
ENV_NAME_RULE = re.compile(rf"{ENV_PREFIX}[A-Z0-9_]+\Z")
_INFO = b"dockspace monitoring channel secret"


class SecretUnavailable(Exception):
    """The channel's secret cannot be had here; the message says why and names no secret."""


def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"dockspace", info=_INFO).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(value: str) -> str:
    return _fernet(settings.SECRET_KEY).encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    """The stored secret; the keys in SECRET_KEY_FALLBACKS are tried after SECRET_KEY (a key being rotated)."""
    for key in [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]:
        try:
            return _fernet(key).decrypt(token.encode()).decode()
        except InvalidToken:
            continue
    raise SecretUnavailable(
        "the stored secret cannot be decrypted (SECRET_KEY changed without SECRET_KEY_FALLBACKS?): set it again"
    )


def from_environment(name: str) -> str:
    """The value of the variable `name` (or the file NAME_FILE names) in this process."""
    try:
        value = env_str(name, "")
    except ImproperlyConfigured as exc:
        raise SecretUnavailable(str(exc)) from None
    if not value:
        raise SecretUnavailable(f"the environment variable {name} is not set in this process")
    return value
