"""Reading configuration from the environment, with `NAME_FILE` support for secrets.

Every reader takes the variable name and a default, and raises ImproperlyConfigured with a
message naming the variable and the rule when a value is unusable.
"""

import ipaddress
import math
import os
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}
_HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def env_str(name, default=None, environ=None):
    """The value of NAME, or the contents of the file named by NAME_FILE (trailing newline dropped)."""
    environ = os.environ if environ is None else environ
    direct = environ.get(name)
    file_name = environ.get(f"{name}_FILE")
    if direct is not None and file_name:
        raise ImproperlyConfigured(f"{name} and {name}_FILE are both set: set only one of them.")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {file_name!r}: {exc.strerror}.") from exc
    if direct is None:
        return default
    return direct


def env_bool(name, default=False, environ=None):
    raw = env_str(name, None, environ)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {raw!r}.")


def env_int(name, default, minimum=None, environ=None):
    raw = env_str(name, None, environ)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number; got {raw!r}.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}; got {value}.")
    return value


def env_float(name, default, minimum=None, environ=None):
    raw = env_str(name, None, environ)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ImproperlyConfigured(f"{name} must be a number such as 3 or 0.5; got {raw!r}.")
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}; got {value:g}.")
    return value


def env_list(name, default=(), environ=None):
    raw = env_str(name, None, environ)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


@dataclass(frozen=True)
class ImapMailbox:
    """A mailbox to read over IMAP: `imaps://` (TLS from the start, port 993) or `imap://` (STARTTLS, port 143)."""

    is_implicit_tls: bool
    host: str
    port: int
    user: str
    folder: str

    def describe(self):
        """What a log line or a stored row may show: no password (the URL never holds one)."""
        scheme = "imaps" if self.is_implicit_tls else "imap"
        return f"{scheme}://{self.user}@{self.host}:{self.port}/{self.folder}"


def env_imap_mailbox(name, environ=None):
    """`imaps://USER@HOST[:PORT]/FOLDER` (USER percent-encoded: bounces%40example.com) -> ImapMailbox; unset or
    empty: None. The password is never in the URL: it has a variable of its own."""
    raw = (env_str(name, "", environ) or "").strip()
    if not raw:
        return None
    rule = (
        f"{name} must be imaps://USER@HOST[:PORT]/FOLDER or imap://... (STARTTLS), the user percent-encoded, e.g. "
        "imaps://bounces%40example.com@mail.example.com:993/INBOX"
    )
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"{rule}; the host or port of {raw!r} cannot be read.") from None
    if parts.scheme not in ("imaps", "imap") or not parts.hostname:
        raise ImproperlyConfigured(f"{rule}; got {raw!r}.")
    if parts.password is not None:
        raise ImproperlyConfigured(
            f"{name} must not hold the password (it would show wherever the URL does): put it in "
            f"DOCKSPACE_FEEDBACK_PASSWORD or DOCKSPACE_FEEDBACK_PASSWORD_FILE."
        )
    if not parts.username:
        raise ImproperlyConfigured(f"{rule}; the user is missing.")
    if parts.query or parts.fragment:
        raise ImproperlyConfigured(f"{rule}; ?... and #... mean nothing here.")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    if any(ord(c) < 32 or c in '"\\' for c in folder):
        raise ImproperlyConfigured(f"{rule}; the folder {folder!r} holds a control character, a quote or a backslash.")
    implicit = parts.scheme == "imaps"
    return ImapMailbox(implicit, parts.hostname, port or (993 if implicit else 143), unquote(parts.username), folder)


def env_networks(name, default=(), environ=None):
    """Comma-separated IP networks in CIDR notation (10.0.0.0/8, fd00::/8; a lone address is a /32 or a /128), as
    ipaddress networks."""
    networks = []
    for item in env_list(name, default, environ):
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{name} must be comma-separated networks in CIDR notation such as 10.0.0.0/8 or fd00::/8; "
                f"{item!r} is not one ({exc})."
            ) from None
    return networks


