"""How many password-reset and registration mails a visitor can make Dockspace send, per address and
per client (an IPv4 address, an IPv6 /64), counted in the shared cache.

Over a limit the request gets the same answer as any other and nothing is sent: the limit stops
mail bombing and mass sign-ups without telling anyone whether an address has an account.
"""

import hashlib
import time

from django.core.cache import cache

from dockspace.canonical import canonical_email
from dockspace.client_ip import client_ip_key

MAILS_PER_ADDRESS = 3  # per WINDOW_SECONDS, reset and registration mails together
MAILS_PER_CLIENT = 20
WINDOW_SECONDS = 60 * 60


def _count(name, now):
    """One more request in this name's current window; returns the window's count so far.

    Fixed windows (the hour's number is in the key) rather than a sliding one: add + incr is atomic
    on Redis and keeps the expiry, and touch restores it on backends whose incr rewrites the value."""
    window = int(now // WINDOW_SECONDS)
    key = f"accounts:mail-limit:{name}:{window}"
    timeout = int((window + 1) * WINDOW_SECONDS - now) + 60
    cache.add(key, 0, timeout)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr: this request starts the window
        cache.set(key, 1, timeout)
        count = 1
    cache.touch(key, timeout)
    return count


def mail_request_allowed(*, email, ip, now=None):
    """Count one request to mail `email` from client `ip`; True while both are within their limits."""
    now = time.time() if now is None else now
    # Counted on the canonical address: root@ｅxample.com and root@example.com. are root@example.com's mail.
    address = hashlib.sha256(canonical_email(email).encode()).hexdigest()  # no address in cache keys
    allowed = _count(f"address:{address}", now) <= MAILS_PER_ADDRESS
    client = client_ip_key(ip)
    if client:
        allowed = _count(f"client:{client}", now) <= MAILS_PER_CLIENT and allowed
    return allowed


NOT_SENT = " Not sent: too many requests for this address or from this client in the last hour."
