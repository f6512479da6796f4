"""A private, throwaway Dovecot (IMAP, LMTP, SASL socket) for tests, fed the passwd-file that DMS builds from
postfix-accounts.cf, so tests can check what a rendered accounts file really allows."""

import base64
import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dockspace.tests.ports import free_port as _free_port

# DMS's default DMS_VMAIL_UID / DMS_VMAIL_GID.
DMS_VMAIL_ID = 5000

# Where Debian, RHEL and source builds put Dovecot's service binaries (imap, lmtp, auth...).
_LIBEXEC_DIRS = ("/usr/lib/dovecot", "/usr/libexec/dovecot", "/usr/local/libexec/dovecot")

_TIMEOUT = 10


def _dms_valid_lines(text):
    """The lines DMS reads from one of its files: blank lines and `#` comments (after blanks) dropped."""
    return [line for line in text.split("\n") if line.strip() and not line.lstrip().startswith("#")]


def _dms_quota_field(address, quotas_text):
    """DMS greps `address:` case-insensitively and unanchored and keeps the first hit, if it splits in two."""
    needle = f"{address}:".lower()
    hits = [line for line in quotas_text.split("\n") if needle in line.lower()]
    if not hits:
        return ""
    parts = hits[0].split(":")
    return f"userdb_quota_rule=*:bytes={parts[1]}" if len(parts) == 2 else ""


def _join_fields(extra, more):
    return f"{extra} {more}" if extra and more else extra or more


def _user_and_domain(address):
    # `cut -d@ -f1` / `-f2` print the whole line for both when there is no `@`.
    if "@" not in address:
        return address, address
    parts = address.split("@")
    return parts[0], parts[1]


def dms_userdb_lines(
    accounts_text, *, quotas_text="", virtual_text="", uid=DMS_VMAIL_ID, gid=DMS_VMAIL_ID, mail_root="/var/mail"
):
    """The /etc/dovecot/userdb that DMS writes from postfix-accounts.cf (+ dovecot-quotas.cf, postfix-virtual.cf).

    Re-implemented from docker-mailserver's target/scripts/helpers/accounts.sh (`_create_accounts` and
    `_create_dovecot_alias_dummy_accounts`, commit 7bf699bc, the DMS_VMAIL_UID era; comment/blank filtering
    is `_get_valid_lines_from_file` in target/scripts/helpers/utils.sh). DMS then serves that one file as both
    passdb and userdb (target/dovecot/auth-passwdfile.inc, Dovecot 2.3: `passdb { driver = passwd-file
    args = scheme=SHA512-CRYPT username_format=%u /etc/dovecot/userdb }`, and a userdb with the same file,
    `username_format=%u` and `default_fields = uid=docker gid=docker home=/var/mail/%d/%u/home/`).

    Per account line `login|hash|attributes` (split on the first two `|`, the rest kept whole):
    `login:hash:uid:gid::<mail_root>/<domain>/<user>/home::attributes`, where a quota line for the login adds
    `userdb_quota_rule=*:bytes=<value>` after the attributes. So the third field of postfix-accounts.cf lands
    verbatim in passwd-file's extra_fields: passdb sees every field there, userdb only the `userdb_` ones.
    An identical line already written is not written twice.

    Alias lines `alias target` (aliases with `@` whose target string occurs somewhere in the raw accounts
    file; DMS adds them when ENABLE_QUOTAS=1, the default) become dummy entries that copy the first matching
    account's hash and third field, with home `<mail_root>/<target domain>/<target user>` (no `/home`, as in
    DMS). DMS greps the target as a basic regex; this takes it literally, the same for ordinary addresses.
    Pass virtual_text="" to model ENABLE_QUOTAS=0.
    """
    mail_root = mail_root.rstrip("/")
    out = []
    for line in _dms_valid_lines(accounts_text):
        login, password, attributes = (line.split("|", 2) + ["", ""])[:3]
        user, domain = _user_and_domain(login)
        attributes = _join_fields(attributes, _dms_quota_field(f"{user}@{domain}", quotas_text))
        entry = f"{login}:{password}:{uid}:{gid}::{mail_root}/{domain}/{user}/home::{attributes}"
        if not any(entry in written for written in out):
            out.append(entry)

    raw_account_lines = accounts_text.split("\n")
    for line in _dms_valid_lines(virtual_text):
        words = line.split(None, 1)
        alias, target = words[0], (words[1].strip() if len(words) > 1 else "")
        if "@" not in alias:
            continue
        hits = [account for account in raw_account_lines if target in account]
        if not hits:
            continue
        real = hits[0].split("|")
        if len(real) < 2 or not real[1]:
            # DMS stops the whole container here (_dms_panic__misconfigured).
            raise ValueError(f"postfix-accounts.cf: the line for alias target {target!r} has no password field")
        attributes = _join_fields(real[2] if len(real) > 2 else "", _dms_quota_field(target, quotas_text))
        user, domain = _user_and_domain(target)
        entry = f"{alias}:{real[1]}:{uid}:{gid}::{mail_root}/{domain}/{user}::{attributes}"
        if not any(written.lower().startswith(f"{alias.lower()}:") for written in out):
            out.append(entry)
    return "".join(f"{entry}\n" for entry in out)


