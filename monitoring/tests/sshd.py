"""A real OpenSSH server on loopback for tests that reach a mail host: throwaway host and user keys, a second host
key (to prove a pinned key refuses a changed one), and `docker`/`sudo` stand-ins first on the session's PATH that
log their argv and answer the container commands with canned DMS output (or forward a command to a real local
tool, e.g. `postqueue -j`). The container was created by compose in COMPOSE_DIR (its labels say so, and
`docker compose ... up` of its service answers), unless a test calls `set_labels`.

Use the pytest fixtures (`sshd`, `sshd_keys`, `silent_port`, made available by monitoring/tests/conftest.py), or
`SshServer(...)` directly (a benchmark starting many). Needs /usr/sbin/sshd and ssh-keygen (Debian:
openssh-server); tests skip without them.
"""

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dockspace.tests.ports import free_port

SSHD = "/usr/sbin/sshd"
CONTAINER = "mailserver"
COMPOSE_DIR = "/srv/dms"
# What Docker Compose v2 labels a container it created with `docker compose up` in COMPOSE_DIR (project "dms").
COMPOSE_LABELS = {
    "com.docker.compose.config-hash": "5f1d3c0e9a7b",
    "com.docker.compose.container-number": "1",
    "com.docker.compose.oneoff": "False",
    "com.docker.compose.project": "dms",
    "com.docker.compose.project.config_files": f"{COMPOSE_DIR}/compose.yaml",
    "com.docker.compose.project.working_dir": COMPOSE_DIR,
    "com.docker.compose.service": "mailserver",
    "com.docker.compose.version": "2.29.7",
    "org.opencontainers.image.title": "docker-mailserver",
}
DMS_SETTINGS = """\
ACCOUNT_PROVISIONER='FILE'
DMS_RELEASE='v15.1.0'
ENABLE_AMAVIS='0'
ENABLE_CLAMAV='0'
ENABLE_FAIL2BAN='1'
ENABLE_OPENDKIM='1'
ENABLE_OPENDMARC='1'
ENABLE_POSTGREY='0'
ENABLE_QUOTAS='1'
ENABLE_RSPAMD='0'
ENABLE_SRS='0'
"""
# What `supervisorctl status` prints in a DMS v15.1 container with DMS_SETTINGS; it exits 3 (not all RUNNING).
SUPERVISORCTL = """\
amavis                           STOPPED   Not started
changedetector                   RUNNING   pid 1024, uptime 2:03:04
clamav                           STOPPED   Not started
cron                             RUNNING   pid 601, uptime 2:03:10
dovecot                          RUNNING   pid 733, uptime 2:03:08
fail2ban                         RUNNING   pid 802, uptime 2:03:07
mailserver                       RUNNING   pid 8, uptime 2:03:15
opendkim                         RUNNING   pid 760, uptime 2:03:07
opendmarc                        RUNNING   pid 761, uptime 2:03:07
postfix                          RUNNING   pid 911, uptime 2:03:06
rsyslog                          RUNNING   pid 604, uptime 2:03:10
"""
# `doveadm -f tab quota get -A`: sizes in KiB, "-" for no limit.
DOVEADM_QUOTA = (
    "Username\tQuota name\tType\tValue\tLimit\t%\n"
    "bob@example.com\tUser quota\tSTORAGE\t1024\t2097152\t0\n"
    "bob@example.com\tUser quota\tMESSAGE\t3\t-\t0\n"
    "alice@example.com\tUser quota\tSTORAGE\t512000\t-\t0\n"
)

