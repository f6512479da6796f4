"""Time `manage.py maillog ingest --file LOG` (wall time, lines per second, CPU seconds, peak memory of the ingest
process) into a fresh database, then compare the totals `manage.py traffic --json` reports with pflogsumm's Grand
Totals on the same file, and show pflogsumm's own speed beside it.

Run by hand from the project root, on a log from bench/maillog_generate.py:

    .venv/bin/python bench/maillog_generate.py --out /tmp/mail.log
    .venv/bin/python bench/maillog_ingest.py /tmp/mail.log [--postgres | --database-url URL] [--keep-temp]

Databases: by default a new SQLite file in a temporary directory; --postgres drops and recreates the database
`dockspace_bench_maillog` (plus $BENCH_DB_SUFFIX) on 127.0.0.1:5432 (user `postgres`, trust auth) and drops it
afterwards; --database-url uses the database given, as it is (it must be migrated; nothing is dropped). The
figures are the ingest process's own (its CPU and peak RSS from wait4); with --postgres, also the CPU time of the
PostgreSQL server process that served it (read from /proc every 0.1 s while it runs, so the last tenth of a second
may be missed; shown only when PostgreSQL runs on this machine and its processes can be read).

Comparison: `traffic --json --since <the log's age>` must report, somewhere in its JSON, an object with the keys of
pflogsumm_totals.py (received, delivered, forwarded, deferred, deferrals, bounced, rejected, held, discarded),
counted the way pflogsumm counts them (bench/README.md, "Mail traffic"); each is compared, a difference makes the exit
status 1. When `manage.py maillog` does not exist yet the script says so and exits 2; without `manage.py traffic` it
times the ingest and skips the comparison.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import harness
import pflogsumm_totals

COMPARED = ("received", "delivered", "forwarded", "deferred", "deferrals", "bounced", "rejected", "held", "discarded")
_RFC3339 = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) ")


def manage_commands(env):
    done = subprocess.run(
        [harness.PYTHON, "manage.py", "help", "--commands"], cwd=harness.ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"manage.py help --commands failed:\n{done.stderr[-2000:]}")
    return set(done.stdout.split())


class ServerCpu:
    """The CPU seconds of the PostgreSQL client backends serving `db_name` while this is entered (the ingest's
    connection), from /proc/PID/stat of each, sampled every `interval` seconds by a thread. None when PostgreSQL's
    processes are not readable here (another machine, another user)."""

    def __init__(self, db_name, interval=0.1):
        self.db_name = db_name
        self.interval = interval
        self.ticks = {}  # backend pid -> its latest CPU ticks (user + system)
        self.readable = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._conn = harness.pg_connect(self.db_name)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._conn.close()
        return False

    def _sample(self):
        query = (
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
        while not self._stop.wait(self.interval):
            for (pid,) in self._conn.execute(query, (self.db_name,)).fetchall():
                try:
                    with open(f"/proc/{pid}/stat") as stat:
                        name, fields = stat.read().rsplit(")", 1)
                except FileNotFoundError:  # ended between the query and now, or PostgreSQL is not on this machine
                    continue
                except OSError:
                    self.readable = False
                    return
                if not name.endswith("(postgres"):  # another machine's pid, or another PID namespace
                    self.readable = False
                    return
                fields = fields.split()
                self.ticks[pid] = int(fields[11]) + int(fields[12])

    @property
    def seconds(self):
        if not self.readable or not self.ticks:
            return None
        return sum(self.ticks.values()) / os.sysconf("SC_CLK_TCK")


def run_measured(argv, env, log_path):
    """Run argv to completion with its output in log_path; return (exit status, wall seconds, CPU seconds, peak RSS
    in MiB) of that process, from wait4."""
    with open(log_path, "w") as log:
        began = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=harness.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def first_timestamp(path):
    with open(path, "rb") as f:
        for raw in f:
            match = _RFC3339.match(raw)
            if match:
                return datetime.fromisoformat(match.group(1).decode().replace("Z", "+00:00"))
    return None


def find_totals(value):
    """The first object in traffic's JSON that has pflogsumm's keys (at least delivered and bounced)."""
    if isinstance(value, dict):
        if "delivered" in value and "bounced" in value:
            return value
        children = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return None
    for child in children:
        found = find_totals(child)
        if found is not None:
            return found
    return None


def compare(expected, reported):
    """Print pflogsumm's totals beside traffic's; return the keys that differ or are missing."""
    wrong = []
    print(f"  {'total':<12} {'pflogsumm':>12} {'traffic':>12}")
    for key in COMPARED:
        got = reported.get(key)
        ok = got == expected[key]
        if not ok:
            wrong.append(key)
        shown = "-" if got is None else f"{got:,}" if isinstance(got, int) else str(got)
        print(f"  {key:<12} {expected[key]:>12,} {shown:>12}{'' if ok else '  <- differs'}")
    return wrong


def run(args, temp_dir):
    log = Path(args.log).resolve()
    if not log.is_file():
        raise SystemExit(f"{log}: no such file")
    lines = pflogsumm_totals._count_lines(log)
    db_name = None
    if args.database_url:
        env = harness.bench_env("unused", temp_dir, {"DATABASE_URL": args.database_url})
        database = _nothing()
    elif args.postgres:
        db_name = harness.bench_db_name("dockspace_bench_maillog")
        env = harness.bench_env(db_name, temp_dir)
        database = harness.migrated_database(db_name, env)
    else:
        env = harness.bench_env("unused", temp_dir, {"DATABASE_URL": f"sqlite:///{temp_dir}/maillog.sqlite3"})
        database = _migrated_sqlite(env)
    # Keep every line of the log whatever its age: the benchmark compares totals, not retention.
    env["DOCKSPACE_TRAFFIC_DAYS"] = str(args.traffic_days)

    commands = manage_commands(env)
    if "maillog" not in commands:
        print("manage.py has no `maillog` command yet (issue 13: `maillog ingest --file PATH`); nothing to time.")
        return 2
    with database:
        print(f"Ingesting {lines:,} lines of {log} ...", flush=True)
        with ServerCpu(db_name) if db_name else _nothing() as server:
            status, wall, cpu, rss = run_measured(
                [harness.PYTHON, "manage.py", "maillog", "ingest", "--file", str(log)], env, temp_dir / "ingest.log"
            )
        output = (temp_dir / "ingest.log").read_text(errors="replace")
        summary = [line for line in re.split(r"[\r\n]+", output) if line.strip()][-8:]
        print("  " + "\n  ".join(summary))
        if status != 0:
            print(f"maillog ingest failed with exit status {status}.", file=sys.stderr)
            return 1
        print(
            f"ingest: {wall:.1f} s wall, {lines / wall:,.0f} lines/s, {cpu:.1f} s CPU ({lines / cpu:,.0f} lines per "
            f"CPU second), peak RSS {rss:.0f} MiB"
        )
        server_seconds = getattr(server, "seconds", None)
        if server_seconds is not None:
            print(f"PostgreSQL: {server_seconds:.1f} s CPU in the server process that served the ingest")
        if not args.skip_pflogsumm:
            timing = pflogsumm_totals.time_pflogsumm(log, repeat=1)
            print(
                f"pflogsumm: {timing['best_seconds']:.1f} s wall, {timing['lines_per_second']:,} lines/s, "
                f"{timing['best_cpu_seconds']:.1f} s CPU, peak RSS {timing['peak_rss_mib']:.0f} MiB; ingest/pflogsumm "
                f"speed {timing['best_seconds'] / wall:.2f}x"
            )
        if "traffic" not in commands:
            print("manage.py has no `traffic` command yet: totals not compared.")
            return 0
        began = first_timestamp(log)
        hours = int((datetime.now(UTC) - began).total_seconds() // 3600) + 2 if began else 24 * 365
        traffic_args = args.traffic_args.split() if args.traffic_args else ["--since", f"{max(hours, 1)}h"]
        done = subprocess.run(
            [harness.PYTHON, "manage.py", "traffic", *traffic_args, "--json"],
            cwd=harness.ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            print(f"manage.py traffic failed ({done.returncode}):\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        reported = find_totals(json.loads(done.stdout))
        if reported is None:
            print(f"traffic --json has no object with pflogsumm's keys:\n{done.stdout[:2000]}", file=sys.stderr)
            return 1
        expected = pflogsumm_totals.pflogsumm_totals(log)
        wrong = compare(expected, reported)
        print("Totals agree with pflogsumm." if not wrong else f"Totals differ: {', '.join(wrong)}.")
        return 1 if wrong else 0


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _migrated_sqlite:
    def __init__(self, env):
        self.env = env

    def __enter__(self):
        print("Migrating a new SQLite database ...", flush=True)
        harness.run_manage(self.env, "migrate", "--noinput", capture=True)
        return self

    def __exit__(self, *exc):
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", help="the mail log to ingest (e.g. from bench/maillog_generate.py)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--postgres", action="store_true", help="a fresh PostgreSQL database on 127.0.0.1:5432")
    where.add_argument("--database-url", help="an existing, migrated database (nothing is dropped)")
    parser.add_argument("--traffic-args", help='arguments for `traffic` instead of "--since <log age>h"')
    parser.add_argument("--traffic-days", type=int, default=3650, help="DOCKSPACE_TRAFFIC_DAYS (default 3650)")
    parser.add_argument("--skip-pflogsumm", action="store_true", help="do not time pflogsumm on the same file")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temporary directory (ingest output)")
    args = parser.parse_args()
    return harness.run_bench(run, args, "dockspace-maillog-bench-")


if __name__ == "__main__":
    sys.exit(main())
