"""Real Celery processes for end-to-end tests: a worker and beat started as `celery -A dockspace`, on the test
database (a transaction=True test commits, so they see its rows), stopped on the way out."""

import os
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

from django.db import connection

CELERY = str(Path(sys.executable).with_name("celery"))


def database_url():
    """The test database as DATABASE_URL, for processes started by the test."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_for(condition, seconds=90):
    """Poll condition() until it holds or `seconds` pass (waiting for another process, not moving time)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.3)
    return condition()


def _argv(name, tmp_path):
    if name == "worker":
        return [CELERY, "-A", "dockspace", "worker", "--pool", "solo", "--loglevel", "INFO"]
    return [CELERY, "-A", "dockspace", "beat", "--loglevel", "INFO", "--pidfile", str(tmp_path / "beat.pid")]


class CeleryProcesses:
    """The processes started so far; `start("beat")` adds one later. Logs are <tmp_path>/<name>.log."""

    def __init__(self, tmp_path, env, stack):
        self.tmp_path, self.env, self._stack = tmp_path, env, stack

    def start(self, name):
        log = self._stack.enter_context(open(self.tmp_path / f"{name}.log", "w"))  # noqa: SIM115 - closed by the stack
        proc = subprocess.Popen(_argv(name, self.tmp_path), env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self._stack.callback(_stop, proc)

    def log(self, name="worker"):
        return (self.tmp_path / f"{name}.log").read_text()


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def celery_running(tmp_path, *names, **env):
    """Start a worker and/or beat (`names`, e.g. "worker", "beat") with `env` added to the environment and
    DATABASE_URL pointing at the test database; yields CeleryProcesses; stops them all on the way out."""
    with ExitStack() as stack:
        processes = CeleryProcesses(tmp_path, {**os.environ, "DATABASE_URL": database_url(), **env}, stack)
        for name in names:
            processes.start(name)
        yield processes
