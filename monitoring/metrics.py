"""What Dockspace's processes count as it happens, for Prometheus (/metrics adds it up across processes).

Each counter is incremented in the process where the event happens (a gunicorn worker, a Celery pool child), by a
receiver connected in MonitoringConfig.ready() to a declared seam:
- sign-ins by result: Django's user_logged_in ("success") and user_login_failed ("failure": wrong password or
  unknown address, deliberately alike), and accounts' sign_in_refused ("locked_out", "code_failure");
- OIDC tokens by grant: django-oauth-toolkit's app_authorized, sent for every token the token endpoint issues;
- Celery task runs by task and outcome, and their duration: Celery's task_prerun/task_postrun/task_revoked;
- DMS syncs by outcome and their write duration, and scans that found drift: mail.dms.sync's sync_finished and
  drift_found.

With PROMETHEUS_MULTIPROC_DIR set when the process started (dockspace.processes sets it), prometheus_client keeps
the values in files there, which /metrics merges (monitoring.exposition); without it (tests, a manage.py shell) they
live in this process's IN_PROCESS registry. What the database knows (counts, sync state) is read at scrape time
instead (monitoring.collectors)."""

import functools
import logging
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

# `_created` series are not written in multiprocess mode: leave them out everywhere so the output is the same.
disable_created_metrics()

IN_PROCESS = CollectorRegistry(auto_describe=True)

SIGN_IN_RESULTS = ("success", "failure", "locked_out", "code_failure")
# The grants Dockspace's token endpoint accepts (oidc.views.GRANT_TYPES); anything else is counted as "other".
OIDC_GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
DMS_SYNC_OUTCOMES = ("success", "failure")

SIGN_INS = Counter(
    "dockspace_sign_ins",
    "Sign-in attempts on Dockspace's sign-in pages, by result (success, failure: wrong password or unknown "
    "address, locked_out: refused while locked, code_failure: wrong second-factor code).",
    ["result"],
    registry=IN_PROCESS,
)
OIDC_TOKENS = Counter(
    "dockspace_oidc_tokens_issued",
    "Access tokens issued by the OIDC token endpoint, by grant type.",
    ["grant_type"],
    registry=IN_PROCESS,
)
TASK_RUNS = Counter(
    "dockspace_celery_task_runs",
    "Celery task runs, by task and outcome (success, failure, retry, expired, revoked, ...).",
    ["task", "outcome"],
    registry=IN_PROCESS,
)
TASK_DURATION = Histogram(
    "dockspace_celery_task_duration_seconds",
    "Time Celery tasks ran, by task.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, float("inf")),
    registry=IN_PROCESS,
)
DMS_SYNCS = Counter(
    "dockspace_dms_syncs",
    "Syncs of the DMS directory, by outcome (success, failure).",
    ["outcome"],
    registry=IN_PROCESS,
)
DMS_SYNC_DURATION = Histogram(
    "dockspace_dms_sync_duration_seconds",
    "Time a DMS sync took, from taking the lock to the last file renamed into place.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, float("inf")),
    registry=IN_PROCESS,
)
DMS_DRIFT = Counter(
    "dockspace_dms_drift_detected",
    "Scans that found DMS files differing from the database (edited by hand, or a write lost).",
    registry=IN_PROCESS,
)

# Known label values start at 0, so a rate() or an alert has a series before the first event.
for _result in SIGN_IN_RESULTS:
    SIGN_INS.labels(result=_result)
for _grant in OIDC_GRANT_TYPES:
    OIDC_TOKENS.labels(grant_type=_grant)
for _outcome in DMS_SYNC_OUTCOMES:
    DMS_SYNCS.labels(outcome=_outcome)


# --- receivers (connected in MonitoringConfig.ready) --------------------------------------------------------

log = logging.getLogger(__name__)


def _never_raises(receiver):
    """Counting never changes what happens: Django sends user_logged_in and user_login_failed, and DOT sends
    app_authorized, without catching what a receiver raises (the sign-in or the token would fail). A count that
    cannot be written (its directory removed under a running process) is logged instead."""

    @functools.wraps(receiver)
    def guarded(*args, **kwargs):
        try:
            receiver(*args, **kwargs)
        except Exception:
            log.exception("metrics: %s could not count", receiver.__name__)

    return guarded


@_never_raises
def on_logged_in(sender, **kwargs):
    SIGN_INS.labels(result="success").inc()


@_never_raises
def on_login_failed(sender, **kwargs):
    SIGN_INS.labels(result="failure").inc()


@_never_raises
def on_sign_in_refused(sender, reason, **kwargs):
    if reason in SIGN_IN_RESULTS:
        SIGN_INS.labels(result=reason).inc()


@_never_raises
def on_token_issued(sender, request=None, **kwargs):
    grant = request.POST.get("grant_type", "") if request is not None else ""
    OIDC_TOKENS.labels(grant_type=grant if grant in OIDC_GRANT_TYPES else "other").inc()


@_never_raises
def on_dms_sync_finished(sender, outcome, duration_seconds=None, **kwargs):
    DMS_SYNCS.labels(outcome=outcome if outcome in DMS_SYNC_OUTCOMES else "failure").inc()
    if duration_seconds is not None:
        DMS_SYNC_DURATION.observe(duration_seconds)


@_never_raises
def on_dms_drift_found(sender, **kwargs):
    DMS_DRIFT.inc()


# Celery: a task's start, kept by task id until it ends (a pool child runs one task at a time; a thread pool more).
_task_started: dict[str, float] = {}


def _task_name(sender, task=None) -> str:
    return getattr(task or sender, "name", None) or "unknown"


@_never_raises
def on_task_prerun(sender=None, task_id=None, **kwargs):
    if task_id:
        _task_started[task_id] = time.monotonic()


@_never_raises
def on_task_postrun(sender=None, task_id=None, task=None, state=None, **kwargs):
    name = _task_name(sender, task)
    TASK_RUNS.labels(task=name, outcome=(state or "unknown").lower()).inc()
    started = _task_started.pop(task_id, None) if task_id else None
    if started is not None:
        TASK_DURATION.labels(task=name).observe(time.monotonic() - started)


@_never_raises
def on_task_revoked(sender=None, request=None, expired=False, **kwargs):
    """A task dropped before it ran: expired (beat's periodic tasks that waited too long) or revoked."""
    TASK_RUNS.labels(task=_task_name(sender), outcome="expired" if expired else "revoked").inc()
