"""The alert kinds monitoring declares (MonitoringConfig.alert_kinds() returns BUILT_IN): the DMS files' sync and
drift, read from mail's selector; the mail hosts' (down, a DMS service down, queue, disk, certificates), read
from the latest probe of each host (monitoring.probing stores one every 5 minutes); and the Celery worker, beat
and the watchdog falling silent, read from their heartbeats (monitoring.heartbeats). Each kind's evaluate() reads
recorded state only; see dockspace.alert_kinds.

The worker and beat rules are also evaluated, and their notifications sent, by the watchdog (monitoring.watchdog),
a process of its own: a worker or beat that stopped evaluates and sends nothing itself.

Adding a kind is one declaration appended to BUILT_IN (or returned by another app's `alert_kinds()`); the rule
row is created with its defaults at the next start (`manage.py install_alert_rules`) or evaluation, and every
channel marked "default for new rules" is attached.

The mail traffic's kinds read what the mail log stored (monitoring.traffic_measures) over the last hour: the bounce
rate of each sender's domain, the deferred queue now against an hour ago (from the host probes' `postqueue` figures
for a probed mail host, from the mail log for the other log sources), and the same permanent refusal repeated by one
remote site. The sending rates' kinds (monitoring.sending_rate_alert_kinds: hard bounces per sending IP, complaints
per sending IP and sender's domain, over 24 hours) are appended.

Inhibition (as Alertmanager's): while a host's latest probe finds it down and the "Mail host down" rule is
enabled, that host's service, queue, disk and certificate alerts still go pending, fire and resolve, but send
nothing: the host-down notification says it. Sent once the host is up again if they still hold.
"""

from datetime import timedelta

from dockspace.alert_kinds import AlertKind, Observation, RuleView, Threshold
from mail.selectors import dms_sync_status
from monitoring import heartbeats
from monitoring.alert_models import AlertRule
from monitoring.models import Heartbeat
from monitoring.selectors import latest_probes
from monitoring.sending_rate_alert_kinds import SENDING_RATE_KINDS
from monitoring.traffic_measures import (
    NULL_SENDER_KEY,
    deferred_at_probes,
    deferred_in_log,
    log_sources_without_probed_host,
    outbound_outcomes_by_sender_domain,
    remote_refusals,
)

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


HOST_DOWN = "monitoring.host_down"


def _probes(reachable_only=False):
    return [(host, probe) for host, probe in latest_probes() if probe and (probe.reachable or not reachable_only)]


def _host_down_muting():
    """Whether a host that is down mutes its other alerts: only while someone is told it is down."""
    return AlertRule.objects.filter(kind=HOST_DOWN, is_enabled=True).exists()


def _muted_by(host, probe, muting):
    return f"{host.name} is down" if muting and probe.status == "down" else ""


def host_down(rule: RuleView):
    """Firing while the host's latest probe found it down (unreachable, a changed host key, Postfix or Dovecot not
    running). Value: none."""
    for host, probe in _probes():
        is_down = probe.status == "down"
        summary = (
            f"{host.name} is down: {'; '.join(probe.reasons).rstrip('.')}."
            if is_down
            else f"{host.name} is {probe.status}."
        )
        yield Observation(host.name, is_down, None, summary[:1000])


def dms_service_down(rule: RuleView):
    """One subject per host and DMS service its settings turn on: firing while supervisorctl does not report it
    RUNNING. A host that cannot be reached reports none (host down says it)."""
    muting = _host_down_muting()
    for host, probe in _probes(reachable_only=True):
        if not probe.services:
            continue
        for service in probe.expected_services:
            state = probe.services.get(service, "not listed")
            running = state == "RUNNING"
            summary = f"{service} on {host.name} is {state}" + ("." if running else " (supervisorctl status).")
            yield Observation(
                f"{host.name}: {service}", not running, None, summary, muted_by=_muted_by(host, probe, muting)
            )


def mail_queue_large(rule: RuleView):
    """Firing while more messages are queued than the threshold, or the oldest waited longer. Value: messages."""
    most, oldest_minutes = rule.threshold("messages"), rule.threshold("oldest_minutes")
    muting = _host_down_muting()
    for host, probe in _probes(reachable_only=True):
        if probe.queue_count is None:
            continue
        age = (probe.queue_oldest_age_seconds or 0) / 60
        firing = probe.queue_count > most or age > oldest_minutes
        summary = f"{probe.queue_count} message(s) queued on {host.name} ({probe.queue_deferred} deferred"
        summary += f", the oldest {age:.0f} minutes old)." if probe.queue_oldest_age_seconds is not None else ")."
        yield Observation(host.name, firing, probe.queue_count, summary, muted_by=_muted_by(host, probe, muting))


