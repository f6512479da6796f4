"""DMS export at scale: full export, no-change and one-change syncs, and a CSV import, on PostgreSQL.

Run by hand from the project root:

    .venv/bin/python bench/dms_export.py [--sizes 10000,50000,100000] [--csv-rows 10000]

It creates (after dropping) the PostgreSQL database `dockspace_bench_dms` on 127.0.0.1:5432, migrates it
and grows it to each size in turn (as many mailboxes as aliases, in 100 domains). Every measured phase runs
in its own Django process, so its peak memory is its own. At each size: a full export into an empty DMS
directory next to plain SQL queries writing the same lines to files. At the largest size: a sync with
nothing changed and one after one mailbox changed. Then a CSV import into a new domain, with a real Celery
worker doing the syncs it causes, next to hashing the same passwords alone. It prints what it measured and
never asserts timings. The database, the Celery worker, the Redis keys and the temporary data directory
are removed at the end, also on Ctrl-C.
"""

import argparse
import csv
import json
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import harness

CELERY = str(Path(sys.executable).with_name("celery"))

DB_NAME = harness.bench_db_name("dockspace_bench_dms")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
DOMAINS = 100
CATCH_ALLS = 3
LISTS, LIST_MEMBERS = 5, 50
CSV_DOMAIN = "csv.bench.test"
SYNC_DELAY = 2  # DOCKSPACE_DMS_SYNC_DELAY for the whole run, in seconds
MARK = "BENCH-RESULT "

# Shared by every Django phase: run through `manage.py shell -c`, reads its spec, prints one result line.
PRELUDE = r"""
import json, os, resource, time
from django.db import connection

spec = json.loads(os.environ["BENCH_SPEC"])


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds():
    # Every thread of this process and its finished child processes (the import's hashing workers), not PostgreSQL's.
    usages = (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    return sum(usage.ru_utime + usage.ru_stime for usage in usages)


def emit(result):
    print("BENCH-RESULT " + json.dumps(result), flush=True)
"""

# Grows the database from spec["start"] to spec["stop"] mailboxes (and aliases). bulk_create sends no
# signals, so filling queues no DMS sync; every person shares one password hash (hashing is not measured).
SETUP_CODE = (
    PRELUDE
    + r"""
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone
from mail.models import Alias, AliasTarget, Domain, Group, Mailbox
from accounts.mail_hashes import mail_hash

User = get_user_model()
GIB = 1024**3
CHUNK = 5000
QUOTAS = (0, GIB, 2 * GIB, 5 * GIB)
start, stop, domains = spec["start"], spec["stop"], spec["domains"]


def domain_name(n):
    return f"d{n:03d}.bench.test"


def mailbox_address(i):
    return f"user{i:06d}@{domain_name(i % domains)}"


def state(i):
    if i % 200 == 2:
        return Mailbox.DISABLED
    return Mailbox.SUSPENDED if i % 100 == 1 else Mailbox.ACTIVE


began = time.perf_counter()
now = timezone.now()
web_hash = make_password(spec["password"])
dms_hash = mail_hash(spec["password"], settings.MAIL_HASH_SCHEME)
with transaction.atomic():
    if spec["first"]:
        Domain.objects.bulk_create(
            [Domain(name=domain_name(n)) for n in range(domains)] + [Domain(name=spec["csv_domain"])]
        )
    domain_ids = dict(Domain.objects.values_list("name", "id"))
    for lo in range(start, stop, CHUNK):
        block = range(lo, min(lo + CHUNK, stop))
        people = User.objects.bulk_create(
            [
                User(
                    email=mailbox_address(i),
                    password=web_hash,
                    mail_password_hash=dms_hash,
                    full_name=f"Bench Person {i}",
                    email_verified_at=now,
                )
                for i in block
            ]
        )
        Mailbox.objects.bulk_create(
            [
                Mailbox(
                    person_id=person.pk,
                    domain_id=domain_ids[domain_name(i % domains)],
                    local_part=f"user{i:06d}",
                    address=mailbox_address(i),
                    quota=QUOTAS[i % len(QUOTAS)],
                    state=state(i),
                )
                for i, person in zip(block, people)
            ]
        )
        aliases = Alias.objects.bulk_create(
            [
                Alias(
                    domain_id=domain_ids[domain_name(i * 7 % domains)],
                    local_part=f"alias{i:06d}",
                    address=f"alias{i:06d}@{domain_name(i * 7 % domains)}",
                )
                for i in block
            ]
        )
        targets = []
        for i, alias in zip(block, aliases):
            targets.append(AliasTarget(alias_id=alias.pk, address=mailbox_address((i * 7919 + 13) % stop), position=0))
            if i % 3 == 0:
                targets.append(AliasTarget(alias_id=alias.pk, address=f"ext{i:06d}@elsewhere.example", position=1))
        AliasTarget.objects.bulk_create(targets)
    if spec["first"]:
        catch_alls = Alias.objects.bulk_create(
            [
                Alias(domain_id=domain_ids[domain_name(n)], local_part="", address=f"@{domain_name(n)}")
                for n in range(spec["catch_alls"])
            ]
        )
        AliasTarget.objects.bulk_create(
            [AliasTarget(alias_id=a.pk, address=f"catchall{n}@elsewhere.example") for n, a in enumerate(catch_alls)]
        )
        groups = Group.objects.bulk_create(
            [
                Group(
                    name=f"bench-list-{g}",
                    list_domain_id=domain_ids[domain_name(g)],
                    list_local_part=f"list{g}",
                    list_address=f"list{g}@{domain_name(g)}",
                )
                for g in range(spec["lists"])
            ]
        )
        size = spec["list_members"]
        members = []
        for g, group in enumerate(groups):
            emails = [mailbox_address(i) for i in range(g * size, (g + 1) * size)]
            members += [
                Group.members.through(group_id=group.pk, user_id=pk)
                for pk in User.objects.filter(email__in=emails).values_list("pk", flat=True)
            ]
        Group.members.through.objects.bulk_create(members)
emit(
    {
        "seconds": time.perf_counter() - began,
        "mailboxes": Mailbox.objects.count(),
        "suspended": Mailbox.objects.filter(state=Mailbox.SUSPENDED).count(),
        "disabled": Mailbox.objects.filter(state=Mailbox.DISABLED).count(),
        "aliases": Alias.objects.exclude(local_part="").count(),
        "catch_alls": Alias.objects.filter(local_part="").count(),
        "targets": AliasTarget.objects.count(),
        "lists": Group.objects.filter(list_address__isnull=False).count(),
        "list_members": Group.members.through.objects.count(),
        "scheme": settings.MAIL_HASH_SCHEME,
        "dkim_layout": settings.DKIM_LAYOUT,
    }
)
"""
)

