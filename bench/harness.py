"""What the benchmark scripts share: a throwaway PostgreSQL database, `manage.py` and gunicorn processes on the
bench settings, timed phases of client threads and their figures, and cleaning up on Ctrl-C.

The scripts import it as `harness`: run as `.venv/bin/python bench/<name>.py`, their folder is on sys.path.
"""

import argparse
import http.client
import json
import math
import os
import re
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
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).parent / "gunicorn")

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REQUEST_TIMEOUT = 60  # seconds; a request slower than this counts as a failure


# --- Ctrl-C and temporary files --------------------------------------------------------------------


def _interrupt(signum, frame):
    print("\nInterrupted; cleaning up.", file=sys.stderr, flush=True)
    raise KeyboardInterrupt


def run_bench(run, args, temp_prefix):
    """Calls `run(args, temp_dir)` with a new temporary directory, removed afterwards unless `args.keep_temp`.
    Ctrl-C and SIGTERM unwind through the `with` blocks and `finally` clauses, which clean up (SIGINT too when
    the script was started with it ignored, e.g. with `&`). Returns the exit status: run's (0 for None), 130
    when interrupted."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with temp_directory(temp_prefix, keep=args.keep_temp) as temp_dir:
            return run(args, temp_dir) or 0
    except KeyboardInterrupt:
        return 130


@contextmanager
def temp_directory(prefix, *, keep):
    """A new temporary directory, removed on the way out unless `keep` (then its path is printed)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            print(f"  kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


# --- the database -----------------------------------------------------------------------------------


def pg_connect(dbname):
    import psycopg

    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, autocommit=True)


def pg_admin(sql):
    with pg_connect("postgres") as conn:
        conn.execute(sql)


def bench_db_name(base):
    """`base` plus $BENCH_DB_SUFFIX (e.g. `_mine`): benchmarks run from several checkouts against one PostgreSQL then
    each drop and create databases of their own."""
    suffix = os.environ.get("BENCH_DB_SUFFIX", "")
    if suffix and not re.fullmatch(r"[a-z0-9_]{1,20}", suffix):
        raise SystemExit("BENCH_DB_SUFFIX: at most 20 lower-case letters, digits or underscores.")
    return base + suffix


def database_url(db_name):
    return f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{db_name}"


def create_database(db_name):
    pg_admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{db_name}"')


def drop_database(db_name):
    pg_admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


@contextmanager
def migrated_database(db_name, env):
    """Creates `db_name` (after dropping it) and migrates it with `env`; drops it on the way out, also after a
    failure or Ctrl-C, reporting rather than raising when that fails."""
    print(f"Creating database {db_name} and migrating ...", flush=True)
    try:
        create_database(db_name)
        run_manage(env, "migrate", "--noinput", capture=True)
        yield
    finally:
        try:
            drop_database(db_name)
        except Exception as exc:  # report, and go on removing the rest
            print(f"Could not drop database {db_name}: {exc}", file=sys.stderr)


# --- Dockspace processes ----------------------------------------------------------------------------


def bench_env(db_name, data_dir, values=None, *, unset=()):
    """The environment of a Dockspace process on the database `db_name`: DEBUG off, a fresh secret key, its data
    under `data_dir`, then `values`. REDIS_URL and the names in `unset` are removed from this environment
    (without REDIS_URL the cache is files under the data directory: nothing shared) unless `values` sets them."""
    values = {
        "DJANGO_SETTINGS_MODULE": "dockspace.settings",
        "DATABASE_URL": database_url(db_name),
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64)[:50],
        "DOCKSPACE_DATA_DIR": str(data_dir),
        **(values or {}),
    }
    env = dict(os.environ)
    for name in {*values, "REDIS_URL", *unset}:
        env.pop(name, None)
        env.pop(f"{name}_FILE", None)  # NAME and NAME_FILE together are refused by the settings
    env.update(values)
    return env


def server_parser(description, *, seconds, unit):
    """The options of a script that loads gunicorn: --seconds per `unit`, --concurrency, --workers. The script
    adds its own, then --keep-temp."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seconds", type=float, default=seconds, help=f"length of each {unit} (default {seconds:g})")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    return parser


def server_env(db_name, data_dir, port):
    """bench_env for gunicorn on 127.0.0.1:`port`, served over plain http."""
    return bench_env(
        db_name,
        data_dir,
        {"SECURE_SSL_REDIRECT": "0", "DOCKSPACE_URL": f"http://127.0.0.1:{port}", "ALLOWED_HOSTS": "127.0.0.1"},
    )


def run_manage(env, *args, capture=False):
    """`manage.py *args`; exits the script when it fails. With `capture`, returns its output, shown on failure."""
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, text=True, capture_output=capture, check=False
    )
    if result.returncode != 0:
        if capture:
            sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"manage.py {args[0]} failed with exit status {result.returncode}.")
    return result.stdout if capture else None


def run_shell(env, code, spec_path, marker):
    """Runs `code` in `manage.py shell -c` with BENCH_SPEC naming `spec_path`; returns the JSON it printed after
    `marker` at the start of a line."""
    out = run_manage({**env, "BENCH_SPEC": str(spec_path)}, "shell", "-c", code, capture=True)
    line = next((line for line in out.splitlines() if line.startswith(marker + " ")), None)
    if line is None:
        raise SystemExit(f"The {marker} script printed no summary:\n" + out[-4000:])
    return json.loads(line.removeprefix(marker + " "))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


@contextmanager
def gunicorn_server(env, port, workers, log_path):
    """`gunicorn dockspace.wsgi` on 127.0.0.1:`port`, answering /healthz; stopped on the way out. After a run
    that ended normally, says so if gunicorn had exited in the meantime."""
    print(f"Starting gunicorn ({workers} workers) on 127.0.0.1:{port} ...", flush=True)
    proc = start_gunicorn(env, port, workers, log_path)
    try:
        wait_healthy(proc, port, log_path)
        yield proc
        if proc.poll() is not None:
            print(f"  gunicorn exited during the run with status {proc.returncode}.")
    finally:
        stop_gunicorn(proc)


# --- server CPU time --------------------------------------------------------------------------------


def _cpu_seconds_of(pid):
    """utime + stime of a process from /proc (Linux), or 0.0 when it is gone or unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pids(gunicorn_proc, db_name):
    """The gunicorn master and workers, and the PostgreSQL backends connected to `db_name`."""
    pids = [gunicorn_proc.pid]
    try:
        children = Path(f"/proc/{gunicorn_proc.pid}/task/{gunicorn_proc.pid}/children").read_text().split()
        pids += [int(pid) for pid in children]
    except OSError:
        pass
    with pg_connect("postgres") as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [db_name]).fetchall()
    return pids, [row[0] for row in rows]