def dovecot_version():
    """`dovecot --version` (e.g. "2.3.19.1 (9b53102964)"), or None when Dovecot is not installed."""
    if not shutil.which("dovecot") or not shutil.which("doveadm"):
        return None
    return subprocess.run(
        ["dovecot", "--version"], capture_output=True, text=True, timeout=_TIMEOUT, check=True
    ).stdout.strip()


def skip_unless_dovecot_23():
    """Skip the calling test unless Dovecot 2.3 (what DMS v15 ships; the config below is 2.3 syntax) is here."""
    version = dovecot_version()
    if version is None:
        pytest.skip("dovecot/doveadm not installed (Debian: apt-get install dovecot-core)")
    if not version.startswith("2.3."):
        pytest.skip(f"the test Dovecot config is written for Dovecot 2.3, found {version}")
    return version


def installed_protocols():
    """Which of imap and lmtp this host can serve: Debian ships them apart from dovecot-core."""
    for libexec in _LIBEXEC_DIRS:
        if Path(libexec, "auth").exists():
            return {name for name in ("imap", "lmtp") if Path(libexec, name).exists()}
    return set()


def skip_unless_protocol(name):
    """Skip the calling test unless Dovecot's `imap` or `lmtp` service binary is installed."""
    if name not in installed_protocols():
        pytest.skip(f"Dovecot's {name} service is not installed (Debian: apt-get install dovecot-{name}d)")


def hash_password(password, scheme="SHA512-CRYPT"):
    """`{SCHEME}hash` from the real `doveadm pw`, as DMS's `setup email add` makes it."""
    return subprocess.run(
        ["doveadm", "pw", "-s", scheme, "-p", password],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        check=True,
    ).stdout.strip()


@dataclass(frozen=True)
class SaslReply:
    """Dovecot's answer to one AUTH request: is_ok is what Postfix acts on; fields are the extra fields."""

    is_ok: bool
    fields: dict = field(default_factory=dict)


