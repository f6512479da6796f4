"""DMS write latency: from a committed change to the DMS files, with a real Celery worker; and after a crash.

Run by hand from the project root:

    .venv/bin/python bench/dms_latency.py [--isolated 10] [--burst 50] [--restarts 5] [--delay 2]

Everything runs as `make run` does (SQLite, the embedded filesystem broker, a file cache; `--redis-url` for
Redis as broker and cache, as the container image) in a temporary data directory, removed at the end (also on
Ctrl-C). Phases:

- isolated: one change at a time, each after a quiet spell longer than the delay: seconds from the commit
  until postfix-accounts.cf holds the new mailbox;
- burst: `--burst` changes committed back to back: the same, per change, and how many writes they took;
- restart: the worker is killed (SIGKILL), a change is committed and its queued task thrown away (as the
  embedded broker loses a message a killed worker had fetched), and the worker started again: seconds from
  the worker's launch, and from its "ready" log line, until the files hold the change.

It prints what it measured and asserts nothing.
"""

import argparse
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CELERY = str(Path(sys.executable).with_name("celery"))


class AccountsWatcher(threading.Thread):
    """Notes the first moment each address appears in postfix-accounts.cf (polled every 2 ms)."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.seen, self.stop_event, self.last = path, {}, threading.Event(), None

    def run(self):
        while not self.stop_event.is_set():
            try:
                stat = self.path.stat()
                key = (stat.st_ino, stat.st_mtime_ns)
                if key != self.last:
                    now = time.monotonic()
                    self.last = key
                    for line in self.path.read_text().splitlines():
                        address = line.split("|", 1)[0]
                        if "|" in line and address not in self.seen:
                            self.seen[address] = now
            except FileNotFoundError:
                pass
            time.sleep(0.002)

    def wait_for(self, address, timeout=120):
        deadline = time.monotonic() + timeout
        while address not in self.seen:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{address} never reached the DMS files")
            time.sleep(0.002)
        return self.seen[address]


class Worker:
    def __init__(self, log_path):
        self.log_path, self.proc = log_path, None

    def start(self):
        self.launched = time.monotonic()
        self.offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(
                [CELERY, "-A", "dockspace", "worker", "--pool", "solo", "--loglevel", "INFO", "--without-heartbeat"],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def ready_at(self, timeout=120):
        deadline = time.monotonic() + timeout
        while " ready." not in self.log_path.read_text()[self.offset :]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.005)
        return time.monotonic()

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def figures(label, seconds):
    seconds = sorted(seconds)
    p50 = statistics.median(seconds)
    print(f"{label:<50} n={len(seconds):<4} p50={p50:+.3f}s  max={seconds[-1]:+.3f}s  min={seconds[0]:+.3f}s")


def run(args, temp):
    os.environ.update(
        DOCKSPACE_DATA_DIR=str(temp),
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        SECURE_SSL_REDIRECT="0",
        DOCKSPACE_URL="https://dockspace.test",
        DOCKSPACE_DMS_SYNC_DELAY=str(args.delay),
        DJANGO_SETTINGS_MODULE="dockspace.settings",
    )
    for name in ("DATABASE_URL", "REDIS_URL", "DOCKSPACE_DMS_DIR", "DOCKSPACE_DMS_HISTORY_DIR"):
        os.environ.pop(name, None)
    if args.redis_url:
        os.environ["REDIS_URL"] = args.redis_url
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from dockspace.celery import app
    from mail import services
    from mail.dms import sync
    from mail.models import DmsSyncState

    if args.redis_url:
        from django.core.cache import cache

        if cache._cache.get_client().dbsize():
            raise SystemExit(f"{args.redis_url} holds keys; give an empty Redis database")
    call_command("migrate", verbosity=0)
    services.domain_create(name="bench.test", actor_label="bench")
    services.mailbox_create(address="first@bench.test", actor_label="bench")
    sync.dms_sync()
    watcher = AccountsWatcher(settings.DMS_DIR / "postfix-accounts.cf")
    watcher.start()
    worker = Worker(temp / "worker.log")
    counter = iter(range(10**6))

    def commit():
        address = f"user{next(counter):05d}@bench.test"
        services.mailbox_create(address=address, actor_label="bench")
        return address, time.monotonic()

    try:
        worker.start().ready_at()
        time.sleep(args.delay + 1)  # a quiet spell: the first change is not coalesced with the setup

        latencies = []
        for _ in range(args.isolated):
            address, committed = commit()
            latencies.append(watcher.wait_for(address) - committed)
            time.sleep(args.delay + 1)
        figures("isolated change: commit -> files", latencies)

        writes_before = DmsSyncState.load().write_count
        burst = [commit() for _ in range(args.burst)]
        burst_latencies = [watcher.wait_for(address) - committed for address, committed in burst]
        span = burst[-1][1] - burst[0][1]
        figures(f"burst of {args.burst} over {span:.2f}s: commit -> files", burst_latencies)
        time.sleep(args.delay + 1)
        print(f"{'':<50} files replaced for the burst: {DmsSyncState.load().write_count - writes_before}")

        from_launch, from_ready = [], []
        for _ in range(args.restarts):
            worker.kill()
            address, _committed = commit()
            app.control.purge()  # the task is lost: only the database says the files are behind
            worker.start()
            ready = worker.ready_at()
            seen = watcher.wait_for(address)
            from_launch.append(seen - worker.launched)
            from_ready.append(seen - ready)
        figures("after a crash: worker launch -> files", from_launch)
        figures("after a crash: 'ready' line -> files (<0: before)", from_ready)
    finally:
        worker.stop()
        watcher.stop_event.set()
        if args.redis_url:
            from django.core.cache import cache

            cache._cache.get_client().flushdb()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--isolated", type=int, default=10, help="isolated changes (default 10)")
    parser.add_argument("--burst", type=int, default=50, help="changes committed back to back (default 50)")
    parser.add_argument("--restarts", type=int, default=5, help="worker crashes and restarts (default 5)")
    parser.add_argument("--delay", type=int, default=2, help="DOCKSPACE_DMS_SYNC_DELAY in seconds (default 2)")
    parser.add_argument(
        "--redis-url", default="", help="an EMPTY Redis database as broker and cache (default: the embedded broker)"
    )
    parser.add_argument("--keep-temp", action="store_true", help="keep the data directory and worker log")
    args = parser.parse_args()
    temp = Path(tempfile.mkdtemp(prefix="dockspace-bench-dms-latency-"))
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        run(args, temp)
    except KeyboardInterrupt:
        return 130
    finally:
        if args.keep_temp:
            print(f"kept {temp}")
        else:
            shutil.rmtree(temp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
