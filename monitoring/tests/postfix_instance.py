"""A real Postfix 3.7 instance for tests that need real mail-log lines: its own config, queue and data directories
under one temporary directory, configured like docker-mailserver (DMS) configures Postfix where it matters for the
log (postscreen on the MX port, a `submission` service with its own syslog_name and Dovecot SASL, `sender-cleanup`,
virtual mailboxes delivered over LMTP, a pooled `out-127-0-0-2` smtp transport picked by the sender's domain), with
local stand-ins for what DMS talks to: a remote MX (aiosmtpd) that accepts, defers or rejects each recipient by its
local part, a Dovecot LMTP server and a Dovecot auth server. Postfix logs through postlogd to a file (`maillog_file`),
so no syslog daemon is needed; a reader thread stamps each line as rsyslog does in DMS (reception time, RFC 3339 with
microseconds, UTC), which is what `log_lines()` returns.

    with PostfixInstance() as pf:
        pf.send("news@example.net", ["alice@example.com"])                     # from outside, through postscreen
        pf.send("alice@example.com", ["x@example.net"], sasl_user="alice@example.com")   # submission + SASL
        pf.send("bob@example.com", ["alice@example.com"], via="sendmail")       # pickup
        pf.wait_for_log(r"status=sent")

Paths inside the base directory repeat DMS's (etc/postfix, var/spool/postfix, var/run/dovecot/lmtp,
dev/shm/sasl-auth.sock, var/log/mail/mail.log), so a log with the base directory's prefix removed reads like DMS's.
`python -m monitoring.tests.postfix_instance OUT` plays every case of `play_every_case` and writes that log.

Needs Debian's postfix (3.4+ for postlogd), root (Postfix's master runs as root), the `postfix` user and aiosmtpd;
`SKIP_REASON` says why not when something is missing. No DNS is used: inet_interfaces is loopback, smtpd does no
reverse lookups, and every next hop is a literal `[127.0.0.1]:port`."""

from __future__ import annotations

import base64
import os
import pwd
import re
import secrets
import shutil
import smtplib
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest

from dockspace.tests.ports import free_port

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
POSTQUEUE = "/usr/sbin/postqueue"
POSTSUPER = "/usr/sbin/postsuper"
SENDMAIL = "/usr/sbin/sendmail"
HOSTNAME = "mail.example.com"
# Loopback addresses standing for machines: an outside MTA, a person's laptop, a listed spammer, the pooled IP.
OUTSIDE_IP = "127.0.0.9"
LAPTOP_IP = "127.0.0.10"
DENYLISTED_IP = "127.0.0.66"
POOL_IP = "127.0.0.2"
POOL_TRANSPORT = "out-127-0-0-2"
LOCAL_DOMAINS = ("example.com", "example.org")  # example.org sends through the pooled transport
POOLED_DOMAIN = "example.org"
# An access table holds mail to QUARANTINE and discards mail to BLACKHOLE (both mailboxes, as such entries name).
BLACKHOLE = "trap@example.com"
QUARANTINE = "review@example.com"
MAILBOXES = ("alice@example.com", "bob@example.com", "full@example.com", "carol@example.org", BLACKHOLE, QUARANTINE)
PASSWORD = "correct horse battery staple"
# info@ forwards to a mailbox and keeps nothing: an alias with an outside target, as DMS's postfix-virtual.cf allows.
ALIASES = {"info@example.com": "bob@example.com,friend@example.net"}
REFUSING_DOMAIN = "refused.example.net"  # routed to a closed port: "Connection refused"