# One dms_sync(), timed, with this process's peak memory; optionally first changes one mailbox (a plain
# UPDATE: no signal, so no queued task) and afterwards times the three stages once more, files in place.
SYNC_CODE = (
    PRELUDE
    + r"""
from django.conf import settings
from django.db.models import F
from mail.dms import catalog, sync
from mail.dms.writer import write_files
from mail.models import DmsSyncState, Mailbox

connection.ensure_connection()
state = DmsSyncState.load()
before_count = state.write_count
changed_address = None
if spec.get("change_one"):
    mailbox = Mailbox.objects.usable().order_by("pk").first()
    Mailbox.objects.filter(pk=mailbox.pk).update(quota=F("quota") + 1024**3)
    changed_address = mailbox.address
baseline = peak_mib()
began = time.perf_counter()
report = sync.dms_sync()
seconds = time.perf_counter() - began
peak = peak_mib()
result = {
    "seconds": seconds,
    "baseline_mib": baseline,
    "peak_mib": peak,
    "changed": report.changed,
    "removed": report.removed,
    "write_count_delta": DmsSyncState.load().write_count - before_count,
    "changed_address": changed_address,
    "bytes": sum((settings.DMS_DIR / p).stat().st_size for p in report.checksums),
}
if spec.get("breakdown"):
    from mail.dms.render import render_postfix_accounts
    from mail.dms.snapshot import Account

    # What a suspended account's line ends with, so the SQL baseline writes the same bytes.
    sample = render_postfix_accounts([Account(address="a@b.test", password_hash="{X}h", is_suspended=True)])
    result["suspended_suffix"] = sample.decode().splitlines()[-1].removeprefix("a@b.test|{X}h")
    began = time.perf_counter()
    snapshot = catalog.collected()
    result["snapshot_seconds"] = time.perf_counter() - began
    began = time.perf_counter()
    files = catalog.render_snapshot(snapshot)
    result["render_seconds"] = time.perf_counter() - began
    began = time.perf_counter()
    again = write_files(
        settings.DMS_DIR,
        files,
        history_dir=settings.DMS_HISTORY_DIR,
        keep=settings.DMS_HISTORY_KEEP,
        file_mode=catalog.file_mode,
    )
    result["compare_seconds"] = time.perf_counter() - began
    result["compare_changed"] = again.changed
    result["accounts"] = len(snapshot["postfix-accounts.cf"])
    result["virtual_entries"] = len(snapshot["postfix-virtual.cf"].entries)
emit(result)
"""
)

