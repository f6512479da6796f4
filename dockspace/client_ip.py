"""The client's IP address, believing X-Forwarded-For only from configured reverse proxies."""

import ipaddress

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks() -> list[Network]:
    return [ipaddress.ip_network(item, strict=False) for item in settings.TRUSTED_PROXIES]


def _is_trusted(address: str, networks: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_ip(request: HttpRequest) -> str | None:
    remote = request.META.get("REMOTE_ADDR", "") or None
    networks = _networks()
    if not remote or not networks or not _is_trusted(remote, networks):
        return remote
    # Walk X-Forwarded-For from the right: the first address not a trusted proxy is the client.
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    for address in reversed(forwarded):
        if not _is_trusted(address, networks):
            try:
                return str(ipaddress.ip_address(address))
            except ValueError:
                return remote
    return remote


IPV6_CLIENT_PREFIX = 64  # what one customer gets from a provider: one address per device, many per person


def client_ip_key(ip: str | None) -> str | None:
    """What limits per client count against: an IPv4 address as is, an IPv6 address by its /64.

    Anyone with one IPv6 address can use the 2^64 addresses of their network, so counting full
    addresses would give each guess a fresh counter. An IPv4 address carried in IPv6 counts as IPv4."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 6 and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(address)
