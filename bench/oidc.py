"""OIDC provider throughput: discovery, JWKS, userinfo and the token endpoint against gunicorn and PostgreSQL.

Run by hand from the project root:

    .venv/bin/python bench/oidc.py [--seconds 10] [--concurrency 4]

It creates (after dropping) the PostgreSQL database `dockspace_bench_oidc` on 127.0.0.1:5432, migrates it,
registers two clients and gets real tokens from Dockspace through its own pages (sign-in, authorization,
code exchange), starts gunicorn on a free loopback port and drives one phase per scenario from client threads.
The token endpoint is measured twice: with the client secrets hashed by `dockspace_client_sha256` (what
Dockspace stores) and with the same secrets hashed by Argon2 (the first PASSWORD_HASHERS entry, what
django-oauth-toolkit would use by default). It never asserts timings. gunicorn, the database and the
temporary data directory are removed at the end, also on Ctrl-C.
"""

import argparse
import base64
import http.client
import json
import math
import os
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
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).parent / "gunicorn")

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
DB_NAME = "dockspace_bench_oidc"
PASSWORD = "bench " + secrets.token_urlsafe(16)
REDIRECT_URI = "https://rp.bench.invalid/callback"
REQUEST_TIMEOUT = 60  # seconds; a request slower than this counts as a failure
GOAL_P50_MS = 20

# Run inside `manage.py shell -c` against the bench database: clients, people, and real tokens obtained the
# way an app gets them (sign-in page, /oauth/authorize/, code exchange at /oauth/token/) with Django's test
# client, so every token was issued and stored by Dockspace itself.
SETUP_CODE = r"""
import base64, hashlib, json, os, secrets, statistics, time
from urllib.parse import parse_qs, quote, urlsplit
from django.contrib.auth.hashers import check_password, identify_hasher, make_password
from django.test import Client
from accounts.models import AppSettings, User
from oidc import services

spec = json.loads(open(os.environ["BENCH_SPEC"]).read())
conf, _ = AppSettings.objects.get_or_create(pk=1)
conf.lockout_account_failures = 1000000
conf.lockout_ip_failures = 1000000
conf.save()

rp, rp_secret = services.client_create(
    name="Bench RP", redirect_uris=[spec["redirect_uri"]], skip_consent=True, actor_label="bench"
)
machine, machine_secret = services.client_create(
    name="Bench automation", client_credentials=True, scopes=["introspection"], actor_label="bench"
)
rp.refresh_from_db()
basic = "Basic " + base64.b64encode(f"{quote(rp.client_id, safe='')}:{quote(rp_secret, safe='')}".encode()).decode()

def code_flow(browser):
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    response = browser.get("/oauth/authorize/", {
        "response_type": "code", "client_id": rp.client_id, "redirect_uri": spec["redirect_uri"],
        "scope": "openid profile email groups", "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge, "code_challenge_method": "S256",
    })
    assert response.status_code == 302, (response.status_code, response.content[:300])
    code = parse_qs(urlsplit(response["Location"]).query)["code"][0]
    response = Client(HTTP_HOST=spec["host"]).post(
        "/oauth/token/",
        {"grant_type": "authorization_code", "code": code, "redirect_uri": spec["redirect_uri"],
         "code_verifier": verifier},
        HTTP_AUTHORIZATION=basic,
    )
    assert response.status_code == 200, (response.status_code, response.content[:300])
    return response.json()

encoded = make_password(spec["password"])  # one Argon2 hash shared by every bench person
chains, bearers = [], []
for i in range(spec["people"]):
    person = User.objects.create(email=f"bench-oidc-{i}@example.com", full_name=f"Bench Person {i}", password=encoded)
    browser = Client(HTTP_HOST=spec["host"])
    response = browser.post("/login/", {"email": person.email, "password": spec["password"]})
    assert response.status_code == 302 and response["Location"] != "/login/code/", response.status_code
    for _ in range(spec["chains_per_person"]):
        chains.append(code_flow(browser)["refresh_token"])
    bearers.append(code_flow(browser)["access_token"])

def median_ms(secret, stored, times=5):
    timings = []
    for _ in range(times):
        started = time.perf_counter()
        assert check_password(secret, stored)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000

argon2_hash = make_password(rp_secret, hasher="argon2")
print("BENCH-SETUP " + json.dumps({
    "rp": {"client_id": rp.client_id, "secret": rp_secret},
    "machine": {"client_id": machine.client_id, "secret": machine_secret},
    "stored_hasher": identify_hasher(rp.client_secret).algorithm,
    "check_ms": {"sha256": median_ms(rp_secret, rp.client_secret), "argon2": median_ms(rp_secret, argon2_hash)},
    "argon2_params": {k: str(v) for k, v in identify_hasher(argon2_hash).safe_summary(argon2_hash).items()
                      if k not in ("salt", "hash", "algorithm")},
    "chains": chains,
    "bearers": bearers,
}))
"""