def _why_not() -> str | None:
    for path in (POSTFIX, POSTCONF, POSTQUEUE, SENDMAIL):
        if not os.path.exists(path):
            return f"{path} is missing (CI installs Debian's postfix package)"
    try:
        daemons = subprocess.run(
            [POSTCONF, "-dh", "daemon_directory"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        return f"postconf does not answer: {e}"
    if not os.path.exists(os.path.join(daemons, "postlogd")):
        return "this Postfix has no postlogd (Postfix 3.4 or later logs to a file without syslog)"
    if os.geteuid() != 0:
        return "a private Postfix instance must be started as root"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "the postfix user does not exist (Postfix is not set up on this machine)"
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        return "aiosmtpd is not installed (requirements-dev.txt)"
    return None


SKIP_REASON = _why_not()
requires_postfix = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


# --- The remote MX -----------------------------------------------------------------------------------------------

# What the remote MX answers to RCPT TO, by the recipient's local part (replies as big providers write them).
GMAIL_NO_SUCH_USER = (
    "550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
    "550-5.1.1 double-checking the recipient's email address for typos or\r\n"
    "550-5.1.1 unnecessary spaces. For more information, go to\r\n"
    "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser a640c23a62f3a-a7a3b5e2f1asi1234567ex.123 - gsmtp"
)
GREYLISTED = "451 4.7.1 <{rcpt}>: Recipient address rejected: Greylisted, see https://postgrey.schweikert.ch/help/"


@dataclass
class ReceivedMessage:
    peer_ip: str
    helo: str
    sender: str
    recipients: list[str]
    data: bytes


class RemoteMx:
    """aiosmtpd handler of the remote MX. Local part `reject*`: 550 (Gmail's "no such user"); `defer*`: 451 every
    time; `greylist*`: 451 the first time, then accepted; anything else: accepted. Keeps what it received."""

    def __init__(self):
        self.received: list[ReceivedMessage] = []
        self._greylisted: set[str] = set()
        self._lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject"):
            return GMAIL_NO_SUCH_USER
        if local.startswith("defer"):
            return f"451 4.3.0 <{address}>: Temporary lookup failure, try again later"
        if local.startswith("greylist"):
            with self._lock:
                first_time = address.lower() not in self._greylisted
                self._greylisted.add(address.lower())
            if first_time:
                return GREYLISTED.format(rcpt=address)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self.received.append(
                ReceivedMessage(
                    peer_ip=session.peer[0],
                    helo=session.host_name or "",
                    sender="" if envelope.mail_from in (None, "<>") else envelope.mail_from,  # "" = null sender
                    recipients=list(envelope.rcpt_tos),
                    data=envelope.original_content or b"",
                )
            )
        return f"250 2.0.0 Ok: queued as {secrets.token_hex(5).upper()}"


# --- Dovecot stand-ins: LMTP delivery and SASL auth ---------------------------------------------------------------


class DovecotLmtp:
    """aiosmtpd handler answering as Dovecot 2.3's LMTP does: one reply per recipient after DATA, "<rcpt> <session>
    Saved"; an unknown user or a full mailbox is refused at RCPT with Dovecot's words."""

    def __init__(self, mailboxes, full=("full@example.com",)):
        self.mailboxes = {m.lower() for m in mailboxes}
        self.full = {m.lower() for m in full}
        self.delivered: list[tuple[str, bytes]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() not in self.mailboxes:
            return f"550 5.1.1 <{address}> User doesn't exist: {address}"
        if address.lower() in self.full:
            return f"552 5.2.2 <{address}> Quota exceeded (mailbox for user is full)"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        session_id = base64.b64encode(secrets.token_bytes(16)).decode()[:22]
        for rcpt in envelope.rcpt_tos:
            self.delivered.append((rcpt, envelope.original_content or b""))
        # LMTP: one reply per accepted recipient; aiosmtpd sends the string as given, ending it with CRLF.
        return "\r\n".join(f"250 2.0.0 <{rcpt}> {session_id} Saved" for rcpt in envelope.rcpt_tos)


class _DovecotAuthHandler(socketserver.StreamRequestHandler):
    """The Dovecot auth protocol (version 1) as Postfix's xsasl_dovecot_server speaks it: the server's handshake,
    then AUTH requests for PLAIN or LOGIN answered OK/FAIL with `user=`, CONT for LOGIN's two prompts."""

    def handle(self):
        cookie = secrets.token_hex(16)
        self.wfile.write(
            f"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t{os.getpid()}\nCUID\t1\n"
            f"COOKIE\t{cookie}\nDONE\n".encode()
        )
        pending = {}  # request id -> LOGIN state
        for raw in self.rfile:
            parts = raw.decode("utf-8", "replace").rstrip("\n").split("\t")
            if parts[0] == "AUTH" and len(parts) >= 3:
                request_id, mechanism = parts[1], parts[2].upper()
                args = dict(p.split("=", 1) for p in parts[3:] if "=" in p)
                if mechanism == "PLAIN":
                    if "resp" in args:
                        self._plain(request_id, args["resp"])
                    else:
                        pending[request_id] = ["PLAIN"]
                        self._send(f"CONT\t{request_id}\t")
                elif mechanism == "LOGIN" and "resp" in args:  # the user name came with AUTH LOGIN
                    pending[request_id] = ["LOGIN", base64.b64decode(args["resp"]).decode("utf-8", "replace")]
                    self._send(f"CONT\t{request_id}\t{base64.b64encode(b'Password:').decode()}")
                elif mechanism == "LOGIN":
                    pending[request_id] = ["LOGIN"]
                    self._send(f"CONT\t{request_id}\t{base64.b64encode(b'Username:').decode()}")
                else:
                    self._send(f"FAIL\t{request_id}")
            elif parts[0] == "CONT" and len(parts) >= 3 and parts[1] in pending:
                request_id, state = parts[1], pending[parts[1]]
                if state[0] == "PLAIN":
                    del pending[request_id]
                    self._plain(request_id, parts[2])
                elif len(state) == 1:
                    state.append(base64.b64decode(parts[2]).decode("utf-8", "replace"))
                    self._send(f"CONT\t{request_id}\t{base64.b64encode(b'Password:').decode()}")
                else:
                    del pending[request_id]
                    self._answer(request_id, state[1], base64.b64decode(parts[2]).decode("utf-8", "replace"))

    def _plain(self, request_id, response):
        try:
            _authzid, user, password = base64.b64decode(response).decode("utf-8", "replace").split("\0")
        except ValueError:
            self._send(f"FAIL\t{request_id}")
            return
        self._answer(request_id, user, password)

    def _answer(self, request_id, user, password):
        if self.server.users.get(user) == password:
            self._send(f"OK\t{request_id}\tuser={user}")
        else:
            self._send(f"FAIL\t{request_id}\tuser={user}")

    def _send(self, line):
        self.wfile.write((line + "\n").encode())
        self.wfile.flush()


class _DovecotAuthServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path, users):
        self.users = users
        super().__init__(str(path), _DovecotAuthHandler)


# --- The log --------------------------------------------------------------------------------------------------------

_RAW_STAMP = re.compile(r"^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d ")


class _LogReader:
    """Follows postlogd's file and stamps each complete line when it is read, as rsyslog stamps what reaches it in DMS
    (`2026-12-06T10:15:02.123456+00:00 mail postfix/smtpd[1234]: ...`). postlogd's own stamp (`Dec 06 10:15:02`,
    local time, whole seconds) is replaced."""

    def __init__(self, path):
        self.path = path
        self.raw: list[str] = []
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self._offset = 0
        self._partial = b""
        self._reading = threading.Lock()  # the thread and log_lines() both read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="postfix-log-reader", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.read_now()
            self._stop.wait(0.005)
        self.read_now()

    def read_now(self):
        with self._reading:
            try:
                with open(self.path, "rb") as f:
                    f.seek(self._offset)
                    chunk = f.read()
            except FileNotFoundError:
                return
            if not chunk:
                return
            self._offset += len(chunk)
            *complete, self._partial = (self._partial + chunk).split(b"\n")
            if not complete:
                return
            stamp = datetime.now(UTC).isoformat(timespec="microseconds")
            with self.changed:
                for raw in complete:
                    text = raw.decode("utf-8", "replace")
                    self.raw.append(text)
                    self.lines.append(f"{stamp} {_RAW_STAMP.sub('', text, count=1)}")
                self.changed.notify_all()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)


# --- The instance ---------------------------------------------------------------------------------------------------


@dataclass
class Sent:
    """What the client saw: the queue id Postfix named ("" when nothing was queued), each recipient Postfix refused
    with its reply, and the reply to the end of DATA."""

    queue_id: str
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)
    data_reply: tuple[int, str] = (0, "")


