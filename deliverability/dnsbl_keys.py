"""A blocklist's access key (Spamhaus DQS): read from an environment variable the list names, or stored encrypted with
a key derived from SECRET_KEY, so a database dump alone does not reveal it. The same scheme as monitoring's channel
secrets (a sibling app deliverability may not import). Never rendered, never logged: the key is part of every query
name, so query names are never stored or shown either."""

import base64
import re

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from dockspace.env import env_str

# A list may only read variables made for it, never another of Dockspace's secrets (it would go out in DNS queries).
ENV_PREFIX = "DOCKSPACE_DNSBL_"
ENV_NAME_RULE = re.compile(rf"{ENV_PREFIX}[A-Z0-9_]+\Z")
KEY_RULE = re.compile(r"[a-z0-9]{8,64}\Z")
_INFO = b"dockspace dnsbl access key"


class KeyUnavailable(Exception):
    """The list's key cannot be had here; the message says why and names no key."""


def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"dockspace", info=_INFO).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(value: str) -> str:
    return _fernet(settings.SECRET_KEY).encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    for key in [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]:
        try:
            return _fernet(key).decrypt(token.encode()).decode()
        except InvalidToken:
            continue
    raise KeyUnavailable("the stored access key cannot be decrypted (SECRET_KEY changed?): set it again")


def access_key(env_name: str, encrypted: str) -> str:
    """The key to query with ("" when the list has none): the variable's value when one is named, else the stored
    one. KeyUnavailable when a named variable is unset or the stored key cannot be decrypted."""
    if env_name:
        try:
            value = env_str(env_name, "")
        except ImproperlyConfigured as exc:
            raise KeyUnavailable(str(exc)) from None
        if not value:
            raise KeyUnavailable(f"the environment variable {env_name} is not set in this process")
        return value.strip().lower()
    return decrypt(encrypted) if encrypted else ""


def key_state(env_name: str, encrypted: str) -> str:
    """What the admin and the command show instead of the key."""
    if env_name:
        try:
            access_key(env_name, "")
        except KeyUnavailable:
            return f"not set: {env_name} is not set in this process"
        return f"set (from {env_name})"
    return "set (stored encrypted)" if encrypted else "none"
