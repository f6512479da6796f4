"""`manage.py maillog follow` as the real process an operator runs (the `maillog` process of `make run` and of the
compose service): it stores the lines of DOCKSPACE_MAIL_LOG as they are written, each once, across the real
logrotate's copytruncate, SIGTERM and kill -9; a batch that cannot be stored is tried again; without
DOCKSPACE_MAIL_LOG `make run` says the follower is off and the image refuses to start it."""

import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.core.management.base import CommandError
from django.db import OperationalError

from dockspace import devserver
from dockspace.tests.celery_processes import database_url, wait_for
from dockspace.tests.prepared_data import prepared_data_dir
from monitoring import traffic, traffic_follow
from monitoring.models import LogSource, MailHost, SmtpRejection
from monitoring.tests.factories import run
from monitoring.tests.mail_log_files import Syslog, logrotate

ROOT = Path(settings.BASE_DIR)


def rejects(start, count):
    """NOQUEUE rejections, one SmtpRejection each, told apart by their recipient r<N>@elsewhere.example."""
    return [
        f"2026-12-06T09:41:{n // 1_000_000 % 60:02d}.{n % 1_000_000:06d}+00:00 mail postfix/smtpd[2202]: NOQUEUE: "
        f"reject: RCPT from unknown[203.0.113.10]: 554 5.7.1 <r{n}@elsewhere.example>: Relay access denied; "
        f"from=<spam@example.biz> to=<r{n}@elsewhere.example> proto=ESMTP helo=<203.0.113.10>"
        for n in range(start, start + count)
    ]


def recipients(start, count):
    return sorted(f"r{n}@elsewhere.example" for n in range(start, start + count))


def stored():
    return sorted(SmtpRejection.objects.values_list("recipient", flat=True))


def lines_read():
    return LogSource.objects.filter(name="local").values_list("lines_read", flat=True).first() or 0


