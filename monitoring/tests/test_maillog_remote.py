"""Following a mail host's mail log (monitoring.maillog.remote) with the checkpoint rules of the file follower:
first through a RemoteLog over local files rotated by the real logrotate, then over SSH to the real sshd on loopback,
where a `docker` stand-in runs `docker exec mailserver CMD` on the test's machine with the container's
/var/log/mail in a temporary directory, and through `manage.py maillog follow --host` into the database."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from dockspace.tests.celery_processes import database_url, wait_for
from monitoring import ssh
from monitoring.maillog.follow import HEAD_LIMIT, Checkpoint
from monitoring.maillog.remote import RemoteFollower, RemoteLogError, complete_lines, parse_stat
from monitoring.models import LogSource, SmtpRejection
from monitoring.tests.factories import add_host, unsaved_host
from monitoring.tests.mail_log_files import Syslog, logrotate, read_all
from monitoring.traffic_follow import HOST_MAIL_LOG, HostMailLog

ROOT = Path(settings.BASE_DIR)


def mail_lines(tag, count, start=1):
    return [
        f"2026-12-06T10:15:02.{n:06d}+00:00 mail postfix/smtpd[1234]: 4Ab{tag}{n}: client=mx.example.net[203.0.113.5]"
        for n in range(start, start + count)
    ]


class LocalLog:
    """A RemoteLog over this machine's files; `before_read` runs just before a read (to change the file then)."""

    def __init__(self):
        self.before_read = None

    def stat(self, path):
        try:
            found = os.stat(path)
        except FileNotFoundError:
            return None
        return found.st_dev, found.st_ino, found.st_size

    def head(self, path):
        try:
            with open(path, "rb") as f:
                return f.read(HEAD_LIMIT)
        except FileNotFoundError:
            return b""

    def read(self, path, position, length):
        if self.before_read is not None:
            self.before_read, hook = None, self.before_read
            hook()
        try:
            with open(path, "rb") as f:
                f.seek(position)
                return f.read(length)
        except FileNotFoundError:
            return b""


def follower_of(log_path, checkpoint=None, **options):
    return RemoteFollower(LocalLog(), str(log_path), checkpoint, **options)


# --- the decisions, over local files ---------------------------------------------------------------------------


def test_it_reads_lines_written_before_and_after_a_copytruncate_rotation_once_in_order(log_path, syslog):
    before, unread, after = mail_lines("A", 3), mail_lines("A", 4, start=4), mail_lines("B", 3)
    follower = follower_of(log_path)
    syslog.lines(*before)
    assert read_all(follower)[0] == before
    syslog.lines(*unread)
    logrotate(log_path)  # DMS's: copytruncate, delaycompress: mail.log.1 is plain
    syslog.lines(*after)
    lines, notes = read_all(follower)
    assert lines == unread + after
    assert f"finished rotated file {log_path}.1" in notes


def test_it_finishes_a_renamed_file_the_syslog_still_writes_before_reading_the_new_one(log_path, syslog):
    follower = follower_of(log_path)
    syslog.lines(*mail_lines("A", 2))
    read_all(follower)
    logrotate(log_path, copytruncate=False)  # renamed to mail.log.1, an empty mail.log made
    syslog.lines(*mail_lines("A", 2, start=3))  # still into the renamed file: the syslog has not reopened yet
    assert read_all(follower)[0] == mail_lines("A", 2, start=3)
    syslog.reopen()
    syslog.lines(*mail_lines("B", 2))
    assert read_all(follower)[0] == mail_lines("B", 2)


def test_a_half_written_last_line_waits_until_it_is_complete(log_path, syslog):
    follower = follower_of(log_path)
    line = mail_lines("A", 1)[0]
    syslog.write(line[:30])
    assert read_all(follower)[0] == []
    syslog.write(line[30:] + "\n")
    assert read_all(follower)[0] == [line]


def test_after_a_restart_it_resumes_at_the_stored_position_and_finishes_a_copy_rotated_meanwhile(log_path, syslog):
    syslog.lines(*mail_lines("A", 3))
    first = follower_of(log_path)
    read_all(first)
    stored = Checkpoint.from_dict(first.checkpoint.to_dict())
    syslog.lines(*mail_lines("A", 2, start=4))  # written while stopped ...
    logrotate(log_path)  # ... and rotated away
    syslog.lines(*mail_lines("B", 1))
    lines, _ = read_all(follower_of(log_path, stored))
    assert lines == mail_lines("A", 2, start=4) + mail_lines("B", 1)


