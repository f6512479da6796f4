"""Every HTTP request Dockspace makes to the outside world (alert webhooks and the Telegram Bot API through post(),
MTA-STS policy files through get()): http:// and https:// only, connect and read timeouts, certificates verified
(the system's store, plus settings.OUTBOUND_CA_BUNDLE when set), a bounded response, and no redirect followed (a
3xx is an answer like any other, so a receiver cannot send the request elsewhere). Errors name the scheme, host and
port only: a URL's path or query may hold a token.

Whoever chooses the URL (who may edit a channel, who publishes a domain's DNS) must not make Dockspace their way
into its own network: the host is resolved once (getaddrinfo, or the caller's `resolve`), every address it resolves
to is checked (loopback, private, link-local, multicast, reserved, unspecified and other non-public addresses,
their IPv4-mapped IPv6 forms too, are refused unless settings.OUTBOUND_ALLOWED_NETWORKS holds them), and the
connection goes to a checked address, not to a second lookup's answer (which DNS could change in between). The
Host header, TLS SNI and the certificate check keep the URL's host name.

The whole request (connect, TLS, send, the answer) must be over within its timeout: a server that drips its answer
a byte at a time cannot hold the caller (a web thread sending a test) for longer.

Messages say "address 127.0.0.1 is a loopback address; ...": the caller puts what was being reached in front
("webhook address ...", "Telegram address ...", "MTA-STS policy host address ...")."""

import http.client
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

TIMEOUT_SECONDS = 10
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "Dockspace/1"
ALLOW_VARIABLE = "DOCKSPACE_OUTBOUND_ALLOWED_NETWORKS"
# A caller's own resolver: host name -> its IP addresses as text; OutboundError when the name does not resolve.
Resolve = Callable[[str], Iterable[str]]
# What a request line cannot carry as it is: http.client would refuse it with an error quoting the path (which may
# hold a token), or fail to encode it; urlsplit would silently drop a tab or line break. A receiver's URL spells
# these percent-encoded (%20). Non-ASCII is fine in the host (an IDN), not in the path or query.
_WHITESPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# How getaddrinfo reads an IPv4 address (inet_aton): 127.1, 2130706433, 0x7f000001 and 0177.0.0.1 are 127.0.0.1.
_IPV4_NUMBER = re.compile(r"[0-9a-fA-FxX.]+\Z")
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052's well-known prefix: the last 32 bits are IPv4
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
    """post() and get() do not request this URL (scheme, credentials, port, or its address)."""

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
    embedded = _embedded_ipv4(address)
    if embedded is not None:  # ::ffff:127.0.0.1 is 127.0.0.1 to the kernel; 6to4 and NAT64 lead to theirs too
        form, ipv4 = embedded
        reason = refusal_reason(ipv4, allowed)
        return f"the {form} form of {ipv4}, {reason}" if reason else ""
    for attribute, reason in _REFUSED_KINDS:
        if getattr(address, attribute, False):
            return reason
    if not address.is_global:  # e.g. 100.64.0.0/10, carrier-grade NAT: some clouds serve metadata there
        return "not a public address"
    return ""


