"""Every HTTP request Dockspace makes to the outside world (alert webhooks, the Telegram Bot API) goes through
post() here: http:// and https:// only, connect and read timeouts, certificates verified, a bounded response,
and no redirect followed (a 3xx is an answer like any other, so a receiver cannot send the request elsewhere).
Errors name the scheme, host and port only: a URL's path or query may hold a token.

Whoever may edit a channel chooses the URL, so Dockspace must not become their way into its own network: the
host is resolved once, every address it resolves to is checked (loopback, private, link-local, multicast,
reserved, unspecified and other non-public addresses, their IPv4-mapped IPv6 forms too, are refused unless
settings.OUTBOUND_ALLOWED_NETWORKS holds them), and the connection goes to a checked address, not to a second
lookup's answer (which DNS could change in between). The Host header, TLS SNI and the certificate check keep the
URL's host name."""

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

TIMEOUT_SECONDS = 10
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "Dockspace-alerts/1"
ALLOW_VARIABLE = "DOCKSPACE_OUTBOUND_ALLOWED_NETWORKS"
# What an address is, first match wins (an address can be several: ::1 is loopback and reserved).
_REFUSED_KINDS = (
    ("is_unspecified", "an unspecified address"),
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address"),
    ("is_multicast", "a multicast address"),
    ("is_reserved", "a reserved address"),
    ("is_private", "a private address"),
    ("is_site_local", "a site-local address"),
)


class OutboundError(Exception):
    """The request could not be made or answered (refused URL, DNS, connection, TLS, timeout). is_permanent: the
    same request can never succeed (the URL or its address is refused), so retrying is pointless."""

    is_permanent = False


class RefusedURL(OutboundError):
    """post() does not request this URL (scheme, credentials, port, or its address)."""

    is_permanent = True


class RefusedAddress(RefusedURL):
    """The host is, or resolves to, an address Dockspace may not reach (see the module's docstring)."""

    def __init__(self, host, address, reason):
        self.host, self.address, self.reason = host, address, reason
        named = "" if host == str(address) else f" (of {host})"
        super().__init__(f"address {address}{named} is {reason}; allow it with {ALLOW_VARIABLE}")


def refusal_reason(address, allowed=()):
    """Why `address` (an ipaddress address) may not be reached, as "a loopback address"; "" when it may: a public
    address, or one inside a network of `allowed`."""
    if any(address in network for network in allowed):
        return ""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:  # ::ffff:127.0.0.1 is 127.0.0.1 to the kernel
        reason = refusal_reason(mapped, allowed)
        return f"the IPv4-mapped form of {mapped}, {reason}" if reason else ""
    for attribute, reason in _REFUSED_KINDS:
        if getattr(address, attribute, False):
            return reason
    if not address.is_global:  # e.g. 100.64.0.0/10, carrier-grade NAT: some clouds serve metadata there
        return "not a public address"
    return ""


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def is_success(self):
        return 200 <= self.status < 300

    def describe(self):
        """'HTTP 503', with the origin a redirect pointed to (never followed; its path may hold a token)."""
        text = f"HTTP {self.status}"
        if 300 <= self.status < 400:
            text += f" (a redirect to {origin(self.headers.get('location', ''))}; redirects are not followed)"
        return text


def origin(url):
    """scheme://host[:port] of `url`: what an error message may show of it."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def _parts(url):
    """(split URL, port) of an URL post() may request; RefusedURL otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedURL(f"{origin(url)}: only http:// and https:// URLs with a host are allowed")
    if parts.username or parts.password:
        raise RefusedURL(f"{origin(url)}: a URL holding a user name or password is refused")
    try:
        port = parts.port
    except ValueError:
        raise RefusedURL(f"{origin(url)}: the port is not a number") from None
    return parts, port or (443 if parts.scheme == "https" else 80)


def resolve_checked(url):
    """The addresses (getaddrinfo's family, type, proto, sockaddr) `url`'s host resolves to, all of them checked:
    RefusedAddress when ANY of them is refused (a name with one public and one internal address is refused),
    RefusedURL for an URL post() does not request, OutboundError when the name does not resolve."""
    parts, port = _parts(url)
    host = parts.hostname
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundError(f"{origin(url)}: the host name does not resolve ({exc})") from None
    allowed = tuple(settings.OUTBOUND_ALLOWED_NETWORKS)
    addresses = {}
    for family, type_, proto, _name, sockaddr in found:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(sockaddr[0])
        reason = refusal_reason(address, allowed)
        if reason:
            raise RefusedAddress(host, address, reason)
        addresses.setdefault(sockaddr, (family, type_, proto, sockaddr))
    if not addresses:
        raise OutboundError(f"{origin(url)}: the host name resolves to no IP address")
    return list(addresses.values())


def check_without_lookup(url):
    """What can be refused of `url` without asking DNS (a form's early word; post() checks every address again):
    RefusedURL for an URL post() does not request, RefusedAddress for a literal address or a `localhost` name
    that is refused. A host name is otherwise left to the send."""
    parts, _port = _parts(url)
    host = parts.hostname.rstrip(".").lower()
    allowed = tuple(settings.OUTBOUND_ALLOWED_NETWORKS)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: always loopback
            address = ipaddress.ip_address("127.0.0.1")
        else:
            return
    reason = refusal_reason(address, allowed)
    if reason:
        raise RefusedAddress(parts.hostname, address, reason)


class _PinnedConnection:
    """Connects to addresses resolve_checked() returned instead of looking self.host up again; the Host header
    (and for https the SNI and the certificate's name) stay self.host."""

    def __init__(self, *args, addresses, **kwargs):
        super().__init__(*args, **kwargs)
        self._addresses = addresses
        self._create_connection = self._connect_checked  # what connect() calls in place of create_connection

    def _connect_checked(self, _host_port, timeout, source_address=None):
        failure = None
        for family, type_, proto, sockaddr in self._addresses:
            sock = socket.socket(family, type_, proto)
            try:
                sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                failure = exc
        raise failure


class _PinnedHTTPConnection(_PinnedConnection, http.client.HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnection, http.client.HTTPSConnection):
    pass


def post(url, body, headers, *, timeout=TIMEOUT_SECONDS):
    """POST `body` (bytes) to `url` with `headers`; the Response, or OutboundError (RefusedURL, RefusedAddress
    when the URL or its address may not be requested)."""
    parts, port = _parts(url)
    addresses = resolve_checked(url)
    if parts.scheme == "https":
        connection = _PinnedHTTPSConnection(
            parts.hostname, port, timeout=timeout, context=ssl.create_default_context(), addresses=addresses
        )
    else:
        connection = _PinnedHTTPConnection(parts.hostname, port, timeout=timeout, addresses=addresses)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", target, body=body, headers={"User-Agent": USER_AGENT, **headers})
        answer = connection.getresponse()
        data = answer.read(MAX_RESPONSE_BYTES)
        return Response(answer.status, {name.lower(): value for name, value in answer.getheaders()}, data)
    except TimeoutError:
        raise OutboundError(f"{origin(url)}: no answer within {timeout:g} seconds") from None
    except (OSError, http.client.HTTPException) as exc:
        raise OutboundError(f"{origin(url)}: {type(exc).__name__}: {exc}") from None
    finally:
        connection.close()
