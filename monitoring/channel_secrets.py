"""Notification channels' secrets (a webhook's signing secret, a Telegram bot token): read from an environment
variable the channel names, or stored encrypted in the database with a key derived from SECRET_KEY
(dockspace.secret_box), so a database dump or backup alone does not reveal them. Never rendered, never logged."""

import re

from dockspace.secret_box import SecretBox

# A channel may only read variables made for it, never another of Dockspace's secrets (SECRET_KEY, DATABASE_URL...)
# that a Telegram channel would then send to Telegram as its token.
ENV_PREFIX = "DOCKSPACE_ALERT_"
ENV_NAME_RULE = re.compile(rf"{ENV_PREFIX}[A-Z0-9_]+\Z")


class SecretUnavailable(Exception):
    """The channel's secret cannot be had here; the message says why and names no secret."""


_BOX = SecretBox(
    info=b"dockspace monitoring channel secret",
    unavailable=SecretUnavailable,
    undecryptable="the stored secret cannot be decrypted (SECRET_KEY changed without SECRET_KEY_FALLBACKS?): set it "
    "again",
)
encrypt = _BOX.encrypt
decrypt = _BOX.decrypt
from_environment = _BOX.from_environment
