"""A real Celery worker killed with SIGKILL at each point of the path from a committed change to the DMS files:
after the commit before the task runs, while it holds the task during the coalescing delay, and in the middle
of the write. After a restart the files catch up: the database says they are behind, not the lost message."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache

from dockspace.celery import app
from dockspace.tests.celery_processes import CELERY, database_url
from mail.dms import sync
from mail.models import DmsPendingChange
from mail.tests.factories import make_domain, make_mailbox

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]

PATIENCE = 90  # seconds: a limit for a broken test, not a measurement


class Worker:
    """`celery worker` as production runs it (the embedded broker unless REDIS_URL is set)."""

    def __init__(self, tmp_path):
        self.log_path = tmp_path / "worker.log"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "DOCKSPACE_DMS_DIR": str(settings.DMS_DIR),
            "DOCKSPACE_DMS_HISTORY_DIR": str(settings.DMS_HISTORY_DIR),
        }
        self.proc = None

    def start(self):
        self.started_at = time.monotonic()
        self.offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(
                [CELERY, "-A", "dockspace", "worker", "--pool", "solo", "--loglevel", "INFO", "--without-heartbeat"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def log(self):
        return self.log_path.read_text()[self.offset :] if self.log_path.exists() else ""

    def wait_for_log(self, text):
        deadline = time.monotonic() + PATIENCE
        while text not in self.log():
            assert self.proc.poll() is None, f"the worker exited:\n{self.log()[-3000:]}"
            assert time.monotonic() < deadline, f"no {text!r} in the worker log:\n{self.log()[-3000:]}"
            time.sleep(0.02)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def worker(tmp_path):
    app.conf.task_always_eager = False  # the real worker runs the tasks here
    running = Worker(tmp_path)
    yield running
    running.stop()


@pytest.fixture
def mailbox_files():
    make_domain("example.com")
    make_mailbox("first@example.com")
    sync.dms_sync()
    assert not sync.is_behind()


def _accounts():
    return (settings.DMS_DIR / "postfix-accounts.cf").read_text()


def _wait_for_files(worker, address):
    """Seconds from the worker's (re)start until the accounts file holds address (and nothing is pending)."""
    deadline = time.monotonic() + PATIENCE
    while f"\n{address}|" not in _accounts() or sync.is_behind():
        assert worker.proc.poll() is None, f"the worker exited:\n{worker.log()[-3000:]}"
        assert time.monotonic() < deadline, f"{address} never reached the files:\n{worker.log()[-3000:]}"
        time.sleep(0.02)
    return time.monotonic() - worker.started_at


def _queued_messages():
    """Messages waiting in the embedded broker's folder (None with Redis, which keeps its own)."""
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS if settings.CELERY_BROKER_URL == "filesystem://" else None
    if not options:
        return None
    return list(Path(options["data_folder_in"]).glob("*.msg"))


def _no_temp_file_where_dms_reads():
    return not [p for p in settings.DMS_DIR.rglob("*") if p.name.startswith(".dockspace-tmp-")]


def test_a_change_whose_task_was_lost_after_the_commit_is_written_when_the_worker_starts(mailbox_files, worker):
    worker.start().wait_for_log(" ready.")
    worker.kill()

    make_mailbox("after-commit@example.com")  # committed; its sync task is queued for the dead worker
    app.control.purge()  # ... and lost, as the embedded broker loses a message a killed worker fetched

    assert DmsPendingChange.objects.exists()
    assert "after-commit@" not in _accounts()
    worker.start()
    seconds = _wait_for_files(worker, "after-commit@example.com")

    worker.wait_for_log("DMS files caught up at worker start")  # logged just after the files are written
    print(f"caught up {seconds:.2f} s after the worker was started")