def test_a_truncation_without_a_copy_says_what_is_lost_and_starts_again_from_the_top(log_path, syslog):
    follower = follower_of(log_path)
    syslog.lines(*mail_lines("A", 3))
    read_all(follower)
    os.truncate(log_path, 0)
    syslog.lines(*mail_lines("B", 1))
    batch = follower.read_batch()
    assert batch.lines == mail_lines("B", 1)
    assert batch.has_gap
    assert any("lines written to it after byte" in note for note in batch.notes)


def test_bytes_read_from_a_file_truncated_and_written_anew_meanwhile_are_dropped_and_read_from_the_copy(
    log_path, syslog
):
    follower = follower_of(log_path)
    syslog.lines(*mail_lines("A", 2))
    read_all(follower)
    syslog.lines(*mail_lines("A", 2, start=3))
    new_lines = mail_lines("B", 6)  # longer than what was consumed: the stale offset lands inside the new file

    def rotate_and_write():
        logrotate(log_path)
        syslog.lines(*new_lines)

    follower.log.before_read = rotate_and_write  # between the stat and the read
    lines, _ = read_all(follower)
    assert lines == mail_lines("A", 2, start=3) + new_lines


def test_it_reads_in_batches_and_a_line_longer_than_a_read_comes_in_pieces(log_path, syslog):
    follower = follower_of(log_path, read_bytes=1024)  # a read holds 9 of these lines
    syslog.lines(*mail_lines("A", 10))
    first = follower.read_batch(max_lines=4)
    assert first.lines == mail_lines("A", 4) and not first.is_caught_up
    assert read_all(follower, max_lines=4)[0] == mail_lines("A", 6, start=5)
    syslog.lines("x" * 2500)
    assert read_all(follower)[0] == ["x" * 1024, "x" * 1024, "x" * 452]


def test_it_waits_for_a_log_that_does_not_exist_yet_and_reads_it_from_the_top(log_path):
    follower = follower_of(log_path)
    batch = follower.read_batch()
    assert batch.is_caught_up and batch.notes == (f"{log_path} does not exist: waiting for it",)
    assert follower.read_batch().notes == ()  # said once
    Syslog(log_path).lines(*mail_lines("A", 2))
    assert read_all(follower)[0] == mail_lines("A", 2)


@pytest.mark.parametrize(
    "data, room, is_whole_read, expected",
    [
        (b"", 5, False, ([], 0)),
        (b"one\ntwo\nthr", 5, False, ([b"one", b"two"], 8)),
        (b"one\ntwo\n", 1, False, ([b"one"], 4)),
        (b"half a line", 5, False, ([], 0)),  # waits for its end
        (b"a whole read without a newline", 5, True, ([b"a whole read without a newline"], 30)),
        (b"one\nmore", 5, True, ([b"one"], 4)),
    ],
)
def test_complete_lines(data, room, is_whole_read, expected):
    assert complete_lines(data, room, is_whole_read=is_whole_read) == expected


@pytest.mark.parametrize("output", ["", "64769 1234", "64769 12x 5", "stat: cannot statx", "1 2 3 4"])
def test_stat_output_that_is_not_device_inode_size_is_refused(output):
    with pytest.raises(RemoteLogError, match="not 'DEVICE INODE SIZE'"):
        parse_stat(output)
    assert parse_stat("64769 1234 5678\n") == (64769, 1234, 5678)


# --- the commands sent ---------------------------------------------------------------------------------------------


def test_only_the_allow_listed_commands_on_the_mail_log_are_built():
    assert ssh.mail_log_argv("mailserver", "stat", "mail.log") == [
        *("docker", "exec", "mailserver", "stat", "-L", "-c", "%d %i %s", "--", "/var/log/mail/mail.log")
    ]
    assert ssh.mail_log_argv("mailserver", "head", "mail.log.1") == [
        *("docker", "exec", "mailserver", "head", "-c", "4096", "--", "/var/log/mail/mail.log.1")
    ]
    assert ssh.mail_log_argv("dms-1.mail", "read", "mail.log", position=1234, length=65536) == [
        *("docker", "exec", "dms-1.mail", "dd", "if=/var/log/mail/mail.log", "bs=65536", "skip=1234"),
        *("count=65536", "iflag=skip_bytes,count_bytes", "status=none"),
    ]


