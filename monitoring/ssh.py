"""The one module that speaks SSH (paramiko): pinned host keys, only the configured private key, timeouts, fixed
argument lists. Every failure is an SshError with one clear sentence; no traceback, no key material, ever."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import posixpath
import re
import select
import shlex
import socket
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from dockspace.env import env_str
from dockspace.tracing import span
from monitoring.probes.collect import CommandResult

if TYPE_CHECKING:
    from monitoring.models import MailHost

__all__ = [
    "CommandResult",
    "HostKey",
    "KeySourceRefused",
    "Session",
    "SshError",
    "checked_key_source",
    "fetch_host_key",
    "load_private_key",
    "session",
]

# Output kept per stream; the rest is read (so the remote side never blocks) and dropped.
MAX_OUTPUT_BYTES = 64 * 1024 * 1024
# Commands that need root on a host where the SSH user is not in the docker group (MailHost.use_sudo).
SUDO_COMMANDS = frozenset({"docker"})
SUDO_PASSWORD_SIGNS = ("a password is required", "a terminal is required", "you must have a tty")
# Where a host's private key may come from: a file inside settings.MAILHOST_SSH_KEY_DIR, or a variable whose name
# starts with KEY_ENV_PREFIX. Whoever may add a host must not be able to make Dockspace read any other file or
# variable (another secret, SECRET_KEY) as a key; checked when a host is added or changed AND whenever a key is
# loaded (a row from an older version or a restored backup is not trusted either).
KEY_DIR_VARIABLE = "DOCKSPACE_SSH_KEY_DIR"
KEY_ENV_PREFIX = "DOCKSPACE_SSH_KEY_"
KEY_ENV_RE = re.compile(rf"^{KEY_ENV_PREFIX}[A-Za-z0-9_]{{1,80}}\Z")


@dataclass(frozen=True)
class HostKey:
    """A server's public host key as pinned on a MailHost: type (`ssh-ed25519`), `SHA256:...`, base64."""

    type: str
    fingerprint: str
    base64: str


class SshError(Exception):
    """What went wrong, in one sentence. kind: unreachable, timeout, auth, host-key-changed, key, sudo, ssh."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class KeySourceRefused(SshError):
    """The key file or variable breaks the key rules (see KEY_DIR_VARIABLE); `field`: key_path or key_env."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__("key", message)
        self.field = field


def connect_timeout() -> int:
    return settings.MAILHOST_SSH_TIMEOUT


def command_timeout() -> int:
    return settings.MAILHOST_COMMAND_TIMEOUT


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def host_key_of(key: paramiko.PKey) -> HostKey:
    return HostKey(type=key.get_name(), fingerprint=key.fingerprint, base64=key.get_base64())


# --- the private key -------------------------------------------------------------------------------------


_KEY_CLASSES = (
    (rsa.RSAPrivateKey, paramiko.RSAKey),
    (ed25519.Ed25519PrivateKey, paramiko.Ed25519Key),
    (ec.EllipticCurvePrivateKey, paramiko.ECDSAKey),
)


def _private_key_from_text(text: str, source: str) -> paramiko.PKey:
    data = text.encode("utf-8", "replace")
    loaded: object
    try:
        try:
            loaded = serialization.load_ssh_private_key(data, password=None)
        except ValueError:
            loaded = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise SshError("key", f"{source} holds a passphrase-protected key; use a key without a passphrase.") from None
    except (ValueError, paramiko.SSHException):
        raise SshError("key", f"{source} does not hold a private key in OpenSSH or PEM format.") from None
    for crypto_class, key_class in _KEY_CLASSES:
        if isinstance(loaded, crypto_class):
            try:
                return key_class.from_private_key(io.StringIO(text))
            except (paramiko.SSHException, ValueError):
                break
    raise SshError("key", f"{source} holds a key type SSH here does not support (use ed25519, ECDSA or RSA).")