# The baseline: plain SQL, no Django, streaming each file's lines from a server-side cursor to a file and
# fsyncing it (the writer fsyncs too). Same lines as the export: accounts, quotas, virtual (aliases, lists,
# catch-all identity lines), send and receive access.
SQL_CODE = r"""
import json, os, resource, sys, time
import psycopg

spec = json.loads(os.environ["BENCH_SPEC"])
QUOTA = (
    "CASE WHEN m.quota = 0 THEN '0'"
    " WHEN m.quota % 1099511627776 = 0 THEN (m.quota / 1099511627776)::text || 'T'"
    " WHEN m.quota % 1073741824 = 0 THEN (m.quota / 1073741824)::text || 'G'"
    " WHEN m.quota % 1048576 = 0 THEN (m.quota / 1048576)::text || 'M'"
    " WHEN m.quota % 1024 = 0 THEN (m.quota / 1024)::text || 'k'"
    " ELSE m.quota::text || 'B' END"
)
LIVE = (
    "FROM mail_mailbox m JOIN accounts_user u ON u.id = m.person_id JOIN mail_domain d ON d.id = m.domain_id"
    " WHERE d.is_active AND m.state <> 'disabled' AND u.mail_password_hash <> ''"
)
# DMS line order (length, more dots first, then bytewise as Python sorts: the database's default
# collation would order some addresses differently).
BY_ADDRESS = (
    " ORDER BY length(m.address), length(m.address) - length(replace(m.address, '.', '')) DESC,"
    ' m.address COLLATE "C"'
)
# Addresses DMS no longer delivers to: targets there are dropped, an alias left with none is refused.
DEAD = (
    "(SELECT m.address FROM mail_mailbox m JOIN mail_domain d ON d.id = m.domain_id"
    "  WHERE m.state = 'disabled' OR NOT d.is_active"
    " UNION SELECT a.address FROM mail_alias a JOIN mail_domain d ON d.id = a.domain_id"
    "  WHERE NOT a.is_active OR NOT d.is_active"
    " UNION SELECT g.list_address FROM mail_group g JOIN mail_domain d ON d.id = g.list_domain_id"
    "  WHERE NOT d.is_active)"
)
QUERIES = {
    "postfix-accounts.cf": "SELECT m.address || '|' || u.mail_password_hash"
    " || CASE WHEN m.state = 'suspended' OR NOT u.is_active THEN %(suffix)s ELSE '' END " + LIVE + BY_ADDRESS,
    "dovecot-quotas.cf": "SELECT m.address || ':' || " + QUOTA + " " + LIVE + BY_ADDRESS,
    "postfix-virtual.cf": "SELECT line FROM ("
    " SELECT a.address AS key, a.address || ' ' || string_agg(t.address, ',' ORDER BY t.position) AS line"
    "  FROM mail_alias a JOIN mail_domain d ON d.id = a.domain_id JOIN mail_aliastarget t ON t.alias_id = a.id"
    "  WHERE a.is_active AND d.is_active AND t.address NOT IN " + DEAD + " GROUP BY a.id, a.address"
    " UNION ALL"
    " SELECT g.list_address, g.list_address || ' ' || string_agg(m.address, ',' ORDER BY m.address)"
    "  FROM mail_group g JOIN mail_group_members gm ON gm.group_id = g.id"
    "  JOIN mail_mailbox m ON m.person_id = gm.user_id JOIN accounts_user u ON u.id = m.person_id"
    "  JOIN mail_domain d ON d.id = g.list_domain_id"
    "  WHERE g.list_address IS NOT NULL AND d.is_active AND m.state <> 'disabled' AND u.mail_password_hash <> ''"
    "  GROUP BY g.id, g.list_address"
    " UNION ALL"
    " SELECT m.address, m.address || ' ' || m.address " + LIVE + " AND EXISTS (SELECT 1 FROM mail_alias c"
    "  WHERE c.domain_id = m.domain_id AND c.local_part = '' AND c.is_active)"
    "  AND NOT EXISTS (SELECT 1 FROM mail_alias s WHERE s.address = m.address AND s.is_active)"
    ") v ORDER BY length(key), length(key) - length(replace(key, '.', '')) DESC, key COLLATE \"C\"",
    "postfix-send-access.cf": "SELECT m.address || chr(9) || 'REJECT' FROM mail_mailbox m"
    " JOIN mail_domain d ON d.id = m.domain_id JOIN accounts_user u ON u.id = m.person_id"
    " WHERE d.is_active AND (m.state = 'suspended' OR NOT u.is_active) AND u.mail_password_hash <> ''"
    "  AND m.state <> 'disabled'"
    ' ORDER BY m.address COLLATE "C"',
    "postfix-receive-access.cf": "SELECT address || chr(9) || 'REJECT' FROM ("
    " SELECT m.address FROM mail_mailbox m"
    "  JOIN mail_domain d ON d.id = m.domain_id WHERE d.is_active AND m.state = 'disabled'"
    " UNION ALL SELECT a.address FROM mail_alias a JOIN mail_domain d ON d.id = a.domain_id"
    "  WHERE a.is_active AND d.is_active AND NOT a.keep_copy"
    "  AND EXISTS (SELECT 1 FROM mail_aliastarget t WHERE t.alias_id = a.id)"
    "  AND NOT EXISTS (SELECT 1 FROM mail_aliastarget t WHERE t.alias_id = a.id AND t.address NOT IN "
    + DEAD
    + ")"
    ') r ORDER BY address COLLATE "C"',
}
conn = psycopg.connect(spec["dsn"])
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
began = time.perf_counter()
lines = {}
with conn.transaction():
    for name, query in QUERIES.items():
        path = os.path.join(spec["out"], name)
        count = 1
        with conn.cursor(name="bench") as cur, open(path, "w", encoding="utf-8", newline="\n") as f:
            cur.itersize = 5000
            cur.execute(query, {"suffix": spec["suspended_suffix"]} if "%(suffix)s" in query else None)
            f.write("# Generated by a plain SQL query.\n")
            for (line,) in cur:
                f.write(line + "\n")
                count += 1
            f.flush()
            os.fsync(f.fileno())
        lines[name] = count
seconds = time.perf_counter() - began
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out_bytes = sum(os.path.getsize(os.path.join(spec["out"], n)) for n in QUERIES)
print("BENCH-RESULT " + json.dumps(
    {"seconds": seconds, "baseline_mib": baseline, "peak_mib": peak, "lines": lines, "bytes": out_bytes}
), flush=True)
"""

