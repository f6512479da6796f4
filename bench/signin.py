"""Sign-in throughput: password-only and password + TOTP sign-ins against gunicorn and PostgreSQL.

Run by hand from the project root:

    .venv/bin/python bench/signin.py [--seconds 20] [--concurrency 50] [--phases password,totp]

It creates (after dropping) the PostgreSQL database `dockspace_bench` on 127.0.0.1:5432, migrates it,
fills it with people who all share one password hash, starts gunicorn on a free loopback port, drives
two phases of sign-ins from client threads and prints what it measured. It never asserts timings.
gunicorn, the database and the temporary data directory are removed at the end, also on Ctrl-C.
"""

import binascii
import html
import http.client
import json
import re
import secrets
import sys
import threading
import time
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlencode, urlsplit

import harness
from django_otp.oath import TOTP

DB_NAME = harness.bench_db_name("dockspace_bench")
PASSWORD = "bench " + secrets.token_urlsafe(16)
TOTP_STEP, TOTP_DIGITS = 30, 6

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


class SignInFailed(harness.RequestFailed):
    """A sign-in that did not end in the expected redirect; the message is the reason, grouped in the report."""


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
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=harness.REQUEST_TIMEOUT)
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


def _sign_in_with_password(port, email, timings, expected_path):
    browser = Browser(port)
    started = time.perf_counter()
    token, next_url = _login_form(browser)
    timings["GET /login/"].append(time.perf_counter() - started)
    mark = time.perf_counter()
    form = {"csrfmiddlewaretoken": token, "next": next_url, "email": email, "password": PASSWORD}
    status, location, page = browser.request("POST", "/login/", form)
    timings["POST /login/"].append(time.perf_counter() - mark)
    _expect_redirect("POST /login/", status, location, page, expected_path)
    return browser, token


def sign_in_password(port, email, timings):
    _sign_in_with_password(port, email, timings, "/profile/")


def sign_in_totp(port, person, timings):
    browser, token = _sign_in_with_password(port, person["email"], timings, "/login/code/")
    mark = time.perf_counter()
    totp = TOTP(binascii.unhexlify(person["key"]), TOTP_STEP, 0, TOTP_DIGITS, 0)
    code = f"{totp.token():0{TOTP_DIGITS}d}"
    status, location, page = browser.request("POST", "/login/code/", {"csrfmiddlewaretoken": token, "code": code})
    timings["POST /login/code/"].append(time.perf_counter() - mark)
    _expect_redirect("POST /login/code/", status, location, page, "/profile/")


class SignInPhase(harness.Phase):
    """Sign-ins of the people `next_job()` hands out (None when there is none left), and each request's latency."""

    def __init__(self, name, sign_in, next_job):
        super().__init__(name, self._worker)
        self.sign_in = sign_in
        self.next_job = next_job
        self.steps = {"GET /login/": [], "POST /login/": [], "POST /login/code/": []}

    def _worker(self, port, index):
        steps = {key: [] for key in self.steps}

        def one():
            with self.lock:
                job = self.next_job()
            if job is None:
                raise harness.Exhausted
            self.sign_in(port, job, steps)

        def finish():
            with self.lock:
                for key, values in steps.items():
                    self.steps[key].extend(values)

        return one, finish


class BurstPhase(SignInPhase):
    """Rounds of `concurrency` people who all start signing in at the same instant, each once (GET and POST
    /login/); the next round starts when the last of them is in. A sign-in's latency counts from that instant,
    so the slowest of a round is the person who waited behind all the others."""

    def run(self, port, seconds, concurrency):
        started = time.monotonic()
        deadline = started + seconds
        steps = {key: [] for key in self.steps}
        self.rounds = 0
        while time.monotonic() < deadline:
            for result in self._round(port, concurrency, steps):
                if isinstance(result, float):
                    self.latencies.append(result)
                else:
                    self.failures[result] += 1
            self.rounds += 1
        for key, values in steps.items():
            self.steps[key].extend(values)
        self.elapsed = time.monotonic() - started

    def _round(self, port, concurrency, steps):
        """One round: each person's latency in seconds, or the reason their sign-in failed."""
        go = threading.Barrier(concurrency + 1)
        jobs = [self.next_job() for _ in range(concurrency)]
        results = [None] * concurrency

        def person(index):
            go.wait()
            began = time.perf_counter()
            try:
                self.sign_in(port, jobs[index], steps)
            except harness.RequestFailed as exc:
                results[index] = str(exc)
            except (OSError, http.client.HTTPException) as exc:
                results[index] = f"{type(exc).__name__}: {exc}"
            else:
                results[index] = time.perf_counter() - began

        threads = [threading.Thread(target=person, args=(i,), daemon=True) for i in range(concurrency)]
        for thread in threads:
            thread.start()
        go.wait()
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.2)  # in short waits, so that Ctrl-C gets through
        return results


