"""The alert kinds monitoring declares (MonitoringConfig.alert_kinds() returns BUILT_IN): the DMS files' sync and
drift, read from mail's selector, and the mail hosts' (down, a DMS service down, queue, disk, certificates), read
from the latest probe of each host (monitoring.probing stores one every 5 minutes). Each kind's evaluate() reads
recorded state only; see dockspace.alert_kinds.

Adding a kind is one declaration appended to BUILT_IN (or returned by another app's `alert_kinds()`); the rule
row is created with its defaults at the next start (`manage.py install_alert_rules`) or evaluation, and every
channel marked "default for new rules" is attached. The heartbeats (branch h-health) are to be added the same way
once those models exist:
    monitoring.worker_silent         "worker"         minutes=2 (since the last heartbeat)           for 0
    monitoring.beat_silent           "beat"           minutes=3 (since beat's last tick)             for 0
"""

from datetime import timedelta

from dockspace.alert_kinds import AlertKind, Observation, RuleView, Threshold
from mail.selectors import dms_sync_status
from monitoring.selectors import latest_probes

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


# --- mail hosts: the latest probe of each host -------------------------------------------------------------


def _probes(reachable_only=False):
    return [(host, probe) for host, probe in latest_probes() if probe and (probe.reachable or not reachable_only)]


def host_down(rule: RuleView):
    """Firing while the host's latest probe found it down (unreachable, a changed host key, Postfix or Dovecot not
    running). Value: none."""
    for host, probe in _probes():
        is_down = probe.status == "down"
        summary = f"{host.name} is down: {'; '.join(probe.reasons)}." if is_down else f"{host.name} is {probe.status}."
        yield Observation(host.name, is_down, None, summary[:1000])


def dms_service_down(rule: RuleView):
    """One subject per host and DMS service its settings turn on: firing while supervisorctl does not report it
    RUNNING. A host that cannot be reached reports none (host down says it)."""
    for host, probe in _probes(reachable_only=True):
        if not probe.services:
            continue
        for service in probe.expected_services:
            state = probe.services.get(service, "not listed")
            running = state == "RUNNING"
            summary = f"{service} on {host.name} is {state}" + ("." if running else " (supervisorctl status).")
            yield Observation(f"{host.name}: {service}", not running, None, summary)


def mail_queue_large(rule: RuleView):
    """Firing while more messages are queued than the threshold, or the oldest waited longer. Value: messages."""
    most, oldest_minutes = rule.threshold("messages"), rule.threshold("oldest_minutes")
    for host, probe in _probes(reachable_only=True):
        if probe.queue_count is None:
            continue
        age = (probe.queue_oldest_age_seconds or 0) / 60
        firing = probe.queue_count > most or age > oldest_minutes
        summary = f"{probe.queue_count} message(s) queued on {host.name} ({probe.queue_deferred} deferred"
        summary += f", the oldest {age:.0f} minutes old)." if probe.queue_oldest_age_seconds is not None else ")."
        yield Observation(host.name, firing, probe.queue_count, summary)


def disk_full(rule: RuleView):
    """Firing while the mail volume is used at or over the threshold. Value: percent used."""
    limit = rule.threshold("percent")
    for host, probe in _probes(reachable_only=True):
        if probe.disk_percent is None:
            continue
        percent = round(probe.disk_percent, 1)
        summary = f"The mail volume {host.mail_volume} on {host.name} is {percent:g} % used."
        yield Observation(host.name, percent >= limit, percent, summary)


def certificate_expiring(rule: RuleView):
    """One subject per host and mail port: firing while its certificate expires within the threshold (or has
    expired). Value: days left. A port that could not be read is not judged here (the probe's reasons say why)."""
    days = rule.threshold("days")
    for host, probe in _probes(reachable_only=True):
        for certificate in probe.certificates:
            left = certificate.get("days_left")
            if certificate.get("error") or left is None:
                continue
            subject = f"{host.tls_hostname}:{certificate['port']}"
            when = f"expired {-left} day(s) ago" if left < 0 else f"expires in {left} day(s)"
            summary = f"The certificate of {subject} ({host.name}) {when}, on {certificate.get('not_after', '?')[:10]}."
            yield Observation(subject, left < days, left, summary)


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
    AlertKind(
        name="monitoring.host_down",
        label="Mail host down",
        subject_kind="mail host",
        description=(
            "The latest probe of the host found it down: unreachable over SSH, a changed host key, or Postfix or "
            "Dovecot not running."
        ),
        for_seconds=5 * 60,
        evaluate=host_down,
    ),
    AlertKind(
        name="monitoring.dms_service_down",
        label="DMS service down",
        subject_kind="mail host: service",
        description="A service the host's DMS settings turn on is not RUNNING in supervisorctl.",
        for_seconds=5 * 60,
        evaluate=dms_service_down,
    ),
    AlertKind(
        name="monitoring.mail_queue_large",
        label="Mail queue large or old",
        subject_kind="mail host",
        description="More messages are queued than the threshold, or the oldest has waited longer than its threshold.",
        thresholds=(
            Threshold(name="messages", label="More messages than", unit="messages", default=100, minimum=0),
            Threshold(name="oldest_minutes", label="Oldest waiting longer than", unit="minutes", default=30, minimum=1),
        ),
        for_seconds=10 * 60,
        evaluate=mail_queue_large,
    ),
    AlertKind(
        name="monitoring.disk_full",
        label="Mail volume nearly full",
        subject_kind="mail host",
        description="The disk holding the host's mail volume is used at or over the threshold.",
        thresholds=(Threshold(name="percent", label="Used at least", unit="%", default=90, minimum=1, maximum=100),),
        for_seconds=15 * 60,
        evaluate=disk_full,
    ),
    AlertKind(
        name="monitoring.certificate_expiring",
        label="TLS certificate expiring",
        subject_kind="host:port",
        description="The TLS certificate of a mail port (25, 465, 587, 993) expires within the threshold.",
        thresholds=(Threshold(name="days", label="Expires within", unit="days", default=14, minimum=1, maximum=365),),
        for_seconds=0,
        repeat_seconds=24 * 3600,
        evaluate=certificate_expiring,
    ),
]