def _key_file(value: str) -> str:
    path = value.strip()
    if not path.startswith("/") or "\n" in path or "\x00" in path:
        raise KeySourceRefused("key_path", f"the key file must be an absolute path (starting with /); got {path!r}.")
    path = posixpath.normpath(path) if path != "/" else path
    directory = os.path.realpath(settings.MAILHOST_SSH_KEY_DIR)
    real = os.path.realpath(path)  # symbolic links followed: a link in the directory may not lead out of it
    if real == directory or os.path.commonpath([real, directory]) != directory:
        raise KeySourceRefused(
            "key_path",
            f"the key file must be inside the SSH key directory {settings.MAILHOST_SSH_KEY_DIR} ({KEY_DIR_VARIABLE}; "
            f"symbolic links are followed): {path} is not.",
        )
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return path  # a missing or unreadable file is named when the key is loaded
    if stat.S_ISREG(mode) and mode & 0o077:
        # As OpenSSH's "UNPROTECTED PRIVATE KEY FILE": a key others may read is no longer only Dockspace's.
        raise KeySourceRefused(
            "key_path",
            f"the key file {path} may be read or written by group or others (mode {stat.S_IMODE(mode):04o}); a "
            f"private key must be private to Dockspace's user: run chmod 600 {path}.",
        )
    return path


def checked_key_source(key_path: str | None, key_env: str | None) -> tuple[str, str]:
    """(key_path, key_env), the path normalised, when exactly one is given and it follows the key rules (a file
    inside the SSH key directory that group and others may not use, a variable named DOCKSPACE_SSH_KEY_...);
    KeySourceRefused otherwise. Nothing is read: a refusal says nothing about a file outside the directory."""
    key_path, key_env = (key_path or "").strip(), (key_env or "").strip()
    if bool(key_path) == bool(key_env):
        raise KeySourceRefused("key_path", "give exactly one of a key file (--key) and a key variable (--key-env).")
    if key_path:
        return _key_file(key_path), ""
    if not KEY_ENV_RE.match(key_env) or key_env == KEY_DIR_VARIABLE:
        raise KeySourceRefused(
            "key_env",
            f"{key_env!r} is refused: the key variable's name must start with {KEY_ENV_PREFIX} (then letters, digits, "
            f"'_'; e.g. {KEY_ENV_PREFIX}MX1), so that no other variable of Dockspace's is read as a key.",
        )
    return "", key_env


