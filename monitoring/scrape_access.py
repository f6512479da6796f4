"""Who may read /metrics: with DOCKSPACE_METRICS_TOKEN set, whoever sends `Authorization: Bearer <token>` (compared
in constant time), from anywhere; unset, only a client on this machine talking to Dockspace directly.

"Directly": the peer address (REMOTE_ADDR) is loopback AND the request carries none of the headers a reverse proxy
adds (X-Forwarded-For, Forwarded, X-Real-IP, X-Forwarded-Host, X-Forwarded-Proto). A proxy on the same machine
connects from loopback for every client on the internet; its headers give it away, whether or not it is one of
DOCKSPACE_TRUSTED_PROXIES (dockspace.client_ip would name the client only for those). A local proxy that adds none
of them cannot be told apart: behind one, set the token (or have the proxy refuse /metrics)."""

import hmac
import ipaddress
from dataclasses import dataclass, field

from django.conf import settings
from django.http import HttpRequest

FORWARDING_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_FORWARDED",
    "HTTP_X_REAL_IP",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PROTO",
)
REALM = 'Bearer realm="Dockspace metrics"'


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


def _is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def is_direct_loopback(request: HttpRequest) -> bool:
    if any(request.META.get(header) for header in FORWARDING_HEADERS):
        return False
    return _is_loopback(request.META.get("REMOTE_ADDR", ""))


def _bearer(request: HttpRequest) -> str | None:
    scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def scrape_refusal(request: HttpRequest) -> Refusal | None:
    """None when the request may read /metrics; else what to answer (the same for every wrong token)."""
    token = settings.METRICS_TOKEN
    if token:
        given = _bearer(request)
        if given is None:
            return Refusal(
                401,
                "Unauthorized: send Authorization: Bearer <DOCKSPACE_METRICS_TOKEN>.\n",
                {"WWW-Authenticate": REALM},
            )
        if not hmac.compare_digest(given.encode(), token.encode()):
            return Refusal(
                401, "Unauthorized: wrong bearer token.\n", {"WWW-Authenticate": f'{REALM}, error="invalid_token"'}
            )
        return None
    if is_direct_loopback(request):
        return None
    return Refusal(403, "Forbidden: /metrics answers loopback only, unless DOCKSPACE_METRICS_TOKEN is set.\n")
