"""Reads the TLS certificate a mail port presents (SMTP/IMAP STARTTLS or implicit TLS): the one module of the probes
that opens network connections. Never raises for network trouble: the reading carries the reason in `error`."""

import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509

MAIL_TLS_PORTS = ((25, "smtp-starttls"), (465, "tls"), (587, "smtp-starttls"), (993, "tls"))
MODES = frozenset({"smtp-starttls", "imap-starttls", "tls"})

# A greeting or reply longer than this is not a mail server talking.
_MAX_REPLY_BYTES = 64 * 1024


@dataclass(frozen=True)
class CertificateReading:
    port: int
    mode: str
    not_after: datetime | None = None
    days_left: int | None = None
    subject: str = ""
    issuer: str = ""
    error: str = ""
    verified: bool = False
    verify_error: str = ""


class _ProbeError(Exception):
    """A mail-protocol step went wrong; its message is the reading's error."""


class _Dialogue:
    """Line-oriented reads on a plain socket, each bounded by the one deadline of the whole probe."""

    def __init__(self, sock: socket.socket, deadline: float):
        self.sock = sock
        self.deadline = deadline
        self.buffer = b""

    def _wait_budget(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)

    def line(self) -> str:
        while b"\n" not in self.buffer:
            if len(self.buffer) > _MAX_REPLY_BYTES:
                raise _ProbeError("the server sent an overlong line")
            self._wait_budget()
            chunk = self.sock.recv(4096)
            if not chunk:
                raise _ProbeError("the server closed the connection")
            self.buffer += chunk
        raw, _, self.buffer = self.buffer.partition(b"\n")
        return raw.rstrip(b"\r").decode("utf-8", "replace")

    def send(self, command: str) -> None:
        self._wait_budget()
        self.sock.sendall(command.encode("ascii") + b"\r\n")

    def smtp_reply(self) -> tuple[str, list[str]]:
        """An SMTP reply (RFC 5321 4.2: "250-..." lines, then "250 ..."): its code and its text lines."""
        lines = []
        total = 0
        while True:
            line = self.line()
            total += len(line)
            if total > _MAX_REPLY_BYTES:
                raise _ProbeError("the server sent an overlong reply")
            if len(line) < 3 or not line[:3].isdigit() or line[3:4] not in ("", " ", "-"):
                raise _ProbeError(f"not an SMTP reply: {line[:60]!r}")
            lines.append(line[4:])
            if line[3:4] != "-":
                return line[:3], lines


def _ehlo_name(sock: socket.socket) -> str:
    # An address literal (RFC 5321 4.1.3) is always a valid EHLO argument and needs no DNS.
    address = sock.getsockname()[0]
    return f"[IPv6:{address}]" if ":" in address else f"[{address}]"


def _smtp_starttls(dialogue: _Dialogue) -> None:
    code, lines = dialogue.smtp_reply()
    if code != "220":
        raise _ProbeError(f"SMTP greeting was {code} {' '.join(lines)[:80]}".rstrip())
    dialogue.send(f"EHLO {_ehlo_name(dialogue.sock)}")
    code, lines = dialogue.smtp_reply()
    if code != "250":
        raise _ProbeError(f"EHLO answered {code} {' '.join(lines)[:80]}".rstrip())
    if not any(line.split()[:1] == ["STARTTLS"] for line in (line.upper() for line in lines[1:])):
        raise _ProbeError("STARTTLS is not offered")
    dialogue.send("STARTTLS")
    code, lines = dialogue.smtp_reply()
    if code != "220":
        raise _ProbeError(f"STARTTLS answered {code} {' '.join(lines)[:80]}".rstrip())
    if dialogue.buffer:
        raise _ProbeError("the server sent data before the TLS handshake")


def _imap_starttls(dialogue: _Dialogue) -> None:
    greeting = dialogue.line()
    if not greeting.upper().startswith("* OK"):
        raise _ProbeError(f"IMAP greeting was {greeting[:80]!r}")
    dialogue.send("p1 STARTTLS")
    while True:
        line = dialogue.line()
        if line.startswith("* "):
            continue
        if line.upper().startswith("P1 OK"):
            break
        raise _ProbeError(f"STARTTLS answered {line[:80]!r}")
    if dialogue.buffer:
        raise _ProbeError("the server sent data before the TLS handshake")


def _handshake(host: str, port: int, mode: str, context: ssl.SSLContext, deadline: float) -> bytes:
    """Connect, speak the mode's plain-text prelude, do the TLS handshake; return the peer's certificate (DER)."""
    remaining = deadline - time.monotonic()
    with socket.create_connection((host, port), timeout=max(remaining, 0.001)) as sock:
        dialogue = _Dialogue(sock, deadline)
        if mode == "smtp-starttls":
            _smtp_starttls(dialogue)
        elif mode == "imap-starttls":
            _imap_starttls(dialogue)
        dialogue._wait_budget()
        # The host name also goes out as SNI (Python leaves it out for an IP address), so a server that picks its
        # certificate by name shows the same one to both handshakes.
        with context.wrap_socket(sock, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
        if not der:
            raise _ProbeError("the server presented no certificate")
        return der


def _verifying_context(cafile: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


def _reading_context() -> ssl.SSLContext:
    # Verification off on purpose: an expired or self-signed certificate is exactly what this probe must report.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _network_reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"name not resolved: {exc.strerror or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def certificate(
    host: str,
    port: int,
    mode: str,
    timeout: float,
    *,
    cafile: str | None = None,
    now: datetime | None = None,
) -> CertificateReading:
    """The certificate on host:port. First a verifying handshake (system trust store, or `cafile`, and the host
    name); when only verification fails, a second connection reads the certificate with verification off, so an
    expired or self-signed one is still reported, with `verified` False and the reason in `verify_error`.
    `timeout` bounds each connection as a whole. `now` (UTC) is what days_left counts from. Only a bad `mode` or
    `port` (the caller's mistake, checked before connecting) raises ValueError."""
    if mode not in MODES:
        raise ValueError(f"mode: one of {', '.join(sorted(MODES))}")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError("port: a whole number from 1 to 65535")
    verified, verify_error = True, ""
    try:
        try:
            der = _handshake(host, port, mode, _verifying_context(cafile), time.monotonic() + timeout)
        except ssl.SSLCertVerificationError as exc:
            verified, verify_error = False, exc.verify_message or str(exc)
            der = _handshake(host, port, mode, _reading_context(), time.monotonic() + timeout)
    except _ProbeError as exc:
        return CertificateReading(port=port, mode=mode, error=str(exc))
    except (OSError, ValueError, UnicodeError) as exc:
        return CertificateReading(port=port, mode=mode, error=_network_reason(exc, timeout))

    try:
        cert = x509.load_der_x509_certificate(der)
        not_after = cert.not_valid_after_utc
        subject, issuer = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
    except ValueError as exc:
        return CertificateReading(port=port, mode=mode, error=f"unreadable certificate: {exc}")
    days_left = (not_after - (now or datetime.now(UTC))).days
    return CertificateReading(
        port=port,
        mode=mode,
        not_after=not_after,
        days_left=days_left,
        subject=subject,
        issuer=issuer,
        verified=verified,
        verify_error=verify_error,
    )


def certificates(
    host: str, ports: tuple[tuple[int, str], ...] = MAIL_TLS_PORTS, *, timeout: float = 10.0
) -> list[CertificateReading]:
    """The certificate of each (port, mode) on host, in order."""
    return [certificate(host, port, mode, timeout) for port, mode in ports]
