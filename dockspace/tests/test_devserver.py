"""`make run` (dockspace.devserver) as an operator meets it: a busy port, DEBUG on a network address,
a data directory that does not exist yet, the access log of a reset link, the declared processes it starts
(dockspace.processes; the test extension app declares `extension-greeter`, on by default), a second `make run`
on the same data directory, a `make run` killed outright, and Ctrl-C while it prepares the database."""

import contextlib
import fcntl
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from dockspace.devserver import LOCK_FILE_NAME, ssh_key_dir_prepare
from dockspace.ports import port_holders
from dockspace.tests.ports import free_port
from dockspace.tests.prepared_data import prepared_data_dir

ROOT = Path(settings.BASE_DIR)


def devserver_env(tmp_path, bind, **extra):
    # What an operator has: no database or Redis URL, no SECRET_KEY (DEBUG makes one), no allow flag.
    unset = ("DATABASE_URL", "REDIS_URL", "DOCKSPACE_URL", "SECRET_KEY", "DOCKSPACE_ALLOW_DEBUG_ON_NETWORK")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(
        DEBUG="1",
        DOCKSPACE_BIND=bind,
        DOCKSPACE_DATA_DIR=str(tmp_path / "not" / "there" / "yet"),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        WEB_CONCURRENCY="1",
        EXTENSION_GREETER_BIND=f"127.0.0.1:{free_port()}",
        DOCKSPACE_POLICY_LISTEN=f"127.0.0.1:{free_port()}",
    )
    env.update(extra)
    return env


