"""The TLS certificate probe against real listeners on loopback: implicit TLS, SMTP and IMAP STARTTLS, certificates
the test makes (valid, expiring soon, expired, self-signed), a closed port and a server that never answers."""

import contextlib
import socket
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from dockspace.tests.certificates import Authority
from monitoring.probes.tls import MAIL_TLS_PORTS, certificate

LOOPBACK = "127.0.0.1"


class Listener:
    """A TCP server on loopback that runs `serve(connection)` for each connection in its own thread."""

    def __init__(self, serve):
        self.serve = serve
        self.sock = socket.create_server((LOOPBACK, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.connections = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        conn.settimeout(10)
        with contextlib.suppress(OSError), conn:
            self.serve(conn)

    def close(self):
        self.stopped.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def listeners():
    started = []

    def start(serve):
        listener = Listener(serve)
        started.append(listener)
        return listener

    yield start
    for listener in started:
        listener.close()


@pytest.fixture
def authority(tmp_path):
    return Authority(tmp_path)


def _server_context(certfile, keyfile):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    return context


def _finish_tls(conn, context):
    with context.wrap_socket(conn, server_side=True) as tls, contextlib.suppress(OSError):
        tls.recv(1)  # until the client closes


def implicit_tls(certfile, keyfile):
    context = _server_context(certfile, keyfile)
    return lambda conn: _finish_tls(conn, context)


def _read_line(conn):
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            raise ConnectionError
        data += chunk
    return data.decode()


def smtp_starttls(certfile, keyfile, *, offer_starttls=True, banner="220 mx.test ESMTP Postfix (Debian/GNU)\r\n"):
    context = _server_context(certfile, keyfile)

    def serve(conn):
        conn.sendall(banner.encode())
        if not banner.startswith("220"):
            return
        if not _read_line(conn).upper().startswith("EHLO "):
            conn.sendall(b"503 5.5.1 Error: send HELO/EHLO first\r\n")
            return
        extensions = ["PIPELINING", "SIZE 10240000"] + (["STARTTLS"] if offer_starttls else []) + ["8BITMIME"]
        reply = "250-mx.test\r\n" + "".join(f"250-{ext}\r\n" for ext in extensions[:-1]) + f"250 {extensions[-1]}\r\n"
        conn.sendall(reply.encode())
        if _read_line(conn).strip().upper() != "STARTTLS":
            conn.sendall(b"502 5.5.1 Error: command not implemented\r\n")
            return
        conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
        _finish_tls(conn, context)

    return serve


def imap_starttls(certfile, keyfile):
    context = _server_context(certfile, keyfile)

    def serve(conn):
        conn.sendall(b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] Dovecot ready.\r\n")
        tag, _, command = _read_line(conn).strip().partition(" ")
        if command.upper() != "STARTTLS":
            conn.sendall(f"{tag} BAD Error in IMAP command\r\n".encode())
            return
        conn.sendall(f"{tag} OK Begin TLS negotiation now.\r\n".encode())
        _finish_tls(conn, context)

    return serve


def silent(conn):
    time.sleep(5)


def in_days(days):
    # An hour past the day boundary, so the whole-day count does not depend on how long the test takes.
    return datetime.now(UTC).replace(microsecond=0) + timedelta(days=days, hours=1)


def test_the_mail_ports_are_smtp_starttls_submissions_and_imaps():
    assert MAIL_TLS_PORTS == ((25, "smtp-starttls"), (465, "tls"), (587, "smtp-starttls"), (993, "tls"))


@pytest.mark.parametrize(
    "mode, serve", [("tls", implicit_tls), ("smtp-starttls", smtp_starttls), ("imap-starttls", imap_starttls)]
)
def test_it_reads_a_certificate_that_verifies_in_every_mode(listeners, authority, mode, serve):
    certfile, keyfile, cert = authority.issue("valid", not_after=in_days(60))
    listener = listeners(serve(certfile, keyfile))

    reading = certificate(LOOPBACK, listener.port, mode, 5, cafile=str(authority.cafile))

    assert reading.error == ""
    assert reading.verified is True and reading.verify_error == ""
    assert reading.port == listener.port and reading.mode == mode
    assert reading.not_after == cert.not_valid_after_utc
    assert reading.days_left == 60
    assert reading.subject == "CN=valid.test"
    assert reading.issuer == "CN=Dockspace Test CA"
    assert listener.connections == 1  # a certificate that verifies needs one handshake only


@pytest.mark.parametrize("mode, serve", [("tls", implicit_tls), ("smtp-starttls", smtp_starttls)])
def test_a_certificate_expiring_in_five_days_is_read_with_its_days_left(listeners, authority, mode, serve):
    certfile, keyfile, cert = authority.issue("soon", not_after=in_days(5))
    listener = listeners(serve(certfile, keyfile))

    reading = certificate(LOOPBACK, listener.port, mode, 5, cafile=str(authority.cafile))

    assert (reading.error, reading.verified, reading.days_left) == ("", True, 5)
    assert reading.not_after == cert.not_valid_after_utc


@pytest.mark.parametrize("mode, serve", [("tls", implicit_tls), ("smtp-starttls", smtp_starttls)])
def test_an_expired_certificate_is_still_read_and_marked_as_not_verifying(listeners, authority, mode, serve):
    certfile, keyfile, cert = authority.issue("expired", not_after=in_days(-3))
    listener = listeners(serve(certfile, keyfile))

    reading = certificate(LOOPBACK, listener.port, mode, 5, cafile=str(authority.cafile))

    assert reading.error == ""
    assert reading.verified is False
    assert "expired" in reading.verify_error
    assert reading.not_after == cert.not_valid_after_utc
    assert reading.days_left == -3
    assert reading.subject == "CN=expired.test"


def test_a_self_signed_certificate_is_read_and_marked_as_not_verifying(listeners, authority):
    certfile, keyfile, _ = authority.issue("own", not_after=in_days(300), self_signed=True)
    listener = listeners(implicit_tls(certfile, keyfile))

    reading = certificate(LOOPBACK, listener.port, "tls", 5)

    assert (reading.error, reading.verified, reading.days_left) == ("", False, 300)
    assert "self-signed" in reading.verify_error or "self signed" in reading.verify_error
    assert reading.subject == reading.issuer == "CN=own.test"


def test_a_certificate_for_another_name_does_not_verify(listeners, authority):
    certfile, keyfile, _ = authority.issue("other", not_after=in_days(60), names=("mail.example.org",))
    listener = listeners(implicit_tls(certfile, keyfile))

    reading = certificate(LOOPBACK, listener.port, "tls", 5, cafile=str(authority.cafile))

    assert (reading.error, reading.verified, reading.days_left) == ("", False, 60)
    assert "mismatch" in reading.verify_error


def test_a_closed_port_gives_connection_refused():
    # A bound socket that does not listen: the kernel refuses connections to it, and no one else can take the port.
    with socket.socket() as holder:
        holder.bind((LOOPBACK, 0))
        reading = certificate(LOOPBACK, holder.getsockname()[1], "tls", 5)
    assert reading.error == "connection refused"
    assert (reading.not_after, reading.days_left, reading.verified) == (None, None, False)


@pytest.mark.parametrize("mode", ["tls", "smtp-starttls", "imap-starttls"])
def test_a_server_that_never_answers_times_out_within_the_timeout(listeners, mode):
    listener = listeners(silent)

    started = time.monotonic()
    reading = certificate(LOOPBACK, listener.port, mode, 0.5)
    elapsed = time.monotonic() - started

    assert reading.error == "timed out after 0.5 s"
    assert elapsed < 2
    assert reading.not_after is None


def test_a_server_without_starttls_is_reported(listeners, authority):
    certfile, keyfile, _ = authority.issue("plain", not_after=in_days(60))
    listener = listeners(smtp_starttls(certfile, keyfile, offer_starttls=False))

    reading = certificate(LOOPBACK, listener.port, "smtp-starttls", 5)

    assert reading.error == "STARTTLS is not offered"
    assert reading.not_after is None


def test_a_refusing_smtp_greeting_is_reported(listeners, authority):
    certfile, keyfile, _ = authority.issue("busy", not_after=in_days(60))
    listener = listeners(smtp_starttls(certfile, keyfile, banner="554 5.3.2 mx.test too busy\r\n"))

    reading = certificate(LOOPBACK, listener.port, "smtp-starttls", 5)

    assert reading.error == "SMTP greeting was 554 5.3.2 mx.test too busy"


def test_plain_text_where_tls_is_expected_is_a_handshake_failure(listeners):
    listener = listeners(lambda conn: (conn.sendall(b"220 mx.test ESMTP\r\n"), time.sleep(1)))

    reading = certificate(LOOPBACK, listener.port, "tls", 5)

    assert reading.error.startswith("TLS handshake failed")


def test_an_unknown_mode_is_refused_before_connecting():
    with pytest.raises(ValueError, match="mode: one of imap-starttls, smtp-starttls, tls"):
        certificate(LOOPBACK, 25, "pop3", 1)


def test_a_server_choosing_its_certificate_by_name_is_asked_by_name_in_both_handshakes(listeners, authority):
    # The name's certificate has expired, so the verifying handshake fails and the reading one must ask by name too.
    named_cert, named_key, named = authority.issue("named", not_after=in_days(-1), names=("localhost",))
    default_cert, default_key, _ = authority.issue("default", not_after=in_days(300), self_signed=True)
    named_context = _server_context(named_cert, named_key)
    context = _server_context(default_cert, default_key)
    asked = []

    def by_name(tls, server_name, _context):
        asked.append(server_name)
        if server_name == "localhost":
            tls.context = named_context

    context.sni_callback = by_name
    listener = listeners(lambda conn: _finish_tls(conn, context))

    reading = certificate("localhost", listener.port, "tls", 5, cafile=str(authority.cafile))

    assert reading.subject == "CN=named.test" and reading.not_after == named.not_valid_after_utc
    assert reading.verified is False and "expired" in reading.verify_error
    assert asked == ["localhost", "localhost"]


@pytest.mark.parametrize("port", [0, 70000, -1, True, "25"])
def test_a_port_out_of_range_is_refused_before_connecting(port):
    with pytest.raises(ValueError, match="port: a whole number from 1 to 65535"):
        certificate(LOOPBACK, port, "tls", 1)
