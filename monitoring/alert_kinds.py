"""The alert kinds monitoring declares (MonitoringConfig.alert_kinds() returns BUILT_IN): the DMS files' sync and
drift, read from mail's selector. Each kind's evaluate() reads recorded state only; see dockspace.alert_kinds.

Adding a kind is one declaration appended to BUILT_IN (or returned by another app's `alert_kinds()`); the rule
row is created with its defaults at the next start (`manage.py install_alert_rules`) or evaluation, and every
channel marked "default for new rules" is attached. The kinds that read the mail hosts' probe history (branch
h-hosts: MailHost and its probe results) and the heartbeats (branch h-health) are to be added this way once those
models exist; each needs only its evaluate function, reading the latest recorded probe per host, e.g.:

    def host_down(rule):
        for host, probe in latest_probes():                  # from the hosts' selector
            yield Observation(subject=host.name, is_firing=probe.status == "down", summary=probe.reason)

    AlertKind(name="monitoring.host_down", label="Mail host down", subject_kind="mail host",
              description="The last probes could not reach the host over SSH.", for_seconds=5 * 60,
              evaluate=host_down)

The planned declarations (name, subject, thresholds with defaults, "for"); all repeat every 4 hours unless said:
    monitoring.host_down             mail host        -                                              for 5 min
    monitoring.dms_service_down      "HOST: service"  -                                              for 5 min
    monitoring.mail_queue_large      mail host        messages=100 (messages), oldest_minutes=30     for 10 min
        (fires when either holds: Threshold(name="messages", ...), Threshold(name="oldest_minutes", ...))
    monitoring.disk_full             mail host        percent=90 (%, minimum 1, maximum 100)         for 15 min
    monitoring.certificate_expiring  "HOST:PORT"      days=14 (days, minimum 1, maximum 365)         for 0, repeat 24 h
    monitoring.worker_silent         "worker"         minutes=2 (since the last heartbeat)           for 0
    monitoring.beat_silent           "beat"           minutes=3 (since beat's last tick)             for 0
"""

from datetime import timedelta

from dockspace.alert_kinds import AlertKind, Observation, RuleView, Threshold
from mail.selectors import dms_sync_status

DMS_SUBJECT = "DMS files"


def _minutes(delta: timedelta) -> float:
    return round(delta.total_seconds() / 60, 1)


def dms_sync_failing(rule: RuleView):
    """Firing while the last write failed, or while a committed change has waited longer than the threshold (no
    worker writes them). Value: minutes since the last successful write (None if there never was one)."""
    status = dms_sync_status()
    since_success = _minutes(rule.now - status.last_success_at) if status.last_success_at else None
    if status.last_error:
        last_success = f"{since_success:g} minutes ago" if since_success is not None else "never"
        summary = f"The last write of the DMS files failed ({status.last_error[:300]}). Last success: {last_success}."
        return [Observation(DMS_SUBJECT, True, since_success, summary)]
    limit = rule.threshold("behind_minutes")
    if status.oldest_pending_at is not None and rule.now - status.oldest_pending_at > timedelta(minutes=limit):
        waited = _minutes(rule.now - status.oldest_pending_at)
        summary = (
            f"{status.pending_count} change(s) have waited {waited:g} minutes to be written to the DMS files: "
            "is a Celery worker running?"
        )
        return [Observation(DMS_SUBJECT, True, since_success, summary)]
    return [Observation(DMS_SUBJECT, False, since_success, "The DMS files are written.")]


def dms_drift_found(rule: RuleView):
    """Firing while a scan's drift is not repaired. Value: minutes since it was found."""
    status = dms_sync_status()
    if status.has_drift and status.drift_found_at is not None:
        found = _minutes(rule.now - status.drift_found_at)
        summary = (
            f"DMS files on disk differ from the database (found {found:g} minutes ago) and are not repaired: see "
            "Admin -> DMS sync state for the diff."
        )
        return [Observation(DMS_SUBJECT, True, found, summary)]
    return [Observation(DMS_SUBJECT, False, None, "The DMS files match the database.")]


BUILT_IN = [
    AlertKind(
        name="monitoring.dms_sync_failing",
        label="DMS sync failing",
        subject_kind="DMS files",
        description=(
            "The last write of the DMS files failed (it is retried; the old files stay), or changes have waited "
            "longer than the threshold to be written (no worker running?)."
        ),
        thresholds=(
            Threshold(
                name="behind_minutes", label="Changes waiting longer than", unit="minutes", default=15, minimum=1
            ),
        ),
        # A failed write is retried with backoff: one that succeeds within 5 minutes does not page anyone.
        for_seconds=5 * 60,
        evaluate=dms_sync_failing,
    ),
    AlertKind(
        name="monitoring.dms_drift_found",
        label="Drift found in the DMS files",
        subject_kind="DMS files",
        description=(
            "A scan found DMS files edited outside Dockspace (e.g. with DMS's setup) and they are not repaired. "
            "The periodic repair rewrites them every 5 minutes, so this fires when the repair fails."
        ),
        for_seconds=10 * 60,  # two repair runs
        evaluate=dms_drift_found,
    ),
]
