"""Failed sign-in timing by kind of account: does a wrong password take longer or shorter depending on the address?

Run by hand from the project root:

    .venv/bin/python bench/signin_timing.py [--rounds 30]

It creates (after dropping) the PostgreSQL database `dockspace_bench_timing` on 127.0.0.1:5432, migrates it, creates
one person of each kind (an up-to-date Argon2 hash, a hash adopted from DMS, a person imported from CSV, no usable
password, inactive, suspended mailbox, and an Argon2 hash with Django's old default cost), starts gunicorn with ONE
worker on a free loopback port, and posts a wrong password to `/login/` for each kind and for an unknown address,
in a new random order each round, one request at a time. It prints the median and spread of the POST per kind and
the difference to the unknown address, then the same for the CPU time of authenticate() in one process (steadier
than wall time on a busy machine). It never asserts timings. gunicorn, the database and the temporary data
directory are removed at the end, also on Ctrl-C.
"""

import json
import random
import statistics
import sys
import time

import harness
from signin import PASSWORD, Browser, SignInFailed, _login_form

DB_NAME = harness.bench_db_name("dockspace_bench_timing")
WRONG = "a wrong password guess"

SETUP_CODE = r"""
import json, os
from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher, get_hasher, make_password
from accounts.models import AppSettings, User
from mail import csv_io, services
from mail.hashers import django_password_from_mail_hash
from accounts.mail_hashes import mail_hash

spec = json.loads(open(os.environ["BENCH_SPEC"]).read())
password = spec["password"]
conf, _ = AppSettings.objects.get_or_create(pk=1)
conf.lockout_account_failures = 1000000
conf.lockout_ip_failures = 1000000
conf.save()

User.objects.create_superuser("admin@bench.test", None)
User.objects.create(email="argon2@bench.test", password=make_password(password))
adopted = mail_hash(password, settings.MAIL_HASH_SCHEME)
User.objects.create(
    email="adopted@bench.test", password=django_password_from_mail_hash(adopted), mail_password_hash=adopted
)
User.objects.create_user("unusable@bench.test", None)
User.objects.create(email="inactive@bench.test", password=make_password(password), is_active=False)
legacy = Argon2PasswordHasher()
User.objects.create(email="legacy@bench.test", password=legacy.encode(password, legacy.salt()))
services.domain_create(name="bench.test", actor_label="bench")
services.mailbox_create(
    address="imported@bench.test", password_hashes=csv_io._hash_pair(password, settings.MAIL_HASH_SCHEME),
    actor_label="bench",
)
suspended = services.mailbox_create(address="suspended@bench.test", password=password, actor_label="bench")
services.mailbox_set_state(mailbox=suspended, state="suspended", actor_label="bench")
hasher = get_hasher("default")
summary = hasher.safe_summary(make_password(password))
params = ", ".join(f"{k} {v}" for k, v in summary.items() if k not in ("algorithm", "salt", "hash"))
print("BENCH-SETUP " + json.dumps({
    "hasher": f"{hasher.algorithm} ({params})",
    "mail_scheme": settings.MAIL_HASH_SCHEME,
}))
"""

# Run inside `manage.py shell -c` after the setup: the CPU time (this thread's, so hardly changed by what else the
# machine runs) of Django's authenticate() with a wrong password, per kind, in a new random order each round.
CPU_CODE = r"""
import json, os, random, statistics, time
from django.contrib.auth import authenticate

spec = json.loads(open(os.environ["BENCH_SPEC"]).read())
kinds = spec["kinds"]
for email in kinds.values():  # warm-up: the per-process decoy hashes, lazy imports
    authenticate(email=email, password=spec["wrong"])
cpu = {kind: [] for kind in kinds}
for _ in range(spec["rounds"]):
    order = list(kinds.items())
    random.shuffle(order)
    for kind, email in order:
        started = time.thread_time()
        assert authenticate(email=email, password=spec["wrong"]) is None
        cpu[kind].append(time.thread_time() - started)
print("BENCH-CPU " + json.dumps(cpu))
"""

KINDS = {
    "unknown address": "nobody@bench.test",
    "Argon2, configured cost": "argon2@bench.test",
    "adopted from DMS (dms$)": "adopted@bench.test",
    "imported from CSV (dms$)": "imported@bench.test",
    "no usable password": "unusable@bench.test",
    "inactive person": "inactive@bench.test",
    "suspended mailbox": "suspended@bench.test",
    "Argon2, Django's old default cost": "legacy@bench.test",
}