def server_cpu_seconds(gunicorn_proc, db_name):
    """(gunicorn CPU seconds, PostgreSQL CPU seconds) used so far by the processes serving the bench: compare two
    readings around a phase. CPU time, unlike latency, hardly depends on what else the machine runs. Backends that
    end between the readings are not counted (Dockspace keeps its connections, DATABASE_CONN_MAX_AGE)."""
    web, database = server_pids(gunicorn_proc, db_name)
    return {pid: _cpu_seconds_of(pid) for pid in web}, {pid: _cpu_seconds_of(pid) for pid in database}


def cpu_used(before, after):
    """CPU seconds between two server_cpu_seconds() readings: (gunicorn, PostgreSQL)."""
    return tuple(
        sum(value - start.get(pid, 0.0) for pid, value in end.items()) for start, end in zip(before, after, strict=True)
    )


def scan_log(log_path):
    """Prints the error and warning lines of a gunicorn log (the first 15), or that there were none."""
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


# --- timed phases -----------------------------------------------------------------------------------


class RequestFailed(Exception):
    """A request that did not get the expected answer; the message is the reason, grouped in the report."""


class Exhausted(Exception):
    """Raised by a phase's job when it has nothing left to work with: its client thread stops early."""


class Phase:
    """Client threads repeating one job for a while; the latencies of the jobs that went through, the reasons
    of those that failed.

    `worker(port, index)` is called once in each client thread and returns `(one, finish)`: `one()` does one job
    (raising RequestFailed, an OSError or an HTTPException when it fails, Exhausted when it cannot go on), and
    `finish`, unless None, is called when the thread is done.
    """

    def __init__(self, name, worker):
        self.name = name
        self.worker = worker
        self.latencies = []
        self.failures = Counter()
        self.exhausted = False
        self.elapsed = 0.0
        self.lock = threading.Lock()

    def run(self, port, seconds, concurrency):
        started = time.monotonic()
        deadline = started + seconds
        stop = threading.Event()

        def client(index):
            one, finish = self.worker(port, index)
            latencies, failures = [], Counter()
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    began = time.perf_counter()
                    try:
                        one()
                    except Exhausted:
                        self.exhausted = True
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
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.2)  # in short waits, so that Ctrl-C gets through
        finally:
            stop.set()
        self.elapsed = time.monotonic() - started

    def figures(self, decimals=0):
        """The report's columns: done, per second, p50 ms, p99 ms, failures."""
        done = len(self.latencies)
        rate = done / self.elapsed if self.elapsed else 0.0
        p50 = ms(percentile(self.latencies, 0.50), decimals) if done else "-"
        p99 = ms(percentile(self.latencies, 0.99), decimals) if done else "-"
        return f"{done:>9} {rate:>11.1f} {p50:>8} {p99:>8} {sum(self.failures.values()):>9}"


def print_notes(phases, exhausted):
    """For each phase, the note `exhausted` if it ran out of work, and its failures grouped by reason."""
    for phase in phases:
        if phase.exhausted:
            print(f"  NOTE: {phase.name}: {exhausted}")
        if phase.failures:
            print(f"  failures in {phase.name}:")
            for reason, count in phase.failures.most_common():
                print(f"    {count:>6} x {reason}")


def percentile(values, fraction):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def ms(value, decimals=0):
    return f"{value * 1000:.{decimals}f}"


def cpu_counts():
    """(CPUs of the machine, CPUs this process may run on)."""
    cpus = os.cpu_count()
    try:
        return cpus, len(os.sched_getaffinity(0))
    except AttributeError:
        return cpus, cpus


def redis_client(url):
    import redis

    return redis.Redis.from_url(url)


@contextmanager
def emptied_redis(url):
    """Refuses a Redis database that holds keys; empties it on the way out: whatever is in it then is ours."""
    if not url:
        yield
        return
    keys = redis_client(url).dbsize()
    if keys:
        raise SystemExit(f"{url} holds {keys} keys; give an empty Redis database with --redis-url.")
    try:
        yield
    finally:
        try:
            redis_client(url).flushdb()
        except Exception as exc:  # report, and go on removing the rest
            print(f"Could not empty {url}: {exc}", file=sys.stderr)
