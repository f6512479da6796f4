"""Probe sweep of 20 mail hosts through a real Celery worker, against one real sshd on loopback.

Run by hand from the project root:

    .venv/bin/python bench/probe_sweep.py [--hosts 20] [--sweeps 3] [--concurrency 2] [--redis-url URL]

It creates (after dropping) the PostgreSQL database `dockspace_bench_probe` on 127.0.0.1:5432 and migrates it,
starts ONE sshd on a free loopback port with the tests' `docker` stand-in (monitoring/tests/sshd.py: throwaway
keys, canned DMS answers), and registers `--hosts` mail hosts pointing at it (distinct names, the same sshd, its
host key trusted) through the service `mailhost add` uses. It times one `manage.py mailhost check` (a whole
process: start-up, one probe, output), then starts `celery worker` (prefork, `--concurrency` children, as `make
run` starts it with WORKER_CONCURRENCY) and, `--sweeps` times, sends the periodic sweep (`monitoring.probe_mail_hosts`,
which queues one task per host) and waits until every host has a new probe stored. It prints, per sweep: the wall
time from sending the sweep to the last probe stored, the CPU seconds of the worker (its main process and pool
children, from /proc), the slowest and median single probe, and the share of the
5-minute interval used. The sshd's per-connection processes and the stand-in's Python start-ups run on the same
machine and are not counted. Nothing listens on 127.0.0.1's mail ports, so the TLS part of each probe is four
refused connections (a real host's handshakes add their round trips). The worker, sshd, database and temporary
directory are removed at the end, also on Ctrl-C.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import harness

sys.path.insert(0, str(harness.ROOT))
from monitoring.tests.sshd import SshServer, make_keys, require_sshd  # noqa: E402 (after the path is set)

DB_NAME = harness.bench_db_name("dockspace_bench_probe")
MARK = "BENCH-RESULT"
CELERY = str(Path(sys.executable).parent / "celery")
INTERVAL_SECONDS = 5 * 60

# Registers spec["hosts"] mail hosts on the one sshd, trusting its key as `mailhost add --trust` does.
ADD_CODE = r"""
import json, os, time
from monitoring import hosts
with open(os.environ["BENCH_SPEC"]) as f:
    spec = json.load(f)
began = time.perf_counter()
for n in range(spec["hosts"]):
    hosts.mailhost_add(
        name=f"bench-{n + 1:02d}", ssh_target=spec["target"], key_path=spec["key"], trust=spec["fingerprint"]
    )