# Re-hash both clients' secrets with Argon2 straight in the database (no save(), so DOT's field hook is not
# involved): what the rows would hold had CLIENT_SECRET_HASHER been left at its default.
ARGON2_CODE = r"""
import json, os
from django.contrib.auth.hashers import identify_hasher, make_password
from oidc.models import Application

spec = json.loads(open(os.environ["BENCH_SPEC"]).read())
for client in spec["clients"]:
    Application.objects.filter(client_id=client["client_id"]).update(
        client_secret=make_password(client["secret"], hasher="argon2")
    )
stored = {identify_hasher(a.client_secret).algorithm for a in Application.objects.all()}
print("BENCH-ARGON2 " + json.dumps(sorted(stored)))
"""


class RequestFailed(Exception):
    """A request that did not get the expected answer; the message is the reason, grouped in the report."""


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
            sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"manage.py {args[0]} failed with exit status {result.returncode}.")
    return result.stdout if capture else None


def run_shell(env, code, spec_path, marker):
    out = run_manage({**env, "BENCH_SPEC": str(spec_path)}, "shell", "-c", code, capture=True)
    line = next((line for line in out.splitlines() if line.startswith(marker + " ")), None)
    if line is None:
        raise SystemExit(f"The {marker} script printed no summary:\n" + out[-4000:])
    return json.loads(line.removeprefix(marker + " "))


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


def call(port, method, path, form=None, headers=None):
    """One request on a fresh connection (gunicorn's sync workers close each one); returns (status, JSON)."""
    headers = {"User-Agent": "dockspace-bench/1", "Accept": "application/json", **(headers or {})}
    body = None
    if form is not None:
        body = urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        content = response.read()
    finally:
        conn.close()
    try:
        data = json.loads(content)
    except ValueError:
        data = None
    return response.status, data


def expect_json(status, data, *keys):
    if status != 200:
        error = data.get("error", "") if isinstance(data, dict) else ""
        raise RequestFailed(f"HTTP {status} {error}".strip())
    if not isinstance(data, dict) or any(key not in data for key in keys):
        raise RequestFailed(f"answer without {', '.join(keys)}")
    return data


def basic_auth(client):
    pair = f"{quote(client['client_id'], safe='')}:{quote(client['secret'], safe='')}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


class RefreshChains:
    """Refresh tokens, one chain per client thread; rotation hands back a new one each time.

    A chain whose request failed may be dead (a rotated token is never accepted again), so the thread takes a
    spare chain; with none left it stops, and the report says so.
    """

    def __init__(self, tokens):
        self.spare = list(tokens)
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            return self.spare.pop() if self.spare else None

    def give_back(self, token):
        with self.lock:
            self.spare.append(token)


class OutOfChains(Exception):
    pass


def scenario_get(path, *keys, headers=None):
    def worker(port, index):
        def one():
            status, data = call(port, "GET", path, headers=headers(index) if headers else None)
            expect_json(status, data, *keys)

        return one, None

    return worker


def scenario_client_credentials(client):
    def worker(port, index):
        def one():
            status, data = call(port, "POST", "/oauth/token/", {"grant_type": "client_credentials"}, basic_auth(client))
            expect_json(status, data, "access_token")

        return one, None

    return worker


def scenario_refresh(client, chains):
    def worker(port, index):
        state = {"token": chains.take()}

        def one():
            if state["token"] is None:
                raise OutOfChains
            form = {"grant_type": "refresh_token", "refresh_token": state["token"]}
            try:
                status, data = call(port, "POST", "/oauth/token/", form, basic_auth(client))
                tokens = expect_json(status, data, "access_token", "refresh_token", "id_token")
            except (RequestFailed, OSError, http.client.HTTPException):
                state["token"] = chains.take()
                raise
            state["token"] = tokens["refresh_token"]

        def finish():
            if state["token"] is not None:
                chains.give_back(state["token"])

        return one, finish

    return worker


