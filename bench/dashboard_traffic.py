"""Time the operator dashboard (the admin's home page, with its "Mail traffic" card) on a generated DMS mail log, and
check that lines ingested a moment ago are counted on it.

Run by hand from the project root:

    .venv/bin/python bench/dashboard_traffic.py [--lines 200000] [--repeat 5] [--random-page-cost 1.1]
        [--database-url URL] [--keep-temp]

By default: a new PostgreSQL database `dockspace_bench_dashboard` (plus $BENCH_DB_SUFFIX) on 127.0.0.1:5432 (user
`postgres`, trust auth), dropped afterwards; bench/maillog_generate.py writes --lines lines, re-dated so that the last
one was written a minute ago; monitoring.traffic.maillog_ingest_file reads them, monitoring.traffic_rollups rolls
them up (as beat does every 15 minutes) and the tables are ANALYZEd (as autovacuum would). With --database-url the
database given is used as it is (migrated, filled and rolled up by you; nothing is generated nor dropped).

Then, in one `manage.py shell` on DEBUG off: GET /admin/?range=24h, 7d and 90d --repeat times each, signed in as a
superuser (Django's test client: no HTTP server, no network), printing the median and slowest request and the
queries; then ingest three lines stamped now (a message sent and delivered) and read the 24 h card again: their
delivery must be counted. --random-page-cost sets PostgreSQL's planner cost for the session (1.1 is the usual
setting on SSDs; the default 4 favours reading whole tables over index lookups)."""

import argparse
import subprocess
import sys
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta

import harness

TIMING = r"""
import json, os, statistics, time
from datetime import timedelta
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from monitoring import traffic
from monitoring.models import DeliveryAttempt, MailMessage

spec = json.loads(open(os.environ["BENCH_SPEC"]).read())
settings.ALLOWED_HOSTS = ["testserver"]
if spec["random_page_cost"]:
    connection.cursor().execute("SET random_page_cost = %s", [spec["random_page_cost"]])
person = get_user_model().objects.filter(email="bench-dashboard@example.com").first()
if person is None:
    person = get_user_model().objects.create_superuser(email="bench-dashboard@example.com", password="x" * 20)
client = Client()
client.force_login(person)
found = {"attempts": DeliveryAttempt.objects.count(), "messages": MailMessage.objects.count(), "ranges": {}}
for key in ("24h", "7d", "90d"):
    times = []
    for _ in range(spec["repeat"] + 1):  # the first warms the caches and is left out
        with CaptureQueriesContext(connection) as queries:
            began = time.perf_counter()
            response = client.get("/admin/?range=" + key, secure=True)
            times.append(time.perf_counter() - began)
        assert response.status_code == 200 and b"Mail traffic" in response.content, response.status_code
    found["ranges"][key] = {
        "median_ms": round(1000 * statistics.median(times[1:])),
        "max_ms": round(1000 * max(times[1:])),
        "queries": len(queries),
    }

def delivered(html):
    row = html.split('class="traffic-all"')[1]
    return int(row.split('<td class="number">')[2].split("<")[0])

before = delivered(client.get("/admin/", secure=True).content.decode())
now = timezone.now()
stamp = lambda seconds: (now - timedelta(seconds=seconds)).isoformat(timespec="microseconds")
lines = [
    f"{stamp(3)} mail postfix/submission/smtpd[4242]: FEED0B0001: client=unknown[198.51.100.23], sasl_method=PLAIN, "
    "sasl_username=bench@example.com",
    f"{stamp(2)} mail postfix/qmgr[4242]: FEED0B0001: from=<bench@example.com>, size=1200, nrcpt=1 (queue active)",
    f"{stamp(1)} mail postfix/smtp[4242]: FEED0B0001: to=<someone@example.org>, relay=mx.example.org[192.0.2.25]:25, "
    "delay=1.2, delays=0.1/0/0.6/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 9C8B7A6D5E)",
]
began = time.perf_counter()
traffic.maillog_ingest_lines(traffic.logsource_for(), lines)
after = delivered(client.get("/admin/", secure=True).content.decode())
found["fresh"] = {"before": before, "after": after, "seconds": round(time.perf_counter() - began, 3)}
print("BENCH_DASHBOARD " + json.dumps(found))
"""