def load_private_key(*, key_path: str = "", key_env: str = "") -> paramiko.PKey:
    """The paramiko key from a file in the SSH key directory or from a DOCKSPACE_SSH_KEY_ variable (or NAME_FILE);
    a source that breaks the key rules is refused before anything is read (KeySourceRefused)."""
    key_path, key_env = checked_key_source(key_path, key_env)
    if key_path:
        source = f"the key file {key_path}"
        try:
            text = Path(key_path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SshError("key", f"{source} does not exist on the Dockspace machine.") from None
        except PermissionError:
            raise SshError("key", f"{source} is not readable by Dockspace (permission denied).") from None
        except IsADirectoryError:
            raise SshError("key", f"{source} is a directory, not a key file.") from None
        except (OSError, UnicodeDecodeError) as e:
            raise SshError("key", f"{source} cannot be read: {getattr(e, 'strerror', None) or 'not text'}.") from None
        return _private_key_from_text(text, source)
    source = f"the environment variable {key_env}"
    try:
        text = env_str(key_env)
    except ImproperlyConfigured as e:
        raise SshError("key", str(e)) from None
    if not text:
        raise SshError("key", f"{source} (or {key_env}_FILE) is not set in Dockspace's environment.")
    return _private_key_from_text(text + "\n", source)


# --- connecting ------------------------------------------------------------------------------------------


class _Offered(Exception):
    def __init__(self, key: paramiko.PKey) -> None:
        self.key = key


class _CaptureOfferedKey(paramiko.MissingHostKeyPolicy):
    """First contact: note the key the server offered and stop before authenticating."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise _Offered(key)


class _RefuseUnpinned(paramiko.MissingHostKeyPolicy):
    """A pinned host: paramiko asks here only when the server offered a key of another type than the pinned one.
    (A different key of the pinned type raises BadHostKeyException.) Either way: refused, nothing runs."""

    def __init__(self, pinned: paramiko.PKey) -> None:
        self.pinned = pinned

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise paramiko.BadHostKeyException(hostname, key, self.pinned)


def _connect_errors(host: str, port: int, timeout: float) -> contextlib.AbstractContextManager[None]:
    """Map the ways a connection fails to SshError (as a context manager around connecting)."""
    where = _where(host, port)

    @contextlib.contextmanager
    def mapping() -> Iterator[None]:
        try:
            yield
        except SshError:
            raise
        except paramiko.BadHostKeyException as e:
            raise SshError(
                "host-key-changed",
                f"the host key of {where} changed: it offers {e.key.fingerprint} ({e.key.get_name()}) but "
                f"{e.expected_key.fingerprint} ({e.expected_key.get_name()}) is pinned. Nothing was run. If the "
                "host was reinstalled or its keys rotated, check the new fingerprint on the host "
                "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then pin it: manage.py mailhost repin, or "
                '"Re-pin host key" on the host\'s admin page.',
            ) from None
        except paramiko.AuthenticationException:
            raise SshError("auth", f"{where} refused the key (authentication failed).") from None
        except socket.gaierror:
            raise SshError("unreachable", f"{host} cannot be resolved (no such host name).") from None
        except UnicodeError:  # the IDNA codec refuses the name (an empty or over-long label: a..b)
            raise SshError("unreachable", f"{host} cannot be resolved (not a valid host name).") from None
        except TimeoutError:
            raise SshError("timeout", f"{where} did not answer within {timeout:g} s.") from None
        except paramiko.ssh_exception.NoValidConnectionsError:
            raise SshError("unreachable", f"{where} refused the connection or cannot be reached.") from None
        except ConnectionRefusedError:
            raise SshError("unreachable", f"{where} refused the connection (is sshd running there?).") from None
        except (EOFError, ConnectionResetError):
            raise SshError("ssh", f"{where} closed the connection during the SSH handshake.") from None
        except OSError as e:
            raise SshError("unreachable", f"{where} cannot be reached: {e.strerror or e}.") from None
        except paramiko.SSHException as e:
            text = str(e)
            if "banner" in text.lower():
                raise SshError("timeout", f"{where} did not answer as an SSH server within {timeout:g} s.") from None
            if text in ("No existing session", "Negotiation timed out."):
                raise SshError("timeout", f"{where} did not finish the SSH handshake in time.") from None
            raise SshError("ssh", f"SSH to {where} failed: {text}.") from None

    return mapping()


def _client(policy: paramiko.MissingHostKeyPolicy) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(policy)
    return client


def _connect_kwargs(timeout: float) -> dict[str, Any]:
    return {
        # paramiko uses `timeout` for the TCP connect and for the whole handshake, which must outlast the banner
        # wait, or a silent port ends as an unexplained "No existing session".
        "timeout": timeout + 2,
        "banner_timeout": timeout,
        "auth_timeout": timeout,
        "channel_timeout": timeout,
        "allow_agent": False,
        "look_for_keys": False,
    }


def fetch_host_key(host: str, port: int = 22, timeout: float | None = None) -> HostKey:
    """The host key a server offers now (first contact: nothing authenticates and nothing runs)."""
    timeout = timeout or connect_timeout()
    client = _client(_CaptureOfferedKey())
    try:
        with _connect_errors(host, port, timeout):
            client.connect(host, port=port, username="dockspace-host-key", **_connect_kwargs(timeout))
    except _Offered as offered:
        return host_key_of(offered.key)
    finally:
        client.close()
    raise SshError("ssh", f"{_where(host, port)} did not offer a host key.")  # pragma: no cover: connect asks


def pinned_key(host: MailHost) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_type_string(host.host_key_type, base64.b64decode(host.host_key))
    except (ValueError, paramiko.SSHException, paramiko.pkey.UnknownKeyType):
        raise SshError(
            "host-key-changed", f"the pinned host key of {host.name} is unreadable; add the host again."
        ) from None


class Session:
    """An authenticated connection to a mail host; `run(argv)` runs one fixed command on it."""

    def __init__(self, host: MailHost, client: paramiko.SSHClient | None) -> None:
        self.host = host
        self._client = client

    def command_line(self, argv: Sequence[str]) -> str:
        """The exact command string sent for argv (what the audit log records)."""
        return shlex.join(_with_sudo(self.host, argv))

    def run(self, argv: Sequence[str], timeout: float | None = None) -> CommandResult:
        """Run argv (a list of fixed words; shlex.join quotes each) and return its CommandResult. Reads both
        streams while the command runs (a large output never stalls it); SshError on a timeout or a sudo that
        wants a password."""
        exit_status, out, err = self.run_bytes(argv, timeout)
        return CommandResult(exit_status, out.decode("utf-8", "replace"), err)

    def run_bytes(self, argv: Sequence[str], timeout: float | None = None) -> tuple[int, bytes, str]:
        """As run(), with stdout the bytes sent (a file read by byte offsets): (exit status, stdout, stderr)."""
        argv = [str(word) for word in argv]
        timeout = timeout or command_timeout()
        line = self.command_line(argv)
        where = self.host.name
        transport = self._client.get_transport() if self._client is not None else None
        if transport is None or not transport.is_active():
            raise SshError("ssh", f"the SSH connection to {where} is closed.")
        # Traced (README "Tracing") by the program's name, the host and the exit status: never the output.
        with span(f"ssh {argv[0]}" if argv else "ssh", **self._span_attributes()) as traced:
            try:
                channel = transport.open_session(timeout=timeout)
                channel.exec_command(line)
                channel.shutdown_write()
                exit_status, out, err = _collect(channel, timeout)
            except TimeoutError:
                raise SshError("timeout", f"`{line}` did not finish within {timeout:g} s on {where}.") from None
            except (paramiko.SSHException, EOFError, OSError) as e:
                raise SshError("ssh", f"running `{line}` on {where} failed: {e}.") from None
            traced.set_attribute("process.exit.code", exit_status)
            stderr = err.decode("utf-8", "replace")
            _refuse_sudo_prompt(self.host, argv, CommandResult(exit_status, "", stderr))
        return exit_status, out, stderr

    def _span_attributes(self) -> dict[str, Any]:
        return {
            "mailhost.name": self.host.name,
            "server.address": self.host.ssh_host,
            "server.port": self.host.ssh_port,
        }


def _with_sudo(host: MailHost, argv: Sequence[str]) -> list[str]:
    if host.use_sudo and argv and argv[0] in SUDO_COMMANDS:
        return ["sudo", "-n", *argv]
    return list(argv)


def _refuse_sudo_prompt(host: MailHost, argv: Sequence[str], result: CommandResult) -> None:
    if not (host.use_sudo and argv and argv[0] in SUDO_COMMANDS) or result.exit_status == 0:
        return
    stderr = result.stderr.lower()
    if "sudo:" in stderr and any(sign in stderr for sign in SUDO_PASSWORD_SIGNS):
        raise SshError(
            "sudo",
            f"the SSH user {host.ssh_user} needs passwordless sudo for {argv[0]} on {host.name}: sudo asked for a "
            f"password. Add `{host.ssh_user} ALL=(root) NOPASSWD: /usr/bin/{argv[0]}` with visudo, or put the user "
            "in the docker group and turn sudo off for this host.",
        )
    if result.exit_status == 127 and "sudo" in stderr and "not found" in stderr:
        raise SshError("sudo", f"sudo is not installed on {host.name}; install it or turn sudo off for this host.")


def _collect(channel: paramiko.Channel, timeout: float) -> tuple[int, bytes, bytes]:
    """(exit status, stdout, stderr) of a running command; TimeoutError past `timeout` seconds."""
    deadline = time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    try:
        while True:
            busy = False
            if channel.recv_ready():
                _keep(out, channel.recv(65536))
                busy = True
            if channel.recv_stderr_ready():
                _keep(err, channel.recv_stderr(65536))
                busy = True
            if busy:
                continue
            # Done once the exit status is in AND the server said it sends nothing more (EOF, or the channel
            # closed): on a busy server the last stderr chunk can come after the exit status.
            finished = channel.exit_status_ready() and (channel.eof_received or channel.closed)
            if finished and not channel.recv_ready() and not channel.recv_stderr_ready():
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            # The channel's pipe wakes us for stdout; stderr and the exit status are polled.
            select.select([channel], [], [], min(remaining, 0.01))
        return channel.recv_exit_status(), bytes(out), bytes(err)
    finally:
        channel.close()


def _keep(buffer: bytearray, chunk: bytes) -> None:
    room = MAX_OUTPUT_BYTES - len(buffer)
    if room > 0:
        buffer.extend(chunk[:room])


# --- a mail host's mail log (read by monitoring.maillog.remote) ---------------------------------------------------

# The only files of the container's mail log that are read, in DMS's log directory, and how: nothing else is sent.
MAIL_LOG_DIR = "/var/log/mail"
MAIL_LOG_FILES = ("mail.log", "mail.log.1")  # the log, and the copy logrotate made of it (plain: delaycompress)
MAIL_LOG_HEAD_BYTES = 4096
MAIL_LOG_READ_BLOCK = 65536
_CONTAINER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")  # as monitoring.hosts.CONTAINER_RE


def mail_log_argv(container: str, action: str, name: str, *, position: int = 0, length: int = 0) -> list[str]:
    """The command run on the mail host to read its mail log /var/log/mail/NAME inside `container`:
    "stat" prints `DEVICE INODE SIZE`; "head" prints its first MAIL_LOG_HEAD_BYTES bytes; "read" prints up to
    `length` bytes from byte `position` (dd seeks there: the file is not read from the top). ValueError naming the
    part for anything else (NAME must be one of MAIL_LOG_FILES)."""
    if not _CONTAINER_NAME.match(container):
        raise ValueError(f"container: {container[:130]!r} is not a Docker container name")
    if name not in MAIL_LOG_FILES:
        raise ValueError(f"name: only {', '.join(MAIL_LOG_FILES)} of {MAIL_LOG_DIR} are read; got {name[:100]!r}")
    path = f"{MAIL_LOG_DIR}/{name}"
    in_container = ["docker", "exec", container]
    if action == "stat":
        return [*in_container, "stat", "-L", "-c", "%d %i %s", "--", path]
    if action == "head":
        return [*in_container, "head", "-c", str(MAIL_LOG_HEAD_BYTES), "--", path]
    if action == "read":
        if not (isinstance(position, int) and isinstance(length, int) and position >= 0 and length > 0):
            raise ValueError(f"position, length: whole numbers, at least 0 and 1; got {position!r}, {length!r}")
        return [
            *in_container,
            "dd",
            f"if={path}",
            f"bs={MAIL_LOG_READ_BLOCK}",
            f"skip={position}",
            f"count={length}",
            "iflag=skip_bytes,count_bytes",
            "status=none",
        ]
    raise ValueError(f"action: stat, head or read; got {action!r}")


@contextlib.contextmanager
def session(host: MailHost, *, timeout: float | None = None) -> Iterator[Session]:
    """`with session(host) as s: s.run([...])`: connect to the host with only its configured key, refuse any
    host key but the pinned one (SshError, nothing run), close on the way out."""
    timeout = timeout or connect_timeout()
    key = load_private_key(key_path=host.key_path, key_env=host.key_env)
    pinned = pinned_key(host)
    client = _client(_RefuseUnpinned(pinned))
    name = host.ssh_host if host.ssh_port == 22 else f"[{host.ssh_host}]:{host.ssh_port}"
    client.get_host_keys().add(name, pinned.get_name(), pinned)
    try:
        with _connect_errors(host.ssh_host, host.ssh_port, timeout):
            client.connect(
                host.ssh_host, port=host.ssh_port, username=host.ssh_user, pkey=key, **_connect_kwargs(timeout)
            )
        yield Session(host, client)
    finally:
        client.close()