@dataclass
class DovecotServer:
    """A running private Dovecot. Sockets live in base_dir; mail is maildir under mail_root/<domain>/<user>."""

    root: Path
    conf_path: Path
    mail_root: Path
    imap_port: int | None
    lmtp_port: int | None

    @property
    def base_dir(self):
        return self.root / "run"

    @property
    def auth_client_socket(self):
        """The socket Postfix's smtpd_sasl_path points at in DMS (there /var/spool/postfix/private/auth)."""
        return self.base_dir / "auth-client"

    @property
    def auth_userdb_socket(self):
        return self.base_dir / "auth-userdb"

    @property
    def log_path(self):
        return self.root / "dovecot.log"

    def log_tail(self, lines=20):
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def doveadm(self, *args):
        return subprocess.run(
            ["doveadm", "-c", str(self.conf_path), *args], capture_output=True, text=True, timeout=_TIMEOUT
        )

    def auth_test(self, user, password):
        """`doveadm auth test` on the auth-client socket; returncode 0 = passdb accepted the password."""
        return self.doveadm("auth", "test", "-a", str(self.auth_client_socket), user, password)

    def user_fields(self, user):
        """The userdb fields `doveadm user` shows for user (what LMTP delivery uses), or None if unknown."""
        result = self.doveadm("user", "-a", str(self.auth_userdb_socket), user)
        if result.returncode != 0:
            return None
        rows = [line.split("\t", 1) for line in result.stdout.splitlines()[1:]]
        return {row[0]: row[1] if len(row) > 1 else "" for row in rows}

    def sasl_plain(self, user, password, *, service="smtp"):
        """AUTH PLAIN on the auth-client socket, sent exactly as Postfix's xsasl_dovecot_server.c sends it.

        Postfix treats any `OK` reply as a successful SMTP AUTH and ignores every field on it (`nologin`
        included), so is_ok is precisely "Postfix would let this user send".
        """
        initial = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(_TIMEOUT)
            conn.connect(str(self.auth_client_socket))
            stream = conn.makefile("rwb")
            stream.write(f"VERSION\t1\t2\nCPID\t{os.getpid()}\n".encode())
            stream.flush()
            while (line := stream.readline()) and line.rstrip(b"\n") != b"DONE":
                pass
            stream.write(
                f"AUTH\t1\tPLAIN\tservice={service}\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tsecured"
                f"\tresp={initial}\n".encode()
            )
            stream.flush()
            reply = stream.readline().decode().rstrip("\n").split("\t")
        if reply[0] not in ("OK", "FAIL"):
            raise RuntimeError(f"unexpected auth reply {reply!r}\n{self.log_tail()}")
        fields = dict((item.split("=", 1) + [""])[:2] for item in reply[2:])
        return SaslReply(is_ok=reply[0] == "OK", fields=fields)

    def delivered_messages(self, address):
        """Message files in address's INBOX maildir (new/ and cur/)."""
        user, domain = address.split("@")
        inbox = self.mail_root / domain / user
        return sorted(path for sub in ("new", "cur") if (inbox / sub).is_dir() for path in (inbox / sub).iterdir())


@dataclass(frozen=True)
class _RunAs:
    """Who Dovecot's processes run as and who owns the mail (userdb uid/gid)."""

    internal_user: str
    internal_group: str
    login_user: str
    worker_user: str
    uid: int
    gid: int


def _run_as():
    """As root, login processes refuse to run as root and mail processes refuse uid 0, so Debian's unprivileged
    accounts run the services and the mail belongs to `nobody`. Otherwise everything runs as the current
    user and group, which is all an unprivileged Dovecot can do (auth-worker and the sockets included)."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        return _RunAs(me, group, me, me, os.getuid(), os.getgid())

    def first_existing(*names):
        for name in names:
            with contextlib.suppress(KeyError):
                return pwd.getpwnam(name)
        raise RuntimeError(f"none of the users {names} exists to run Dovecot's unprivileged processes")

    internal, nobody = first_existing("dovecot", "nobody"), first_existing("nobody")
    return _RunAs(
        internal_user=internal.pw_name,
        internal_group=grp.getgrgid(internal.pw_gid).gr_name,
        login_user=first_existing("dovenull", "nobody").pw_name,
        worker_user="root",
        uid=nobody.pw_uid,
        gid=nobody.pw_gid,
    )


def _config(root, mail_root, userdb_path, *, protocols, imap_port, lmtp_port, run_as):
    listeners = []
    if imap_port:
        listeners.append(
            "service imap-login {\n  chroot =\n"
            f"  inet_listener imap {{\n    address = 127.0.0.1\n    port = {imap_port}\n  }}\n"
            "  inet_listener imaps {\n    port = 0\n  }\n}\n"
        )
    if lmtp_port:
        listeners.append(
            "service lmtp {\n"
            f"  inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {lmtp_port}\n  }}\n"
            "  unix_listener lmtp {\n    mode = 0600\n  }\n}\n"
        )
    return f"""# Written by mail/tests/dovecot_server.py; auth settings as DMS's auth-passwdfile.inc / 10-auth.conf.
instance_name = dockspace-test-{root.name}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = {" ".join(sorted(protocols)) or "none"}
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# A failed login is answered after up to 2 s (0 still leaves Dovecot 2.3's 500 ms flush timer).
auth_failure_delay = 0
default_internal_user = {run_as.internal_user}
default_internal_group = {run_as.internal_group}
default_login_user = {run_as.login_user}
first_valid_uid = {run_as.uid}
first_valid_gid = {run_as.gid}
mail_home = {mail_root}/%d/%n/home/
mail_location = maildir:{mail_root}/%d/%n

