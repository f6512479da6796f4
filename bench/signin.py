"""Sign-in throughput: password-only and password + TOTP sign-ins against gunicorn and PostgreSQL.

Run by hand from the project root:

    .venv/bin/python bench/signin.py [--seconds 20] [--concurrency 4]

It creates (after dropping) the PostgreSQL database `dockspace_bench` on 127.0.0.1:5432, migrates it,
fills it with people who all share one password hash, starts gunicorn on a free loopback port, drives
two phases of sign-ins from client threads and prints what it measured. It never asserts timings.
gunicorn, the database and the temporary data directory are removed at the end, also on Ctrl-C.
"""

import argparse
import binascii
import html
import http.client
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from django_otp.oath import TOTP

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).parent / "gunicorn")

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
DB_NAME = "dockspace_bench"
PASSWORD = "bench " + secrets.token_urlsafe(16)
TOTP_STEP, TOTP_DIGITS = 30, 6
REQUEST_TIMEOUT = 60  # seconds; a request slower than this counts as a failure

# Run inside `manage.py shell -c` against the bench database: app settings, people, devices.
SETUP_CODE = r"""
import json, os, statistics, time
from django.conf import settings
from django.contrib.auth.hashers import check_password, get_hasher, make_password
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice
from accounts.models import AppSettings, User

spec = json.loads(open(os.environ["BENCH_SPEC"]).read())
conf, _ = AppSettings.objects.get_or_create(pk=1)
conf.lockout_account_failures = 1000000
conf.lockout_ip_failures = 1000000
conf.save()

hasher = get_hasher("default")
encoded = make_password(spec["password"])  # computed once, shared by every bench person
timings = []
for _ in range(5):
    started = time.perf_counter()
    assert check_password(spec["password"], encoded)
    timings.append(time.perf_counter() - started)

with transaction.atomic():
    User.objects.bulk_create([User(email=e, password=encoded) for e in spec["password_users"]], batch_size=1000)
    totp_users = User.objects.bulk_create(
        [User(email=item["email"], password=encoded) for item in spec["totp_users"]], batch_size=1000
    )
    TOTPDevice.objects.bulk_create(
        [
            TOTPDevice(
                user=user, name="Bench phone", confirmed=True, key=item["key"], step=spec["step"], digits=spec["digits"]
            )
            for user, item in zip(totp_users, spec["totp_users"])
        ],
        batch_size=1000,
    )

summary = {k: v for k, v in hasher.safe_summary(encoded).items() if k not in ("salt", "hash")}
print("BENCH-SETUP " + json.dumps({
    "hasher_path": settings.PASSWORD_HASHERS[0],
    "hasher": hasher.algorithm,
    "params": {str(k): str(v) for k, v in summary.items()},
    "check_ms": statistics.median(timings) * 1000,
    "users": User.objects.count(),
    "totp_devices": TOTPDevice.objects.filter(confirmed=True).count(),
    "lockout": [AppSettings.load().lockout_account_failures, AppSettings.load().lockout_ip_failures],
}))
"""


class SignInFailed(Exception):
    """A sign-in that did not end in the expected redirect; the message is the reason, grouped in the report."""


# --- database and server ----------------------------------------------------------------------------


def pg_admin(sql):
    import psycopg

    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql)


def create_database():
    pg_admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{DB_NAME}"')


def drop_database():
    pg_admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_env(port, data_dir):
    values = {
        "DJANGO_SETTINGS_MODULE": "dockspace.settings",
        "DATABASE_URL": f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{DB_NAME}",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64)[:50],
        "SECURE_SSL_REDIRECT": "0",
        "DOCKSPACE_URL": f"http://127.0.0.1:{port}",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DOCKSPACE_DATA_DIR": str(data_dir),
    }
    env = dict(os.environ)
    for name in values:
        env.pop(f"{name}_FILE", None)  # NAME and NAME_FILE together are refused by the settings
    env.pop("REDIS_URL", None)  # the file cache under the temporary data directory; nothing shared
    env.update(values)
    return env


def run_manage(env, *args, capture=False):
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, text=True, capture_output=capture, check=False
    )
    if result.returncode != 0:
        if capture:
            sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"manage.py {args[0]} failed with exit status {result.returncode}.")
    return result.stdout if capture else None


