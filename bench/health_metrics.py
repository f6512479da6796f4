"""/metrics scrape time and size at 10,000 mailboxes, and /health/ready latency, against gunicorn and PostgreSQL.

Run by hand from the project root:

    .venv/bin/python bench/health_metrics.py [--mailboxes 10000] [--requests 200] [--redis-url URL]

It creates (after dropping) the PostgreSQL database `dockspace_bench_health` on 127.0.0.1:5432, migrates it, and
starts `gunicorn dockspace.wsgi` (2 workers) on a free loopback port with `DEBUG=0`, counting for Prometheus in
files as the image does (PROMETHEUS_MULTIPROC_DIR under the data directory, plus a worker directory filled by a
process that counts a run of every Celery task, as a busy worker would). It scrapes `/metrics` and asks
`/health/ready` `--requests` times each, one request at a time on a new connection (as Prometheus and a probe
do), first on the empty database, then after growing it to `--mailboxes` mailboxes (and as many aliases, in 100
domains) with bulk_create. It prints p50/p99 latency, the size of a scrape (and gzipped), the families and samples
in it, and readiness' answers. It never asserts timings. gunicorn, the database and the temporary data directory
are removed at the end, also on Ctrl-C.
"""

import argparse
import gzip
import http.client
import json
import os
import sys
import time
from collections import Counter

import harness

DB_NAME = harness.bench_db_name("dockspace_bench_health")
DOMAINS = 100
MARK = "BENCH-RESULT"

# Grows the database to spec["mailboxes"] mailboxes and as many aliases (no signals, so no sync is queued; every
# person shares one password hash), and records that a worker and beat were just seen (readiness then passes).
FILL_CODE = r"""
import json, os, time
from django.contrib.auth import get_user_model
from django.utils import timezone
from mail.models import Alias, AliasTarget, Domain, Mailbox
from monitoring.heartbeats import heartbeat_record

with open(os.environ["BENCH_SPEC"]) as f:
    spec = json.load(f)
User = get_user_model()
count, domains, chunk = spec["mailboxes"], spec["domains"], 5000
began = time.perf_counter()
Domain.objects.bulk_create([Domain(name=f"d{n:03d}.bench.test") for n in range(domains)])
domain_ids = dict(Domain.objects.values_list("name", "id"))
for lo in range(0, count, chunk):
    block = range(lo, min(lo + chunk, count))
    address = {i: f"user{i:06d}@d{i % domains:03d}.bench.test" for i in block}
    people = User.objects.bulk_create([User(email=address[i], password="!", full_name=f"P {i}") for i in block])
    states = (Mailbox.ACTIVE,) * 98 + (Mailbox.SUSPENDED, Mailbox.DISABLED)
    Mailbox.objects.bulk_create(
        [
            Mailbox(
                person=person,
                domain_id=domain_ids[address[i].split("@")[1]],
                local_part=address[i].split("@")[0],
                address=address[i],
                state=states[i % 100],
            )
            for i, person in zip(block, people)
        ]
    )
    aliases = Alias.objects.bulk_create(
        [
            Alias(
                domain_id=domain_ids[address[i].split("@")[1]],
                local_part="alias" + address[i].split("@")[0],
                address="alias" + address[i],
            )
            for i in block
        ]
    )
    AliasTarget.objects.bulk_create([AliasTarget(alias=alias, address=address[i]) for i, alias in zip(block, aliases)])
heartbeat_record("worker")
heartbeat_record("beat")
print("BENCH-RESULT " + json.dumps({"seconds": time.perf_counter() - began, "mailboxes": Mailbox.objects.count()}))
"""

# A busy worker's counts: run with PROMETHEUS_MULTIPROC_DIR set to the worker's directory.
WORKER_COUNTS_CODE = r"""
from celery.signals import task_postrun
from dockspace.celery import app
from mail.dms.sync import sync_finished
app.loader.import_default_modules()
for name, task in sorted(app.tasks.items()):
    if name.startswith("celery."):
        continue
    for n, state in enumerate(("SUCCESS",) * 20 + ("FAILURE", "RETRY")):
        task_postrun.send(sender=task, task_id=f"{name}-{n}", task=task, state=state)
for n in range(50):
    sync_finished.send(sender=None, outcome="success", duration_seconds=0.01 * n)
print("BENCH-RESULT {}")
"""