def _self_signed(key_path, cert_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTNAME)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOSTNAME)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


class PostfixInstance:
    """A running private Postfix and its stand-ins (see the module docstring). Use as a context manager; `base` is
    created (and removed on exit unless `keep=True`) when not given."""

    def __init__(self, base: Path | None = None, *, keep: bool = False, main_cf: dict[str, str] | None = None):
        if SKIP_REASON:
            raise RuntimeError(SKIP_REASON)
        self._own_base = base is None
        # Not pytest's tmp_path (0700): Postfix daemons run as the postfix user, who must reach the sockets.
        self.base = Path(tempfile.mkdtemp(prefix="dockspace-postfix-")) if base is None else Path(base)
        self.base.chmod(0o755)
        self.keep = keep
        self.extra_main_cf = main_cf or {}
        self.config_dir = self.base / "etc/postfix"
        self.queue_dir = self.base / "var/spool/postfix"
        self.data_dir = self.base / "var/lib/postfix"
        self.maillog = self.base / "var/log/mail/mail.log"
        self.lmtp_socket = self.base / "var/run/dovecot/lmtp"
        self.auth_socket = self.base / "dev/shm/sasl-auth.sock"
        self.mx_port = free_port()
        self.submission_port = free_port()
        self.remote_port = free_port()
        self.closed_port = free_port()  # nothing listens: Connection refused
        self.remote = RemoteMx()
        self.lmtp = DovecotLmtp(MAILBOXES)
        self.users = {m: PASSWORD for m in MAILBOXES}
        self._controllers = []
        self._auth = None
        self._reader = None
        self._started = False

    # lifecycle

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        from aiosmtpd.controller import Controller, UnixSocketController
        from aiosmtpd.lmtp import LMTP

        for directory in (self.config_dir, self.queue_dir, self.data_dir, self.maillog.parent):
            directory.mkdir(parents=True, exist_ok=True)
        for directory in (self.lmtp_socket.parent, self.auth_socket.parent):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o755)
        shutil.chown(self.data_dir, user="postfix")

        remote = Controller(self.remote, hostname="127.0.0.1", port=self.remote_port, server_hostname="mx.example.net")
        remote.start()
        self._controllers.append(remote)

        class LmtpController(UnixSocketController):
            def factory(self):
                return LMTP(self.handler, **self.SMTP_kwargs)

        lmtp = LmtpController(self.lmtp, unix_socket=self.lmtp_socket, server_hostname=HOSTNAME)
        lmtp.start()
        self._controllers.append(lmtp)
        self.lmtp_socket.chmod(0o666)

        self._auth = _DovecotAuthServer(self.auth_socket, self.users)
        threading.Thread(target=self._auth.serve_forever, name="dovecot-auth", daemon=True).start()
        self.auth_socket.chmod(0o666)

        self._write_config()
        self._reader = _LogReader(self.maillog)
        self._started = True  # from here on, stop() runs `postfix stop` (harmless if nothing runs)
        started = self._run(POSTFIX, "-c", str(self.config_dir), "start")
        if started.returncode != 0:
            raise RuntimeError(f"the private Postfix did not start: {started.stderr}\n{self._tail()}")
        self.wait_for_log(r"postfix/master\[\d+\]: daemon started")

    def stop(self):
        if self._started:
            master = self._master_pid()
            self._run(POSTFIX, "-c", str(self.config_dir), "stop")
            self._wait_for_exit(master)
            self._started = False
        for controller in self._controllers:
            controller.stop()
        self._controllers = []
        if self._auth is not None:
            self._auth.shutdown()
            self._auth.server_close()
            self._auth = None
        if self._reader is not None:
            self._reader.stop()
        if self._own_base and not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)

    def _master_pid(self):
        try:
            return int((self.queue_dir / "pid/master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _wait_for_exit(self, pid, timeout=10):
        if pid is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def _run(self, *argv, **kwargs):
        # TZ=UTC: postlogd stamps local time; the daemons inherit TZ through import_environment.
        env = {**os.environ, "TZ": "UTC", "LANG": "C"}
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, **kwargs)

    # configuration

    def _table(self, name, lines):
        path = self.config_dir / name
        path.write_text("".join(f"{line}\n" for line in lines))
        # Postfix waits before reading a table modified in the last seconds; these were written before it started.
        past = time.time() - 60
        os.utime(path, (past, past))
        return path

    def main_cf(self) -> dict[str, str]:
        """main.cf: DMS's target/postfix/main.cf where it shapes the log, without what needs DNS or files DMS builds
        at start (reject_unknown_*_domain, pcre maps, /etc/aliases), plus what makes it a private loopback
        instance."""
        conf = self.config_dir
        vmailbox = self._table("vmailbox", [f"{m} {m.split('@')[1]}/{m.split('@')[0]}/" for m in MAILBOXES])
        virtual = self._table("virtual", [f"{alias} {targets}" for alias, targets in ALIASES.items()])
        transport = self._table("transport", [f"{REFUSING_DOMAIN} smtp:[127.0.0.1]:{self.closed_port}"])
        sender_transport = self._table(
            "sender_transport", [f"@{POOLED_DOMAIN} {POOL_TRANSPORT}:[127.0.0.1]:{self.remote_port}"]
        )
        postscreen_access = self._table("postscreen_access.cidr", [f"{DENYLISTED_IP}/32 reject"])
        header_checks = self._table(
            "header_checks",
            [
                "/^Subject:.*VIAGRA/ REJECT 5.7.1 Message content rejected",
                "/^Subject:.*Invoice overdue/ HOLD looks like invoice fraud",
                "/^Subject:.*Unsubscribe me/ DISCARD",
            ],
        )
        recipient_access = self._table("recipient_access", [f"{BLACKHOLE} DISCARD", f"{QUARANTINE} HOLD"])
        key, cert = conf / "tls.key", conf / "tls.crt"
        _self_signed(key, cert)
        values = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": HOSTNAME,
            "mydomain": "example.com",
            "smtpd_banner": "$myhostname ESMTP",
            "biff": "no",
            "append_dot_mydomain": "no",
            "readme_directory": "no",
            "smtputf8_enable": "no",
            "alias_maps": "",
            "alias_database": "",
            "mydestination": "$myhostname, localhost.$mydomain, localhost",
            "relayhost": "",
            # DMS trusts 127.0.0.0/8; here only 127.0.0.1, so the other loopback addresses are outside clients.
            "mynetworks": "127.0.0.1/32",
            "mailbox_size_limit": "0",
            "recipient_delimiter": "+",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "smtpd_tls_chain_files": f"{key} {cert}",
            "smtpd_tls_security_level": "may",
            "smtpd_tls_loglevel": "1",
            "smtp_tls_security_level": "may",
            "smtp_tls_loglevel": "1",
            "tls_ssl_options": "NO_COMPRESSION, NO_RENEGOTIATION",
            "smtpd_tls_protocols": "!SSLv2,!SSLv3,!TLSv1,!TLSv1.1",
            "smtpd_helo_required": "yes",
            "smtpd_delay_reject": "yes",
            "smtpd_helo_restrictions": "permit_mynetworks, reject_invalid_helo_hostname, permit",
            "smtpd_relay_restrictions": "permit_mynetworks permit_sasl_authenticated defer_unauth_destination",
            "smtpd_recipient_restrictions": "permit_sasl_authenticated, permit_mynetworks, reject_unauth_destination,"
            f" check_recipient_access texthash:{recipient_access},"
            " reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname",
            "smtpd_client_restrictions": "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
            "dms_smtpd_sender_restrictions": "permit_sasl_authenticated, permit_mynetworks",
            "mua_sender_restrictions": "$dms_smtpd_sender_restrictions",
            "smtpd_sender_restrictions": "$dms_smtpd_sender_restrictions",
            "smtpd_discard_ehlo_keywords": "silent-discard, dsn",
            "smtpd_data_restrictions": "permit_mynetworks, permit_sasl_authenticated, reject_unauth_pipelining",
            "disable_vrfy_command": "yes",
            "smtpd_forbid_bare_newline": "yes",
            # DMS with ENABLE_DNSBL=0 (its default): postscreen runs its pregreet test only. The denylist stands in
            # for a DNSBL hit: same NOQUEUE reject line shape.
            "postscreen_dnsbl_action": "ignore",
            "postscreen_dnsbl_sites": "",
            "postscreen_greet_action": "enforce",
            "postscreen_bare_newline_action": "enforce",
            "postscreen_greet_wait": "1s",
            "postscreen_access_list": f"permit_mynetworks, cidr:{postscreen_access}",
            "postscreen_denylist_action": "enforce",
            "smtpd_sasl_auth_enable": "no",
            "smtpd_sasl_path": str(self.auth_socket),
            "smtpd_sasl_type": "dovecot",
            "smtpd_sasl_security_options": "noanonymous",
            "smtpd_sasl_local_domain": "$mydomain",
            "broken_sasl_auth_clients": "yes",
            "virtual_mailbox_domains": ", ".join(LOCAL_DOMAINS),
            "virtual_mailbox_maps": f"texthash:{vmailbox}",
            "virtual_alias_maps": f"texthash:{virtual}",
            "virtual_transport": f"lmtp:unix:{self.lmtp_socket}",
            "milter_protocol": "6",
            "milter_default_action": "accept",
            "header_checks": f"regexp:{header_checks}",
            # No DNS: DMS's default transport is plain `smtp` (MX lookups); here every next hop is the remote MX.
            "default_transport": f"smtp:[127.0.0.1]:{self.remote_port}",
            "transport_maps": f"texthash:{transport}",
            "sender_dependent_default_transport_maps": f"texthash:{sender_transport}",
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "smtpd_peername_lookup": "no",
            "smtp_connect_timeout": "2s",
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(self.base),
        }
        values.update(self.extra_main_cf)
        return values

    def master_cf(self) -> str:
        """master.cf: DMS's target/postfix/master.cf on loopback ports, and one pooled transport as Dockspace's
        deliverability app adds them (user-patches.sh)."""
        return f"""\
127.0.0.1:{self.mx_port} inet n - n - 1 postscreen
smtpd pass - - n - - smtpd
tlsproxy unix - - n - 0 tlsproxy
dnsblog unix - - n - 0 dnsblog
127.0.0.1:{self.submission_port} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_sasl_type=dovecot
  -o smtpd_reject_unlisted_recipient=no
  -o smtpd_sasl_authenticated_header=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o smtpd_sender_restrictions=$mua_sender_restrictions
  -o smtpd_discard_ehlo_keywords=
  -o milter_macro_daemon_name=ORIGINATING
  -o cleanup_service_name=sender-cleanup
pickup fifo n - n 60 1 pickup
  -o content_filter=
  -o receive_override_options=no_header_body_checks
sender-cleanup unix n - n - 0 cleanup
  -o syslog_name=postfix/sender-cleanup
  -o header_checks=
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
virtual unix - n n - - virtual
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
{POOL_TRANSPORT} unix - - n - - smtp
  -o syslog_name=postfix/{POOL_TRANSPORT} -o smtp_bind_address={POOL_IP} -o smtp_helo_name=out2.example.org
"""

    def _write_config(self):
        (self.config_dir / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in self.main_cf().items()))
        (self.config_dir / "master.cf").write_text(self.master_cf())

    def postconf(self, **values):
        """Change main.cf parameters and reload Postfix (e.g. maximal_queue_lifetime="1s")."""
        reloads = self._count(r"postfix/master\[\d+\]: reload")
        self._check(self._run(POSTCONF, "-c", str(self.config_dir), "-e", *(f"{k}={v}" for k, v in values.items())))
        self._check(self._run(POSTFIX, "-c", str(self.config_dir), "reload"))
        self.wait_for_log(r"postfix/master\[\d+\]: reload", count=reloads + 1)

    def _check(self, done):
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(done.args)} failed: {done.stderr}\n{self._tail()}")
        return done

    # mail

    def message(self, sender, recipients, subject="Hello", body="Hello from the test.\n"):
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = ", ".join(recipients)
        msg["Subject"] = subject
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1] or HOSTNAME)
        msg.set_content(body)
        return msg

    def send(
        self, sender, recipients, *, sasl_user=None, password=None, via=None, client_ip=None, helo=None, subject="Hello"
    ) -> Sent:
        """Send one message. `via`: "smtpd" (the MX port, through postscreen; the default without `sasl_user`),
        "submission" (STARTTLS and AUTH PLAIN; the default with `sasl_user`), or "sendmail" (Postfix's sendmail,
        i.e. pickup). Refused recipients do not raise: they are in the result. A failed AUTH raises
        smtplib.SMTPAuthenticationError."""
        via = via or ("submission" if sasl_user else "smtpd")
        msg = self.message(sender, recipients, subject=subject)
        if via == "sendmail":
            done = self._run(SENDMAIL, "-C", str(self.config_dir), "-f", sender, "--", *recipients, input=str(msg))
            self._check(done)
            return Sent(queue_id="")
        if via == "smtpd":
            port, client_ip = self.mx_port, client_ip or OUTSIDE_IP
            helo = helo or "mta.example.net"
        elif via == "submission":
            port, client_ip = self.submission_port, client_ip or LAPTOP_IP
            helo = helo or "[192.168.1.20]"
        else:
            raise ValueError(f"via must be smtpd, submission or sendmail, not {via!r}")
        with smtplib.SMTP("127.0.0.1", port, local_hostname=helo, source_address=(client_ip, 0), timeout=30) as smtp:
            smtp.ehlo()
            if via == "submission":
                smtp.starttls(context=ssl._create_unverified_context())  # noqa: S323 (our own self-signed cert)
                smtp.ehlo()
                smtp.login(sasl_user, password if password is not None else self.users.get(sasl_user, ""))
            code, reply = smtp.mail(sender)
            if code >= 400:
                return Sent(queue_id="", data_reply=(code, reply.decode()))
            refused = {}
            for rcpt in recipients:
                code, reply = smtp.rcpt(rcpt)
                if code >= 400:
                    refused[rcpt] = (code, reply.decode())
            if len(refused) == len(recipients):
                smtp.rset()
                return Sent(queue_id="", refused=refused)
            try:
                code, reply = smtp.data(msg.as_bytes())
            except smtplib.SMTPDataError as e:
                code, reply = e.smtp_code, e.smtp_error
        text = reply.decode()
        queued = re.search(r"queued as (\w+)", text)
        return Sent(queue_id=queued.group(1) if queued else "", refused=refused, data_reply=(code, text))

    def release(self, queue_id: str):
        """Release a message from the hold queue into the deferred queue (`postsuper -H QUEUE_ID`): the next
        flush delivers it."""
        self._check(self._run(POSTSUPER, "-c", str(self.config_dir), "-H", queue_id))

    def flush(self):
        """Try every deferred message again now (`postqueue -f`)."""
        self._check(self._run(POSTQUEUE, "-c", str(self.config_dir), "-f"))

    def queue(self) -> str:
        return self._run(POSTQUEUE, "-c", str(self.config_dir), "-p").stdout

    # the log

    def log_lines(self) -> list[str]:
        """Every line so far, as DMS writes them: `2026-12-06T10:15:02.123456+00:00 mail postfix/smtpd[1234]: ...`."""
        self._reader.read_now()
        with self._reader.changed:
            return list(self._reader.lines)

    def raw_log_lines(self) -> list[str]:
        """Every line so far as postlogd wrote it: `Dec 06 10:15:02 mail postfix/smtpd[1234]: ...` (UTC)."""
        self._reader.read_now()
        with self._reader.changed:
            return list(self._reader.raw)

    def _count(self, pattern):
        regex = re.compile(pattern)
        return sum(1 for line in self.log_lines() if regex.search(line))

    def wait_for_log(self, pattern, timeout=10.0, count=1) -> list[str]:
        """Wait until `count` lines match the regex `pattern`; return the matching lines. On timeout, fail with the
        end of the log."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._reader.changed:
            while True:
                found = [line for line in self._reader.lines if regex.search(line)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._reader.changed.wait(min(left, 0.1))
        raise AssertionError(f"no {count} log line(s) matching {pattern!r} within {timeout} s:\n{self._tail()}")

    def _tail(self, lines=40):
        if self._reader is None:
            return ""
        return "\n".join(self._reader.raw[-lines:])

    def dms_log(self) -> str:
        """The log as DMS would show it: lines of log_lines() with the base directory's prefix removed from paths and
        the loopback ports replaced by the well-known ones (MX 25, the refusing host 2525)."""
        replacements = {
            str(self.base): "",
            f"[127.0.0.1]:{self.mx_port}": "[127.0.0.1]:25",
            f"[127.0.0.1]:{self.remote_port}": "[127.0.0.1]:25",
            f"[127.0.0.1]:{self.closed_port}": "[127.0.0.1]:2525",
        }
        out = []
        for line in self.log_lines():
            for old, new in replacements.items():
                line = line.replace(old, new)
            out.append(line + "\n")
        return "".join(out)


# --- Every case, played once ----------------------------------------------------------------------------------------


@dataclass
class Cases:
    """The queue ids of the messages play_every_case sent, by case."""

    inbound: str = ""
    alias: str = ""
    header_rejected: Sent | None = None
    mixed: str = ""  # submission: one accepted, one greylisted then accepted, one rejected (550)
    pooled: str = ""
    expiring: str = ""  # deferred (451) until it expires
    refused: str = ""  # Connection refused until it expires
    quota: str = ""  # inbound to a full mailbox: bounced by LMTP, the notification goes back out
    relay_denied: Sent | None = None
    unknown_user: Sent | None = None
    denylisted: Sent | None = None
    auth_failed: str = ""
    held: str = ""  # a header_checks HOLD, released later and delivered
    held_rcpt: str = ""  # an access-table HOLD at RCPT, left in the hold queue
    discarded: str = ""  # a header_checks DISCARD
    discarded_rcpt: str = ""  # an access-table DISCARD at RCPT


def play_every_case(pf: PostfixInstance) -> Cases:
    """Make Postfix log each kind of line the mail-traffic parser reads: mail from outside through postscreen to
    mailboxes and an alias, NOQUEUE rejects (relay, unknown user, postscreen denylist), a header_checks reject,
    submissions with SASL (sent, greylisted then sent, bounced with a remote 550 and its non-delivery notification),
    mail leaving through the pooled transport, sendmail/pickup, an LMTP quota bounce whose notification goes out with
    the null sender, a failed SASL login, two messages that stay deferred (451, Connection refused) until they
    expire, and HOLD and DISCARD actions (header_checks, and an access table at RCPT): one held message is released
    and delivered, the other stays held."""
    cases = Cases()
    cases.inbound = pf.send("news@example.net", ["alice@example.com"]).queue_id
    cases.alias = pf.send("friend@example.net", ["info@example.com"]).queue_id
    cases.relay_denied = pf.send("spam@example.net", ["victim@elsewhere.example"])
    cases.unknown_user = pf.send("news@example.net", ["nobody@example.com"])
    cases.header_rejected = pf.send("promo@example.net", ["alice@example.com"], subject="Cheap VIAGRA")
    cases.denylisted = pf.send("spam@spam.example", ["alice@example.com"], client_ip=DENYLISTED_IP)
    alice = "alice@example.com"
    cases.mixed = pf.send(
        alice, ["someone@example.net", "greylist.me@example.net", "reject.me@example.net"], sasl_user=alice
    ).queue_id
    cases.pooled = pf.send("carol@example.org", ["dave@example.net"], sasl_user="carol@example.org").queue_id
    cases.expiring = pf.send(alice, ["defer.me@example.net"], sasl_user=alice).queue_id
    cases.refused = pf.send(alice, [f"someone@{REFUSING_DOMAIN}"], sasl_user=alice).queue_id
    cases.quota = pf.send("sender@example.net", ["full@example.com"]).queue_id
    pf.send("bob@example.com", ["alice@example.com"], via="sendmail")
    try:
        pf.send(alice, ["someone@example.net"], sasl_user=alice, password="wrong")
    except smtplib.SMTPAuthenticationError as e:
        cases.auth_failed = e.smtp_error.decode()

    cases.held = pf.send("billing@example.net", ["alice@example.com"], subject="Invoice overdue").queue_id
    cases.held_rcpt = pf.send("news@example.net", [QUARANTINE]).queue_id
    cases.discarded = pf.send("list@example.net", ["alice@example.com"], subject="Unsubscribe me").queue_id
    cases.discarded_rcpt = pf.send("news@example.net", [BLACKHOLE]).queue_id

    pf.wait_for_log(rf"{cases.held}: hold: header Subject: Invoice overdue")
    pf.release(cases.held)
    pf.wait_for_log(rf"{cases.mixed}: to=<greylist\.me@example\.net>.* status=deferred")
    pf.wait_for_log(rf"{cases.expiring}: to=<defer\.me@example\.net>.* status=deferred")
    pf.wait_for_log(rf"{cases.refused}: to=<someone@{re.escape(REFUSING_DOMAIN)}>.* status=deferred")
    pf.wait_for_log(rf"{cases.quota}: to=<full@example\.com>.* status=bounced")
    pf.flush()
    pf.wait_for_log(rf"{cases.mixed}: to=<greylist\.me@example\.net>.* status=sent")
    pf.wait_for_log(rf"{cases.mixed}: removed")
    pf.wait_for_log(rf"{cases.held}: removed")
    # Expiry: the two deferred messages are older than the new lifetime when they are next tried.
    pf.postconf(maximal_queue_lifetime="1s", bounce_queue_lifetime="1s")
    pf.flush()
    pf.wait_for_log(rf"{cases.expiring}: from=<{alice}>, status=expired, returned to sender")
    pf.wait_for_log(rf"{cases.refused}: from=<{alice}>, status=expired, returned to sender")
    for queue_id in (cases.expiring, cases.refused, cases.quota):
        pf.wait_for_log(rf"{queue_id}: removed")
    # Each non-delivery notification has been delivered (to alice over LMTP, or out to sender@example.net).
    for notification in pf.wait_for_log(r"sender non-delivery notification: \w+", count=4):
        new_queue_id = notification.rsplit(" ", 1)[-1]
        pf.wait_for_log(rf"{new_queue_id}: removed")
    return cases


def main(argv):
    """Write the log of play_every_case, as DMS shows it, to the file named by the one argument."""
    if len(argv) != 1:
        print("usage: python -m monitoring.tests.postfix_instance OUTPUT.log", file=sys.stderr)
        return 2
    if SKIP_REASON:
        print(SKIP_REASON, file=sys.stderr)
        return 2
    with PostfixInstance() as pf:
        play_every_case(pf)
        Path(argv[0]).write_text(pf.dms_log())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
