"""Where one password sign-in spends its CPU: the Argon2 check against everything else Django does.

Run by hand from the project root:

    .venv/bin/python bench/signin_profile.py [--rounds 40] [--top 25]

It creates (after dropping) the PostgreSQL database `dockspace_bench_profile` on 127.0.0.1:5432, migrates it and
creates a person without a second factor (with and without a mailbox), then, in one `manage.py shell` process with
DEBUG=0, signs them in `--rounds` times through Django's test client the way a browser does (GET /login/, POST
/login/ with the CSRF token, fresh cookies each time). It prints the thread CPU time per request and per sign-in,
one Argon2 check alone, the queries of each request, and a CPU-time cProfile of the GETs and POSTs. It never
asserts anything. The database and its temporary data directory are removed at the end, also on Ctrl-C.
"""

import argparse
import json

import harness
from signin import PASSWORD

DB_NAME = harness.bench_db_name("dockspace_bench_profile")

SETUP_CODE = r"""
import json, os
from django.contrib.auth.hashers import make_password
from accounts.models import AppSettings, User
from mail import services

spec = json.loads(open(os.environ["BENCH_SPEC"]).read())
conf, _ = AppSettings.objects.get_or_create(pk=1)
conf.lockout_account_failures = 1000000
conf.lockout_ip_failures = 1000000
conf.save()
encoded = make_password(spec["password"])
User.objects.create(email="plain@bench.test", password=encoded)
services.domain_create(name="bench.test", actor_label="bench")
services.mailbox_create(address="mailbox@bench.test", password=spec["password"], actor_label="bench")
print("BENCH-SETUP " + json.dumps({"users": User.objects.count()}))
"""

