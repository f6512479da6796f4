"""The origins Dockspace's sign-in and consent forms may end at: every registered app's redirect and
post-logout URIs (read by dockspace.csp for the Content-Security-Policy form-action)."""

import re
from urllib.parse import urlsplit

from django.core.cache import cache
from django.db import transaction

from oidc.models import Application

# The origins, kept in the shared cache (Redis, or the data directory's file cache) for a few minutes at most,
# and forgotten when a client is saved or deleted (forget_redirect_origins, connected in OidcConfig.ready) or
# after a migration: every sign-in page needs them. The timeout bounds what a change that sends no signal
# (a QuerySet.update, a restored database) or a race with a page reading the old rows can leave behind.
CACHE_KEY = "oidc:redirect-origins:v1"
CACHE_SECONDS = 300

# Only a plain host[:port] goes into the header: anything else could end the directive (`;`).
HOST_PORT = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def redirect_origins():
    origins = cache.get(CACHE_KEY)
    if origins is None:
        origins = _registered_origins()
        cache.set(CACHE_KEY, origins, CACHE_SECONDS)
    return set(origins)


def forget_redirect_origins(**kwargs):
    """Forget now, and again once the transaction commits: a page read in between would cache the old list."""
    cache.delete(CACHE_KEY)
    transaction.on_commit(lambda: cache.delete(CACHE_KEY))


def _registered_origins():
    origins = set()
    for redirect_uris, logout_uris in Application.objects.values_list("redirect_uris", "post_logout_redirect_uris"):
        for uri in f"{redirect_uris} {logout_uris}".split():
            parts = urlsplit(uri)
            host = parts.netloc.rpartition("@")[2]
            if parts.scheme in ("http", "https") and HOST_PORT.fullmatch(host):
                origins.add(f"{parts.scheme}://{host}")
    return sorted(origins)