def test_a_worker_killed_while_it_holds_the_task_in_the_delay_loses_no_change(mailbox_files, worker, settings):
    settings.DMS_SYNC_DELAY = 30
    cache.set(sync.LAST_START_KEY, time.time(), timeout=60)  # a sync just ran: the next waits out the delay
    worker.start().wait_for_log(" ready.")

    make_mailbox("in-delay@example.com")
    worker.wait_for_log("Task mail.sync_dms_files[")  # received, with its ETA: the worker holds it
    worker.kill()

    if _queued_messages() is not None:
        assert _queued_messages() == [], "the embedded broker kept the message; this test expects it lost"
    assert "in-delay@" not in _accounts()
    worker.start()
    seconds = _wait_for_files(worker, "in-delay@example.com")

    assert seconds < settings.DMS_SYNC_DELAY, "written by the lost task's retry, not by the worker start"
    print(f"caught up {seconds:.2f} s after the worker was started")


def _seed_mailboxes(count):
    """Many account lines, so a write takes long enough to be killed in the middle (bulk: no signals)."""
    from accounts.models import User
    from mail.models import Domain, Mailbox

    domain = Domain.objects.get(name="example.com")
    hashed = User.objects.get(email="first@example.com").mail_password_hash
    people = User.objects.bulk_create(
        [User(email=f"bulk{i:06d}@example.com", mail_password_hash=hashed) for i in range(count)], batch_size=2000
    )
    Mailbox.objects.bulk_create(
        [
            Mailbox(person=person, domain=domain, local_part=f"bulk{i:06d}", address=f"bulk{i:06d}@example.com")
            for i, person in enumerate(people)
        ],
        batch_size=2000,
    )
    sync.dms_sync()


def test_a_worker_killed_in_the_middle_of_the_write_leaves_a_whole_set_and_catches_up(mailbox_files, worker, settings):
    settings.DMS_SYNC_DELAY = 0
    _seed_mailboxes(40000)
    staging = settings.DMS_HISTORY_DIR / "staging"
    worker.start().wait_for_log(" ready.")
    landed_mid_write = None

    for attempt in range(4):
        address = f"mid-write{attempt}@example.com"
        before = _accounts()
        make_mailbox(address)
        deadline = time.monotonic() + PATIENCE
        while not any(staging.glob(".dockspace-tmp-*")) and f"\n{address}|" not in _accounts():
            assert time.monotonic() < deadline, worker.log()[-3000:]
            time.sleep(0.001)
        worker.kill()
        if f"\n{address}|" not in _accounts():
            landed_mid_write = address
            assert _accounts() == before  # the old set, whole, while the worker is down
            assert _no_temp_file_where_dms_reads()
            break
        worker.start().wait_for_log(" ready.")
    assert landed_mid_write, "no kill landed inside a write; the test proved nothing"

    worker.start()
    seconds = _wait_for_files(worker, landed_mid_write)

    accounts = {line.split("|")[0] for line in _accounts().splitlines() if "|" in line}
    virtual = (settings.DMS_DIR / "postfix-virtual.cf").read_text()
    assert all(line.split(" ")[1] in accounts for line in virtual.splitlines() if "@" in line and " " in line)
    assert _no_temp_file_where_dms_reads()
    assert not (settings.DMS_HISTORY_DIR / "journal.json").exists()
    print(f"caught up {seconds:.2f} s after the worker was started (40k mailboxes)")


def test_a_running_worker_writes_a_change_without_a_restart(mailbox_files, worker, settings):
    """Positive control: the same path with nobody killed."""
    settings.DMS_SYNC_DELAY = 2
    worker.start().wait_for_log(" ready.")
    committed = time.monotonic()

    make_mailbox("normal@example.com")

    deadline = time.monotonic() + PATIENCE
    while "\nnormal@example.com|" not in _accounts():
        assert time.monotonic() < deadline, worker.log()[-3000:]
        time.sleep(0.02)
    print(f"written {time.monotonic() - committed:.2f} s after the commit")
    assert "Task mail.sync_dms_files[" in worker.log()