PROFILE_CODE = r"""
import cProfile, io, json, os, pstats, re, statistics, time
from http.cookies import SimpleCookie
from django.contrib.auth.hashers import check_password
from django.db import connection, reset_queries
from django.test import Client
from django.test.utils import CaptureQueriesContext
from accounts.models import User

spec = json.loads(open(os.environ["BENCH_SPEC"]).read())
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
HOST = {"HTTP_HOST": "127.0.0.1", "HTTP_USER_AGENT": "dockspace-bench/1"}


# One client for all sign-ins, as a gunicorn worker loads the middleware once (a new test client loads it again,
# and WhiteNoise's start-up scan of the static files would be counted in each GET); fresh cookies each time.
CLIENT = Client(enforce_csrf_checks=True)


def sign_in(email, profile=None, queries=None, get_profile=None):
    client = CLIENT
    client.cookies = SimpleCookie()
    started = time.thread_time()
    if get_profile is not None:
        get_profile.enable()
    page = client.get("/login/", **HOST)
    if get_profile is not None:
        get_profile.disable()
    token = CSRF.search(page.content.decode()).group(1)
    got = time.thread_time()
    form = {"csrfmiddlewaretoken": token, "email": email, "password": spec["password"], "next": ""}
    if profile is not None:
        profile.enable()
    if queries is not None:
        with CaptureQueriesContext(connection) as captured:
            response = client.post("/login/", form, **HOST)
        queries.extend(q["sql"] for q in captured.captured_queries)
    else:
        response = client.post("/login/", form, **HOST)
    if profile is not None:
        profile.disable()
    posted = time.thread_time()
    where = (response.status_code, response.get("Location"))
    assert where == (302, "/profile/"), where
    return got - started, posted - got


result = {}
encoded = User.objects.get(email="plain@bench.test").password
for kind, email in (("no mailbox", "plain@bench.test"), ("with a mailbox", "mailbox@bench.test")):
    for _ in range(3):
        sign_in(email)  # warm-up: lazy imports, first queries
    gets, posts = [], []
    for _ in range(spec["rounds"]):
        get, post = sign_in(email)
        gets.append(get)
        posts.append(post)
    get_queries, post_queries = [], []
    client = Client()
    with CaptureQueriesContext(connection) as captured:
        client.get("/login/", **HOST)
    get_queries = [q["sql"] for q in captured.captured_queries]
    sign_in(email, queries=post_queries)
    result[kind] = {
        "get_ms": statistics.median(gets) * 1000,
        "post_ms": statistics.median(posts) * 1000,
        "get_queries": get_queries,
        "post_queries": post_queries,
    }

checks = []
for _ in range(spec["rounds"]):
    started = time.thread_time()
    check_password(spec["password"], encoded)
    checks.append(time.thread_time() - started)
result["argon2_ms"] = statistics.median(checks) * 1000

# CPU time, not wall time: waiting for PostgreSQL is not what a busy CPU spends.
profile, get_profile = cProfile.Profile(time.thread_time), cProfile.Profile(time.thread_time)
for _ in range(spec["rounds"]):
    sign_in("plain@bench.test", profile=profile, get_profile=get_profile)
for key, prof in (("post", profile), ("get", get_profile)):
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(order).print_stats(spec["top"])
        result[f"{key}_{order}"] = out.getvalue()
print("BENCH-PROFILE " + json.dumps(result))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="sign-ins measured per kind of person (default 40)")
    parser.add_argument("--top", type=int, default=25, help="functions shown in the profile (default 25)")
    parser.add_argument("--queries", action="store_true", help="print the SQL of each request")
    parser.add_argument("--keep-temp", action="store_true", help="keep the data directory")
    args = parser.parse_args()
    return harness.run_bench(run, args, "dockspace-bench-profile-")


def run(args, temp_dir):
    env = harness.bench_env(DB_NAME, temp_dir / "data", {"SECURE_SSL_REDIRECT": "0", "ALLOWED_HOSTS": "127.0.0.1"})
    with harness.migrated_database(DB_NAME, env):
        spec_path = temp_dir / "spec.json"
        spec_path.write_text(json.dumps({"password": PASSWORD, "rounds": args.rounds, "top": args.top}))
        harness.run_shell(env, SETUP_CODE, spec_path, "BENCH-SETUP")
        print(f"Signing in {args.rounds} times per kind of person in one process ...", flush=True)
        result = harness.run_shell(env, PROFILE_CODE, spec_path, "BENCH-PROFILE")
    report(result, args)


def report(result, args):
    cpus, usable = harness.cpu_counts()
    argon2 = result["argon2_ms"]
    print()
    print("Dockspace sign-in CPU (Django test client, DEBUG=0, PostgreSQL; thread CPU time, median)")
    print(f"  CPUs {cpus} (usable {usable}); one Argon2 check alone: {argon2:.1f} ms")
    print()
    print(f"  {'person':<16} {'GET ms':>7} {'POST ms':>8} {'sign-in ms':>11} {'outside Argon2':>15} {'queries':>12}")
    for kind in ("no mailbox", "with a mailbox"):
        row = result[kind]
        total = row["get_ms"] + row["post_ms"]
        queries = f"{len(row['get_queries'])} + {len(row['post_queries'])}"
        print(
            f"  {kind:<16} {row['get_ms']:>7.1f} {row['post_ms']:>8.1f} {total:>11.1f} {total - argon2:>15.1f}"
            f" {queries:>12}"
        )
    if args.queries:
        for kind in ("no mailbox", "with a mailbox"):
            for step in ("get", "post"):
                print(f"\n  {step.upper()} /login/ ({kind}):")
                for sql in result[kind][f"{step}_queries"]:
                    print("    " + sql[:200])
    print()
    for key in ("post", "get"):
        for order in ("tottime", "cumulative"):
            print(f"  cProfile (thread CPU time) of {args.rounds} {key.upper()} /login/ (no mailbox), by {order}:")
            print(result[f"{key}_{order}"])


if __name__ == "__main__":
    raise SystemExit(main())
