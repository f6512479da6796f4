"""Every HTTP request Dockspace makes to the outside world (alert webhooks, the Telegram Bot API) goes through
post() here: http:// and https:// only, connect and read timeouts, certificates verified, a bounded response,
and no redirect followed (a 3xx is an answer like any other, so a receiver cannot send the request elsewhere).
Errors name the scheme, host and port only: a URL's path or query may hold a token."""

import http.client
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 10
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "Dockspace-alerts/1"


class OutboundError(Exception):
    """The request could not be made or answered (refused URL, DNS, connection, TLS, timeout)."""


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


def post(url, body, headers, *, timeout=TIMEOUT_SECONDS):
    """POST `body` (bytes) to `url` with `headers`; the Response, or OutboundError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundError(f"{origin(url)}: only http:// and https:// URLs with a host are allowed")
    if parts.username or parts.password:
        raise OutboundError(f"{origin(url)}: a URL holding a user name or password is refused")
    try:
        port = parts.port
    except ValueError:
        raise OutboundError(f"{origin(url)}: the port is not a number") from None
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname, port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
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
