"""A blocklist's access key (Spamhaus DQS): read from an environment variable the list names, or stored encrypted with
a key derived from SECRET_KEY (dockspace.secret_box, as monitoring's channel secrets), so a database dump alone does
not reveal it. Never rendered, never logged: the key is part of every query name, so query names are never stored or
shown either."""

import re

from dockspace.secret_box import SecretBox

# A list may only read variables made for it, never another of Dockspace's secrets (it would go out in DNS queries).
ENV_PREFIX = "DOCKSPACE_DNSBL_"
ENV_NAME_RULE = re.compile(rf"{ENV_PREFIX}[A-Z0-9_]+\Z")
KEY_RULE = re.compile(r"[a-z0-9]{8,64}\Z")


class KeyUnavailable(Exception):
    """The list's key cannot be had here; the message says why and names no key."""


_BOX = SecretBox(
    info=b"dockspace dnsbl access key",
    unavailable=KeyUnavailable,
    undecryptable="the stored access key cannot be decrypted (SECRET_KEY changed?): set it again",
)
encrypt = _BOX.encrypt
decrypt = _BOX.decrypt


def access_key(env_name: str, encrypted: str) -> str:
    """The key to query with ("" when the list has none): the variable's value when one is named, else the stored
    one. KeyUnavailable when a named variable is unset or the stored key cannot be decrypted."""
    if env_name:
        return _BOX.from_environment(env_name).strip().lower()
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
