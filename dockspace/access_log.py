"""gunicorn's access log without live secrets: password-reset and registration links carry a token in
their path (accounts/urls.py), which must not land in a log file. Used by `make run` and the image
(`--logger-class dockspace.access_log.MaskingLogger`)."""

import logging
import re

from gunicorn.glogging import Logger

MASK = "***"
# The token segment of /password/reset/<uidb64>/<token>/ (not Django's own .../set-password/ step)
# and of /register/confirm/<uidb64>/<token>/. A test reverses the real URLs, so a renamed path fails it.
SECRET_PATHS = [
    re.compile(r"(/password/reset/[^/?#\s]+/)(?!set-password/)[^/?#\s]+"),
    re.compile(r"(/register/confirm/[^/?#\s]+/)[^/?#\s]+"),
]


def mask_secret_paths(text):
    """TEXT with the token of every reset or registration path replaced by ***."""
    for pattern in SECRET_PATHS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


class MaskingLogger(Logger):
    """Every access-log field (request line, path, referrer, headers) goes through mask_secret_paths."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key, value in atoms.items():
            if isinstance(value, str) and "/" in value:
                atoms[key] = mask_secret_paths(value)
        return atoms


class MaskSecretPathsFilter(logging.Filter):
    """For Django's own log lines ("Bad Request: /register/confirm/<uid>/<token>/"): same masking."""

    def filter(self, record):
        message = record.getMessage()
        masked = mask_secret_paths(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True