def run_devserver(env, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "dockspace.devserver"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def busy_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_make_run_on_a_busy_port_names_who_holds_it_and_starts_nothing(tmp_path, busy_port):
    env = devserver_env(tmp_path, f"127.0.0.1:{busy_port}")
    result = run_devserver(env)
    assert result.returncode == 1
    assert f"127.0.0.1:{busy_port} is already in use" in result.stderr
    assert f"pid {os.getpid()} (" in result.stderr  # this test process holds it
    assert "running at" not in result.stdout
    assert "starting" not in result.stdout  # no web, worker or beat
    assert not Path(env["DOCKSPACE_DATA_DIR"]).exists()  # not even migrate ran


def test_make_run_refuses_debug_on_a_network_address(tmp_path, busy_port):
    result = run_devserver(devserver_env(tmp_path, f"0.0.0.0:{busy_port}"))
    assert result.returncode == 2
    assert "refusing to start: DEBUG=1 on 0.0.0.0" in result.stderr
    assert "DOCKSPACE_ALLOW_DEBUG_ON_NETWORK=1" in result.stderr
    assert "already in use" not in result.stderr  # refused before anything else


def test_make_run_with_debug_on_the_network_explicitly_allowed_goes_on_with_a_warning(tmp_path, busy_port):
    # Positive control of the refusal above: the same command with the opt-in passes the DEBUG check
    # (and then stops at the busy port, so nothing is started by this test).
    env = devserver_env(tmp_path, f"0.0.0.0:{busy_port}", DOCKSPACE_ALLOW_DEBUG_ON_NETWORK="1")
    result = run_devserver(env)
    assert "WARNING: DEBUG=1 on 0.0.0.0" in result.stderr
    assert "already in use" in result.stderr
    assert result.returncode == 1


def test_make_run_on_loopback_with_debug_passes_the_network_check(tmp_path, busy_port):
    result = run_devserver(devserver_env(tmp_path, f"127.0.0.1:{busy_port}"))
    assert "DEBUG=1 on" not in result.stderr


@pytest.mark.celery
def test_make_run_creates_a_private_data_dir_prints_the_setup_code_and_masks_tokens_in_the_access_log(tmp_path):
    port = free_port()
    env = devserver_env(tmp_path, f"127.0.0.1:{port}")
    data_dir = Path(env["DOCKSPACE_DATA_DIR"])
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dockspace.devserver"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 240
        while "setup code" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        text = log.read_text()
        assert f"Dockspace is running at http://127.0.0.1:{port}/" in text
        # Every process on by default started, an app's own included (declared in the extension app only).
        assert "(Ctrl-C stops web, worker, beat, policy, watchdog and extension-greeter)" in text
        assert greeting(env["EXTENSION_GREETER_BIND"]) == b"hello from extension_app\n"
        code = text.split("enter the setup code ")[1].split()[0]
        assert (data_dir / "setup-code").read_text().strip() == code

        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(base + "/setup/", timeout=10) as response:
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        token_path = "/password/reset/MQ/cn0abc-0123456789abcdef0123456789abcdef/"
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(base + token_path, timeout=10).close()
        deadline = time.monotonic() + 10
        while "/password/reset/MQ/" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        text = log.read_text()
        assert "GET /password/reset/MQ/*** HTTP" in text or "GET /password/reset/MQ/***/ HTTP" in text
        assert "0123456789abcdef0123456789abcdef" not in text
        assert "GET /setup/ HTTP" in text  # positive control: other paths are logged as they are

        # Ready once the worker and beat have started (their heartbeats), and each process counts for /metrics in
        # its own directory.
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(base + "/health/ready", timeout=10) as response:
                    assert response.status == 200
                    break
            except urllib.error.HTTPError as exc:
                assert exc.code == 503
                assert time.monotonic() < deadline, exc.read().decode()
                time.sleep(1)
            except (ConnectionError, urllib.error.URLError, TimeoutError) as exc:
                # A probe that gets no answer is "not ready yet", as an orchestrator takes it (on a loaded CI machine
                # a gunicorn worker can be restarted mid-request); the log says why if it lasts.
                assert time.monotonic() < deadline, f"{exc!r}\n{log.read_text()[-3000:]}"
                time.sleep(1)
        with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
            assert b"dockspace_worker_last_seen_timestamp_seconds" in response.read()
        # The watchdog runs its rounds (its heartbeat), started like the others.
        deadline = time.monotonic() + 60
        while not heartbeat_of(data_dir / "dockspace.sqlite3", "watchdog"):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        for name in ("web", "worker"):
            assert list((data_dir / "metrics" / name).glob("counter_*.db")), name

        assert data_dir.stat().st_mode & 0o777 == 0o700
        assert (data_dir / "dockspace.sqlite3").stat().st_mode & 0o777 == 0o600
        assert (data_dir / "dev-secret-key").stat().st_mode & 0o777 == 0o600
        assert (data_dir / "celery" / "queue").stat().st_mode & 0o777 == 0o700
        assert (data_dir / "ssh-keys").stat().st_mode & 0o777 == 0o700  # mail hosts' keys go there
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert "[run] stopped." in log.read_text()
    assert not listening(env["EXTENSION_GREETER_BIND"])  # stopped with the others


def test_make_run_creates_the_ssh_key_directory_private_and_leaves_an_existing_one_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKSPACE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DOCKSPACE_SSH_KEY_DIR", raising=False)
    old = os.umask(0o022)
    try:
        assert ssh_key_dir_prepare() == tmp_path / "data" / "ssh-keys"
        assert (tmp_path / "data" / "ssh-keys").stat().st_mode & 0o777 == 0o700
        assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700  # the data directory made on the way too
        monkeypatch.setenv("DOCKSPACE_SSH_KEY_DIR", str(tmp_path / "keys"))  # the operator's own directory
        assert ssh_key_dir_prepare() == tmp_path / "keys"
        assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    finally:
        os.umask(old)
    (tmp_path / "keys").chmod(0o750)  # the operator's choice (check W003's business, not make run's)
    ssh_key_dir_prepare()
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o750


def heartbeat_of(database, name):
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return db.execute("SELECT seen_at FROM monitoring_heartbeat WHERE name = ?", (name,)).fetchone()


def greeting(bind):
    host, _, port = bind.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        return sock.makefile("rb").readline()


def listening(bind):
    host, _, port = bind.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return False
    return True


def test_make_run_starts_only_the_processes_dockspace_processes_names(tmp_path):
    port = free_port()
    env = devserver_env(tmp_path, f"127.0.0.1:{port}", DOCKSPACE_PROCESSES="extension-greeter")
    prepared_data_dir(Path(env["DOCKSPACE_DATA_DIR"]))  # not a first start
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dockspace.devserver"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 240
        while "[run] running extension-greeter" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        # The app's process runs with its declared environment ...
        assert greeting(env["EXTENSION_GREETER_BIND"]) == b"hello from extension_app\n"
        text = log.read_text()
        assert f"nothing listens on 127.0.0.1:{port}" in text
        assert "Dockspace is running at" not in text
        # ... and the processes switched off (web, worker and beat are on by default) are not started.
        for name in ("web", "worker", "beat", "watchdog"):
            assert f"[run] starting {name}:" not in text
        assert not listening(f"127.0.0.1:{port}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert "[run] stopping extension-greeter ..." in log.read_text()
    assert "[run] stopped." in log.read_text()
    assert not listening(env["EXTENSION_GREETER_BIND"])


def test_make_run_refuses_an_unknown_name_in_dockspace_processes_and_starts_nothing(tmp_path):
    env = devserver_env(tmp_path, f"127.0.0.1:{free_port()}", DOCKSPACE_PROCESSES="web,wrker")
    result = run_devserver(env)
    assert result.returncode == 2
    assert "refusing to start: DOCKSPACE_PROCESSES: unknown process 'wrker'" in result.stderr
    assert "web, worker, beat, policy, watchdog, maillog, extension-greeter" in result.stderr  # what it could have been
    assert "Traceback" not in result.stderr
    assert "starting" not in result.stdout
    assert not Path(env["DOCKSPACE_DATA_DIR"]).exists()


def test_make_run_refuses_when_an_apps_process_would_find_its_port_taken(tmp_path, busy_port):
    env = devserver_env(tmp_path, f"127.0.0.1:{free_port()}", EXTENSION_GREETER_BIND=f"127.0.0.1:{busy_port}")
    result = run_devserver(env)
    assert result.returncode == 1
    assert f"127.0.0.1:{busy_port} is already in use" in result.stderr
    assert "extension-greeter listens there" in result.stderr
    assert f"EXTENSION_GREETER_BIND=127.0.0.1:{busy_port + 1} make run" in result.stderr
    assert "starting" not in result.stdout  # not even web, declared (and checked) first
    assert not Path(env["DOCKSPACE_DATA_DIR"]).exists()


def start_devserver(env, log):
    """`make run` in the background, in its own process group as a terminal starts it (Ctrl-C reaches the group)."""
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dockspace.devserver"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for(log, text, proc, seconds=240):
    deadline = time.monotonic() + seconds
    while text not in log.read_text():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.3)


def stop_listeners(*binds):
    """Whatever a failed test left listening on its own (random) ports."""
    for bind in binds:
        for pid, _ in port_holders(int(bind.rpartition(":")[2])):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)


