"""`make run`: migrate, install periodic tasks, then run web (gunicorn), a Celery worker and Celery beat
together on this machine, print the URL, and stop all three on Ctrl-C (or when one of them dies)."""

import os
import signal
import subprocess
import sys
import time

CHILD_STOP_SECONDS = 10


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
    bind = os.environ.get("DOCKSPACE_BIND", "127.0.0.1:8000")
    host, _, port = bind.rpartition(":")
    # Listening on every interface: links and the OIDC issuer still need an address a browser can open.
    reachable = "127.0.0.1" if host in ("0.0.0.0", "", "[::]") else host  # noqa: S104 - a comparison, not a bind
    os.environ.setdefault("DOCKSPACE_URL", f"http://{reachable}:{port}")
    try:
        _manage("migrate", "--noinput")
        _manage("install_periodic_tasks")
    except subprocess.CalledProcessError as exc:
        sys.exit(f"[run] preparing the database failed (exit {exc.returncode}); see the message above.")

    # The DMS files exist (and match the database) before anything else starts; a failure is shown
    # in Admin -> DMS sync state and retried by the worker, so it does not stop the app.
    if subprocess.run([sys.executable, "manage.py", "export_dms_files"]).returncode != 0:
        print("[run] could not write the DMS files now; see Admin -> DMS sync state", flush=True)

    bin_dir = os.path.dirname(sys.executable)
    children = [
        (
            "web",
            _start(
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
                ],
            ),
        ),
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
    print(
        f"\n[run] Dockspace is running at {os.environ['DOCKSPACE_URL']}/  (Ctrl-C stops web, worker and beat)\n",
        flush=True,
    )

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
        time.sleep(0.5)
    print("[run] stopping web, worker and beat ...", flush=True)
    _stop_all(children)
    print("[run] stopped.", flush=True)
    sys.exit(exit_code)


if __name__ == "__main__":
    main()