def _embedded_ipv4(address):
    """(form, IPv4 address) of an IPv6 address that leads to an IPv4 one: IPv4-mapped (::ffff:a.b.c.d), 6to4
    (2002:aabb:ccdd::/48) and NAT64 (64:ff9b::a.b.c.d); None otherwise."""
    if address.version != 6:
        return None
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    if address in NAT64_PREFIX:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


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
    """scheme://host[:port] of `url`: what an error message may show of it. Never raises (a malformed URL: "?")."""
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed or invalid [IPv6] host
        return "(a malformed URL)"
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def url_problem(url):
    """Why post() refuses `url` whatever its address ("" when it does not): the rule the channel's model checks
    too. Never quotes the URL (its path or query may hold a token)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a well-formed URL (an IPv6 address goes in brackets: http://[2001:db8::1]/)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "only http:// and https:// URLs with a host are allowed"
    if parts.username or parts.password:
        return "a URL holding a user name or password is refused"
    try:
        parts.port  # noqa: B018 (the property checks the port)
    except ValueError:
        return "the port is not a number (1 to 65535)"
    if _WHITESPACE_OR_CONTROL.search(url) or _NON_ASCII.search(parts.path + parts.query):
        return "spaces, control characters and non-ASCII characters must be percent-encoded in the URL (e.g. %20)"
    return ""


def _parts(url):
    """(split URL, port) of an URL post() may request; RefusedURL otherwise."""
    problem = url_problem(url)
    if problem:
        raise RefusedURL(f"{origin(url)}: {problem}")
    parts = urlsplit(url)
    return parts, parts.port or (443 if parts.scheme == "https" else 80)


def resolve_checked(url, resolve=None):
    """The addresses (family, type, proto, sockaddr) `url`'s host resolves to, all of them checked: RefusedAddress
    when ANY of them is refused (a name with one public and one internal address is refused), RefusedURL for an URL
    post() does not request, OutboundError when the name does not resolve. `resolve`: the caller's resolver (host
    -> addresses) in place of getaddrinfo; a literal address is never looked up."""
    parts, port = _parts(url)
    host = parts.hostname
    if resolve is None:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as exc:
            raise OutboundError(f"{origin(url)}: the host name does not resolve ({exc})") from None
        families = (socket.AF_INET, socket.AF_INET6)
        candidates = [(ipaddress.ip_address(info[4][0]), info[4]) for info in found if info[0] in families]
    else:
        literal = literal_address(host)
        texts = [str(literal)] if literal is not None else resolve(host)
        candidates = [(address, _sockaddr(address, port)) for address in map(ipaddress.ip_address, texts)]
    allowed = tuple(settings.OUTBOUND_ALLOWED_NETWORKS)
    addresses = {}
    for address, sockaddr in candidates:
        reason = refusal_reason(address, allowed)
        if reason:
            raise RefusedAddress(host, address, reason)
        family = socket.AF_INET if address.version == 4 else socket.AF_INET6
        addresses.setdefault(sockaddr, (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, sockaddr))
    if not addresses:
        raise OutboundError(f"{origin(url)}: the host name resolves to no IP address")
    return list(addresses.values())


def _sockaddr(address, port):
    return (str(address), port) if address.version == 4 else (str(address), port, 0, 0)


def check_without_lookup(url):
    """What can be refused of `url` without asking DNS (a form's early word; post() checks every address again):
    RefusedURL for an URL post() does not request, RefusedAddress for a literal address or a `localhost` name
    that is refused. A host name is otherwise left to the send."""
    parts, _port = _parts(url)
    host = parts.hostname.rstrip(".").lower()
    allowed = tuple(settings.OUTBOUND_ALLOWED_NETWORKS)
    address = literal_address(host)
    if address is None:
        if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: always loopback
            address = ipaddress.ip_address("127.0.0.1")
        else:
            return
    reason = refusal_reason(address, allowed)
    if reason:
        raise RefusedAddress(parts.hostname, address, reason)


def literal_address(host):
    """The address `host` is without asking DNS, read as getaddrinfo reads it (IPv4 the inet_aton way: 127.1,
    2130706433, 0x7f000001, 0177.0.0.1); None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _IPV4_NUMBER.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


class _Deadline:
    """When a whole request must be over: each socket operation may wait only for what is left of it."""

    def __init__(self, seconds):
        self.seconds = seconds
        self._at = time.monotonic() + seconds

    def left(self):
        left = self._at - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request's deadline passed")
        return left


class _DeadlineSocketMixin:
    """A socket whose every wait (send, receive, TLS handshake) ends at its deadline, not a timeout per call."""

    deadline = None

    def _arm(self):
        if self.deadline is not None:
            self.settimeout(self.deadline.left())

    def recv(self, *args, **kwargs):
        self._arm()
        return super().recv(*args, **kwargs)

    def recv_into(self, *args, **kwargs):
        self._arm()
        return super().recv_into(*args, **kwargs)

    def send(self, *args, **kwargs):
        self._arm()
        return super().send(*args, **kwargs)

    def sendall(self, *args, **kwargs):
        self._arm()
        return super().sendall(*args, **kwargs)


class _DeadlineSocket(_DeadlineSocketMixin, socket.socket):
    pass


class _DeadlineSSLSocket(_DeadlineSocketMixin, ssl.SSLSocket):
    """What the TLS context wraps a connection in (SSLContext.sslsocket_class); its handshake waits at most what
    the TCP socket had left, and the connection hands it the deadline right after."""


class _PinnedConnection:
    """Connects to addresses resolve_checked() returned instead of looking self.host up again; the Host header
    (and for https the SNI and the certificate's name) stay self.host."""

    def __init__(self, *args, addresses, deadline, **kwargs):
        super().__init__(*args, **kwargs)
        self._addresses = addresses
        self._deadline = deadline
        self._create_connection = self._connect_checked  # what connect() calls in place of create_connection

    def _connect_checked(self, _host_port, timeout, source_address=None):
        failure = None
        for family, type_, proto, sockaddr in self._addresses:
            sock = _DeadlineSocket(family, type_, proto)
            try:
                sock.settimeout(min(timeout, self._deadline.left()))
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                sock.settimeout(self._deadline.left())  # what a TLS handshake may take
                return sock
            except OSError as exc:
                sock.close()
                failure = exc
        raise failure

    def connect(self):
        super().connect()
        self.sock.deadline = self._deadline


class _PinnedHTTPConnection(_PinnedConnection, http.client.HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnection, http.client.HTTPSConnection):
    pass


def post(url, body, headers, *, timeout=TIMEOUT_SECONDS):
    """POST `body` (bytes) to `url` with `headers`, all of it (connecting, sending, the answer) within `timeout`
    seconds; the Response (its body cut at MAX_RESPONSE_BYTES), or OutboundError (RefusedURL, RefusedAddress when
    the URL or its address may not be requested)."""
    response = _request("POST", url, body, headers, timeout=timeout, max_bytes=MAX_RESPONSE_BYTES)
    return Response(response.status, response.headers, response.body[:MAX_RESPONSE_BYTES])


def get(url, headers=None, *, timeout=TIMEOUT_SECONDS, max_bytes=MAX_RESPONSE_BYTES, resolve=None):
    """GET `url` under post()'s rules; an answer longer than `max_bytes` is an OutboundError, not cut (a policy
    file cut short would read as another one). `resolve`: the caller's resolver (see resolve_checked)."""
    response = _request("GET", url, None, headers or {}, timeout=timeout, max_bytes=max_bytes, resolve=resolve)
    if len(response.body) > max_bytes:
        raise OutboundError(f"{origin(url)}: the answer is longer than {max_bytes} bytes")
    return response


def tls_context():
    """What https requests trust: the system's certificate store, and the CA certificates in
    settings.OUTBOUND_CA_BUNDLE when set (an internal CA)."""
    context = ssl.create_default_context()
    if settings.OUTBOUND_CA_BUNDLE:
        context.load_verify_locations(cafile=settings.OUTBOUND_CA_BUNDLE)
    return context


def _request(method, url, body, headers, *, timeout, max_bytes, resolve=None):
    """One request; the Response with at most max_bytes + 1 bytes of its body (so the caller sees one too many)."""
    deadline = _Deadline(timeout)
    parts, port = _parts(url)
    addresses = resolve_checked(url, resolve)
    options = {"timeout": timeout, "addresses": addresses, "deadline": deadline}
    if parts.scheme == "https":
        try:
            context = tls_context()
        except OSError as exc:  # ssl.SSLError included: the bundle cannot be read or holds no certificate
            raise OutboundError(f"{origin(url)}: DOCKSPACE_OUTBOUND_CA_BUNDLE cannot be used ({exc})") from None
        context.sslsocket_class = _DeadlineSSLSocket
        connection = _PinnedHTTPSConnection(parts.hostname, port, context=context, **options)
    else:
        connection = _PinnedHTTPConnection(parts.hostname, port, **options)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request(method, target, body=body, headers={"User-Agent": USER_AGENT, **headers})
        answer = connection.getresponse()
        data = answer.read(max_bytes + 1)
        return Response(answer.status, {name.lower(): value for name, value in answer.getheaders()}, data)
    except TimeoutError:
        raise OutboundError(f"{origin(url)}: no answer within {timeout:g} seconds") from None
    except OSError as exc:  # refused, reset, unreachable, TLS (the certificate's problem is worth reading)
        raise OutboundError(f"{origin(url)}: {type(exc).__name__}: {exc}") from None
    except (http.client.HTTPException, ValueError) as exc:
        # Their text may quote the request line or a header (a path or a token): the class says enough.
        raise OutboundError(f"{origin(url)}: {type(exc).__name__}") from None
    finally:
        connection.close()