@pytest.mark.parametrize(
    "container, action, name, where, says",
    [
        ("mailserver; rm -rf /", "stat", "mail.log", {}, "container:"),
        ("-mailserver", "stat", "mail.log", {}, "container:"),
        ("mailserver", "stat", "../../etc/shadow", {}, "name: only mail.log, mail.log.1"),
        ("mailserver", "stat", "mail.log.2.gz", {}, "name:"),
        ("mailserver", "cat", "mail.log", {}, "action: stat, head or read"),
        ("mailserver", "read", "mail.log", {"position": -1, "length": 10}, "position, length"),
        ("mailserver", "read", "mail.log", {"position": 0, "length": 0}, "position, length"),
        ("mailserver", "read", "mail.log", {"position": "1; id", "length": 10}, "position, length"),
    ],
)
def test_anything_else_is_refused_naming_the_part(container, action, name, where, says):
    with pytest.raises(ValueError, match=says):
        ssh.mail_log_argv(container, action, name, **where)


# --- over SSH --------------------------------------------------------------------------------------------------


DOCKER_EXEC = '''#!{python}
"""`docker` on the test's SSH host: `docker exec {container} CMD...` runs CMD here, the container's /var/log/mail
being {log_dir}; a `stopped` file in {here} makes it answer as Docker does for a stopped container."""
import json, os, sys

argv = ["docker", *sys.argv[1:]]
with open(os.path.join({here!r}, "calls.log"), "a") as log:
    log.write(json.dumps(argv) + "\\n")
if argv[1:3] != ["exec", {container!r}]:
    sys.stderr.write("docker stand-in: only `docker exec {container}` here\\n")
    sys.exit(1)
if os.path.exists(os.path.join({here!r}, "stopped")):
    sys.stderr.write("Error response from daemon: container 4b1e9f is not running\\n")
    sys.exit(1)
command = [word.replace("/var/log/mail", {log_dir!r}) for word in argv[3:]]
os.execvp(command[0], command)
'''


@pytest.fixture
def container_logs(sshd, tmp_path):
    """The container's /var/log/mail (a directory of this machine) behind `docker exec` on the SSH host."""
    log_dir = tmp_path / "mail-logs"
    log_dir.mkdir()
    script = sshd.bin_dir / "docker"
    script.write_text(
        DOCKER_EXEC.format(
            python=sys.executable, container=sshd.container, log_dir=str(log_dir), here=str(sshd.bin_dir)
        )
    )
    script.chmod(0o755)
    return log_dir


def sent_commands(sshd):
    """The mail-log commands the host ran: (action, file) of each."""
    shapes = []
    for argv in sshd.calls():
        assert argv[:3] == ["docker", "exec", "mailserver"], argv
        program = argv[3]
        target = argv[-1] if program in ("stat", "head") else argv[4].removeprefix("if=")
        assert target.rsplit("/", 1)[0] == "/var/log/mail", argv
        shapes.append((program, target.rsplit("/", 1)[1]))
    return shapes


@pytest.mark.django_db
def test_a_mail_hosts_log_is_followed_over_ssh_across_a_copytruncate_rotation(sshd, container_logs):
    host = unsaved_host(sshd)
    log_path = container_logs / "mail.log"
    syslog = Syslog(log_path)
    try:
        with ssh.session(host) as session:
            follower = RemoteFollower(HostMailLog(session, host.container), HOST_MAIL_LOG)
            assert read_all(follower)[0] == []
            syslog.lines(*mail_lines("A", 3))
            assert read_all(follower)[0] == mail_lines("A", 3)
            syslog.lines(*mail_lines("A", 2, start=4))
            logrotate(log_path)
            syslog.lines(*mail_lines("B", 2))
            lines, notes = read_all(follower)
            # invalid UTF-8 is counted in bytes as written (what `run` would have decoded is not what was sent)
            syslog.write(b"2026-12-06T10:15:03+00:00 mail postfix/smtpd[1]: caf\xe9 \xff\n")
            syslog.lines(*mail_lines("C", 1))
            more, _ = read_all(follower)
    finally:
        syslog.close()
    assert lines == mail_lines("A", 2, start=4) + mail_lines("B", 2)
    assert "finished rotated file /var/log/mail/mail.log.1" in notes
    assert more == ["2026-12-06T10:15:03+00:00 mail postfix/smtpd[1]: caf\ufffd \ufffd", *mail_lines("C", 1)]
    assert follower.checkpoint.position == log_path.stat().st_size
    assert set(sent_commands(sshd)) == {
        ("stat", "mail.log"),
        ("stat", "mail.log.1"),
        ("head", "mail.log"),
        ("head", "mail.log.1"),
        ("dd", "mail.log"),
        ("dd", "mail.log.1"),
    }


