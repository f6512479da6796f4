"""Dockspace's processes as data (dockspace.processes): the declarations, which ones `make run` starts, the command
lines built from the environment, `python -m dockspace.processes` and the image's entrypoint that reads it.

The test-only extension app (dockspace/tests/extension_app) declares one more process, `extension-greeter`."""

import dataclasses
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from dockspace.processes import (
    Process,
    collect_processes,
    processes_off,
    selected_processes,
    web_argv,
    worker_argv,
)
from dockspace.tests.ports import free_port
from dockspace.tests.prepared_data import prepared_data_dir

ROOT = Path(settings.BASE_DIR)
GREETING = b"hello from extension_app\n"


def names(processes):
    return [process.name for process in processes]


def greeting_on(port, deadline_seconds=30, proc=None):
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                return sock.makefile("rb").readline()
        except OSError:
            assert proc is None or proc.poll() is None, "the process exited"
            assert time.monotonic() < deadline, f"nothing answered on port {port}"
            time.sleep(0.2)


class FakeApp:
    def __init__(self, label, *declared):
        self.label = label
        self.declared = declared

    def processes(self):
        return list(self.declared)


def sleeper(name, **extra):
    return Process(name=name, description="sleeps", argv=lambda environ: ["sleep", "60"], **extra)


# --- declarations ---------------------------------------------------------------------------------------------


def test_every_apps_processes_are_collected_in_installed_apps_order():
    declared = names(collect_processes())
    assert declared[:3] == ["web", "worker", "beat"]  # dockspace's own
    assert declared[-1] == "extension-greeter"  # declared by the test extension app only


def test_make_run_starts_the_processes_on_by_default_including_an_apps_own():
    assert names(selected_processes(collect_processes(), environ={})) == [
        "web",
        "worker",
        "beat",
        "policy",  # declared by deliverability
        "watchdog",  # declared by monitoring
        "extension-greeter",
    ]  # and monitoring's maillog only with DOCKSPACE_MAIL_LOG (test_a_process_that_needs_a_setting_...)


def test_a_process_left_out_of_dockspace_processes_is_not_started():
    chosen = selected_processes(collect_processes(), environ={"DOCKSPACE_PROCESSES": " worker, web "})
    assert names(chosen) == ["web", "worker"]  # declaration order; greeter and beat switched off


def test_dockspace_processes_can_switch_on_a_process_that_is_off_by_default():
    processes = [sleeper("a"), sleeper("b", on_by_default=False)]
    assert names(selected_processes(processes, environ={})) == ["a"]
    assert names(selected_processes(processes, environ={"DOCKSPACE_PROCESSES": "a,b"})) == ["a", "b"]


def test_a_process_that_needs_a_setting_starts_only_when_it_is_set_and_is_named_off_otherwise():
    processes = [sleeper("a"), sleeper("follower", needs_setting="FOLLOWED_FILE")]
    assert names(selected_processes(processes, environ={})) == ["a"]
    assert [(p.name, why) for p, why in processes_off(processes, environ={})] == [
        ("follower", "FOLLOWED_FILE is not set")
    ]
    assert names(selected_processes(processes, environ={"FOLLOWED_FILE": " "})) == ["a"]  # blank is not set
    is_set = {"FOLLOWED_FILE": "/var/log/mail/mail.log"}
    assert names(selected_processes(processes, environ=is_set)) == ["a", "follower"]
    assert processes_off(processes, environ=is_set) == []
    # Named in DOCKSPACE_PROCESSES it is still off without its setting; left out, it is not reported off.
    assert processes_off(processes, environ={"DOCKSPACE_PROCESSES": "a"}) == []
    chosen = selected_processes(processes, environ={"DOCKSPACE_PROCESSES": "a,follower"})
    assert names(chosen) == ["a"]
    # monitoring declares the mail-log follower this way.
    maillog = next(p for p in collect_processes() if p.name == "maillog")
    assert maillog.needs_setting == "DOCKSPACE_MAIL_LOG"
    assert maillog.command({})[-2:] == ["maillog", "follow"]


def test_an_unknown_name_in_dockspace_processes_is_refused_naming_the_setting():
    with pytest.raises(ImproperlyConfigured) as refused:
        selected_processes(collect_processes(), environ={"DOCKSPACE_PROCESSES": "web,polcy"})
    message = str(refused.value)
    assert message.startswith("DOCKSPACE_PROCESSES: unknown process 'polcy'")
    assert "web, worker, beat, policy, watchdog, maillog, extension-greeter" in message


@pytest.mark.parametrize(
    "declared, message",
    [
        ([sleeper("Web")], "name 'Web' must be lowercase letters"),
        ([sleeper("two words")], "must be lowercase letters"),
        ([sleeper("manage")], "not manage"),
        (["web"], "each item must be a dockspace.processes.Process"),
    ],
)
def test_a_bad_declaration_is_refused_naming_the_app(declared, message):
    with pytest.raises(ImproperlyConfigured, match=message) as refused:
        collect_processes([FakeApp("shop", *declared)])
    assert "shop.processes()" in str(refused.value)