def disk_full(rule: RuleView):
    """Firing while the mail volume is used at or over the threshold. Value: percent used."""
    limit = rule.threshold("percent")
    muting = _host_down_muting()
    for host, probe in _probes(reachable_only=True):
        if probe.disk_percent is None:
            continue
        percent = round(probe.disk_percent, 1)
        summary = f"The mail volume {host.mail_volume} on {host.name} is {percent:g} % used."
        yield Observation(host.name, percent >= limit, percent, summary, muted_by=_muted_by(host, probe, muting))


def certificate_expiring(rule: RuleView):
    """One subject per host and mail port: firing while its certificate expires within the threshold (or has
    expired). Value: days left. A port that could not be read is not judged here (the probe's reasons say why)."""
    days = rule.threshold("days")
    muting = _host_down_muting()
    for host, probe in _probes(reachable_only=True):
        for certificate in probe.certificates:
            left = certificate.get("days_left")
            if certificate.get("error") or left is None:
                continue
            subject = f"{host.tls_hostname}:{certificate['port']}"
            when = f"expired {-left} day(s) ago" if left < 0 else f"expires in {left} day(s)"
            summary = f"The certificate of {subject} ({host.name}) {when}, on {certificate.get('not_after', '?')[:10]}."
            yield Observation(subject, left < days, left, summary, muted_by=_muted_by(host, probe, muting))


# --- Dockspace's own processes: the Celery worker and beat, the watchdog -------------------------------------

WORKER_SILENT = "monitoring.worker_silent"
BEAT_SILENT = "monitoring.beat_silent"


def _silent(name, what, rule):
    seen = heartbeats.last_seen()[name]
    limit = timedelta(minutes=rule.threshold("minutes"))
    if seen is None:
        # Before the first start (a fresh install; /health/ready says it): nothing went silent yet.
        return [Observation(name, False, None, f"The {what} was never seen by this database.")]
    silent = rule.now - seen
    if silent > limit:
        summary = f"The {what} was last seen {_minutes(silent):g} minutes ago: is it running?"
        return [Observation(name, True, _minutes(silent), summary)]
    return [Observation(name, False, _minutes(silent), f"The {what} was seen {_minutes(silent):g} minutes ago.")]


def worker_silent(rule: RuleView):
    """Firing while no worker ran the heartbeat task (every minute) for longer than the threshold; not before a
    worker was first seen. Value: minutes since a worker was last seen."""
    return _silent(Heartbeat.WORKER, "Celery worker", rule)


def beat_silent(rule: RuleView):
    """Firing while beat sent no periodic task for longer than the threshold; not before beat first started. Value:
    minutes since its last tick."""
    return _silent(Heartbeat.BEAT, "Celery beat", rule)


def watchdog_silent(rule: RuleView):
    """Firing while the watchdog recorded no round for longer than the threshold; not before it first started.
    Value: minutes since its last round."""
    return _silent(Heartbeat.WATCHDOG, "watchdog", rule)


# --- mail traffic: what the mail log stored, over the last hour ------------------------------------------------

TRAFFIC_WINDOW = timedelta(hours=1)


def bounce_rate_high(rule: RuleView):
    """One subject per sender's domain that sent mail to other servers in the last hour: firing when at least the
    minimum of its recipients' deliveries ended (delivered or bounced) and the share that bounced is at or over the
    threshold. Bounces of Postfix's own notifications (the null sender) are left out: they go back to forged
    senders. Value: percent bounced."""
    limit, minimum = rule.threshold("percent"), rule.threshold("minimum")
    outcomes = outbound_outcomes_by_sender_domain(rule.now - TRAFFIC_WINDOW, rule.now)
    for domain, counts in sorted(outcomes.items()):
        done = counts["delivered"] + counts["bounced"]
        if domain == NULL_SENDER_KEY or not done:
            continue
        percent = round(100 * counts["bounced"] / done, 1)
        judged = done >= minimum
        summary = (
            f"Mail from {domain} to other servers in the last hour: {counts['bounced']} of {done} recipient(s) "
            f"bounced ({percent:g} %)" + ("." if judged else f"; fewer than {minimum:g} deliveries, not judged.")
        )
        yield Observation(domain, judged and percent >= limit, percent, summary)


def _queue_growth(subject, now_count, then_count, rule, basis):
    grown = now_count - then_count
    firing = now_count >= rule.threshold("messages") and grown >= rule.threshold("growth")
    summary = f"{now_count} message(s) deferred on {subject} now, {then_count} an hour ago ({grown:+d}); from {basis}."
    return Observation(subject, firing, now_count, summary)


def deferred_queue_growing(rule: RuleView):
    """One subject per mail host whose probes read its queue (postqueue, exact) now and an hour ago, and per log
    source of no such host (the mail log: messages deferred and not yet removed): firing while at least the
    threshold of messages are deferred and that is at least the growth threshold more than an hour ago. Value:
    deferred messages now."""
    before = rule.now - TRAFFIC_WINDOW
    for host, now_count, then_count in deferred_at_probes(rule.now, before):
        yield _queue_growth(host.name, now_count, then_count, rule, "the probes' postqueue")
    sources = log_sources_without_probed_host()
    if sources:
        now_counts, then_counts = deferred_in_log(rule.now), deferred_in_log(before)
        for source in sources:
            yield _queue_growth(
                source.name, now_counts.get(source.pk, 0), then_counts.get(source.pk, 0), rule, "the mail log"
            )