def start_gunicorn(env, port, workers, log_path):
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [GUNICORN, "dockspace.wsgi", "--workers", str(workers), "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches only this script, which then stops gunicorn itself
    )
    proc.log_file = log
    return proc


def stop_gunicorn(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.log_file.close()


def wait_healthy(proc, port, log_path, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.stderr.write(Path(log_path).read_text()[-4000:])
            raise SystemExit(f"gunicorn exited with status {proc.returncode} before /healthz answered.")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer /healthz with 200 within {timeout} s; see {log_path}.")


# --- the client ------------------------------------------------------------------------------------


class Browser:
    """One visitor: its own cookies, sent back over plain http even though they carry the Secure flag."""

    def __init__(self, port):
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"
        self.cookies = {}

    def request(self, method, path, form=None):
        headers = {"User-Agent": "dockspace-bench/1", "Accept": "text/html"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = self.origin
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            content = response.read()
            for header in response.headers.get_all("Set-Cookie") or []:
                self._store(header)
            return response.status, response.getheader("Location"), content.decode("utf-8", "replace")
        finally:
            conn.close()

    def _store(self, header):
        jar = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            return
        for name, morsel in jar.items():
            if morsel["max-age"] == "0" or "1970" in (morsel["expires"] or ""):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = morsel.coded_value


CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
NEXT_RE = re.compile(r'name="next" value="([^"]*)"')
ERROR_RE = re.compile(r'class="(?:form-errors|field-error)"[^>]*>\s*(?:<p>)?([^<]+)')


def _form_error(page):
    match = ERROR_RE.search(page)
    return f" ({html.unescape(match.group(1)).strip()[:100]})" if match else ""


def _expect_redirect(step, status, location, page, expected_path):
    if status != 302:
        raise SignInFailed(f"{step}: HTTP {status} instead of 302 to {expected_path}{_form_error(page)}")
    path = urlsplit(location or "").path
    if path != expected_path:
        raise SignInFailed(f"{step}: redirect to {path or '(no Location)'} instead of {expected_path}")


def _login_form(browser):
    status, _, page = browser.request("GET", "/login/")
    if status != 200:
        raise SignInFailed(f"GET /login/: HTTP {status}")
    token = CSRF_RE.search(page)
    if not token:
        raise SignInFailed("GET /login/: no csrfmiddlewaretoken in the page")
    next_match = NEXT_RE.search(page)
    return token.group(1), html.unescape(next_match.group(1)) if next_match else ""


def sign_in_password(port, email, timings):
    browser = Browser(port)
    started = time.perf_counter()
    token, next_url = _login_form(browser)
    timings["GET /login/"].append(time.perf_counter() - started)
    mark = time.perf_counter()
    form = {"csrfmiddlewaretoken": token, "next": next_url, "email": email, "password": PASSWORD}
    status, location, page = browser.request("POST", "/login/", form)
    timings["POST /login/"].append(time.perf_counter() - mark)
    _expect_redirect("POST /login/", status, location, page, "/profile/")


def sign_in_totp(port, person, timings):
    browser = Browser(port)
    started = time.perf_counter()
    token, next_url = _login_form(browser)
    timings["GET /login/"].append(time.perf_counter() - started)
    mark = time.perf_counter()
    form = {"csrfmiddlewaretoken": token, "next": next_url, "email": person["email"], "password": PASSWORD}
    status, location, page = browser.request("POST", "/login/", form)
    timings["POST /login/"].append(time.perf_counter() - mark)
    _expect_redirect("POST /login/", status, location, page, "/login/code/")
    mark = time.perf_counter()
    totp = TOTP(binascii.unhexlify(person["key"]), TOTP_STEP, 0, TOTP_DIGITS, 0)
    code = f"{totp.token():0{TOTP_DIGITS}d}"
    status, location, page = browser.request("POST", "/login/code/", {"csrfmiddlewaretoken": token, "code": code})
    timings["POST /login/code/"].append(time.perf_counter() - mark)
    _expect_redirect("POST /login/code/", status, location, page, "/profile/")


class Phase:
    def __init__(self, name, sign_in, next_job):
        self.name = name
        self.sign_in = sign_in
        self.next_job = next_job  # returns the next person, or None when there is none left
        self.latencies = []
        self.failures = Counter()
        self.steps = {"GET /login/": [], "POST /login/": [], "POST /login/code/": []}
        self.exhausted = False
        self.elapsed = 0.0
        self.lock = threading.Lock()

    def run(self, port, seconds, concurrency, stop):
        started = time.monotonic()
        deadline = started + seconds

        def client():
            steps = {key: [] for key in self.steps}
            latencies, failures = [], Counter()
            while not stop.is_set() and time.monotonic() < deadline:
                with self.lock:
                    job = self.next_job()
                if job is None:
                    self.exhausted = True
                    break
                began = time.perf_counter()
                try:
                    self.sign_in(port, job, steps)
                except SignInFailed as exc:
                    failures[str(exc)] += 1
                except (OSError, http.client.HTTPException) as exc:
                    failures[f"{type(exc).__name__}: {exc}"] += 1
                else:
                    latencies.append(time.perf_counter() - began)
            with self.lock:
                self.latencies.extend(latencies)
                self.failures.update(failures)
                for key, values in steps.items():
                    self.steps[key].extend(values)

        threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.2)
        self.elapsed = time.monotonic() - started


def percentile(values, fraction):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def ms(value):
    return f"{value * 1000:.0f}"


# --- report ----------------------------------------------------------------------------------------


def report(phases, setup, args, port):
    cpus = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cpus
    params = ", ".join(f"{k} {v}" for k, v in setup["params"].items() if k != "algorithm")
    print()
    print("Dockspace sign-in benchmark")
    print(f"  password hasher   {setup['hasher']} ({setup['hasher_path']}; {params})")
    print("                    first entry of PASSWORD_HASHERS; one hash shared by every bench person")
    print(f"  one check_password {setup['check_ms']:.0f} ms (median of 5, one process, measured during setup)")
    print(f"  gunicorn          {args.workers} sync workers on 127.0.0.1:{port}, DEBUG=0, PostgreSQL {DB_NAME}")
    print(f"  client            {args.concurrency} threads, {args.seconds:g} s per phase, same machine as the server")
    print(f"  CPUs              {cpus} (usable by this process: {usable})")
    print(f"  people            {args.users} password-only, {args.totp_users} with a TOTP device")
    print()
    header = f"  {'phase':<18} {'sign-ins':>9} {'per second':>11} {'p50 ms':>8} {'p99 ms':>8} {'failures':>9}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for phase in phases:
        done = len(phase.latencies)
        rate = done / phase.elapsed if phase.elapsed else 0.0
        p50 = ms(percentile(phase.latencies, 0.50)) if done else "-"
        p99 = ms(percentile(phase.latencies, 0.99)) if done else "-"
        failed = sum(phase.failures.values())
        print(f"  {phase.name:<18} {done:>9} {rate:>11.1f} {p50:>8} {p99:>8} {failed:>9}")
    print()
    print("  per request, p50 / p99 ms (successful and failed sign-ins alike):")
    for phase in phases:
        parts = [
            f"{step} {ms(percentile(values, 0.5))} / {ms(percentile(values, 0.99))}"
            for step, values in phase.steps.items()
            if values
        ]
        print(f"    {phase.name:<18} " + "; ".join(parts))
    for phase in phases:
        if phase.exhausted:
            print(f"  NOTE: {phase.name}: ran out of people before the time was up; rerun with more --totp-users.")
        if phase.failures:
            print(f"  failures in {phase.name}:")
            for reason, count in phase.failures.most_common():
                print(f"    {count:>6} x {reason}")


def scan_log(log_path):
    text = Path(log_path).read_text(errors="replace")
    markers = ("Traceback", " ERROR ", "[ERROR]", "CRITICAL", "WORKER TIMEOUT", " WARNING ")
    lines = [line for line in text.splitlines() if any(marker in line for marker in markers)]
    print()
    if not lines:
        print("  gunicorn log: no errors or warnings.")
        return
    print(f"  gunicorn log: {len(lines)} error/warning lines; the first ones:")
    for line in lines[:15]:
        print(f"    {line[:200]}")


# --- main ----------------------------------------------------------------------------------------------


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="length of each phase (default 20)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--users", type=int, default=200, help="password-only people, reused (default 200)")
    parser.add_argument(
        "--totp-users", type=int, default=3000, help="TOTP people, each signs in once per run (default 3000)"
    )
    parser.add_argument("--keep-temp", action="store_true", help="keep the data directory and gunicorn log")
    args = parser.parse_args()
    if args.seconds <= 0 or args.concurrency < 1 or args.workers < 1 or args.users < 1 or args.totp_users < 1:
        parser.error("--seconds, --concurrency, --workers, --users and --totp-users must be positive.")

    # Ctrl-C and SIGTERM unwind through the finally blocks (SIGINT too when started with it ignored, e.g. `&`).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)

    temp_dir = Path(tempfile.mkdtemp(prefix="dockspace-bench-"))
    data_dir = temp_dir / "data"
    log_path = temp_dir / "gunicorn.log"
    port = free_port()
    env = bench_env(port, data_dir)
    gunicorn = None
    db_created = False
    stop = threading.Event()
    try:
        print(f"Creating database {DB_NAME} and migrating ...", flush=True)
        db_created = True  # from here on, the finally block drops it (IF EXISTS)
        create_database()
        run_manage(env, "migrate", "--noinput", capture=True)

        print(f"Creating {args.users} password-only and {args.totp_users} TOTP people ...", flush=True)
        password_users = [f"bench-password-{i}@example.com" for i in range(args.users)]
        totp_users = [
            {"email": f"bench-totp-{i}@example.com", "key": secrets.token_hex(20)} for i in range(args.totp_users)
        ]
        spec_path = temp_dir / "spec.json"
        spec_path.write_text(
            json.dumps(
                {
                    "password": PASSWORD,
                    "password_users": password_users,
                    "totp_users": totp_users,
                    "step": TOTP_STEP,
                    "digits": TOTP_DIGITS,
                }
            )
        )
        out = run_manage({**env, "BENCH_SPEC": str(spec_path)}, "shell", "-c", SETUP_CODE, capture=True)
        setup_line = next((line for line in out.splitlines() if line.startswith("BENCH-SETUP ")), None)
        if setup_line is None:
            raise SystemExit("The setup script printed no summary:\n" + out)
        setup = json.loads(setup_line.removeprefix("BENCH-SETUP "))

        print(f"Starting gunicorn ({args.workers} workers) on 127.0.0.1:{port} ...", flush=True)
        gunicorn = start_gunicorn(env, port, args.workers, log_path)
        wait_healthy(gunicorn, port, log_path)
        for _ in range(2 * args.workers):  # warm-up, not counted: URL resolvers and templates load lazily
            Browser(port).request("GET", "/login/")

        password_cycle = iter(range(10**12))
        totp_queue = iter(totp_users)
        phases = [
            Phase("password only", sign_in_password, lambda: password_users[next(password_cycle) % args.users]),
            Phase("password + TOTP", sign_in_totp, lambda: next(totp_queue, None)),
        ]
        for phase in phases:
            print(f"Phase {phase.name}: {args.seconds:g} s, {args.concurrency} client threads ...", flush=True)
            phase.run(port, args.seconds, args.concurrency, stop)

        report(phases, setup, args, port)
        if gunicorn.poll() is not None:
            print(f"  gunicorn exited during the run with status {gunicorn.returncode}.")
        stop_gunicorn(gunicorn)
        scan_log(log_path)
    except KeyboardInterrupt:
        stop.set()
        print("\nInterrupted; cleaning up.", file=sys.stderr)
        return 130
    finally:
        stop.set()
        if gunicorn is not None:
            stop_gunicorn(gunicorn)
        if db_created:
            try:
                drop_database()
            except Exception as exc:  # report, and go on removing the rest
                print(f"Could not drop database {DB_NAME}: {exc}", file=sys.stderr)
        if args.keep_temp:
            print(f"  kept {temp_dir}")
        else:
            shutil.rmtree(temp_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