# Hashing alone: the hashes per password the import computes (csv_io._hash_pair: the Dovecot hash of the
# configured scheme, and the web password made from it), spread over the same thread pool the import uses.
HASH_CODE = (
    PRELUDE
    + r"""
import csv
from concurrent.futures import ThreadPoolExecutor
from django.conf import settings
from django.contrib.auth.hashers import get_hasher, identify_hasher, make_password
from mail import csv_io
from accounts.mail_hashes import mail_hash

with open(spec["csv"], newline="", encoding="utf-8") as f:
    passwords = [row["password"] for row in csv.DictReader(f)]
scheme = settings.MAIL_HASH_SCHEME
pool_min = getattr(csv_io, "POOL_MIN_PASSWORDS", 8)
# The import's own choice of pool size when it names one, else one thread per CPU as it used to.
pool_size = getattr(csv_io, "_hashing_threads", lambda: os.cpu_count() or 1)()
threads = pool_size if len(passwords) >= pool_min else 1


def hash_pair(password, scheme):
    return make_password(password), mail_hash(password, scheme)


# What the import computes per password, when it says (today: the mail hash only, the web password being that
# hash behind the dms$ marker until the first sign-in).
hash_pair = getattr(csv_io, "_hash_pair", hash_pair)


pool_kind = "threads"
if hasattr(csv_io, "_hash_all"):
    # The import's own pool: worker processes for a GIL-bound scheme (then CPU seconds exclude the workers').
    many = len(passwords) >= getattr(csv_io, "PROCESS_POOL_MIN_PASSWORDS", 0)
    if scheme in getattr(csv_io, "GIL_BOUND_SCHEMES", ()) and many and csv_io._can_fork():
        pool_kind = "processes"

began, cpu = time.perf_counter(), cpu_seconds()
if hasattr(csv_io, "_hash_all"):
    hashes = [pair for chunk in csv_io._hash_all(passwords, scheme) for pair in chunk]
elif threads == 1:
    hashes = [hash_pair(p, scheme) for p in passwords]
else:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        hashes = list(pool.map(hash_pair, passwords, [scheme] * len(passwords)))
seconds, cpu = time.perf_counter() - began, cpu_seconds() - cpu
emit(
    {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "passwords": len(hashes),
        "threads": threads,
        "pool": pool_kind,
        "web": identify_hasher(hashes[0][0]).algorithm if hashes else get_hasher().algorithm,
        "mail": scheme,
    }
)
"""
)