def test_a_name_declared_by_two_apps_is_refused():
    with pytest.raises(ImproperlyConfigured, match="'web' is declared twice: by one and by two"):
        collect_processes([FakeApp("one", sleeper("web")), FakeApp("two", sleeper("web"))])
    # Positive control: different names from two apps are both collected, in app order.
    assert names(collect_processes([FakeApp("one", sleeper("web")), FakeApp("two", sleeper("policy"))])) == [
        "web",
        "policy",
    ]


def test_a_declaration_cannot_be_changed_once_made():
    process = sleeper("a", env={"X": "1"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        process.name = "b"
    with pytest.raises(TypeError):
        process.env["X"] = "2"


def test_an_unusable_listening_address_names_its_setting():
    process = sleeper("a", bind_setting="A_BIND", bind_default="127.0.0.1:9000")
    assert process.bind({}) == "127.0.0.1:9000"
    assert process.bind({"A_BIND": "[::1]:9001"}) == "[::1]:9001"
    with pytest.raises(ImproperlyConfigured, match="A_BIND must be HOST:PORT"):
        process.bind({"A_BIND": "nine thousand"})


# --- command lines from the environment ----------------------------------------------------------------------


def test_the_web_command_line_comes_from_the_environment():
    argv = web_argv({"DOCKSPACE_BIND": "0.0.0.0:8000", "WEB_CONCURRENCY": "3"})
    assert Path(argv[0]).name == "gunicorn" and Path(argv[0]).parent == Path(sys.executable).parent
    assert argv[1] == "dockspace.wsgi"
    assert argv[argv.index("--bind") + 1] == "0.0.0.0:8000"
    assert argv[argv.index("--workers") + 1] == "3"
    assert argv[argv.index("--logger-class") + 1] == "dockspace.access_log.MaskingLogger"  # tokens masked
    assert argv[argv.index("--config") + 1] == "python:dockspace.gunicorn_config"  # child_exit: metrics
    assert "--forwarded-allow-ips" not in argv  # no proxy believed unless one is configured
    behind_proxy = web_argv({"DOCKSPACE_TRUSTED_PROXIES": "10.0.0.1, 10.0.0.2"})
    assert behind_proxy[behind_proxy.index("--forwarded-allow-ips") + 1] == "10.0.0.1,10.0.0.2"
    assert behind_proxy[behind_proxy.index("--bind") + 1] == "127.0.0.1:8000"  # the default
    assert behind_proxy[behind_proxy.index("--workers") + 1] == "2"


def test_a_bad_web_concurrency_names_the_variable():
    with pytest.raises(ImproperlyConfigured, match="WEB_CONCURRENCY must be a whole number"):
        web_argv({"WEB_CONCURRENCY": "two"})


def test_the_worker_uses_celerys_concurrency_unless_one_is_set():
    assert "--concurrency" not in worker_argv({})
    argv = worker_argv({"WORKER_CONCURRENCY": "2"})
    assert argv[argv.index("--concurrency") + 1] == "2"
    assert argv[1:4] == ["-A", "dockspace", "worker"]


# --- python -m dockspace.processes --------------------------------------------------------------------------


def processes_env(tmp_path, **extra):
    # What a fresh checkout has: DEBUG, no SECRET_KEY, a data directory that does not exist yet.
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DATABASE_URL")}
    env.update(DEBUG="1", DOCKSPACE_DATA_DIR=str(tmp_path / "data"), **extra)
    return env


def processes_command(env, *args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "dockspace.processes", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


def test_list_shows_every_declared_process_and_whether_make_run_starts_it(tmp_path):
    result = processes_command(processes_env(tmp_path), "list")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1:3] for line in result.stdout.splitlines()[1:] if line.strip()}
    assert rows["web"] == ["on", "starts"]
    assert rows["watchdog"] == ["on", "starts"]
    assert rows["extension-greeter"] == ["on", "starts"]
    assert rows["maillog"] == ["on", "off"]  # DOCKSPACE_MAIL_LOG is not set
    assert "(off: DOCKSPACE_MAIL_LOG is not set)" in result.stdout
    assert "answers every connection with a greeting" in result.stdout
    # Reading the declarations writes nothing: make run asks before it may touch the data directory.
    assert not (tmp_path / "data").exists()

    switched = processes_command(processes_env(tmp_path, DOCKSPACE_PROCESSES="web,worker"), "list")
    rows = {line.split()[0]: line.split()[1:3] for line in switched.stdout.splitlines()[1:] if line.strip()}
    assert rows["extension-greeter"] == ["on", "-"] and rows["beat"] == ["on", "-"] and rows["watchdog"] == ["on", "-"]
    assert rows["worker"] == ["on", "starts"]


def test_list_refuses_an_unknown_name_in_dockspace_processes_without_a_traceback(tmp_path):
    result = processes_command(processes_env(tmp_path, DOCKSPACE_PROCESSES="web,bogus"), "list")
    assert result.returncode == 2
    assert "DOCKSPACE_PROCESSES: unknown process 'bogus'" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_refuses_an_unknown_process(tmp_path):
    result = processes_command(processes_env(tmp_path), "run", "web-server")
    assert result.returncode == 2
    assert "unknown process 'web-server'; the declared processes are web, worker, beat" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_becomes_the_declared_process_with_its_environment(tmp_path):
    port = free_port()
    # What the process counted for Prometheus in its previous run, and a file that is not a counter.
    metrics_dir = tmp_path / "data" / "metrics" / "extension-greeter"
    metrics_dir.mkdir(parents=True)
    (metrics_dir / "counter_12345.db").write_bytes(b"old counts")
    (metrics_dir / "notes.txt").write_text("kept")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockspace.processes", "run", "extension-greeter"],
        cwd=ROOT,
        env=processes_env(tmp_path, EXTENSION_GREETER_BIND=f"127.0.0.1:{port}"),
    )
    try:
        assert greeting_on(port, proc=proc) == GREETING  # GREETING comes from the declaration's env
        # exec, not a child: the container's main process is the declared one and gets its signals.
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"-c" in cmdline and b"dockspace.processes" not in cmdline
        # It counts for Prometheus in its own directory, emptied of the last run's counters as it started.
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        assert f"PROMETHEUS_MULTIPROC_DIR={metrics_dir}".encode() in environ
        assert not (metrics_dir / "counter_12345.db").exists()
        assert (metrics_dir / "notes.txt").read_text() == "kept"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- the image's entrypoint ---------------------------------------------------------------------------------