passdb {{
  driver = passwd-file
  args = scheme=SHA512-CRYPT username_format=%u {userdb_path}
}}

userdb {{
  driver = passwd-file
  args = username_format=%u {userdb_path}
  default_fields = uid={run_as.uid} gid={run_as.gid} home={mail_root}/%d/%u/home/
}}

service auth {{
  unix_listener auth-client {{
    mode = 0666
  }}
  unix_listener auth-userdb {{
    mode = 0666
  }}
}}

# auth-worker runs as root by default, which an unprivileged master cannot do.
service auth-worker {{
  user = {run_as.worker_user}
}}

# The auth penalty slows every attempt from an IP after failures (up to 15 s); the tests fail on purpose.
# chroot needs root; this Dovecot may run as a plain user (imap-login likewise).
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

{"".join(listeners)}"""


@contextlib.contextmanager
def running_dovecot(accounts_text, *, quotas_text="", virtual_text="", extend_config=None):
    """Start Dovecot 2.3 on 127.0.0.1 serving the userdb DMS would build from these files; stop it after.

    Callers skip first with skip_unless_dovecot_23(). IMAP and LMTP listen only if installed
    (imap_port / lmtp_port are None otherwise); the SASL and userdb sockets are always there.
    `extend_config(root, config)` returns the configuration to use instead (it may write files under root).
    """
    protocols = installed_protocols()
    run_as = _run_as()
    # Short path under /tmp: UNIX socket paths are limited to about 100 bytes.
    root = Path(tempfile.mkdtemp(prefix="dockspace-dovecot-"))
    server = None
    try:
        mail_root = root / "mail"
        mail_root.mkdir()
        if os.geteuid() == 0:
            # Dovecot's own unprivileged processes must reach the config, the userdb and the mail dir.
            root.chmod(0o755)
            os.chown(mail_root, run_as.uid, run_as.gid)
        userdb_path = root / "userdb"
        userdb_path.write_text(
            dms_userdb_lines(
                accounts_text,
                quotas_text=quotas_text,
                virtual_text=virtual_text,
                uid=run_as.uid,
                gid=run_as.gid,
                mail_root=str(mail_root),
            )
        )
        userdb_path.chmod(0o644)
        server = DovecotServer(
            root=root,
            conf_path=root / "dovecot.conf",
            mail_root=mail_root,
            imap_port=_free_port() if "imap" in protocols else None,
            lmtp_port=_free_port() if "lmtp" in protocols else None,
        )
        config = _config(
            root,
            mail_root,
            userdb_path,
            protocols=protocols,
            imap_port=server.imap_port,
            lmtp_port=server.lmtp_port,
            run_as=run_as,
        )
        if extend_config is not None:
            config = extend_config(root, config)
        server.conf_path.write_text(config)
        server.conf_path.chmod(0o644)
        # The master daemonizes only once its listeners are bound, so the sockets are ready on return.
        # Its output goes to a file: the daemon keeps the descriptors, and a pipe would never reach EOF.
        startup_log = root / "startup.log"
        with startup_log.open("w") as output:
            started = subprocess.run(
                ["dovecot", "-c", str(server.conf_path)], stdout=output, stderr=output, timeout=_TIMEOUT
            )
        if started.returncode != 0:
            raise RuntimeError(f"dovecot did not start: {startup_log.read_text().strip()}\n{server.log_tail()}")
        yield server
    finally:
        if server is not None:
            _stop(server)
        shutil.rmtree(root, ignore_errors=True)


def _stop(server):
    pid_file = server.base_dir / "master.pid"
    if not pid_file.exists():
        return
    # A throwaway server: its whole process group is killed at once (`doveadm stop` waits 2-3 s for a graceful
    # shutdown, per test), then the master is waited for. `doveadm stop` if that cannot be done.
    try:
        pid = int(pid_file.read_text().strip())
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except (ProcessLookupError, ValueError, PermissionError):
        server.doveadm("stop")
        return
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie no parent reaps (the master daemonized) is gone for our purpose