# The import, through the real function; counts the sync requests the signals make and the on-commit
# callbacks that then try to queue a task (the worker's log says how many tasks were queued and run).
IMPORT_CODE = (
    PRELUDE
    + r"""
import inspect
from mail import csv_io
from mail.dms import sync
from mail.models import Mailbox

counts = {"requests": 0, "on_commit": 0}
real_request, real_on_commit = sync.request_sync, sync._on_commit


def counting_request():
    counts["requests"] += 1
    real_request()


def counting_on_commit():
    counts["on_commit"] += 1
    real_on_commit()


sync.request_sync, sync._on_commit = counting_request, counting_on_commit

connection.ensure_connection()
before = Mailbox.objects.count()
baseline = peak_mib()
cpu = cpu_seconds()
kwargs = {"actor_label": "bench"} if "actor_label" in inspect.signature(csv_io.mailboxes_import_csv).parameters else {}
began = time.perf_counter()
try:
    csv_io.mailboxes_import_csv(spec["csv"], **kwargs)
except csv_io.CsvImportError as e:
    emit({"error": str(e)[:3000]})
    raise SystemExit(0)
seconds = time.perf_counter() - began
emit(
    {
        "seconds": seconds,
        "created": Mailbox.objects.count() - before,
        "baseline_mib": baseline,
        "peak_mib": peak_mib(),
        "cpu_seconds": cpu_seconds() - cpu,
        **counts,
    }
)
"""
)


# --- database, Redis and processes -------------------------------------------------------------------


def vacuum_analyze():
    # Fresh planner statistics after each bulk fill, so the queries are planned for the real row counts.
    with harness.pg_connect(DB_NAME) as conn:
        conn.execute("VACUUM ANALYZE")


def sync_state():
    with harness.pg_connect(DB_NAME) as conn:
        row = conn.execute("SELECT write_count, last_changed FROM mail_dmssyncstate WHERE id = 1").fetchone()
    return (row[0], row[1]) if row else (0, [])


def dms_env(data_dir, redis_url):
    """The environment of every Django process of the run, the Celery worker's too."""
    values = {"DOCKSPACE_URL": "https://bench.test", "DOCKSPACE_DMS_SYNC_DELAY": str(SYNC_DELAY)}
    if redis_url:
        values["REDIS_URL"] = redis_url
    return harness.bench_env(
        DB_NAME,
        data_dir,
        values,
        unset=("DOCKSPACE_DMS_DIR", "DOCKSPACE_DMS_HISTORY_DIR", "DOCKSPACE_MAIL_HASH_SCHEME"),
    )


def run_phase(env, name, code, spec, *, django=True):
    """Runs one phase in a fresh process and returns the dict it printed."""
    command = [harness.PYTHON, "manage.py", "shell", "-c", code] if django else [harness.PYTHON, "-c", code]
    result = subprocess.run(
        command,
        cwd=harness.ROOT,
        env={**env, "BENCH_SPEC": json.dumps(spec)},
        text=True,
        capture_output=True,
        check=False,
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith(MARK)), None)
    if result.returncode != 0 or line is None:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-6000:])
        raise SystemExit(f"Phase {name} failed (exit status {result.returncode}).")
    return json.loads(line.removeprefix(MARK))


def empty_dms_dirs(data_dir):
    for name in ("dms", "dms-history"):
        shutil.rmtree(data_dir / name, ignore_errors=True)


# --- the Celery worker --------------------------------------------------------------------------------

RECEIVED_RE = re.compile(r"Task mail\.sync_dms_files\[([0-9a-f-]+)\] received")
SUCCEEDED_RE = re.compile(r"Task mail\.sync_dms_files\[([0-9a-f-]+)\] succeeded in ([0-9.]+)s: (.*)")
FAILED_RE = re.compile(r"Task mail\.sync_dms_files\[([0-9a-f-]+)\] (raised unexpected|retry)")