def entrypoint(env, *args, **kwargs):
    return subprocess.Popen(["sh", str(ROOT / "docker" / "entrypoint.sh"), *args], cwd=ROOT, env=env, **kwargs)


def test_the_entrypoint_starts_a_process_by_its_declared_name(tmp_path):
    # The image's PATH starts with its venv: `python` there is this interpreter.
    port = free_port()
    env = processes_env(
        tmp_path,
        PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        EXTENSION_GREETER_BIND=f"127.0.0.1:{port}",
    )
    prepared_data_dir(Path(env["DOCKSPACE_DATA_DIR"]))  # migrated (the web process's work, tested below)

    proc = entrypoint(env, "extension-greeter", stderr=subprocess.PIPE)
    try:
        assert greeting_on(port, deadline_seconds=60, proc=proc) == GREETING
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert b"extension-greeter: database ready" in stderr  # waited for the migrated database first

    unknown = entrypoint(env, "greeter", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = unknown.communicate(timeout=120)
    assert unknown.returncode == 2
    declared = "web, worker, beat, policy, watchdog, maillog, extension-greeter"
    assert f"unknown process 'greeter'; the declared processes are {declared}" in stderr
    assert "Traceback" not in stderr

    program = entrypoint(env, "sh", "-c", "echo run as given", stdout=subprocess.PIPE, text=True)
    assert program.communicate(timeout=30)[0] == "run as given\n"

    # A program on PATH named like a declared process never shadows it; a shell function is no program.
    shadow = tmp_path / "bin"
    shadow.mkdir()
    (shadow / "beat").write_text("#!/bin/sh\necho NOT the declared beat\n")
    (shadow / "beat").chmod(0o755)
    shadowed = entrypoint({**env, "PATH": f"{shadow}:{env['PATH']}"}, "beat", "--version", stdout=subprocess.PIPE)
    assert b"NOT the declared beat" not in shadowed.communicate(timeout=120)[0]
    function = entrypoint(env, "log", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = function.communicate(timeout=120)
    assert function.returncode == 2 and "unknown process 'log'" in stderr


def test_the_entrypoints_web_prepares_the_database_then_serves_from_the_declaration(tmp_path):
    port = free_port()
    env = processes_env(
        tmp_path,
        PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        DOCKSPACE_BIND=f"127.0.0.1:{port}",  # the image sets 0.0.0.0:8000
        WEB_CONCURRENCY="1",
    )
    log = tmp_path / "web.log"
    with open(log, "wb") as out:
        proc = entrypoint(env, "web", "--timeout", "45", stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert Path(cmdline[1].decode()).name == "gunicorn"  # exec'd: the container's main process is gunicorn
        assert b"--timeout" in cmdline and b"45" in cmdline  # the entrypoint's extra arguments are appended
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    assert "[entrypoint] web: " in text and "setup code" in text  # prepared before gunicorn started
    assert (tmp_path / "data" / "dockspace.sqlite3").stat().st_size > 0  # and migrated