STANDIN = '''#!{python}
"""Stand-in for `{name}` on the test's SSH host: logs its argv, answers from answers.json."""
import json, os, subprocess, sys, time

HERE = {here!r}
argv = [{name!r}, *sys.argv[1:]]
with open(os.path.join(HERE, "calls.log"), "a") as log:
    log.write(json.dumps(argv) + "\\n")
if argv[0] == "sudo":
    with open(os.path.join(HERE, "sudo-mode")) as f:
        mode = f.read().strip()
    if mode == "password":
        sys.stderr.write("sudo: a password is required\\n")
        sys.exit(1)
    rest = argv[1:]
    if rest[:1] == ["-n"]:
        rest = rest[1:]
    os.execv(os.path.join(HERE, rest[0]) if os.path.exists(os.path.join(HERE, rest[0])) else rest[0], rest)
with open(os.path.join(HERE, "answers.json")) as f:
    answer = json.load(f).get(json.dumps(argv))
if answer is None:
    sys.stderr.write(argv[0] + " stand-in: no answer for " + " ".join(argv) + "\\n")
    sys.exit(1)
time.sleep(answer.get("sleep", 0))
if "run" in answer:
    done = subprocess.run(answer["run"], capture_output=True)
    sys.stdout.buffer.write(done.stdout)
    sys.stderr.buffer.write(done.stderr)
    sys.exit(done.returncode)
if "cat" in answer:
    try:
        with open(answer["cat"], "rb") as f:
            sys.stdout.buffer.write(f.read())
    except OSError as e:
        sys.stderr.write("cat: " + answer["cat"] + ": " + e.strerror + "\\n")
        sys.exit(1)
    sys.exit(0)
sys.stdout.write(answer.get("stdout", "") * answer.get("repeat", 1))
sys.stderr.write(answer.get("stderr", "") * answer.get("repeat", 1))
sys.exit(answer.get("exit", 0))
'''


def _keygen(path, comment, kind="ed25519"):
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", comment, "-f", str(path)], check=True, capture_output=True
    )
    path.chmod(0o600)
    return path


def fingerprint(public_key_path):
    """The `SHA256:...` fingerprint OpenSSH shows for a public key file."""
    out = subprocess.run(["ssh-keygen", "-lf", str(public_key_path)], check=True, capture_output=True, text=True)
    return out.stdout.split()[1]


