"""The queue probe's parser on what a real Postfix prints: a private instance (its own config and queue directories,
no inet listener) defers three messages to a closed loopback port, and `postqueue -j` lists them."""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from monitoring.probes.parse import parse_postqueue

POSTFIX = shutil.which("postfix") or ("/usr/sbin/postfix" if os.path.exists("/usr/sbin/postfix") else None)
SBIN = Path(POSTFIX).parent if POSTFIX else None

pytestmark = [
    pytest.mark.skipif(POSTFIX is None, reason="Postfix is not installed (CI installs Debian's postfix package)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="a private Postfix instance must be started as root"),
]


def _postfix_user_exists():
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return False
    return True


def _run(*argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kwargs)


@pytest.fixture
def closed_port():
    """A loopback port bound but not listening: connections to it are refused for as long as the test holds it."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


@pytest.fixture
def private_postfix(closed_port):
    """A Postfix instance of its own: config_directory and queue_directory in a temporary directory, all inet
    services disabled (so it binds no port), relaying everything to a closed loopback port so mail defers."""
    if not _postfix_user_exists():
        pytest.skip("the postfix user does not exist (Postfix is not set up on this machine)")
    # Not pytest's tmp_path: Postfix daemons drop to the postfix user, who must traverse the directory.
    base = Path(tempfile.mkdtemp(prefix="dockspace-postfix-"))
    base.chmod(0o755)
    config, queue, data = base / "etc", base / "queue", base / "data"
    for directory in (config, queue, data):
        directory.mkdir()
    shutil.chown(data, user="postfix")
    shutil.copy("/etc/postfix/master.cf", config / "master.cf")
    (config / "main.cf").write_text(
        "\n".join(
            [
                "compatibility_level = 3.6",
                f"queue_directory = {queue}",
                f"data_directory = {data}",
                "inet_interfaces = loopback-only",
                "inet_protocols = ipv4",
                "master_service_disable = inet",
                "myhostname = probe.test",
                "mydestination =",
                "alias_maps =",
                "alias_database =",
                "local_recipient_maps =",
                f"relayhost = [127.0.0.1]:{closed_port}",
                "smtp_connect_timeout = 2s",
                f"maillog_file = {base}/maillog",
                f"maillog_file_prefixes = {base}",
                "",
            ]
        )
    )
    # The system's master.cf chroots some daemons (Debian); a chroot would need copies of system files.
    _run(str(SBIN / "postconf"), "-c", str(config), "-F", "*/*/chroot = n").check_returncode()
    started = _run(POSTFIX, "-c", str(config), "start")
    if started.returncode != 0:
        log = (base / "maillog").read_text() if (base / "maillog").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"the private Postfix did not start: {started.stderr}\n{log}")
    try:
        yield config
    finally:
        _run(POSTFIX, "-c", str(config), "stop")
        shutil.rmtree(base, ignore_errors=True)


def _postqueue(config):
    listed = _run(str(SBIN / "postqueue"), "-c", str(config), "-j")
    assert listed.returncode == 0, listed.stderr
    return listed.stdout


def test_parse_postqueue_reads_the_real_postqueue_of_a_deferring_postfix(private_postfix):
    submitted_at = time.time()
    for number in range(1, 4):
        sent = _run(
            str(SBIN / "sendmail"),
            "-C",
            str(private_postfix),
            "-f",
            "sender@probe.test",
            f"rcpt{number}@example.com",
            input=f"Subject: probe {number}\n\nbody {number}\n",
        )
        assert sent.returncode == 0, sent.stderr

    # Until the queue settles with all three deferred: while pickup hands a message from maildrop to cleanup, showq
    # may list it in both under two queue ids for an instant (a real Postfix's view, not a parser's mistake).
    deadline = time.monotonic() + 60
    while True:
        output = _postqueue(private_postfix)
        stats = parse_postqueue(output, now=time.time())
        if (stats.count, stats.deferred) == (3, 3) or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    assert stats.count == 3, output
    assert stats.deferred >= 1, output
    assert "Connection refused" in output  # deferred for the reason the test arranged
    assert stats.oldest_age_seconds is not None
    # Postfix stamps arrival in whole seconds: the oldest message is no older than the test's first submission.
    assert 0 <= stats.oldest_age_seconds <= time.time() - int(submitted_at) + 1