def redated_log(lines, path):
    """bench/maillog_generate.py's log of `lines` lines, each line's time moved so that the last was a minute ago."""
    generated = subprocess.run(
        [harness.PYTHON, str(harness.ROOT / "bench" / "maillog_generate.py"), "--lines", str(lines)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines(keepends=True)
    last = datetime.fromisoformat(generated[-1].split(" ", 1)[0])
    shift = datetime.now(UTC) - timedelta(minutes=1) - last
    with open(path, "w") as out:
        for line in generated:
            stamp, rest = line.split(" ", 1)
            out.write(f"{(datetime.fromisoformat(stamp) + shift).isoformat(timespec='microseconds')} {rest}")
    return (datetime.fromisoformat(generated[0].split(" ", 1)[0]) + shift, last + shift)


FILL = r"""
import json, os, time
from django.db import connection
from monitoring import traffic, traffic_rollups
spec = json.loads(open(os.environ["BENCH_SPEC"]).read())
began = time.perf_counter()
result = traffic.maillog_ingest_file(spec["log"], source=traffic.logsource_for())
ingested = time.perf_counter() - began
began = time.perf_counter()
rolled = traffic_rollups.traffic_rollup()
connection.cursor().execute("ANALYZE")
print("BENCH_FILL " + json.dumps({"ingest_s": round(ingested, 1), "rollup_s": round(time.perf_counter() - began, 1),
      "rollup": rolled.summary()}))
"""


def run(args, temp_dir):
    if args.database_url:
        env = harness.bench_env("unused", temp_dir, {"DATABASE_URL": args.database_url})
        database = None
    else:
        db_name = harness.bench_db_name("dockspace_bench_dashboard")
        env = harness.bench_env(db_name, temp_dir)
        database = harness.migrated_database(db_name, env)
    spec = temp_dir / "spec.json"
    with database if database is not None else nullcontext():
        if database is not None:
            log = temp_dir / "mail.log"
            first, last = redated_log(args.lines, log)
            print(f"Generated {args.lines:,} lines from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC.")
            spec.write_text(f'{{"log": "{log}"}}')
            fill = harness.run_shell(env, FILL, spec, "BENCH_FILL")
            print(f"Ingested in {fill['ingest_s']} s; {fill['rollup']} in {fill['rollup_s']} s.")
        spec.write_text(f'{{"repeat": {args.repeat}, "random_page_cost": {args.random_page_cost or "null"}}}')
        found = harness.run_shell(env, TIMING, spec, "BENCH_DASHBOARD")
    print(f"Stored: {found['messages']:,} messages, {found['attempts']:,} delivery attempts.")
    print(f"{'range':<6} {'median':>8} {'slowest':>8} {'queries':>8}")
    for key, figures in found["ranges"].items():
        print(f"{key:<6} {figures['median_ms']:>6} ms {figures['max_ms']:>5} ms {figures['queries']:>8}")
    fresh = found["fresh"]
    counted = fresh["after"] == fresh["before"] + 1
    print(
        f"A delivery logged a second ago: delivered {fresh['before']} -> {fresh['after']} on the 24 h card "
        f"({'counted' if counted else 'NOT counted'}), {fresh['seconds']} s from ingest to the page read."
    )
    return 0 if counted else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000, help="lines of generated log (default 200,000)")
    parser.add_argument("--repeat", type=int, default=5, help="requests timed per range (default 5)")
    parser.add_argument("--random-page-cost", type=float, help="PostgreSQL's random_page_cost for the requests")
    parser.add_argument("--database-url", help="use this database as it is (nothing generated, nothing dropped)")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    return harness.run_bench(run, args, "dockspace-bench-dashboard-")


if __name__ == "__main__":
    sys.exit(main())