@pytest.mark.django_db
def test_a_stopped_container_is_one_sentence_naming_the_command_and_the_host(sshd, container_logs):
    host = unsaved_host(sshd)
    (sshd.bin_dir / "stopped").touch()
    with ssh.session(host) as session, pytest.raises(RemoteLogError) as caught:
        RemoteFollower(HostMailLog(session, host.container), HOST_MAIL_LOG).read_batch()
    assert str(caught.value) == (
        "`docker exec mailserver stat -L -c '%d %i %s' -- /var/log/mail/mail.log` failed on mx1: "
        "Error response from daemon: container 4b1e9f is not running"
    )


@pytest.mark.django_db(transaction=True)
def test_maillog_follow_host_stores_the_hosts_lines_and_resumes_after_a_restart(sshd, tmp_path):
    host = add_host(sshd)  # added while the default stand-in answers its checks
    log_dir = tmp_path / "mail-logs"
    log_dir.mkdir()
    script = sshd.bin_dir / "docker"
    script.write_text(
        DOCKER_EXEC.format(
            python=sys.executable, container=sshd.container, log_dir=str(log_dir), here=str(sshd.bin_dir)
        )
    )
    syslog = Syslog(log_dir / "mail.log")
    rejects = [
        f"2026-12-06T09:41:{n // 1000:02d}.{n % 1000:06d}+00:00 mail postfix/smtpd[2202]: NOQUEUE: reject: RCPT from "
        f"unknown[203.0.113.10]: 554 5.7.1 <r{n}@elsewhere.example>: Relay access denied; from=<spam@example.biz> "
        f"to=<r{n}@elsewhere.example> proto=ESMTP helo=<203.0.113.10>"
        for n in range(40)
    ]
    syslog.lines(*rejects[:20])
    env = {**os.environ, "DATABASE_URL": database_url(), "DOCKSPACE_MAIL_LOG_POLL": "0.1"}

    def follow(log):
        with open(log, "w") as out:
            return subprocess.Popen(
                [sys.executable, "manage.py", "maillog", "follow", "--host", host.name],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stored():
        return sorted(SmtpRejection.objects.values_list("recipient", flat=True))

    expected = sorted(f"r{n}@elsewhere.example" for n in range(40))
    proc = follow(tmp_path / "first.log")
    try:
        assert wait_for(lambda: len(stored()) == 20, seconds=60), (tmp_path / "first.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    syslog.lines(*rejects[20:30])
    logrotate(log_dir / "mail.log")  # while stopped
    syslog.lines(*rejects[30:])
    syslog.close()
    proc = follow(tmp_path / "second.log")
    try:
        assert wait_for(lambda: len(stored()) == 40, seconds=60), (tmp_path / "second.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert stored() == expected
    source = LogSource.objects.get(name="mx1")
    assert (source.kind, source.mail_host, source.lines_read) == (LogSource.HOST, host, 40)  # none read twice
    first, second = (tmp_path / "first.log").read_text(), (tmp_path / "second.log").read_text()
    assert "following /var/log/mail/mail.log from the top (no stored position) on mail host mx1" in first
    assert "following /var/log/mail/mail.log from byte" in second
    assert "finished rotated file /var/log/mail/mail.log.1" in second
    assert json.dumps(["docker", "exec", "mailserver", "head", "-c", "4096", "--", HOST_MAIL_LOG]) in (
        (sshd.bin_dir / "calls.log").read_text()
    )