print("BENCH-RESULT " + json.dumps({"seconds": time.perf_counter() - began}))
"""

SWEEP_CODE = r"""
from dockspace.celery import queue_task
queue_task("monitoring.probe_mail_hosts")
print("BENCH-RESULT {}")
"""


def process_tree(pid):
    """`pid` and its children (the worker's pool), from /proc."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *(int(child) for child in children)]


def cpu_seconds(pids):
    return {pid: harness._cpu_seconds_of(pid) for pid in pids}


def probes_since(moment_sql):
    """(count, durations in ms) of the probes started after `moment_sql`."""
    with harness.pg_connect(DB_NAME) as conn:
        rows = conn.execute(
            "SELECT duration_ms, started_at FROM monitoring_hostprobe WHERE started_at > %s", [moment_sql]
        ).fetchall()
    return len(rows), [row[0] for row in rows]


def database_now():
    with harness.pg_connect(DB_NAME) as conn:
        return conn.execute("SELECT now()").fetchone()[0]


def wait_ready(proc, log_path, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if " ready." in log_path.read_text():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise SystemExit("The worker did not start:\n" + log_path.read_text()[-4000:])


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def sweep(env, temp_dir, worker, hosts):
    worker_pids = process_tree(worker.pid)
    before = (cpu_seconds(worker_pids),)
    since = database_now()
    began = time.perf_counter()
    harness.run_shell(env, SWEEP_CODE, temp_dir / "spec.json", MARK)
    count, durations = 0, []
    while time.perf_counter() - began < INTERVAL_SECONDS:
        count, durations = probes_since(since)
        if count >= hosts:
            break
        time.sleep(0.1)
    wall = time.perf_counter() - began
    (worker_cpu,) = harness.cpu_used(before, (cpu_seconds(worker_pids),))
    return count, wall, worker_cpu, durations


def run(args, temp_dir):
    require_sshd_or_exit()
    data_dir = temp_dir / "data"
    # Mail hosts' key files must be in DOCKSPACE_SSH_KEY_DIR: the keys below are made there.
    key_dir = data_dir / "ssh-keys"
    env = harness.bench_env(DB_NAME, data_dir, {"DOCKSPACE_SSH_TIMEOUT": "5", "DOCKSPACE_SSH_KEY_DIR": str(key_dir)})
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
    dms_dir = data_dir / "dms"
    dms_dir.mkdir(parents=True)
    env.update(DOCKSPACE_DMS_DIR=str(dms_dir), DOCKSPACE_DMS_HISTORY_DIR=str(data_dir / "dms-history"))
    cpus, usable = harness.cpu_counts()
    broker = f"Redis {args.redis_url}" if args.redis_url else "embedded filesystem broker"
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    pool = f"worker prefork --concurrency {args.concurrency}"
    print(f"{cpus} CPUs ({usable} usable), load average {load}; {pool}, {broker}")
    keys = make_keys(key_dir)
    server = SshServer(temp_dir / "sshd", keys, dms_dir=dms_dir).start()
    try:
        with harness.emptied_redis(args.redis_url), harness.migrated_database(DB_NAME, env):
            spec = {
                "hosts": args.hosts,
                "target": server.target,
                "key": str(keys["user"]),
                "fingerprint": server.fingerprint(),
            }
            (temp_dir / "spec.json").write_text(json.dumps(spec))
            added = harness.run_shell(env, ADD_CODE, temp_dir / "spec.json", MARK)
            print(f"  {args.hosts} mail hosts added on one sshd ({server.target}) in {added['seconds']:.1f} s")

            began = time.perf_counter()
            out = harness.run_manage(env, "mailhost", "check", "bench-01", capture=True)
            print(
                f"  `manage.py mailhost check bench-01`: {time.perf_counter() - began:.2f} s wall (process start "
                f"included): {out.splitlines()[0] if out else '?'}"
            )

            log_path = temp_dir / "worker.log"
            argv = [CELERY, "-A", "dockspace", "worker", "--loglevel", "INFO", "--concurrency", str(args.concurrency)]
            with open(log_path, "w") as log:
                worker = subprocess.Popen(argv, cwd=harness.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_ready(worker, log_path)
                for n in range(1, args.sweeps + 1):
                    count, wall, worker_cpu, durations = sweep(env, temp_dir, worker, args.hosts)
                    slowest = max(durations, default=0) / 1000
                    median = statistics.median(durations) / 1000 if durations else 0
                    print(
                        f"  sweep {n}: {count}/{args.hosts} probes stored in {wall:.1f} s wall "
                        f"({wall / INTERVAL_SECONDS:.1%} of the 5-minute interval); worker CPU {worker_cpu:.1f} s; "
                        f"one probe: median {median:.2f} s, slowest "
                        f"{slowest:.2f} s"
                    )
            finally:
                stop(worker)
            if "ERROR" in log_path.read_text() or "Traceback" in log_path.read_text():
                print("  the worker logged errors:\n" + log_path.read_text()[-3000:])
    finally:
        server.stop()


def require_sshd_or_exit():
    try:
        require_sshd()
    except BaseException as exc:  # pytest.skip's exception outside pytest
        raise SystemExit(f"needs /usr/sbin/sshd and ssh-keygen: {exc}") from None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20, help="mail hosts on the one sshd (default 20)")
    parser.add_argument("--sweeps", type=int, default=3, help="sweeps to time (default 3)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker pool children (default 2)")
    parser.add_argument("--redis-url", default="", help="an empty Redis database as cache and broker (default: none)")
    parser.add_argument("--keep-temp", action="store_true", help="keep the data directory and the worker log")
    args = parser.parse_args()
    return harness.run_bench(run, args, "dockspace-bench-probe-")


if __name__ == "__main__":
    sys.exit(main())