class Worker:
    """A real `celery worker --pool solo` against the bench database and broker, logging to a file."""

    def __init__(self, env, log_path):
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [CELERY, "-A", "dockspace", "worker", "--pool", "solo", "--loglevel", "INFO", "-n", "bench-dms@%h"],
            cwd=harness.ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only this script, which then stops the worker itself
        )

    def text(self):
        return Path(self.log_path).read_text(errors="replace")

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"The Celery worker exited with status {self.proc.returncode}:\n{self.text()[-3000:]}")
            if re.search(r"@\S+ ready\.", self.text()):
                return
            time.sleep(0.2)
        raise SystemExit(f"The Celery worker was not ready within {timeout} s; see {self.log_path}.")

    def tasks(self):
        text = self.text()
        return {
            "received": RECEIVED_RE.findall(text),
            "succeeded": SUCCEEDED_RE.findall(text),
            "failed": FAILED_RE.findall(text),
        }

    def wait_drained(self, expected_at_least, quiet, timeout=600):
        """Until every received sync task has finished, at least `expected_at_least` were received, and
        nothing new arrived for `quiet` seconds. Returns the seconds waited."""
        began = time.monotonic()
        seen, last_change = None, time.monotonic()
        while time.monotonic() - began < timeout:
            tasks = self.tasks()
            state = (len(tasks["received"]), len(tasks["succeeded"]), len(tasks["failed"]))
            if state != seen:
                seen, last_change = state, time.monotonic()
            received, succeeded, failed = state
            settled = received >= expected_at_least and succeeded + failed >= received
            if settled and time.monotonic() - last_change >= quiet:
                return time.monotonic() - began
            if self.proc.poll() is not None:
                raise SystemExit(f"The Celery worker exited with status {self.proc.returncode}; see {self.log_path}.")
            time.sleep(0.25)
        raise SystemExit(f"The sync tasks did not settle within {timeout} s; see {self.log_path}.")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# --- phases ------------------------------------------------------------------------------------------


def write_csv(path, rows):
    """address,name,quota,password rows on a domain of their own; every password distinct and valid."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["address", "name", "quota", "password"])
        for i in range(rows):
            quota = "" if i % 2 else "2G"
            writer.writerow([f"csv{i:06d}@{CSV_DOMAIN}", f"Imported Person {i}", quota, secrets.token_urlsafe(15)])


def export_at_size(env, data_dir, temp_dir):
    empty_dms_dirs(data_dir)
    export = run_phase(env, "full export", SYNC_CODE, {"breakdown": True})
    out = temp_dir / "sql-baseline"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    spec = {"dsn": harness.database_url(DB_NAME), "out": str(out), "suspended_suffix": export["suspended_suffix"]}
    sql = run_phase(env, "plain SQL", SQL_CODE, spec, django=False)
    sql["differs"] = [name for name in sql["lines"] if _body(out / name) != _body(data_dir / "dms" / name)]
    return export, sql


def _body(path):
    """A file's lines after its header line."""
    with open(path, "rb") as f:
        f.readline()
        return f.read()


def csv_phase(env, args, temp_dir, redis_url):
    csv_path = temp_dir / "mailboxes.csv"
    write_csv(csv_path, args.csv_rows)
    print(f"Hashing {args.csv_rows} passwords alone ...", flush=True)
    hashing = run_phase(env, "hashing", HASH_CODE, {"csv": str(csv_path)})

    before_count, _ = sync_state()
    worker = Worker(env, temp_dir / "worker.log")
    try:
        worker.wait_ready()
        time.sleep(1)  # a task left in the queue before the import would arrive now
        stale = len(worker.tasks()["received"])
        print(f"Importing {args.csv_rows} rows with a Celery worker running ...", flush=True)
        imported = run_phase(env, "CSV import", IMPORT_CODE, {"csv": str(csv_path)})
        if "error" in imported:
            raise SystemExit("The CSV import refused the file:\n" + imported["error"])
        waited = worker.wait_drained(stale + min(1, imported["on_commit"]), quiet=SYNC_DELAY + 3)
        tasks = worker.tasks()
    finally:
        worker.stop()
    after_count, last_changed = sync_state()
    return {
        "rows": args.csv_rows,
        "hashing": hashing,
        "import": imported,
        "stale_tasks": stale,
        "tasks_received": len(tasks["received"]) - stale,
        "tasks_succeeded": tasks["succeeded"],
        "tasks_failed": len(tasks["failed"]),
        "write_count_delta": after_count - before_count,
        "last_changed": last_changed,
        "settle_seconds": waited,
        "broker": "Redis " + redis_url if redis_url else "embedded filesystem broker",
    }


