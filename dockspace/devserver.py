"""`make run`: migrate, install periodic tasks, then run Dockspace's processes together on this machine (web,
Celery worker and beat, and any an app declares: dockspace.processes; DOCKSPACE_PROCESSES picks others), print
the URL, and stop them all on Ctrl-C (or when one of them dies).

Nothing starts when an address a process listens on is taken (the message names who holds it), when
DOCKSPACE_PROCESSES names an unknown process, when another `make run` uses the same data directory, or when DEBUG
would be reachable from the network without DOCKSPACE_ALLOW_DEBUG_ON_NETWORK=1."""

import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from dockspace.env import env_bool, env_str
from dockspace.ports import (
    bind_problem,
    describe_port_holders,
    dockspace_server_pid,
    is_loopback,
    local_url,
    parse_bind,
)
from dockspace.private_files import private_dir
from dockspace.processes import metrics_dir_prepare

CHILD_STOP_SECONDS = 10
BANNER_REPEAT_SECONDS = 8
LISTEN_START_SECONDS = 30
# Held (flock) by the running `make run` for its whole life; holds its pid for the refusal message.
LOCK_FILE_NAME = "make-run.lock"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _refuse(message, code=2):
    print(f"[run] {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def _check_debug_exposure(host, port):
    """DEBUG pages show settings, code and every URL: only on loopback, unless the operator insists."""
    if not env_bool("DEBUG", False) or is_loopback(host):
        return
    where = f"{host or '*'}:{port}"
    if not env_bool("DOCKSPACE_ALLOW_DEBUG_ON_NETWORK", False):
        _refuse(
            f"refusing to start: DEBUG=1 on {where} shows error pages with code and settings to anyone who "
            f"can reach this address. Either listen on loopback (DOCKSPACE_BIND=127.0.0.1:{port}; use an SSH "
            "tunnel from elsewhere), or run in production mode (DEBUG=0 with SECRET_KEY and an https "
            "DOCKSPACE_URL, see README), or accept the risk on a trusted network with "
            "DOCKSPACE_ALLOW_DEBUG_ON_NETWORK=1."
        )
    banner = "!" * 78
    print(
        f"{banner}\n[run] WARNING: DEBUG=1 on {where} (DOCKSPACE_ALLOW_DEBUG_ON_NETWORK=1). Anyone who can reach "
        "this address\n[run] sees DEBUG's error pages (secrets masked, URL list hidden). Never do this on an "
        f"untrusted network.\n{banner}",
        file=sys.stderr,
        flush=True,
    )


def _check_port_free(process):
    host, port = parse_bind(process["bind"], setting=process["bind_setting"])
    problem = bind_problem(host, port)
    if problem is None:
        return
    in_use, reason = problem
    setting = process["bind_setting"]
    running = dockspace_server_pid(port) if in_use else None
    if running:
        _refuse(
            f"refusing to start: {host or '*'}:{port} is already in use: another Dockspace is running here (pid "
            f"{running}): stop it with Ctrl-C in its terminal or kill {running}. (A second one needs its own "
            f"DOCKSPACE_DATA_DIR and another {setting}.)",
            code=1,
        )
    if in_use:
        _refuse(
            f"refusing to start: {host or '*'}:{port} is already in use ({reason}), {describe_port_holders(port)}; "
            f"{process['name']} listens there. Stop it, or choose another address, e.g. "
            f"{setting}={host or '127.0.0.1'}:{port + 1} make run.",
            code=1,
        )
    _refuse(
        f"refusing to start: {process['name']} cannot listen on {host or '*'}:{port}: {reason}. Check {setting}.",
        code=1,
    )


def _data_dir():
    # The same directory as settings.DATA_DIR (not imported: loading the settings creates files there).
    default = Path(__file__).resolve().parent.parent / "data"
    return Path(env_str("DOCKSPACE_DATA_DIR", str(default))).expanduser().resolve()


def ssh_key_dir_prepare():
    """Create the directory mail hosts' key files must be in (settings.MAILHOST_SSH_KEY_DIR: DOCKSPACE_SSH_KEY_DIR,
    else <data dir>/ssh-keys) private (0700), so an operator puts a key there without making it first. An existing
    directory is left as it is. Returns its path."""
    key_dir = Path(env_str("DOCKSPACE_SSH_KEY_DIR", str(_data_dir() / "ssh-keys"))).expanduser().resolve()
    try:
        private_dir(key_dir)
    except OSError as exc:  # mail hosts are optional: say so and run anyway
        print(f"[run] could not create the SSH key directory {key_dir}: {exc.strerror}. Check DOCKSPACE_SSH_KEY_DIR.")
    return key_dir


def _lock_data_dir():
    """Hold an exclusive lock on the data directory until this process ends (the kernel lets go even when it is
    killed): a second `make run` on the same directory would share its database and queue and run every
    periodic task twice. The descriptor stays open, and the children do not inherit it."""
    data_dir = _data_dir()
    try:
        private_dir(data_dir)
        fd = os.open(data_dir / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        _refuse(
            f"refusing to start: cannot use the data directory {data_dir}: {exc.strerror}. Check DOCKSPACE_DATA_DIR."
        )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 20).decode(errors="replace").strip()
        os.close(fd)
        pid = holder if holder.isdigit() else "?"
        _refuse(
            f"refusing to start: another `make run` (pid {pid}) is using the data directory {data_dir}. Stop it "
            f"with Ctrl-C in its terminal or kill {pid}; or give this one its own directory with "
            "DOCKSPACE_DATA_DIR (and another DOCKSPACE_BIND).",
            code=1,
        )
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())


