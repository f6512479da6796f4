"""Readiness of Dockspace (/health/ready) as application/health+json (draft-inadarei-api-health-check): `status`
pass/warn/fail and `checks` keyed "component:measurement", each a list of {componentType, observedValue,
observedUnit, status, time, output}.

Each check is a plain function returning Checks, run one after the other (a few milliseconds in all):
- database:responseTime and database:migrations: `SELECT 1` answers, and no migration on disk is unapplied;
- cache:responseTime: a value written to the cache is read back;
- broker:responseTime: Celery's broker takes a connection (Redis), or the embedded broker's folders take a file;
- dms:writable: the DMS directory and its history directory (where the writer stages files) take a file;
- worker:heartbeat and beat:lastTick: seconds since a worker was last seen and since beat last sent a task
  (monitoring.heartbeats); more than 2 minutes fails.
The answer never carries a secret, a path or a traceback: a failure is named by its exception's class or its OS
error, and the detail goes to the log for the operator. Even that name (an OS error's text can hold a host name)
and the observed values go only to callers /metrics admits (monitoring.scrape_access); anyone else gets each
check's status and a generic reason.

One round of checks is kept for DOCKSPACE_HEALTH_CACHE_SECONDS (per process, 0: none), so a flood of requests
touches the database, cache, broker and DMS directory at most once per round."""

import logging
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from monitoring import heartbeats
from monitoring.models import Heartbeat

log = logging.getLogger(__name__)

PASS, WARN, FAIL = "pass", "warn", "fail"
# A broker that does not take a connection within this many seconds is not ready (a probe gives up soon after).
BROKER_TIMEOUT_SECONDS = 2
# What a caller /metrics does not admit reads about a failing check that gave no summary of its own.
GENERIC_REASON = "failing: the detail is in Dockspace's log"


@dataclass(frozen=True)
class Check:
    key: str  # "component:measurement"
    component_type: str
    status: str
    observed_value: float | int | None = None
    observed_unit: str | None = None
    output: str = ""  # what fails, for the operator: may name the error (its class, an OS error's text)
    summary: str = ""  # what fails, for anyone: the same in general terms, nothing taken from the error

    def as_json(self, at: datetime, *, detailed: bool) -> dict:
        entry = {"componentType": self.component_type, "status": self.status, "time": at.isoformat()}
        if detailed and self.observed_value is not None:
            entry["observedValue"] = self.observed_value
            entry["observedUnit"] = self.observed_unit
        if self.status != PASS:  # the draft: omitted when the check passes
            entry["output"] = self.output if detailed else self.summary or GENERIC_REASON
        return entry


def _milliseconds_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _failed(key: str, component_type: str, what: str, reason: str) -> Check:
    """A failed check: `what` for anyone, with the error's `reason` for the operator."""
    return Check(key, component_type, FAIL, output=f"{what} ({reason})", summary=what)


def _failure(component: str, exc: BaseException) -> str:
    """What the answer says about a failure: the exception's class, or the OS error's text (no path, no URL)."""
    log.warning("readiness: %s check failed: %s: %s", component, type(exc).__name__, str(exc)[:300])
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


_on_disk: dict[tuple[str, str], list[tuple[str, str]]] | None = None


def _migrations_on_disk() -> dict[tuple[str, str], list[tuple[str, str]]]:
    """{(app, name): the migrations it replaces} of every migration this code has (a squashed one in place of
    those it replaces, as Django plans them for a new database). Read once per process: a deploy restarts it."""
    global _on_disk
    if _on_disk is None:
        graph = MigrationLoader(None, ignore_no_migrations=True).graph
        _on_disk = {key: list(migration.replaces or ()) for key, migration in graph.nodes.items()}
    return _on_disk


def unapplied_migrations() -> int:
    """How many migrations on disk the database has not applied (one query: the django_migrations rows)."""
    applied = set(MigrationRecorder.Migration.objects.using(connection.alias).values_list("app", "name"))
    return sum(
        1
        for key, replaces in _migrations_on_disk().items()
        if key not in applied and not (replaces and all(old in applied for old in replaces))
    )


def check_database() -> list[Check]:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any database failure means "not ready"
        reason = _failure("database", exc)
        cannot = "cannot read the applied migrations"
        return [
            _failed("database:responseTime", "datastore", "the database does not answer", reason),
            Check("database:migrations", "datastore", FAIL, output=cannot, summary=cannot),
        ]
    answered = Check("database:responseTime", "datastore", PASS, _milliseconds_since(started), "ms")
    try:
        unapplied = unapplied_migrations()
    except Exception as exc:
        reason = _failure("migrations", exc)
        return [answered, _failed("database:migrations", "datastore", "cannot read them", reason)]
    if unapplied:
        output = f"{unapplied} migration(s) not applied: run `manage.py migrate`"
        summary = "migrations not applied"
        return [answered, Check("database:migrations", "datastore", FAIL, unapplied, "migrations", output, summary)]
    return [answered, Check("database:migrations", "datastore", PASS, 0, "migrations")]