# --- report ------------------------------------------------------------------------------------------


def mib(value):
    return f"{value:.0f}"


def report(setups, results, nochange, onechange, csv_result):
    cpus, usable = harness.cpu_counts()
    last = setups[-1]
    print()
    print("Dockspace DMS export benchmark")
    print(f"  database          PostgreSQL {DB_NAME} on {harness.PG_HOST}:{harness.PG_PORT}; DEBUG=0")
    print(f"  mail hash scheme  {last['scheme']}, one hash shared by every bench person")
    print(f"  DKIM layout       {last['dkim_layout']}, no keys: their files do not grow with the rows")
    print(f"  CPUs              {cpus} (usable by this process: {usable})")
    print(
        f"  data per size     N mailboxes in {DOMAINS} domains (~1% suspended, ~0.5% disabled), N aliases with"
        f" 1-2 targets, {last['catch_alls']} catch-alls, {last['lists']} lists of {LIST_MEMBERS}"
    )
    print()
    print("  Full export: dms_sync() into an empty DMS directory, each in a fresh process; peak = ru_maxrss,")
    print("  +MiB = over the same process just before the sync. SQL = plain queries streaming the same lines")
    print("  to files (server-side cursor, fsync). Goal: export within 3x of SQL, memory flat as rows grow.")
    header = (
        f"  {'mailboxes':>9} {'aliases':>8} {'export s':>9} {'SQL s':>7} {'ratio':>6}"
        f" {'export peak MiB':>15} {'+MiB':>6} {'SQL peak MiB':>12} {'+MiB':>5} {'files MB':>8}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for setup, (export, sql) in zip(setups, results, strict=True):
        ratio = export["seconds"] / sql["seconds"] if sql["seconds"] else float("inf")
        print(
            f"  {setup['mailboxes']:>9} {setup['aliases']:>8} {export['seconds']:>9.2f} {sql['seconds']:>7.2f}"
            f" {ratio:>5.1f}x {mib(export['peak_mib']):>15} {mib(export['peak_mib'] - export['baseline_mib']):>6}"
            f" {mib(sql['peak_mib']):>12} {mib(sql['peak_mib'] - sql['baseline_mib']):>5}"
            f" {export['bytes'] / 1e6:>8.1f}"
        )
    print()
    print("  The in-memory Snapshot path (previews, tests; the sync streams), timed after the sync, files in place:")
    print(f"  {'mailboxes':>9} {'snapshot s':>11} {'render s':>9} {'compare s':>10} {'accounts':>9} {'virtual':>8}")
    for setup, (export, _) in zip(setups, results, strict=True):
        print(
            f"  {setup['mailboxes']:>9} {export['snapshot_seconds']:>11.2f} {export['render_seconds']:>9.2f}"
            f" {export['compare_seconds']:>10.2f} {export['accounts']:>9} {export['virtual_entries']:>8}"
        )
    differing = [(setup["mailboxes"], sql["differs"]) for setup, (_, sql) in zip(setups, results, strict=True)]
    if any(names for _, names in differing):
        print(f"  NOTE: the SQL baseline's files differ from the export's (after the header): {differing}")
    else:
        print("  The SQL baseline wrote byte for byte the export's five .cf files (after the header), at every size.")
    print()
    print(f"  Syncs at {last['mailboxes']} mailboxes, {last['aliases']} aliases (fresh process each):")
    for label, run in (("nothing changed", nochange), ("one mailbox's quota changed", onechange)):
        written = ", ".join(run["changed"] + run["removed"]) or "nothing"
        print(
            f"    {label:<28} {run['seconds']:>6.2f} s  wrote {written}; write_count +{run['write_count_delta']};"
            f" peak {mib(run['peak_mib'])} MiB (+{mib(run['peak_mib'] - run['baseline_mib'])})"
        )
    if csv_result is None:
        return
    hashing, imported = csv_result["hashing"], csv_result["import"]
    ratio = imported["seconds"] / hashing["seconds"] if hashing["seconds"] else float("inf")
    kind = hashing.get("pool", "threads")
    pool = f"a pool of {hashing['threads']} {kind}, as the import" if hashing["threads"] > 1 else "one thread"
    print()
    print(f"  CSV import of {csv_result['rows']} rows (address,name,quota,password) into a new domain:")
    print(
        f"    hashing alone     {hashing['seconds']:>8.1f} s  {hashing['cpu_seconds']:>7.1f} CPU s"
        f"  ({hashing['passwords']} x {hashing['web']} + {hashing['mail']}, {pool})"
    )
    print(
        f"    import            {imported['seconds']:>8.1f} s  {imported['cpu_seconds']:>7.1f} CPU s"
        f"  ({imported['created']} mailboxes created; peak {mib(imported['peak_mib'])} MiB,"
        f" +{mib(imported['peak_mib'] - imported['baseline_mib'])})"
    )
    print(f"    ratio             {ratio:>8.2f}x wall, import / hashing alone (goal: within 1.3x)")
    print(
        "                      CPU seconds are this Python process's and its hashing workers' (PostgreSQL's are not"
        " in them); wall time is what counts"
    )
    print(
        f"    DMS writes        write_count +{csv_result['write_count_delta']}"
        f" ({', '.join(csv_result['last_changed']) or 'no file'});"
        f" {csv_result['tasks_received']} sync task(s) queued, {len(csv_result['tasks_succeeded'])} ran"
        f" ({csv_result['tasks_failed']} failed or retried) on a real worker, {csv_result['broker']}"
    )
    for _, runtime, summary in csv_result["tasks_succeeded"]:
        print(f"                      a sync ran {float(runtime):.2f} s: {summary}")
    print(
        f"    sync requests     {imported['requests']} from signals, {imported['on_commit']} on-commit callback(s)"
        " (rows for new people are written in bulk: one request for them all)"
    )
    if csv_result["stale_tasks"]:
        print(f"  NOTE: {csv_result['stale_tasks']} sync task(s) were already queued before the import; not counted.")


# --- main ----------------------------------------------------------------------------------------------


def parse_sizes(text):
    sizes = sorted({int(x) for x in text.split(",") if x.strip()})
    if not sizes or sizes[0] < LISTS * LIST_MEMBERS:
        raise argparse.ArgumentTypeError(f"sizes must be whole numbers of at least {LISTS * LIST_MEMBERS}")
    return sizes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=[10000, 50000, 100000],
        help="mailbox counts (as many aliases), grown in turn (default 10000,50000,100000)",
    )
    parser.add_argument("--csv-rows", type=int, default=10000, help="rows of the CSV import, 0 to skip (default 10000)")
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help=f"an empty Redis database for the cache and Celery (default {DEFAULT_REDIS_URL}); '' = embedded broker",
    )
    parser.add_argument("--keep-temp", action="store_true", help="keep the data directory and the worker log")
    args = parser.parse_args()
    if args.csv_rows < 0:
        parser.error("--csv-rows must be 0 or more.")

    return harness.run_bench(run, args, "dockspace-bench-dms-")