def get(port, path):
    """(status, body, seconds) of one GET on a new connection."""
    began = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=harness.REQUEST_TIMEOUT)
    try:
        conn.request("GET", path, headers={"Accept": "text/plain", "Host": "127.0.0.1"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    return response.status, body, time.perf_counter() - began


def measure(port, path, requests):
    """Latencies, statuses and the last body of `requests` sequential GETs (after 5 to warm up each worker)."""
    for _ in range(5):
        get(port, path)
    latencies, statuses, body = [], Counter(), b""
    for _ in range(requests):
        status, body, seconds = get(port, path)
        latencies.append(seconds)
        statuses[status] += 1
    return latencies, statuses, body


def describe_scrape(body):
    from prometheus_client.parser import text_string_to_metric_families

    families = list(text_string_to_metric_families(body.decode()))
    samples = sum(len(family.samples) for family in families)
    task_series = sum(len(family.samples) for family in families if family.name == "dockspace_celery_task_runs")
    return len(families), samples, task_series


def report(label, port, requests):
    print(f"\n  {label}")
    latencies, statuses, body = measure(port, "/metrics", requests)
    families, samples, task_series = describe_scrape(body)
    print(
        f"    /metrics       p50 {harness.ms(harness.percentile(latencies, 0.5), 1):>6} ms   "
        f"p99 {harness.ms(harness.percentile(latencies, 0.99), 1):>6} ms   {len(body):>6} bytes "
        f"({len(gzip.compress(body)):>5} gzipped), {families} families, {samples} samples ({task_series} Celery "
        f"task-run series from the worker's files), statuses {dict(statuses)}"
    )
    latencies, statuses, body = measure(port, "/health/ready", requests)
    print(
        f"    /health/ready  p50 {harness.ms(harness.percentile(latencies, 0.5), 1):>6} ms   "
        f"p99 {harness.ms(harness.percentile(latencies, 0.99), 1):>6} ms   statuses {dict(statuses)}"
    )
    if 503 in statuses:
        checks = json.loads(body)["checks"]
        failing = [key for key, entries in checks.items() if any(entry["status"] == "fail" for entry in entries)]
        print(f"    (503: not ready: {', '.join(failing)})")


def run(args, temp_dir):
    data_dir = temp_dir / "data"
    port = harness.free_port()
    env = harness.server_env(DB_NAME, data_dir, port)
    metrics_dir = data_dir / "metrics"
    for name in ("web", "worker", "beat", "dms/config", "dms/history"):
        (data_dir / name if name.startswith("dms") else metrics_dir / name).mkdir(parents=True, exist_ok=True)
    env.update(
        DOCKSPACE_DMS_DIR=str(data_dir / "dms" / "config"),
        DOCKSPACE_DMS_HISTORY_DIR=str(data_dir / "dms" / "history"),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir / "web"),
        DOCKSPACE_HEALTH_CACHE_SECONDS="0",  # each /health/ready runs its checks: their latency is what is measured
    )
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
    cpus, usable = harness.cpu_counts()
    broker = f"Redis {args.redis_url}" if args.redis_url else "embedded filesystem broker, file cache"
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{cpus} CPUs ({usable} usable), load average {load}; {args.workers} gunicorn workers, {broker}")
    print(f"{args.requests} requests per endpoint and phase, one at a time, each on a new connection")
    with harness.emptied_redis(args.redis_url), harness.migrated_database(DB_NAME, env):
        worker_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir / "worker")}
        harness.run_shell(worker_env, WORKER_COUNTS_CODE, temp_dir / "spec.json", MARK)
        log_path = temp_dir / "gunicorn.log"
        with harness.gunicorn_server(env, port, args.workers, log_path):
            report("empty database (heartbeats not recorded yet: readiness fails)", port, args.requests)
            print(f"\nGrowing to {args.mailboxes} mailboxes and as many aliases ...", flush=True)
            spec_path = temp_dir / "spec.json"
            spec_path.write_text(f'{{"mailboxes": {args.mailboxes}, "domains": {DOMAINS}}}')
            filled = harness.run_shell(env, FILL_CODE, spec_path, MARK)
            print(f"  {filled['mailboxes']} mailboxes in {filled['seconds']:.1f} s")
            with harness.pg_connect(DB_NAME) as conn:
                conn.execute("VACUUM ANALYZE")  # fresh statistics, as autovacuum would soon have
            report(
                f"{args.mailboxes} mailboxes, {args.mailboxes} aliases, worker and beat just seen", port, args.requests
            )
        harness.scan_log(log_path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=10000, help="mailboxes (as many aliases) (default 10000)")
    parser.add_argument("--requests", type=int, default=200, help="requests per endpoint and phase (default 200)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--redis-url", default="", help="an empty Redis database as cache and broker (default: none)")
    parser.add_argument("--keep-temp", action="store_true", help="keep the data directory and the gunicorn log")
    args = parser.parse_args()
    return harness.run_bench(run, args, "dockspace-bench-health-")


if __name__ == "__main__":
    sys.exit(main())