def make_keys(directory):
    """Host keys "first", "second" (ed25519) and "ecdsa", the authorized "user" key and a "stranger" key, in
    `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    return {
        "first": _keygen(directory / "host_first", "first host key"),
        "second": _keygen(directory / "host_second", "second host key"),
        "ecdsa": _keygen(directory / "host_ecdsa", "ecdsa host key", "ecdsa"),
        "user": _keygen(directory / "user", "dockspace test"),
        "stranger": _keygen(directory / "stranger", "not authorized"),
    }


def labels_argv(container=CONTAINER):
    return ["docker", "inspect", "--type", "container", "--format", "{{json .Config.Labels}}", container]


def compose_up_argv(service="mailserver", project="dms", directory=COMPOSE_DIR, files=(f"{COMPOSE_DIR}/compose.yaml",)):
    """What `docker compose up --force-recreate` of one service looks like for a container with those labels."""
    file_options = [word for path in files for word in ("--file", path)]
    return [
        "docker",
        "compose",
        "--project-directory",
        directory,
        "--project-name",
        project,
        *file_options,
        "up",
        "--detach",
        "--force-recreate",
        "--no-deps",
        service,
    ]


# What `docker compose up --detach --force-recreate` prints (on stderr) while it replaces one container.
COMPOSE_UP_OUTPUT = (
    " Container mailserver  Recreate\n Container mailserver  Recreated\n Container mailserver  Starting\n"
    " Container mailserver  Started\n"
)


def default_answers(dms_dir, container=CONTAINER):
    """What the `docker` stand-in answers, keyed by argv: a healthy DMS v15.1 container that mounts dms_dir."""
    inspect = [
        {
            "Name": f"/{container}",
            "State": {"Status": "running", "Running": True, "StartedAt": "2026-12-01T08:00:00.000000000Z"},
            "Config": {"Env": ["DMS_RELEASE=v15.1.0"], "Image": "ghcr.io/docker-mailserver/docker-mailserver:15.1"},
            "Mounts": [
                {"Type": "bind", "Source": str(dms_dir), "Destination": "/tmp/docker-mailserver", "RW": True},
                {"Type": "bind", "Source": "/srv/dms/mail-data", "Destination": "/var/mail", "RW": True},
                {"Type": "bind", "Source": "/srv/dms/mail-logs", "Destination": "/var/log/mail", "RW": True},
            ],
        }
    ]
    exec_ = ["docker", "exec", container]
    return {
        ("docker", "version", "--format", "{{.Server.Version}}"): {"stdout": "27.3.1\n"},
        ("docker", "compose", "version", "--short"): {"stdout": "2.29.7\n"},
        ("docker", "inspect", "--type", "container", container): {"stdout": json.dumps(inspect)},
        (*exec_, "cat", "/tmp/docker-mailserver/.dockspace-dms-dir"): {"cat": str(dms_dir / ".dockspace-dms-dir")},
        (*exec_, "test", "-r", "/var/log/mail/mail.log"): {},
        (*exec_, "cat", "/etc/dms-settings"): {"stdout": DMS_SETTINGS},
        ("docker", "restart", container): {"stdout": f"{container}\n"},
        tuple(labels_argv(container)): {"stdout": json.dumps(COMPOSE_LABELS) + "\n"},
        tuple(compose_up_argv()): {"stderr": COMPOSE_UP_OUTPUT},
        ("docker", "start", container): {"stdout": f"{container}\n"},
        (*exec_, "postfix", "reload"): {"stderr": "postfix/postfix-script: refreshing the Postfix mail system\n"},
        (*exec_, "doveadm", "reload"): {},
        # the probe (monitoring.probes.collect); df, /proc and nproc are the test machine's own
        (*exec_, "supervisorctl", "status"): {"stdout": SUPERVISORCTL, "exit": 3},
        (*exec_, "postqueue", "-j"): {},
        (*exec_, "doveadm", "-f", "tab", "quota", "get", "-A"): {"stdout": DOVEADM_QUOTA},
        (*exec_, "printenv", "DMS_RELEASE"): {"stdout": "v15.1.0\n"},
    }


class SshServer:
    """One sshd on 127.0.0.1:`port` that lets `user` in with `keys["user"]`, presenting the host key named
    `host_key` ("first", "second" or "ecdsa"). `bin_dir` is first on PATH in its sessions."""

    def __init__(self, root, keys, *, dms_dir, container=CONTAINER, port=None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.keys = keys
        self.user = getpass.getuser()
        self.port = port or free_port()
        self.bin_dir = self.root / "bin"
        self.bin_dir.mkdir(exist_ok=True)
        self.dms_dir = Path(dms_dir)
        self.container = container
        self.process = None
        self.host_key = "first"
        for name in ("docker", "sudo"):
            self.stand_in(name)
        self.set_sudo("nopasswd")
        self.services_output = SUPERVISORCTL
        self.answers = {}
        for argv, answer in default_answers(self.dms_dir, container).items():
            self.answer(list(argv), **answer)
        (self.root / "authorized_keys").write_text(Path(f"{keys['user']}.pub").read_text())

    # --- the stand-ins ---

    def stand_in(self, name):
        """Put a stand-in for the command `name` first on the session's PATH (docker and sudo have one; a test may
        add e.g. df, answering from answer())."""
        script = self.bin_dir / name
        script.write_text(STANDIN.format(python=sys.executable, name=name, here=str(self.bin_dir)))
        script.chmod(0o755)

    def answer(self, argv, **answer):
        """How the stand-in answers argv: stdout/stderr/exit, `sleep` seconds first, `cat` a file, `run` a real
        local command (its output and exit status), `repeat` stdout and stderr this many times."""
        self.answers[json.dumps(list(argv))] = answer
        (self.bin_dir / "answers.json").write_text(json.dumps(self.answers))

    def set_service(self, name, state):
        """What `supervisorctl status` in the container reports for the DMS service `name` from now on ("STOPPED",
        "FATAL", "RUNNING"...), the other lines as in SUPERVISORCTL; exits 3 unless every program is RUNNING."""
        lines = self.services_output.splitlines()
        found = [i for i, line in enumerate(lines) if line.split()[0] == name]
        if not found:
            raise ValueError(f"supervisorctl lists no program {name!r}")
        detail = "pid 4242, uptime 0:00:01" if state == "RUNNING" else "Not started"
        lines[found[0]] = f"{name:<32} {state:<9} {detail}"
        self.services_output = "\n".join(lines) + "\n"
        every_running = all(line.split()[1] == "RUNNING" for line in lines)
        argv = ["docker", "exec", self.container, "supervisorctl", "status"]
        self.answer(argv, stdout=self.services_output, exit=0 if every_running else 3)

    def set_labels(self, labels):
        """What `docker inspect --format '{{json .Config.Labels}}'` prints for the container from now on (a dict, or
        None: a container without labels, as `docker run` makes one)."""
        self.answer(labels_argv(self.container), stdout=json.dumps(labels) + "\n")

    def set_sudo(self, mode):
        """ "nopasswd" (sudo -n runs the command) or "password" (sudo asks for one, so -n fails)."""
        (self.bin_dir / "sudo-mode").write_text(mode)

    def calls(self):
        """Every argv the stand-ins were run with, in order."""
        log = self.bin_dir / "calls.log"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    # --- the server ---

    def fingerprint(self, host_key=None):
        return fingerprint(f"{self.keys[host_key or self.host_key]}.pub")

    def _config(self):
        path = self.root / "sshd_config"
        path.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.keys[self.host_key]}",
                    f"PidFile {self.root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
                    "StrictModes no",
                    "UsePAM no",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "X11Forwarding no",
                    "AllowTcpForwarding no",
                    "PrintMotd no",
                    "MaxStartups 100:30:200",
                    # HOME: the session shell reads this test's (empty) home, not the real user's start-up files.
                    f"SetEnv PATH={self.bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
                    f"HOME={self.root}",
                    "",
                ]
            )
        )
        return path

    def start(self, host_key=None):
        if host_key:
            self.host_key = host_key
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        log = self.root / "sshd.log"
        log.write_text("")
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self._config())], stdout=subprocess.DEVNULL, stderr=log.open("ab")
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if "Server listening" in log.read_text():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"sshd did not start: {log.read_text()[-2000:]}")

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def restart(self, host_key=None):
        self.stop()
        return self.start(host_key)

    @property
    def target(self):
        return f"{self.user}@127.0.0.1:{self.port}"

    def log(self):
        return (self.root / "sshd.log").read_text()


def require_sshd():
    if not (os.access(SSHD, os.X_OK) and shutil.which("ssh-keygen")):
        pytest.skip("sshd and ssh-keygen are not installed (Debian package openssh-server; CI installs it)")


@pytest.fixture(scope="session")
def sshd_keys():
    """Throwaway keys, made once per run: host keys "first" and "second", the "user" key sshd accepts and a
    "stranger" key it does not. Values are private key paths (the public key is PATH.pub), in the run's SSH key
    directory (settings.MAILHOST_SSH_KEY_DIR, in the throwaway data directory): where mail hosts' keys must be."""
    from django.conf import settings

    require_sshd()
    return make_keys(Path(settings.MAILHOST_SSH_KEY_DIR))


@pytest.fixture
def sshd(sshd_keys, tmp_path, settings):
    """A running SshServer for this test; Dockspace's DMS directory (settings.DMS_DIR, and its history) is this
    test's own, and is what the stand-in container mounts."""
    settings.DMS_DIR = tmp_path / "dms"
    settings.DMS_HISTORY_DIR = tmp_path / "dms-history"
    settings.DMS_DIR.mkdir(exist_ok=True)
    server = SshServer(tmp_path / "sshd", sshd_keys, dms_dir=settings.DMS_DIR).start()
    yield server
    server.stop()


@pytest.fixture
def silent_port():
    """A loopback port that accepts connections and never says anything (not an SSH server, or a hung one)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []
    stop = threading.Event()

    def serve():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()