class Phase:
    def __init__(self, name, worker, group):
        self.name = name
        self.worker = worker
        self.group = group  # "endpoint", "sha256" or "argon2": the report's sections
        self.latencies = []
        self.failures = Counter()
        self.out_of_chains = False
        self.elapsed = 0.0
        self.lock = threading.Lock()

    def run(self, port, seconds, concurrency, stop):
        started = time.monotonic()
        deadline = started + seconds

        def client(index):
            one, finish = self.worker(port, index)
            latencies, failures = [], Counter()
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    began = time.perf_counter()
                    try:
                        one()
                    except OutOfChains:
                        self.out_of_chains = True
                        break
                    except RequestFailed as exc:
                        failures[str(exc)] += 1
                    except (OSError, http.client.HTTPException) as exc:
                        failures[f"{type(exc).__name__}: {exc}"] += 1
                    else:
                        latencies.append(time.perf_counter() - began)
            finally:
                if finish:
                    finish()
                with self.lock:
                    self.latencies.extend(latencies)
                    self.failures.update(failures)

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
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
    return f"{value * 1000:.1f}"


# --- report ----------------------------------------------------------------------------------------


def report(phases, setup, args, port, load):
    cpus = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cpus
    argon2 = ", ".join(f"{k} {v}" for k, v in setup["argon2_params"].items() if k != "version")
    print()
    print("Dockspace OIDC provider benchmark")
    print(f"  gunicorn          {args.workers} sync workers on 127.0.0.1:{port}, DEBUG=0, PostgreSQL {DB_NAME}")
    print(f"  client            {args.concurrency} threads, {args.seconds:g} s per scenario, on the same machine")
    print(f"  CPUs              {cpus} (usable by this process: {usable}); load average at the start {load}")
    print(f"  tokens            {len(setup['chains'])} refresh chains and {len(setup['bearers'])} access tokens")
    print("                    from real sign-ins and code flows (scope openid profile email groups)")
    print(
        f"  client secret     check_password {setup['check_ms']['sha256']:.2f} ms as stored "
        f"({setup['stored_hasher']}), {setup['check_ms']['argon2']:.0f} ms as argon2"
    )
    print(f"                    argon2: {argon2}")
    print("                    (medians of 5, one process, measured during setup)")
    print()
    header = f"  {'scenario':<46} {'requests':>9} {'per second':>11} {'p50 ms':>8} {'p99 ms':>8} {'failures':>9}"
    sections = {
        "endpoint": "endpoints",
        "sha256": "token endpoint, client secret hashed by dockspace_client_sha256 (Dockspace)",
        "argon2": "token endpoint, client secret hashed by argon2 (DOT's default, before)",
    }
    print(header)
    print("  " + "-" * (len(header) - 2))
    for group, title in sections.items():
        print(f"  {title}")
        for phase in (p for p in phases if p.group == group):
            done = len(phase.latencies)
            rate = done / phase.elapsed if phase.elapsed else 0.0
            p50 = ms(percentile(phase.latencies, 0.50)) if done else "-"
            p99 = ms(percentile(phase.latencies, 0.99)) if done else "-"
            failed = sum(phase.failures.values())
            print(f"    {phase.name:<44} {done:>9} {rate:>11.1f} {p50:>8} {p99:>8} {failed:>9}")
    print()
    for phase in (p for p in phases if p.group == "sha256"):
        if phase.latencies:
            p50 = percentile(phase.latencies, 0.50) * 1000
            verdict = "met" if p50 < GOAL_P50_MS else "NOT met"
            print(f"  goal: token endpoint p50 under {GOAL_P50_MS} ms: {verdict} for {phase.name} ({p50:.1f} ms)")
    for name in ("refresh_token", "client_credentials"):
        pair = [p for p in phases if p.group in ("sha256", "argon2") and name in p.name and p.latencies]
        if len(pair) == 2:
            fast, slow = (percentile(p.latencies, 0.5) for p in pair)
            rates = [len(p.latencies) / p.elapsed for p in pair]
            print(
                f"  {name}: argon2 p50 is {slow / fast:.0f}x the sha256 p50; "
                f"sha256 serves {rates[0] / rates[1]:.0f}x the requests per second"
            )
    for phase in phases:
        if phase.out_of_chains:
            print(f"  NOTE: {phase.name}: ran out of refresh chains; rerun with more --spare-chains.")
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
    parser.add_argument("--seconds", type=float, default=10, help="length of each scenario (default 10)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument(
        "--spare-chains", type=int, default=8, help="refresh chains beyond one per thread, for failures (default 8)"
    )
    parser.add_argument("--keep-temp", action="store_true", help="keep the data directory and gunicorn log")
    args = parser.parse_args()
    if args.seconds <= 0 or args.concurrency < 1 or args.workers < 1 or args.spare_chains < 0:
        parser.error("--seconds, --concurrency and --workers must be positive, --spare-chains not negative.")

    # Ctrl-C and SIGTERM unwind through the finally blocks (SIGINT too when started with it ignored, e.g. `&`).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)

    temp_dir = Path(tempfile.mkdtemp(prefix="dockspace-bench-oidc-"))
    data_dir = temp_dir / "data"
    log_path = temp_dir / "gunicorn.log"
    spec_path = temp_dir / "spec.json"
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

        people = args.concurrency
        chains_per_person = math.ceil((args.concurrency + args.spare_chains) / people)
        print(
            f"Registering clients; {people} people sign in and run {people * (chains_per_person + 1)} code flows ...",
            flush=True,
        )
        spec = {
            "password": PASSWORD,
            "redirect_uri": REDIRECT_URI,
            "host": "127.0.0.1",
            "people": people,
            "chains_per_person": chains_per_person,
        }
        spec_path.write_text(json.dumps(spec))
        setup = run_shell(env, SETUP_CODE, spec_path, "BENCH-SETUP")
        rp, machine, bearers = setup["rp"], setup["machine"], setup["bearers"]
        chains = RefreshChains(setup["chains"])

        print(f"Starting gunicorn ({args.workers} workers) on 127.0.0.1:{port} ...", flush=True)
        gunicorn = start_gunicorn(env, port, args.workers, log_path)
        wait_healthy(gunicorn, port, log_path)
        for _ in range(2 * args.workers):  # warm-up, not counted: URL resolvers and the oauthlib server load lazily
            call(port, "GET", "/.well-known/openid-configuration")
            call(port, "GET", "/.well-known/jwks.json")
            call(port, "GET", "/oauth/userinfo/", headers={"Authorization": f"Bearer {bearers[0]}"})
            call(port, "POST", "/oauth/token/", {"grant_type": "client_credentials"}, basic_auth(machine))

        def bearer(index):
            return {"Authorization": f"Bearer {bearers[index % len(bearers)]}"}

        phases = [
            Phase("discovery GET", scenario_get("/.well-known/openid-configuration", "issuer"), "endpoint"),
            Phase("JWKS GET", scenario_get("/.well-known/jwks.json", "keys"), "endpoint"),
            Phase("userinfo GET (bearer)", scenario_get("/oauth/userinfo/", "sub", headers=bearer), "endpoint"),
            Phase("refresh_token grant (rotation, ID token)", scenario_refresh(rp, chains), "sha256"),
            Phase("client_credentials grant", scenario_client_credentials(machine), "sha256"),
            Phase("refresh_token grant (rotation, ID token)", scenario_refresh(rp, chains), "argon2"),
            Phase("client_credentials grant", scenario_client_credentials(machine), "argon2"),
        ]
        rehashed = False
        load_at_start = " ".join(f"{value:.1f}" for value in os.getloadavg())
        for phase in phases:
            if phase.group == "argon2" and not rehashed:
                rehashed = True
                print("Re-hashing both client secrets with argon2 in the database ...", flush=True)
                spec_path.write_text(json.dumps({"clients": [rp, machine]}))
                stored = run_shell(env, ARGON2_CODE, spec_path, "BENCH-ARGON2")
                if stored != ["argon2"]:
                    raise SystemExit(f"Client secrets are stored as {stored} after re-hashing, not argon2.")
            label = f"{phase.name}, {phase.group}" if phase.group != "endpoint" else phase.name
            print(f"Scenario {label}: {args.seconds:g} s, {args.concurrency} client threads ...", flush=True)
            phase.run(port, args.seconds, args.concurrency, stop)

        report(phases, setup, args, port, load_at_start)
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