def run(args, temp_dir):
    """The whole run; 1 when the CSV phase failed (the rest is reported all the same), else 0."""
    data_dir = temp_dir / "data"
    env = dms_env(data_dir, args.redis_url)
    with harness.emptied_redis(args.redis_url), harness.migrated_database(DB_NAME, env):
        setups, results, start = [], [], 0
        password = "bench " + secrets.token_urlsafe(16)
        for size in args.sizes:
            print(f"Growing to {size} mailboxes and {size} aliases ...", flush=True)
            spec = {
                "start": start,
                "stop": size,
                "first": start == 0,
                "domains": DOMAINS,
                "catch_alls": CATCH_ALLS,
                "lists": LISTS,
                "list_members": LIST_MEMBERS,
                "csv_domain": CSV_DOMAIN,
                "password": password,
            }
            setups.append(run_phase(env, "setup", SETUP_CODE, spec))
            vacuum_analyze()
            start = size
            print(f"Exporting {size} mailboxes, then the plain SQL baseline ...", flush=True)
            results.append(export_at_size(env, data_dir, temp_dir))

        print("Syncing with nothing changed, then after one mailbox changed ...", flush=True)
        nochange = run_phase(env, "sync, nothing changed", SYNC_CODE, {})
        onechange = run_phase(env, "sync, one mailbox changed", SYNC_CODE, {"change_one": True})

        csv_result, csv_error = None, None
        if args.csv_rows:
            try:
                csv_result = csv_phase(env, args, temp_dir, args.redis_url)
            except SystemExit as e:  # the export figures are still worth printing
                csv_error = str(e)
        report(setups, results, nochange, onechange, csv_result)
        if csv_error:
            print(f"\n  CSV import phase failed: {csv_error}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