class Follower:
    """`manage.py maillog follow` on `log_path`, its output in `tmp_path`/follow-N.log."""

    def __init__(self, tmp_path, log_path):
        self.tmp_path, self.log_path, self.runs = tmp_path, log_path, 0
        self.proc = self.out = None

    def start(self):
        self.runs += 1
        self.out = self.tmp_path / f"follow-{self.runs}.log"
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "DOCKSPACE_MAIL_LOG": str(self.log_path),
            "DOCKSPACE_MAIL_LOG_POLL": "0.1",
        }
        with open(self.out, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "manage.py", "maillog", "follow"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def text(self):
        return self.out.read_text()

    def wait_until(self, condition, seconds=90):
        assert wait_for(lambda: condition() or self.proc.poll() is not None, seconds=seconds) and condition(), (
            f"exit {self.proc.poll()}; stored {len(stored())}, lines read {lines_read()}\n{self.text()[-3000:]}"
        )

    def stop(self, signum=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def log_path(tmp_path):
    return tmp_path / "mail-logs" / "mail.log"


@pytest.fixture
def syslog(log_path):
    log_path.parent.mkdir()
    writer = Syslog(log_path)
    yield writer
    if writer.fd is not None:
        writer.close()


@pytest.fixture
def follower(tmp_path, log_path):
    started = Follower(tmp_path, log_path)
    yield started
    if started.proc is not None:
        started.stop(signal.SIGKILL)


@pytest.mark.django_db(transaction=True)
def test_it_stores_each_line_once_as_written_across_a_copytruncate_rotation_and_stops_cleanly_on_sigterm(
    follower, syslog, log_path
):
    syslog.lines(*rejects(0, 50))
    follower.start()
    follower.wait_until(lambda: len(stored()) == 50)
    assert f"following {log_path} from the top (no stored position) into log source 'local'" in follower.text()
    syslog.lines(*rejects(50, 30))
    follower.wait_until(lambda: len(stored()) == 80)  # lines appended are stored as they come

    # Rotated while the follower is behind (paused): it finishes mail.log.1 from its position, then the new file.
    follower.proc.send_signal(signal.SIGSTOP)
    try:
        syslog.lines(*rejects(80, 20))
        logrotate(log_path)
        syslog.lines(*rejects(100, 20))
    finally:
        follower.proc.send_signal(signal.SIGCONT)
    follower.wait_until(lambda: len(stored()) == 120)
    assert stored() == recipients(0, 120)
    assert lines_read() == 120  # none read twice (a line read again would count here, though stored once)
    assert f"log source 'local': finished rotated file {log_path}.1" in follower.text()

    assert follower.stop(signal.SIGTERM) == 0
    source = LogSource.objects.get(name="local")
    assert (source.path, source.inode, source.position) == (
        str(log_path),
        log_path.stat().st_ino,
        log_path.stat().st_size,
    )
    assert f"log source 'local': stopped at byte {source.position:,} of {log_path}" in follower.text()
    assert "Traceback" not in follower.text()


@pytest.mark.django_db(transaction=True)
def test_killed_outright_and_started_again_it_neither_loses_nor_repeats_a_line(follower, syslog, log_path):
    syslog.lines(*rejects(0, 30_000))
    follower.start()
    follower.wait_until(lambda: len(stored()) > 0)
    assert follower.stop(signal.SIGKILL) == -signal.SIGKILL  # in the middle of the file, maybe of a batch
    assert 0 < len(stored()) < 30_000
    syslog.lines(*rejects(30_000, 100))  # written while it was down ...
    logrotate(log_path)  # ... and rotated away
    syslog.lines(*rejects(30_100, 100))
    follower.start()
    follower.wait_until(lambda: len(stored()) == 30_200, seconds=240)
    assert f"following {log_path} from byte " in follower.text()
    assert stored() == recipients(0, 30_200)
    assert lines_read() == 30_200  # exactly once each
    assert follower.stop() == 0


@pytest.mark.django_db(transaction=True)
def test_a_batch_that_cannot_be_stored_is_logged_and_stored_on_the_next_try(syslog, log_path, monkeypatch, caplog):
    syslog.lines(*rejects(0, 10))
    stop = threading.Event()
    store = traffic.maillog_ingest_lines
    tries = []

    def failing_once(source, lines, checkpoint, **kwargs):
        tries.append(len(lines))
        if len(tries) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        result = store(source, lines, checkpoint, **kwargs)
        stop.set()
        return result

    monkeypatch.setattr(traffic, "maillog_ingest_lines", failing_once)
    source = traffic.logsource_for()
    with caplog.at_level(logging.INFO, logger="monitoring.traffic_follow"):
        traffic_follow.maillog_follow_file(source, str(log_path), stop=stop, poll=0.01, retry=0.01)
    assert tries == [10, 10]  # the same batch again, from the checkpoint before it
    assert stored() == recipients(0, 10) and lines_read() == 10
    assert (
        "log source 'local': storing lines failed (server closed the connection unexpectedly); trying again in 0.01 s"
        in caplog.messages
    )


@pytest.mark.django_db(transaction=True)
def test_a_line_that_cannot_be_stored_is_left_out_and_the_rest_stored(syslog, log_path, monkeypatch, caplog):
    lines = rejects(0, 10)
    lines[4] = lines[4].replace("Relay access denied", "POISON")
    syslog.lines(*lines)
    stop = threading.Event()
    parse = traffic.parse_lines

    def parse_or_fail(batch, **kwargs):
        batch = list(batch)
        if any("POISON" in line for line in batch):
            raise ValueError("a shape no test foresaw")
        if batch:
            stop.set()
        return parse(batch, **kwargs)

    monkeypatch.setattr(traffic, "parse_lines", parse_or_fail)
    source = traffic.logsource_for()
    with caplog.at_level(logging.INFO, logger="monitoring.traffic_follow"):
        traffic_follow.maillog_follow_file(source, str(log_path), stop=stop, poll=0.01, retry=0.01)
    assert stored() == [r for r in recipients(0, 10) if r != "r4@elsewhere.example"]
    source.refresh_from_db()
    assert source.position == log_path.stat().st_size  # it went on past the batch
    assert any("left out line 5 of a batch of 10 (a shape no test foresaw)" in m for m in caplog.messages)
    assert "log source 'local': stored the batch line by line; 1 line(s) left out" in caplog.messages


@pytest.mark.django_db(transaction=True)
def test_mail_older_than_the_traffic_days_is_stored_with_a_warning_once(syslog, log_path, caplog, settings):
    settings.TRAFFIC_DAYS = 1
    syslog.lines(*rejects(0, 10))  # 2026-12-06
    stop = threading.Event()
    source = traffic.logsource_for()
    with time_machine.travel(datetime(2027, 1, 1, tzinfo=UTC)), caplog.at_level(logging.INFO):
        threading.Timer(3, stop.set).start()
        traffic_follow.maillog_follow_file(source, str(log_path), stop=stop, poll=0.01, retry=0.01)
    assert stored() == recipients(0, 10)
    warned = [m for m in caplog.messages if "older than DOCKSPACE_TRAFFIC_DAYS (1 days)" in m]
    assert warned == [
        "log source 'local': the mail read is from 2026-12-06T09:41:00+00:00, older than DOCKSPACE_TRAFFIC_DAYS "
        "(1 days): the next prune deletes it, and it is not rolled up"
    ]


@pytest.mark.django_db
def test_the_command_needs_dockspace_mail_log_or_a_host(settings):
    settings.DOCKSPACE_MAIL_LOG = ""
    with pytest.raises(CommandError, match="DOCKSPACE_MAIL_LOG is not set: set it to the mail log to follow"):
        run("maillog", "follow")
    with pytest.raises(CommandError, match="--host: no mail host 'mx9'"):
        run("maillog", "follow", "--host", "mx9")
    settings.DOCKSPACE_MAIL_LOG = "/var/log/mail/mail.log"
    host = MailHost.objects.create(name="mx1", ssh_user="u", ssh_host="192.0.2.1", key_env="DOCKSPACE_SSH_KEY_MX1")
    traffic.logsource_for(host=host)
    with pytest.raises(CommandError, match="--source: the log source 'mx1' is the log of mx1; follow it with --host"):
        run("maillog", "follow", "--source", "mx1")
    with pytest.raises(CommandError, match="--source: a name is required"):
        run("maillog", "follow", "--source", " ")


@pytest.mark.django_db
def test_a_dockspace_mail_log_that_is_not_a_mail_log_is_refused_before_anything_is_read(settings, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Not a mail log\n\nJust words.\n")
    settings.DOCKSPACE_MAIL_LOG = str(readme)
    with pytest.raises(CommandError, match=r"DOCKSPACE_MAIL_LOG: .*README.md is not a mail log"):
        run("maillog", "follow")
    assert not LogSource.objects.filter(lines_read__gt=0).exists()


def test_without_dockspace_mail_log_make_run_says_the_follower_is_off_and_the_image_refuses_it(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("DOCKSPACE_MAIL_LOG", raising=False)
    monkeypatch.delenv("DOCKSPACE_PROCESSES", raising=False)
    plan = devserver.start_plan()
    assert "maillog" not in [process["name"] for process in plan]
    assert "watchdog" in [process["name"] for process in plan]  # the others start
    assert (
        "[run] maillog is off: DOCKSPACE_MAIL_LOG is not set (the mail-log follower: reads DOCKSPACE_MAIL_LOG into "
        "mail traffic as it is written)"
    ) in capsys.readouterr().out

    monkeypatch.setenv("DOCKSPACE_MAIL_LOG", str(tmp_path / "mail.log"))
    plan = devserver.start_plan()
    (maillog,) = [process for process in plan if process["name"] == "maillog"]
    assert maillog["argv"][1:] == [str(ROOT / "manage.py"), "maillog", "follow"]
    assert "is off" not in capsys.readouterr().out

    monkeypatch.delenv("DOCKSPACE_MAIL_LOG")
    refused = subprocess.run(
        [sys.executable, "-m", "dockspace.processes", "run", "maillog"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "cannot start maillog: DOCKSPACE_MAIL_LOG is not set" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_relative_dockspace_mail_log_stops_startup_naming_the_variable(tmp_path):
    env = {**os.environ, "DOCKSPACE_MAIL_LOG": "mail.log"}
    refused = subprocess.run(
        [sys.executable, "-m", "dockspace.processes", "list"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert refused.returncode != 0
    assert "DOCKSPACE_MAIL_LOG must be an absolute path such as /var/log/mail/mail.log; got 'mail.log'." in (
        refused.stderr
    )


def test_make_run_with_dockspace_mail_log_starts_the_follower_and_the_lines_reach_its_database(tmp_path, syslog):
    syslog.lines(*rejects(0, 25))
    data_dir = prepared_data_dir(tmp_path / "data")  # not a first start: that is test_devserver's
    unset = ("DATABASE_URL", "REDIS_URL", "DOCKSPACE_URL", "SECRET_KEY", "DOCKSPACE_ALLOW_DEBUG_ON_NETWORK")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(
        DEBUG="1",
        DOCKSPACE_DATA_DIR=str(data_dir),
        DOCKSPACE_PROCESSES="maillog",  # the follower alone: web, worker and beat are another test's
        DOCKSPACE_MAIL_LOG=str(syslog.path),
        DOCKSPACE_MAIL_LOG_POLL="0.1",
    )
    out = tmp_path / "run.log"
    with open(out, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dockspace.devserver"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    database = data_dir / "dockspace.sqlite3"

    def rows():
        if not database.exists():
            return 0
        import sqlite3

        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
                return db.execute("SELECT count(*) FROM monitoring_smtprejection").fetchone()[0]
        except sqlite3.OperationalError:  # not migrated yet
            return 0

    try:
        assert wait_for(lambda: rows() == 25 or proc.poll() is not None, seconds=240) and rows() == 25, out.read_text()
        syslog.lines(*rejects(25, 5))
        assert wait_for(lambda: rows() == 30, seconds=30), out.read_text()
        assert "[run] starting maillog:" in out.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert "log source 'local': stopped at byte" in out.read_text()


@pytest.mark.django_db(transaction=True)
def test_a_second_follower_of_the_same_log_waits_and_takes_over_when_the_first_stops(tmp_path, syslog, log_path):
    first, second = Follower(tmp_path, log_path), Follower(tmp_path, log_path)
    try:
        syslog.lines(*rejects(0, 40))
        first.start()
        first.wait_until(lambda: len(stored()) == 40)
        second.start()
        second.wait_until(lambda: "waiting until it stops" in second.text())
        assert f"log source 'local' is followed by pid {first.proc.pid} on " in second.text()
        syslog.lines(*rejects(40, 20))
        first.wait_until(lambda: len(stored()) == 60)
        assert first.stop(signal.SIGTERM) == 0
        syslog.lines(*rejects(60, 20))  # written after the first stopped: the second reads them
        second.wait_until(lambda: len(stored()) == 80)
        assert "the other follower is gone; following it now" in second.text()
        assert stored() == recipients(0, 80)
        assert lines_read() == 80  # the second went on from the first's position: nothing read twice
        assert LogSource.objects.get(name="local").follower.startswith(
            f"pid {second.proc.pid} on {os.uname().nodename} (kernel boot "
        )
        assert second.stop(signal.SIGTERM) == 0
        assert LogSource.objects.get(name="local").follower == ""  # let go when stopping
    finally:
        for started in (first, second):
            if started.proc is not None and started.proc.poll() is None:
                started.stop(signal.SIGKILL)