def env_ips(name, default=(), environ=None):
    """Comma-separated IP addresses (IPv4 or IPv6, no port) -> [ipaddress], each once, in the order given."""
    found = []
    for item in env_list(name, default, environ):
        try:
            address = ipaddress.ip_address(item)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must be comma-separated IP addresses such as 192.0.2.25,2001:db8::25; "
                f"{item!r} is not an IP address."
            ) from None
        if getattr(address, "scope_id", None) is not None:
            raise ImproperlyConfigured(
                f"{name}: give {item!r} without its %zone (an interface name): {ipaddress.IPv6Address(int(address))}."
            )
        if address not in found:
            found.append(address)
    return found


def env_ca_bundle(name, environ=None):
    """The path of a PEM file of CA certificates (what ssl's load_verify_locations takes); unset or empty: ""."""
    path = (env_str(name, "", environ) or "").strip()
    if path:
        try:
            ssl.create_default_context().load_verify_locations(cafile=path)
        except OSError as exc:  # ssl.SSLError too: a file holding no certificate
            reason = "it holds no PEM certificate" if isinstance(exc, ssl.SSLError) else exc.strerror or str(exc)
            raise ImproperlyConfigured(
                f"{name} must name a readable PEM file of CA certificates; {path!r} is not one ({reason})."
            ) from None
    return path


def env_hostname(name, default="", environ=None):
    """A host name (letters, digits, hyphens, dots; no trailing dot kept), lower case; unset or empty: `default`."""
    raw = env_str(name, None, environ)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().rstrip(".").lower()
    labels = value.split(".")
    if (
        len(value) > 253
        or len(labels) < 2
        or not all(_HOST_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ImproperlyConfigured(f"{name} must be a fully qualified host name such as mail.example.com; got {raw!r}.")
    return value


def env_ip_ports(name, default_port, environ=None):
    """A comma-separated list of `ADDRESS[:PORT]` (IPv6 as `[ADDRESS]:PORT`, or bare without a port) ->
    [(address, port)]; unset or empty: []."""
    rule = (
        f"{name} must be a comma-separated list of IP addresses, each with an optional :PORT (IPv6 as "
        f"[ADDRESS]:PORT), such as 10.0.0.2,127.0.0.1:5353,[2001:db8::53]:53"
    )
    found = []
    for item in env_list(name, (), environ):
        host, port = item, str(default_port)
        if item.startswith("["):
            host, bracket, rest = item[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise ImproperlyConfigured(f"{rule}; got {item!r}.")
            port = rest[1:] if rest else port
        elif item.count(":") == 1:
            host, _, port = item.partition(":")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise ImproperlyConfigured(f"{rule}; {host!r} is not an IP address.") from None
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(f"{rule}; the port in {item!r} is not a number from 1 to 65535.")
        found.append((str(address), int(port)))
    return found


def parse_database_url(url, conn_max_age=60):
    """Turn `postgres://user:pass@host:5432/name?sslmode=require` or `sqlite:///path` into DATABASES['default']."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = unquote(parts.path)
        if parts.netloc:
            raise ImproperlyConfigured(
                "DATABASE_URL: a SQLite URL has no host; write sqlite:////absolute/path.sqlite3 "
                "or sqlite:///relative/path.sqlite3."
            )
        # sqlite:///rel.sqlite3 -> "rel.sqlite3"; sqlite:////abs.sqlite3 -> "/abs.sqlite3"
        path = path[1:]
        if not path:
            raise ImproperlyConfigured("DATABASE_URL: a SQLite URL needs a file path.")
        return sqlite_database(Path(path))
    if scheme in ("postgres", "postgresql", "pgsql"):
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured("DATABASE_URL: a PostgreSQL URL needs a database name after the host.")
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured("DATABASE_URL: the port must be a number.") from None
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": unquote(parts.hostname or ""),
            "PORT": str(port or ""),
            "OPTIONS": dict(parse_qsl(parts.query)),
            "CONN_MAX_AGE": conn_max_age,
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperlyConfigured(f"DATABASE_URL: unsupported scheme {scheme!r}; use postgres://... or sqlite:///...")


def sqlite_database(path):
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        # WAL and a busy timeout let web, worker and beat share one file without "database is locked".
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        "TEST": {"NAME": str(path.with_name(f"test-{path.name}"))},
    }
