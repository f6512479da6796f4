"""System checks of the OIDC provider's settings (run by `manage.py check`; registered by OidcConfig.ready()).
Their ids keep the dockspace.E prefix they were documented with."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, register

from oidc.hashers import ALGORITHM


@register()
def check_oidc_settings(app_configs=None, **kwargs):
    problems = []
    if urlsplit(settings.DOCKSPACE_URL).path not in ("", "/"):
        problems.append(
            Error(
                f"DOCKSPACE_URL {settings.DOCKSPACE_URL!r} has a path; it is the OIDC issuer and discovery "
                "lives at the site root.",
                hint="Serve Dockspace at the root of its own host name, e.g. https://id.example.com.",
                id="dockspace.E003",
            )
        )
    hashers = settings.PASSWORD_HASHERS
    if hashers and hashers[0].endswith("ClientSecretSHA256Hasher"):
        problems.append(
            Error(
                "The OIDC client-secret hasher is first in PASSWORD_HASHERS: people's passwords would be "
                "hashed with a fast hash.",
                hint=f"Keep {ALGORITHM!r} last in PASSWORD_HASHERS.",
                id="dockspace.E004",
            )
        )
    return problems