def failed_post(port, email):
    """Seconds of one POST /login/ with a wrong password (the GET for its CSRF token is not counted)."""
    browser = Browser(port)
    token, next_url = _login_form(browser)
    form = {"csrfmiddlewaretoken": token, "next": next_url, "email": email, "password": WRONG}
    started = time.perf_counter()
    status, _, page = browser.request("POST", "/login/", form)
    elapsed = time.perf_counter() - started
    if status != 200 or "password is wrong" not in page:
        raise SignInFailed(f"POST /login/ for {email}: HTTP {status}, not the wrong-password page")
    return elapsed


def main():
    parser = harness.server_parser(__doc__.splitlines()[0], seconds=0, unit="phase")
    parser.add_argument("--rounds", type=int, default=30, help="wrong passwords per kind (default 30)")
    parser.add_argument("--keep-temp", action="store_true", help="keep the data directory and gunicorn log")
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds must be at least 3.")
    return harness.run_bench(run, args, "dockspace-bench-timing-")


def run(args, temp_dir):
    port = harness.free_port()
    env = harness.server_env(DB_NAME, temp_dir / "data", port)
    log_path = temp_dir / "gunicorn.log"
    with harness.migrated_database(DB_NAME, env):
        spec_path = temp_dir / "spec.json"
        spec_path.write_text(json.dumps({"password": PASSWORD}))
        setup = harness.run_shell(env, SETUP_CODE, spec_path, "BENCH-SETUP")
        print(f"Timing {args.rounds} wrong passwords per kind in one process (CPU time) ...", flush=True)
        spec_path.write_text(json.dumps({"kinds": KINDS, "wrong": WRONG, "rounds": args.rounds}))
        cpu = harness.run_shell(env, CPU_CODE, spec_path, "BENCH-CPU")
        with harness.gunicorn_server(env, port, 1, log_path):
            for email in KINDS.values():  # warm-up, not counted: lazy imports, the per-process decoy hashes
                failed_post(port, email)
            timings = {kind: [] for kind in KINDS}
            print(f"Posting {args.rounds} wrong passwords per kind, one at a time ...", flush=True)
            for _ in range(args.rounds):
                order = list(KINDS.items())
                random.shuffle(order)
                for kind, email in order:
                    timings[kind].append(failed_post(port, email))
        harness.scan_log(log_path)
    report(setup, timings, cpu, args)


def report(setup, timings, cpu, args):
    cpus, usable = harness.cpu_counts()
    base = statistics.median(timings["unknown address"])
    print()
    print("Dockspace failed sign-in timing (POST /login/ with a wrong password)")
    print(f"  password hasher   {setup['hasher']}; mail hash {setup['mail_scheme']}")
    print(f"  gunicorn          1 sync worker, DEBUG=0, PostgreSQL {DB_NAME}; one request at a time")
    print(f"  rounds            {args.rounds} per kind, kinds in a new random order each round")
    print(f"  CPUs              {cpus} (usable by this process: {usable})")
    print()
    header = f"  {'kind':<36} {'p10 ms':>7} {'p50 ms':>7} {'p90 ms':>7} {'p50 - unknown':>14}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for kind, values in timings.items():
        p50 = statistics.median(values)
        print(
            f"  {kind:<36} {harness.percentile(values, 0.1) * 1000:>7.1f} {p50 * 1000:>7.1f}"
            f" {harness.percentile(values, 0.9) * 1000:>7.1f} {(p50 - base) * 1000:>+13.1f}"
        )
    print()
    print("  CPU time of authenticate() with a wrong password, in one process (thread CPU time, ms):")
    base = statistics.median(cpu["unknown address"])
    print(header)
    print("  " + "-" * (len(header) - 2))
    for kind, values in cpu.items():
        p50 = statistics.median(values)
        print(
            f"  {kind:<36} {harness.percentile(values, 0.1) * 1000:>7.1f} {p50 * 1000:>7.1f}"
            f" {harness.percentile(values, 0.9) * 1000:>7.1f} {(p50 - base) * 1000:>+13.1f}"
        )
    print()
    print("  The last kind is a hash made before the cost was lowered: it stays slower until its owner signs in once")
    print("  (its 8 lanes run in threads of their own, which the CPU table does not count: read its wall time).")


if __name__ == "__main__":
    sys.exit(main())
