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

import base64
import http.client
import json
import math
import os
import secrets
import sys
import threading
from urllib.parse import quote, urlencode

import harness

DB_NAME = harness.bench_db_name("dockspace_bench_oidc")
PASSWORD = "bench " + secrets.token_urlsafe(16)
REDIRECT_URI = "https://rp.bench.invalid/callback"
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


# --- the client ------------------------------------------------------------------------------------


def call(port, method, path, form=None, headers=None):
    """One request on a fresh connection (gunicorn's sync workers close each one); returns (status, JSON)."""
    headers = {"User-Agent": "dockspace-bench/1", "Accept": "application/json", **(headers or {})}
    body = None
    if form is not None:
        body = urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=harness.REQUEST_TIMEOUT)
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
        raise harness.RequestFailed(f"HTTP {status} {error}".strip())
    if not isinstance(data, dict) or any(key not in data for key in keys):
        raise harness.RequestFailed(f"answer without {', '.join(keys)}")
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
                raise harness.Exhausted
            form = {"grant_type": "refresh_token", "refresh_token": state["token"]}
            try:
                status, data = call(port, "POST", "/oauth/token/", form, basic_auth(client))
                tokens = expect_json(status, data, "access_token", "refresh_token", "id_token")
            except (harness.RequestFailed, OSError, http.client.HTTPException):
                state["token"] = chains.take()
                raise
            state["token"] = tokens["refresh_token"]

        def finish():
            if state["token"] is not None:
                chains.give_back(state["token"])

        return one, finish

    return worker


class Scenario(harness.Phase):
    """A phase in one of the report's sections."""

    def __init__(self, name, worker, group):
        super().__init__(name, worker)
        self.group = group  # "endpoint", "sha256" or "argon2": the report's sections


# --- report ----------------------------------------------------------------------------------------


def report(phases, setup, args, port, load):
    cpus, usable = harness.cpu_counts()
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
            print(f"    {phase.name:<44} {phase.figures(decimals=1)}")
    print()
    for phase in (p for p in phases if p.group == "sha256"):
        if phase.latencies:
            p50 = harness.percentile(phase.latencies, 0.50) * 1000
            verdict = "met" if p50 < GOAL_P50_MS else "NOT met"
            print(f"  goal: token endpoint p50 under {GOAL_P50_MS} ms: {verdict} for {phase.name} ({p50:.1f} ms)")
    for name in ("refresh_token", "client_credentials"):
        pair = [p for p in phases if p.group in ("sha256", "argon2") and name in p.name and p.latencies]
        if len(pair) == 2:
            fast, slow = (harness.percentile(p.latencies, 0.5) for p in pair)
            rates = [len(p.latencies) / p.elapsed for p in pair]
            print(
                f"  {name}: argon2 p50 is {slow / fast:.0f}x the sha256 p50; "
                f"sha256 serves {rates[0] / rates[1]:.0f}x the requests per second"
            )
    harness.print_notes(phases, "ran out of refresh chains; rerun with more --spare-chains.")


# --- main ----------------------------------------------------------------------------------------------


def main():
    parser = harness.server_parser(__doc__.splitlines()[0], seconds=10, unit="scenario")
    parser.add_argument(
        "--spare-chains", type=int, default=8, help="refresh chains beyond one per thread, for failures (default 8)"
    )
    parser.add_argument("--keep-temp", action="store_true", help="keep the data directory and gunicorn log")
    args = parser.parse_args()
    if args.seconds <= 0 or args.concurrency < 1 or args.workers < 1 or args.spare_chains < 0:
        parser.error("--seconds, --concurrency and --workers must be positive, --spare-chains not negative.")

    return harness.run_bench(run, args, "dockspace-bench-oidc-")


def run(args, temp_dir):
    log_path = temp_dir / "gunicorn.log"
    spec_path = temp_dir / "spec.json"
    port = harness.free_port()
    env = harness.server_env(DB_NAME, temp_dir / "data", port)
    with harness.migrated_database(DB_NAME, env):
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
        setup = harness.run_shell(env, SETUP_CODE, spec_path, "BENCH-SETUP")
        rp, machine, bearers = setup["rp"], setup["machine"], setup["bearers"]
        chains = RefreshChains(setup["chains"])

        with harness.gunicorn_server(env, port, args.workers, log_path):
            for _ in range(2 * args.workers):  # warm-up, not counted: URL resolvers and the oauthlib server load lazily
                call(port, "GET", "/.well-known/openid-configuration")
                call(port, "GET", "/.well-known/jwks.json")
                call(port, "GET", "/oauth/userinfo/", headers={"Authorization": f"Bearer {bearers[0]}"})
                call(port, "POST", "/oauth/token/", {"grant_type": "client_credentials"}, basic_auth(machine))

            def bearer(index):
                return {"Authorization": f"Bearer {bearers[index % len(bearers)]}"}

            phases = [
                Scenario("discovery GET", scenario_get("/.well-known/openid-configuration", "issuer"), "endpoint"),
                Scenario("JWKS GET", scenario_get("/.well-known/jwks.json", "keys"), "endpoint"),
                Scenario("userinfo GET (bearer)", scenario_get("/oauth/userinfo/", "sub", headers=bearer), "endpoint"),
                Scenario("refresh_token grant (rotation, ID token)", scenario_refresh(rp, chains), "sha256"),
                Scenario("client_credentials grant", scenario_client_credentials(machine), "sha256"),
                Scenario("refresh_token grant (rotation, ID token)", scenario_refresh(rp, chains), "argon2"),
                Scenario("client_credentials grant", scenario_client_credentials(machine), "argon2"),
            ]
            rehashed = False
            load_at_start = " ".join(f"{value:.1f}" for value in os.getloadavg())
            for phase in phases:
                if phase.group == "argon2" and not rehashed:
                    rehashed = True
                    print("Re-hashing both client secrets with argon2 in the database ...", flush=True)
                    spec_path.write_text(json.dumps({"clients": [rp, machine]}))
                    stored = harness.run_shell(env, ARGON2_CODE, spec_path, "BENCH-ARGON2")
                    if stored != ["argon2"]:
                        raise SystemExit(f"Client secrets are stored as {stored} after re-hashing, not argon2.")
                label = f"{phase.name}, {phase.group}" if phase.group != "endpoint" else phase.name
                print(f"Scenario {label}: {args.seconds:g} s, {args.concurrency} client threads ...", flush=True)
                phase.run(port, args.seconds, args.concurrency)

            report(phases, setup, args, port, load_at_start)
        harness.scan_log(log_path)


if __name__ == "__main__":
    sys.exit(main())