def remote_refusing(rule: RuleView):
    """One subject per remote site (its mail servers' domain) that refused mail permanently in the last hour for
    the sender or its server (5.x.x, not 5.1.x/5.2.x about one recipient): firing when its most repeated reply
    (addresses, IPs and tracking ids left out) came at least the threshold of times. Value: that count."""
    times = rule.threshold("times")
    most: dict = {}
    for refusal in remote_refusals(rule.now - TRAFFIC_WINDOW, rule.now):
        most.setdefault(refusal.remote, refusal)  # most repeated first
    for remote, refusal in sorted(most.items()):
        ips = f" to sending IP(s) {', '.join(refusal.sending_ips)}" if refusal.sending_ips else ""
        summary = f"{remote} refused {refusal.count} message(s) in the last hour{ips} with: {refusal.pattern}"
        yield Observation(remote, refusal.count >= times, refusal.count, summary[:1000])


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
    AlertKind(
        name=WORKER_SILENT,
        label="Celery worker silent",
        subject_kind="process",
        description=(
            "No Celery worker ran the heartbeat task (sent every minute) for longer than the threshold: DMS syncs, "
            "probes, outbound mail and notifications wait. The watchdog process evaluates this rule and sends its "
            "notifications itself, so a worker that stopped is reported too."
        ),
        thresholds=(Threshold(name="minutes", label="Not seen for more than", unit="minutes", default=3, minimum=2),),
        evaluate=worker_silent,
    ),
    AlertKind(
        name=BEAT_SILENT,
        label="Celery beat silent",
        subject_kind="process",
        description=(
            "Celery beat sent no periodic task for longer than the threshold: nothing scheduled runs (probes, "
            "repairs, alert evaluation). The watchdog process evaluates this rule and sends its notifications "
            "itself, so a beat that stopped is reported too."
        ),
        thresholds=(Threshold(name="minutes", label="Not seen for more than", unit="minutes", default=3, minimum=2),),
        evaluate=beat_silent,
    ),
    AlertKind(
        name="monitoring.watchdog_silent",
        label="Watchdog silent",
        subject_kind="process",
        description=(
            "The watchdog (the process that reports a stopped worker or beat) recorded no round for longer than "
            "the threshold: a worker or beat that stops now would go unreported. Evaluated by the worker. With a "
            "longer DOCKSPACE_WATCHDOG_INTERVAL, keep the threshold above two intervals."
        ),
        thresholds=(Threshold(name="minutes", label="Not seen for more than", unit="minutes", default=3, minimum=2),),
        # When Dockspace starts again after a while, the worker may evaluate before the watchdog's first round.
        for_seconds=60,
        evaluate=watchdog_silent,
    ),
    AlertKind(
        name="monitoring.bounce_rate_high",
        label="Bounce rate high",
        subject_kind="sender's domain",
        description=(
            "Of the mail a domain's people sent to other servers in the last hour, at least the threshold bounced "
            "(judged once at least the minimum of deliveries ended): a bad list, a compromised account, or a "
            "reputation problem. Read from the mail log."
        ),
        thresholds=(
            Threshold(name="percent", label="Bounced at least", unit="%", default=10, minimum=1, maximum=100),
            Threshold(name="minimum", label="Judged from", unit="deliveries", default=20, minimum=1),
        ),
        for_seconds=10 * 60,
        evaluate=bounce_rate_high,
    ),
    AlertKind(
        name="monitoring.deferred_queue_growing",
        label="Deferred queue growing",
        subject_kind="mail host or log source",
        description=(
            "At least the threshold of messages wait in the deferred queue, that many more than an hour ago: "
            "mail is not leaving. From the probes' postqueue for a probed mail host, else from the mail log."
        ),
        thresholds=(
            Threshold(name="messages", label="Deferred messages at least", unit="messages", default=20, minimum=1),
            Threshold(name="growth", label="Grown in an hour by at least", unit="messages", default=10, minimum=1),
        ),
        for_seconds=10 * 60,
        evaluate=deferred_queue_growing,
    ),
    AlertKind(
        name="monitoring.remote_refusing",
        label="A remote site refusing our mail",
        subject_kind="remote site",
        description=(
            "One remote site (its mail servers' domain) gave the same permanent refusal about the sender or its "
            "server (a blocklist, policy, authentication: 5.x.x, not an unknown or full mailbox) at least the "
            "threshold of times in the last hour. Read from the mail log."
        ),
        thresholds=(Threshold(name="times", label="Same refusal at least", unit="times", default=5, minimum=2),),
        evaluate=remote_refusing,
    ),
    *SENDING_RATE_KINDS,
]