def _child_options():
    """Popen options for every process started here: its own session, so Ctrl-C reaches only this supervisor
    (which stops each child in order; a half-done `migrate` shows no traceback), and on Linux a SIGTERM when this
    supervisor dies, even SIGKILLed, so no web, worker or beat is left running orphaned."""
    if _LIBC is None:
        return {"start_new_session": True}
    parent = os.getpid()

    def stop_with_parent():
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return {"start_new_session": True, "preexec_fn": stop_with_parent}


def _wait_until_listening(bind, proc):
    """True once a process accepts connections on BIND; False if it exited first or never did."""
    host, port = parse_bind(bind)
    probe_host = "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)  # noqa: S104
    deadline = time.monotonic() + LISTEN_START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((probe_host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def _manage(*args):
    subprocess.run([sys.executable, "manage.py", *args], check=True, **_child_options())


def start_plan():
    """The processes to start (dockspace.processes' declarations picked by DOCKSPACE_PROCESSES), each with its
    command line; those left off for want of a setting are named here. Read by a separate Python that loads the
    settings without writing anything, so a refusal below still leaves the data directory as it was."""
    result = subprocess.run(
        [sys.executable, "-m", "dockspace.processes", "plan"],
        capture_output=True,
        text=True,
        check=False,
        **_child_options(),
    )
    if result.returncode != 0:
        message = result.stderr.strip().removeprefix("python -m dockspace.processes: ")
        _refuse(f"refusing to start: {message or f'reading the processes failed (exit {result.returncode})'}")
    try:
        plan = json.loads(result.stdout)
    except ValueError:
        _refuse(f"refusing to start: `python -m dockspace.processes plan` printed no plan: {result.stdout[:200]!r}")
    for process in plan:
        if process.get("off"):
            print(f"[run] {process['name']} is off: {process['off']} ({process['description']})", flush=True)
    return [process for process in plan if not process.get("off")]


def _start(process):
    print(f"[run] starting {process['name']}: {' '.join(process['argv'])}", flush=True)
    return subprocess.Popen(process["argv"], env={**os.environ, **process["env"]}, **_child_options())


def _prepare_metrics_dirs(plan):
    """Each process counts for Prometheus in its own emptied directory, as in the image (dockspace.processes)."""
    for process in plan:
        try:
            counting = metrics_dir_prepare(process["metrics_dir"])
        except OSError as exc:
            _refuse(
                f"refusing to start: cannot use the metrics directory {process['metrics_dir']}: {exc.strerror}. "
                "Check DOCKSPACE_METRICS_DIR."
            )
        process["env"] = {**process["env"], **counting}


def _stop_all(children):
    for _, proc in children:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + CHILD_STOP_SECONDS
    for name, proc in children:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"[run] {name} did not stop in {CHILD_STOP_SECONDS}s; killing it", flush=True)
            proc.kill()
            proc.wait()


def _names(processes):
    names = [process["name"] for process in processes]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _start_all(plan):
    """Start each process in declaration order; one that listens is waited for before the next starts (worker
    and beat start once the web server listens). A port taken in the meantime stops everything here."""
    children = []
    try:
        for process in plan:
            proc = _start(process)
            children.append((process["name"], proc))
            if process["bind"] and not _wait_until_listening(process["bind"], proc):
                _stop_all(children)
                _refuse(
                    f"{process['name']} did not start listening on {process['bind']}; see its messages above.", code=1
                )
    except KeyboardInterrupt:
        _stop_all(children)
        raise
    return children


def _prepare():
    """Migrate, install the periodic tasks and alert rules, and write the DMS files; returns the setup-code line
    (empty once an administrator exists)."""
    try:
        _manage("migrate", "--noinput")
        _manage("install_periodic_tasks")
        _manage("install_alert_rules")
    except subprocess.CalledProcessError as exc:
        sys.exit(f"[run] preparing the database failed (exit {exc.returncode}); see the message above.")
    # The first-run page asks for this code while no administrator exists; empty once one does.
    setup_code = subprocess.run(
        [sys.executable, "manage.py", "setup_code", "--if-needed"], capture_output=True, text=True, **_child_options()
    ).stdout.strip()

    # The DMS files exist (and match the database) before anything else starts; a failure is shown
    # in Admin -> DMS sync state and retried by the worker, so it does not stop the app.
    if subprocess.run([sys.executable, "manage.py", "export_dms_files"], **_child_options()).returncode != 0:
        print("[run] could not write the DMS files now; see Admin -> DMS sync state", flush=True)
    return setup_code


def main():
    # Ctrl-C (SIGINT) stops the preparation too, even when whoever started us left SIGINT ignored (a shell does for
    # a command it runs in the background): Python then keeps it ignored instead of raising KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockspace.settings")
    bind = os.environ.setdefault("DOCKSPACE_BIND", "127.0.0.1:8000")
    # A development machine: two Celery children are plenty (the image defaults to one per CPU).
    os.environ.setdefault("WORKER_CONCURRENCY", "2")
    try:
        host, port = parse_bind(bind)
        _check_debug_exposure(host, port)
    except (ValueError, ImproperlyConfigured) as exc:
        _refuse(str(exc))
    # Listening on every interface: links and the OIDC issuer still need an address a browser can open.
    os.environ.setdefault("DOCKSPACE_URL", local_url(bind))
    try:
        plan = start_plan()
        if not plan:
            _refuse("refusing to start: no process to start; see `python -m dockspace.processes list`.")
        for process in plan:
            if process["bind"]:
                _check_port_free(process)
        _lock_data_dir()
        ssh_key_dir_prepare()
        _prepare_metrics_dirs(plan)
        setup_code = _prepare()
        children = _start_all(plan)
    except KeyboardInterrupt:
        # Ctrl-C while preparing: the children have their own session and were stopped; no traceback.
        _refuse("interrupted: nothing is left running.", code=130)
    # Set explicitly: a shell that starts us in the background leaves SIGINT ignored otherwise.
    stopping = []
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stopping.append(True))
    names = _names(plan)
    # The URL is Dockspace's only when a started process serves DOCKSPACE_BIND (DOCKSPACE_PROCESSES may leave web out).
    serves_url = any(process["bind"] and parse_bind(process["bind"]) == (host, port) for process in plan)

    def banner():
        if not serves_url:
            print(f"\n[run] running {names}; nothing listens on {bind}  (Ctrl-C stops them)\n", flush=True)
            return
        url = os.environ["DOCKSPACE_URL"]
        print(f"\n[run] Dockspace is running at {url}/  (Ctrl-C stops {names})\n", flush=True)
        if setup_code:
            print(f"[run] {setup_code}\n", flush=True)

    banner()
    # Celery's start-up text follows and pushes the address (and the setup code) out of view: say it again.
    repeat_banner_at = time.monotonic() + BANNER_REPEAT_SECONDS

    exit_code = 0
    while not stopping:
        for name, proc in children:
            if proc.poll() is not None:
                print(f"[run] {name} exited with code {proc.returncode}; stopping the others", flush=True)
                exit_code = proc.returncode or 1
                stopping.append(True)
                break
        if repeat_banner_at and time.monotonic() >= repeat_banner_at and not stopping:
            banner()
            repeat_banner_at = None
        time.sleep(0.5)
    print(f"[run] stopping {names} ...", flush=True)
    _stop_all(children)
    print("[run] stopped.", flush=True)
    sys.exit(exit_code)


if __name__ == "__main__":
    main()