def check_cache() -> list[Check]:
    started = time.perf_counter()
    key, value = f"monitoring:readiness:{secrets.token_hex(8)}", secrets.token_hex(8)
    try:
        cache.set(key, value, 30)
        read = cache.get(key)
        cache.delete(key)
    except Exception as exc:
        reason = _failure("cache", exc)
        return [_failed("cache:responseTime", "datastore", "the cache does not answer", reason)]
    if read != value:
        lost = "the cache did not keep a value written to it"
        return [Check("cache:responseTime", "datastore", FAIL, output=lost, summary=lost)]
    return [Check("cache:responseTime", "datastore", PASS, _milliseconds_since(started), "ms")]


def _takes_a_file(directory: Path) -> None:
    """Create and remove a file in DIRECTORY (the truth for any user, root included, and read-only mounts); the
    name starts with a dot, which the embedded broker's queue never reads as a message."""
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".dockspace-readiness-"):
        pass


def check_broker() -> list[Check]:
    from dockspace.celery import app

    started = time.perf_counter()
    try:
        with app.connection_for_write(connect_timeout=BROKER_TIMEOUT_SECONDS) as broker:
            if broker.transport_cls == "filesystem":
                options = broker.transport_options
                for key in ("data_folder_in", "data_folder_out", "control_folder"):
                    if options.get(key):
                        _takes_a_file(Path(options[key]))
            else:
                broker.ensure_connection(max_retries=0)
    except Exception as exc:
        reason = _failure("broker", exc)
        return [_failed("broker:responseTime", "component", "the Celery broker does not answer", reason)]
    return [Check("broker:responseTime", "component", PASS, _milliseconds_since(started), "ms")]


def check_dms_directory() -> list[Check]:
    for label, directory in (("DMS directory", settings.DMS_DIR), ("DMS history directory", settings.DMS_HISTORY_DIR)):
        try:
            _takes_a_file(Path(directory))
        except OSError as exc:
            reason = _failure(label, exc)
            return [_failed("dms:writable", "component", f"the {label} does not take a file", reason)]
    return [Check("dms:writable", "component", PASS)]


def _age(key: str, seen: datetime | None, limit: int, never: str, silent: str, now: datetime) -> Check:
    if seen is None:
        return Check(key, "component", FAIL, output=never, summary=never)
    age = max(0, round((now - seen).total_seconds()))
    if age > limit:
        return Check(key, "component", FAIL, age, "s", silent.format(age=age), silent.format(age=age))
    return Check(key, "component", PASS, age, "s")


def check_heartbeats(now: datetime) -> list[Check]:
    """worker:heartbeat and beat:lastTick: seconds since each was last seen (monitoring.heartbeats)."""
    try:
        seen = heartbeats.last_seen()
    except Exception as exc:
        reason = _failure("heartbeats", exc)
        return [_failed(key, "component", "cannot read it", reason) for key in ("worker:heartbeat", "beat:lastTick")]
    return [
        _age(
            "worker:heartbeat",
            seen[Heartbeat.WORKER],
            heartbeats.WORKER_SILENT_SECONDS,
            never="no Celery worker has been seen yet",
            silent="no Celery worker seen for {age} s: is the worker running?",
            now=now,
        ),
        _age(
            "beat:lastTick",
            seen[Heartbeat.BEAT],
            heartbeats.BEAT_SILENT_SECONDS,
            never="Celery beat has not run yet",
            silent="Celery beat sent nothing for {age} s: is beat running?",
            now=now,
        ),
    ]


def run_checks() -> tuple[list[Check], datetime]:
    """One round of every check, and when it ran."""
    checks = [*check_database(), *check_cache(), *check_broker(), *check_dms_directory()]
    now = timezone.now()
    checks += check_heartbeats(now)
    return checks, now


_last_round: tuple[list[Check], datetime, float] | None = None  # the checks, when, and time.time() then
_round_lock = threading.Lock()


def forget_last_round() -> None:
    """The next readiness() runs the checks (tests that need a fresh answer)."""
    global _last_round
    with _round_lock:
        _last_round = None


def _kept_round(now: float, seconds: int) -> tuple[list[Check], datetime] | None:
    if _last_round is None:
        return None
    checks, at, ran = _last_round
    return (checks, at) if ran <= now < ran + seconds else None  # a clock set back runs them again


def latest_round() -> tuple[list[Check], datetime]:
    """The last round if it ran less than HEALTH_CACHE_SECONDS ago, else a new one. Concurrent callers (a threaded
    web worker) wait for the round one of them runs instead of running their own."""
    global _last_round
    seconds = settings.HEALTH_CACHE_SECONDS
    if seconds <= 0:
        return run_checks()
    kept = _kept_round(time.time(), seconds)
    if kept is not None:
        return kept
    with _round_lock:
        kept = _kept_round(time.time(), seconds)
        if kept is None:
            checks, at = run_checks()
            _last_round = (checks, at, time.time())
            kept = checks, at
        return kept


def readiness(*, detailed: bool) -> tuple[str, dict]:
    """(overall status, the application/health+json document); `detailed`: with each failure's error and the
    observed values (for callers /metrics admits)."""
    checks, at = latest_round()
    document_checks: dict[str, list[dict]] = {}
    for check in checks:
        document_checks.setdefault(check.key, []).append(check.as_json(at, detailed=detailed))
    statuses = {check.status for check in checks}
    status = FAIL if FAIL in statuses else WARN if WARN in statuses else PASS
    return status, {"status": status, "description": "Dockspace readiness", "checks": document_checks}
