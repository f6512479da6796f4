"""End-to-end lag of the mail-log follower process: from the moment a line is written to DOCKSPACE_MAIL_LOG to the
moment its rows are visible in the database, with the real `manage.py maillog follow` (the `maillog` process)
storing each batch with its checkpoint. bench/maillog_follow_lag.py times the follow loop alone (no database).

Run by hand from the project root (lines from bench/maillog_generate.py: DMS's realistic mix):

    .venv/bin/python bench/maillog_follow_process_lag.py [--rate 1000] [--seconds 20] [--poll 1]
        [--postgres] [--rotate-every 0] [--keep-temp]

A writer appends `--rate` lines a second through one O_APPEND descriptor, as rsyslog does (every `--rotate-every`
seconds the real logrotate rotates the file as DMS does: copytruncate). This script watches the log source's
`lines_read`, which the follower updates in the same transaction as the rows, every 5 ms: a line is visible once
`lines_read` reaches it. It prints the lag's percentiles, the lines stored, and the follower's CPU time.

Databases: a new SQLite file by default; --postgres drops and recreates `dockspace_bench_follow` (plus
$BENCH_DB_SUFFIX) on 127.0.0.1:5432 and drops it afterwards.
"""

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import harness

sys.path.insert(0, str(harness.ROOT))
from monitoring.tests.mail_log_files import LOGROTATE, Syslog, logrotate  # noqa: E402

WATCH_EVERY = 0.005


def generate(path, count):
    subprocess.run(
        [harness.PYTHON, "bench/maillog_generate.py", "--lines", str(count), "--out", str(path)],
        cwd=harness.ROOT,
        check=True,
    )
    return [line + "\n" for line in path.read_text().splitlines()]


class Writer(threading.Thread):
    def __init__(self, path, lines, *, rate, rotate_every):
        super().__init__(daemon=True)
        self.path, self.lines, self.rate, self.rotate_every = path, lines, rate, rotate_every
        self.written = []  # monotonic ns at which line i was written
        self.rotations = 0

    def run(self):
        syslog = Syslog(self.path)
        start = time.monotonic()
        next_rotation = start + self.rotate_every if self.rotate_every else None
        try:
            while len(self.written) < len(self.lines):
                now = time.monotonic()
                if next_rotation is not None and now >= next_rotation:
                    logrotate(self.path)
                    self.rotations += 1
                    next_rotation += self.rotate_every
                due = min(len(self.lines), int((now - start) * self.rate) + 1)
                if due > len(self.written):
                    syslog.write("".join(self.lines[len(self.written) : due]))
                    at = time.monotonic_ns()
                    self.written += [at] * (due - len(self.written))
                time.sleep(0.001)
        finally:
            syslog.close()


def lines_read_reader(args, env, temp_dir):
    if args.postgres:
        conn = harness.pg_connect(harness.bench_db_name("dockspace_bench_follow"))
    else:
        conn = sqlite3.connect(f"file:{temp_dir}/follow.sqlite3?mode=ro", uri=True, timeout=5, isolation_level=None)
    sql = "SELECT lines_read FROM monitoring_logsource WHERE name = 'local'"

    def lines_read():
        row = conn.execute(sql).fetchone()
        return row[0] if row else 0

    return lines_read


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 1/100 s


def run(args, temp_dir):
    if args.rotate_every and LOGROTATE is None:
        raise SystemExit("logrotate is not installed (apt-get install logrotate)")
    count = int(args.rate * args.seconds)
    lines = generate(temp_dir / "generated.log", count)
    log_path = temp_dir / "mail.log"
    log_path.touch()
    values = {"DOCKSPACE_MAIL_LOG": str(log_path), "DOCKSPACE_MAIL_LOG_POLL": str(args.poll)}
    if args.postgres:
        db_name = harness.bench_db_name("dockspace_bench_follow")
        env = harness.bench_env(db_name, temp_dir, values)
        database = harness.migrated_database(db_name, env)
    else:
        env = harness.bench_env("unused", temp_dir, {**values, "DATABASE_URL": f"sqlite:///{temp_dir}/follow.sqlite3"})
        harness.run_manage(env, "migrate", "--noinput", capture=True)
        database = harness.temp_directory("unused-", keep=False)
    with database:
        out = open(temp_dir / "follow.log", "w")  # noqa: SIM115 - closed below
        follower = subprocess.Popen(
            [harness.PYTHON, "manage.py", "maillog", "follow"], cwd=harness.ROOT, env=env, stdout=out, stderr=out
        )
        try:
            while "following" not in (temp_dir / "follow.log").read_text():
                if follower.poll() is not None:
                    raise SystemExit("the follower exited:\n" + (temp_dir / "follow.log").read_text()[-3000:])
                time.sleep(0.05)
            lines_read = lines_read_reader(args, env, temp_dir)
            cpu_before = cpu_seconds(follower.pid)
            writer = Writer(log_path, lines, rate=args.rate, rotate_every=args.rotate_every)
            print(f"Writing {count:,} lines at {args.rate:,}/s; follower polls every {args.poll:g} s ...", flush=True)
            writer.start()
            visible_at = []  # (monotonic ns, lines visible)
            deadline = time.monotonic() + args.seconds + 60
            while time.monotonic() < deadline:
                seen = lines_read()
                visible_at.append((time.monotonic_ns(), seen))
                if seen >= count:
                    break
                time.sleep(WATCH_EVERY)
            writer.join()
            cpu = cpu_seconds(follower.pid) - cpu_before
        finally:
            follower.terminate()
            follower.wait(timeout=60)
            out.close()
        report(writer, visible_at, count, cpu, args)
        return 0 if visible_at and visible_at[-1][1] == count else 1


def report(writer, visible_at, count, cpu, args):
    lags = []
    index = 0
    for i, written in enumerate(writer.written, 1):
        while index < len(visible_at) and visible_at[index][1] < i:
            index += 1
        if index == len(visible_at):
            break
        lags.append((visible_at[index][0] - written) / 1e6)
    stored = visible_at[-1][1] if visible_at else 0
    cuts = statistics.quantiles(lags, n=100) if len(lags) >= 2 else [float("nan")] * 99
    print(f"{stored:,} of {count:,} lines visible; {writer.rotations} rotations; follower CPU {cpu:.1f} s")
    print(
        f"lag write -> row visible, ms: p50 {cuts[49]:.0f}  p90 {cuts[89]:.0f}  p99 {cuts[98]:.0f}  "
        f"max {max(lags, default=float('nan')):.0f}  (poll {args.poll:g} s)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="lines a second (default 1000)")
    parser.add_argument("--seconds", type=float, default=20, help="how long to write (default 20)")
    parser.add_argument("--poll", type=float, default=1.0, help="DOCKSPACE_MAIL_LOG_POLL (default 1)")
    parser.add_argument("--rotate-every", type=float, default=0, help="seconds between rotations (default: none)")
    parser.add_argument("--postgres", action="store_true", help="a fresh PostgreSQL database on 127.0.0.1:5432")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temporary directory (the follower's log)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs")
    sys.exit(harness.run_bench(run, args, "maillog-follow-process-lag-"))


if __name__ == "__main__":
    main()