# --- report ----------------------------------------------------------------------------------------


def report(phases, setup, args, port):
    cpus, usable = harness.cpu_counts()
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
        print(f"  {phase.name:<18} {phase.figures()}")
        if isinstance(phase, BurstPhase):
            print(f"  {'':<18} ({phase.rounds} rounds of {args.concurrency} people starting together)")
    print()
    print("  per request, p50 / p99 ms (successful and failed sign-ins alike):")
    for phase in phases:
        parts = [
            f"{step} {harness.ms(harness.percentile(values, 0.5))} / {harness.ms(harness.percentile(values, 0.99))}"
            for step, values in phase.steps.items()
            if values
        ]
        print(f"    {phase.name:<18} " + "; ".join(parts))
    print()
    print("  server CPU per sign-in (gunicorn workers + PostgreSQL backends; load on the machine hardly changes it):")
    for phase in phases:
        done = len(phase.steps["POST /login/"])
        if not done:
            continue
        web, database = (seconds / done * 1000 for seconds in phase.server_cpu)
        wait = args.concurrency * (web + database) / cpus
        print(
            f"    {phase.name:<18} {web + database:.0f} ms (gunicorn {web:.0f}, PostgreSQL {database:.0f});"
            f" on {cpus} idle CPUs, {args.concurrency} at once would each wait about {wait:.0f} ms"
        )
    harness.print_notes(phases, "ran out of people before the time was up; rerun with more --totp-users.")


# --- main ----------------------------------------------------------------------------------------------


def main():
    parser = harness.server_parser(__doc__.splitlines()[0], seconds=20, unit="phase")
    parser.add_argument("--users", type=int, default=200, help="password-only people, reused (default 200)")
    parser.add_argument(
        "--totp-users", type=int, default=3000, help="TOTP people, each signs in once per run (default 3000)"
    )
    parser.add_argument(
        "--phases",
        default="password,totp",
        help="phases to run, comma-separated: password, totp, burst (default password,totp)",
    )
    parser.add_argument("--keep-temp", action="store_true", help="keep the data directory and gunicorn log")
    args = parser.parse_args()
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not args.phases or set(args.phases) - {"password", "totp", "burst"}:
        parser.error("--phases takes password, totp and burst, comma-separated.")
    if args.seconds <= 0 or args.concurrency < 1 or args.workers < 1 or args.users < 1 or args.totp_users < 1:
        parser.error("--seconds, --concurrency, --workers, --users and --totp-users must be positive.")
    if "burst" in args.phases and args.users < args.concurrency:
        parser.error("the burst phase needs at least as many --users as --concurrency (each round, different people).")

    return harness.run_bench(run, args, "dockspace-bench-")


def run(args, temp_dir):
    port = harness.free_port()
    env = harness.server_env(DB_NAME, temp_dir / "data", port)
    log_path = temp_dir / "gunicorn.log"
    with harness.migrated_database(DB_NAME, env):
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
        setup = harness.run_shell(env, SETUP_CODE, spec_path, "BENCH-SETUP")

        with harness.gunicorn_server(env, port, args.workers, log_path) as server:
            for _ in range(2 * args.workers):  # warm-up, not counted: URL resolvers and templates load lazily
                Browser(port).request("GET", "/login/")

            password_cycle = iter(range(10**12))
            totp_queue = iter(totp_users)
            phases = []
            if "password" in args.phases:
                phases.append(
                    SignInPhase(
                        "password only", sign_in_password, lambda: password_users[next(password_cycle) % args.users]
                    )
                )
            if "totp" in args.phases:
                phases.append(SignInPhase("password + TOTP", sign_in_totp, lambda: next(totp_queue, None)))
            if "burst" in args.phases:
                phases.append(
                    BurstPhase(
                        "all at once", sign_in_password, lambda: password_users[next(password_cycle) % args.users]
                    )
                )
            for phase in phases:
                print(f"Phase {phase.name}: {args.seconds:g} s, {args.concurrency} client threads ...", flush=True)
                before = harness.server_cpu_seconds(server, DB_NAME)
                phase.run(port, args.seconds, args.concurrency)
                phase.server_cpu = harness.cpu_used(before, harness.server_cpu_seconds(server, DB_NAME))

            report(phases, setup, args, port)
        harness.scan_log(log_path)


if __name__ == "__main__":
    sys.exit(main())