def test_a_second_make_run_on_the_same_data_directory_is_refused_naming_the_first(tmp_path):
    bind = f"127.0.0.1:{free_port()}"
    env = devserver_env(tmp_path, bind, DOCKSPACE_PROCESSES="web")
    prepared_data_dir(Path(env["DOCKSPACE_DATA_DIR"]))  # not a first start
    log = tmp_path / "first.log"
    first = start_devserver(env, log)
    try:
        wait_for(log, "Dockspace is running at", first)

        # Another address, the same data directory: one database, one queue, each periodic task twice.
        second = run_devserver({**env, "DOCKSPACE_BIND": f"127.0.0.1:{free_port()}"})
        assert second.returncode == 1
        assert (
            f"refusing to start: another `make run` (pid {first.pid}) is using the data directory "
            f"{Path(env['DOCKSPACE_DATA_DIR']).resolve()}. Stop it with Ctrl-C in its terminal or kill {first.pid}"
        ) in second.stderr
        assert "Traceback" not in second.stderr
        assert "starting" not in second.stdout  # no web, worker or beat
        assert "Operations to perform" not in second.stdout  # not even migrate ran

        # The same address: the port holder is named as what it is, another Dockspace.
        same_port = run_devserver(env)
        assert same_port.returncode == 1
        assert (
            f"another Dockspace is running here (pid {first.pid}): stop it with Ctrl-C in its terminal or "
            f"kill {first.pid}."
        ) in same_port.stderr
        assert "starting" not in same_port.stdout

        # Positive control: the first one serves on, untouched by both refusals.
        with urllib.request.urlopen(f"http://{bind}/setup/", timeout=10) as response:
            assert response.status == 200
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
    assert "[run] stopped." in log.read_text()


def test_make_run_killed_outright_takes_its_processes_with_it_and_frees_the_data_directory(tmp_path):
    bind = f"127.0.0.1:{free_port()}"
    env = devserver_env(tmp_path, bind, DOCKSPACE_PROCESSES="web,extension-greeter")
    prepared_data_dir(Path(env["DOCKSPACE_DATA_DIR"]))  # not a first start
    log = tmp_path / "run.log"
    proc = start_devserver(env, log)
    try:
        wait_for(log, "Dockspace is running at", proc)
        assert listening(bind)
        assert listening(env["EXTENSION_GREETER_BIND"])

        proc.kill()  # SIGKILL: no chance to stop its children itself
        proc.wait(timeout=10)
        deadline = time.monotonic() + 30
        while (listening(bind) or listening(env["EXTENSION_GREETER_BIND"])) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert not listening(bind), "gunicorn was left running"
        assert not listening(env["EXTENSION_GREETER_BIND"]), "extension-greeter was left running"
        # The lock died with it: the next `make run` may use the data directory.
        with open(Path(env["DOCKSPACE_DATA_DIR"]) / LOCK_FILE_NAME) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        if proc.poll() is None:
            proc.kill()
        stop_listeners(bind, env["EXTENSION_GREETER_BIND"])


def test_ctrl_c_while_make_run_prepares_the_database_stops_quietly_with_exit_130(tmp_path):
    env = devserver_env(tmp_path, f"127.0.0.1:{free_port()}")
    log = tmp_path / "run.log"
    proc = start_devserver(env, log)
    try:
        database = Path(env["DOCKSPACE_DATA_DIR"]) / "dockspace.sqlite3"
        deadline = time.monotonic() + 60
        while not database.exists():  # created when `migrate` loads the settings
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "[run] interrupted: nothing is left running." in text
    assert "Traceback" not in text
    assert "KeyboardInterrupt" not in text
    assert "[run] starting" not in text
