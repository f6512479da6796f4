"""What DEBUG's error pages may show. Used under `make run` (DEBUG=1):

- SafeReporterFilter: the technical 500 page masks DATABASE_URL, REDIS_URL, the Celery broker and
  backend, and the password in any URL with credentials (settings, request META, local variables).
- HideUrlListMiddleware: with DEBUG on a non-loopback address (DOCKSPACE_ALLOW_DEBUG_ON_NETWORK=1),
  a 404 is the plain "Page not found" page, not Django's list of every URL pattern.
"""

import re

from django.conf import settings
from django.views.debug import SafeExceptionReporterFilter

# Django's own names, plus the settings that hold URLs with credentials in them.
HIDDEN_SETTINGS = (
    "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|DATABASE_URL|REDIS_URL|BROKER_URL|RESULT_BACKEND|DSN"
)
# scheme://user:password@host -> scheme://user:********@host
CREDENTIAL_URL = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)(?P<password>[^/\s@]*)(?=@)", re.I)


def mask_url_credentials(text, substitute="********************"):
    return CREDENTIAL_URL.sub(lambda m: m.group("head") + substitute, text)


def _mask(value, substitute):
    if isinstance(value, str):
        return mask_url_credentials(value, substitute)
    if isinstance(value, dict):
        return {k: _mask(v, substitute) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_mask(v, substitute) for v in value)
    return value


class SafeReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(HIDDEN_SETTINGS, flags=re.I)

    def cleanse_setting(self, key, value):
        return super().cleanse_setting(key, _mask(value, self.cleansed_substitute))

    def get_traceback_frame_variables(self, request, tb_frame):
        return [
            (name, _mask(value, self.cleansed_substitute))
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]


class HideUrlListMiddleware:
    """DEBUG reachable from the network: answer 404s with the normal page (the technical 404 lists
    every URL of the site). Off unless settings.DEBUG_ON_NETWORK."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            settings.DEBUG
            and getattr(settings, "DEBUG_ON_NETWORK", False)
            and response.status_code == 404
            and response.get("Content-Type", "").startswith("text/html")
        ):
            from dockspace.errors import page_not_found

            return page_not_found(request)
        return response
