"""`make run`: migrate, install periodic tasks, then run web (gunicorn), a Celery worker and Celery beat
together on this machine, print the URL, and stop all three on Ctrl-C (or when one of them dies).

Nothing starts when the address is taken (the message names who holds it) or when DEBUG would be
reachable from the network without DOCKSPACE_ALLOW_DEBUG_ON_NETWORK=1."""

import os
import signal
import socket
import subprocess
import sys
import time

from django.core.exceptions import ImproperlyConfigured

from dockspace.env import env_bool
from dockspace.ports import bind_problem, describe_port_holders, is_loopback, local_url, parse_bind

CHILD_STOP_SECONDS = 10
BANNER_REPEAT_SECONDS = 8
WEB_START_SECONDS = 30


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


def _check_port_free(host, port):
    problem = bind_problem(host, port)
    if problem is None:
        return
    in_use, reason = problem
    if in_use:
        _refuse(
            f"refusing to start: {host or '*'}:{port} is already in use ({reason}), "
            f"{describe_port_holders(port)}. Stop it, or choose another address, e.g. "
            f"DOCKSPACE_BIND={host or '127.0.0.1'}:{port + 1} make run.",
            code=1,
        )
    _refuse(f"refusing to start: cannot listen on {host or '*'}:{port}: {reason}. Check DOCKSPACE_BIND.", code=1)


def _wait_until_listening(host, port, proc):
    """True once the web server accepts connections; False if it exited first or never did."""
    probe_host = "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)  # noqa: S104
    deadline = time.monotonic() + WEB_START_SECONDS
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
    subprocess.run([sys.executable, "manage.py", *args], check=True)


def _start(name, argv):
    print(f"[run] starting {name}: {' '.join(argv)}", flush=True)
    # Own process group: Ctrl-C reaches this supervisor, which stops each child in order.
    return subprocess.Popen(argv, start_new_session=True)


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


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockspace.settings")
    bind = os.environ.setdefault("DOCKSPACE_BIND", "127.0.0.1:8000")
    try:
        host, port = parse_bind(bind)
        _check_debug_exposure(host, port)
    except (ValueError, ImproperlyConfigured) as exc:
        _refuse(str(exc))
    _check_port_free(host, port)
    # Listening on every interface: links and the OIDC issuer still need an address a browser can open.
    os.environ.setdefault("DOCKSPACE_URL", local_url(bind))
    try:
        _manage("migrate", "--noinput")
        _manage("install_periodic_tasks")
    except subprocess.CalledProcessError as exc:
        sys.exit(f"[run] preparing the database failed (exit {exc.returncode}); see the message above.")
    # The first-run page asks for this code while no administrator exists; empty once one does.
    setup_code = subprocess.run(
        [sys.executable, "manage.py", "setup_code", "--if-needed"], capture_output=True, text=True
    ).stdout.strip()

    # The DMS files exist (and match the database) before anything else starts; a failure is shown
    # in Admin -> DMS sync state and retried by the worker, so it does not stop the app.
    if subprocess.run([sys.executable, "manage.py", "export_dms_files"]).returncode != 0:
        print("[run] could not write the DMS files now; see Admin -> DMS sync state", flush=True)

    bin_dir = os.path.dirname(sys.executable)
    web = _start(
        "web",
        [
            os.path.join(bin_dir, "gunicorn"),
            "dockspace.wsgi",
            "--bind",
            bind,
            "--workers",
            os.environ.get("WEB_CONCURRENCY", "2"),
            "--access-logfile",
            "-",
            # Reset and registration links carry a token in their path: logged as ***.
            "--logger-class",
            "dockspace.access_log.MaskingLogger",
            # gunicorn's control socket would live in ~/.gunicorn, outside the data directory; nothing uses it.
            "--no-control-socket",
        ],
    )
    # Worker and beat start only once the web server listens: a port taken in the meantime ends here.
    try:
        listening = _wait_until_listening(host, port, web)
    except KeyboardInterrupt:
        listening = False
    if not listening:
        _stop_all([("web", web)])
        _refuse(f"the web server did not start listening on {bind}; see its messages above.", code=1)
    children = [
        ("web", web),
        (
            "worker",
            _start(
                "worker",
                [
                    os.path.join(bin_dir, "celery"),
                    "-A",
                    "dockspace",
                    "worker",
                    "--loglevel",
                    "INFO",
                    "--concurrency",
                    "2",
                ],
            ),
        ),
        ("beat", _start("beat", [os.path.join(bin_dir, "celery"), "-A", "dockspace", "beat", "--loglevel", "INFO"])),
    ]

    def banner():
        url = os.environ["DOCKSPACE_URL"]
        print(f"\n[run] Dockspace is running at {url}/  (Ctrl-C stops web, worker and beat)\n", flush=True)
        if setup_code:
            print(f"[run] {setup_code}\n", flush=True)

    banner()
    # Celery's start-up text follows and pushes the address (and the setup code) out of view: say it again.
    repeat_banner_at = time.monotonic() + BANNER_REPEAT_SECONDS

    stopping = []
    # Set explicitly: a shell that starts us in the background leaves SIGINT ignored otherwise.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stopping.append(True))
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
    print("[run] stopping web, worker and beat ...", flush=True)
    _stop_all(children)
    print("[run] stopped.", flush=True)
    sys.exit(exit_code)


if __name__ == "__main__":
    main()
