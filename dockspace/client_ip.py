"""The client's IP address, believing X-Forwarded-For only from configured reverse proxies."""

import ipaddress

from django.conf import settings


def _networks():
    return [ipaddress.ip_network(item, strict=False) for item in settings.TRUSTED_PROXIES]


def _is_trusted(address, networks):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_ip(request):
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
