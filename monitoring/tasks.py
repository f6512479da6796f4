"""Celery tasks for monitoring: thin; the work is in the services."""

from celery import shared_task
from django.conf import settings

from monitoring import (
    alert_services,
    feedback_mailbox,
    feedback_webhooks,
    heartbeats,
    probing,
    task_runs,
    traffic_rollups,
)
from monitoring.models import Heartbeat, MailHost

# A host's probe not started within this many seconds of its sweep is dropped: the next sweep probes it again.
PROBE_EXPIRES_SECONDS = 4 * 60

# --- alerts -------------------------------------------------------------------------------------------------


@shared_task(name="monitoring.evaluate_alerts", is_periodic=True)
def evaluate_alerts():
    """Every minute: evaluate the alert rules; notifications are queued as their own tasks."""
    return alert_services.alerts_evaluate().summary()


@shared_task(bind=True, name="monitoring.send_alert_notification", max_retries=alert_services.MAX_ATTEMPTS + 2)
def send_alert_notification(self, event_id):
    """Send one notification (AlertEvent id) unless another process claimed it; retried with backoff on failure.
    A retry that does not arrive is made up by the next evaluation (notifications_requeue)."""
    outcome = alert_services.notification_send(event_id=event_id)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.summary


@shared_task(name="monitoring.purge_alert_events", is_periodic=True)
def purge_alert_events():
    events, alerts = alert_services.alert_events_purge()
    return f"deleted {events} notification(s) and {alerts} resolved alert(s) past retention"


# --- health ---------------------------------------------------------------------------------------------------


# No result kept: one a minute would pile up in the file result backend of the embedded broker.
@shared_task(name="monitoring.heartbeat", is_periodic=True, ignore_result=True)
def heartbeat():
    """Sent by beat every minute: the worker that runs it records that a worker takes tasks (/health/ready)."""
    heartbeats.heartbeat_record(Heartbeat.WORKER)
    return "worker heartbeat recorded"


@shared_task(name="monitoring.prune_task_runs", is_periodic=True)
def prune_task_runs():
    """Daily: the scheduler page's history keeps 30 days."""
    return f"deleted {task_runs.task_runs_prune()} task run(s) older than {task_runs.KEEP_DAYS} days"


# --- mail hosts ---------------------------------------------------------------------------------------------


@shared_task(name="monitoring.probe_mail_hosts", is_periodic=True)
def probe_mail_hosts():
    """Every 5 minutes: one task per mail host, so hosts are probed in parallel and a slow one delays no other."""
    ids = probing.mailhost_ids()
    for host_id in ids:
        probe_mail_host.apply_async(args=[host_id], expires=PROBE_EXPIRES_SECONDS)
    return f"queued {len(ids)} probe(s)"


@shared_task(name="monitoring.probe_mail_host")
def probe_mail_host(host_id):
    """Probe one host and store the result (a host removed meanwhile is skipped)."""
    host = MailHost.objects.filter(pk=host_id).first()
    if host is None:
        return f"mail host {host_id} is gone"
    probe = probing.mailhost_probe(host=host)
    reasons = f" ({'; '.join(probe.reasons)})" if probe.reasons else ""
    return f"{host.name}: {probe.status}{reasons}"[:500]


@shared_task(name="monitoring.prune_probe_history", is_periodic=True)
def prune_probe_history():
    raw, hourly = probing.probe_history_prune()
    return f"deleted {raw} probe(s) older than {probing.RAW_DAYS} days and {hourly} hourly rollup(s) past retention"


# --- mail traffic -------------------------------------------------------------------------------------------


@shared_task(name="monitoring.roll_up_traffic", is_periodic=True)
def roll_up_traffic():
    """Every 15 minutes: the hourly and daily sums of the mail traffic (the 90-day charts, /metrics' counters)."""
    return traffic_rollups.traffic_rollup().summary()


@shared_task(name="monitoring.prune_traffic", is_periodic=True)
def prune_traffic():
    """Daily: raw traffic rows past DOCKSPACE_TRAFFIC_DAYS, rollups past 90 days (rolled up first)."""
    return traffic_rollups.traffic_prune().summary()


# --- bounces and complaints ---------------------------------------------------------------------------------


@shared_task(name="monitoring.fetch_feedback", is_periodic=True)
def fetch_feedback():
    """Every 5 minutes: the feedback mailbox's new messages into bounces and complaints, when
    DOCKSPACE_FEEDBACK_MAILBOX is set. A server that cannot be reached is said in the result; the next run tries
    again."""
    if settings.FEEDBACK_MAILBOX is None:
        return "DOCKSPACE_FEEDBACK_MAILBOX is not set: no feedback mailbox to read"
    try:
        return feedback_mailbox.feedback_mailbox_fetch().summary()[:1000]
    except feedback_mailbox.FeedbackMailboxError as exc:
        raise RuntimeError(f"the feedback mailbox cannot be read: {exc}") from None


# The deliveries keep their own retry schedule (next_attempt_at, drained every minute): no Celery retries.
@shared_task(name="monitoring.send_feedback_webhook")
def send_feedback_webhook(delivery_id):
    return feedback_webhooks.feedback_webhook_deliver(delivery_id=delivery_id).summary[:500]


@shared_task(name="monitoring.drain_feedback_webhooks", is_periodic=True)
def drain_feedback_webhooks():
    """Every minute: bounce and complaint webhook deliveries due for a (first or next) attempt."""
    outcomes = feedback_webhooks.feedback_webhooks_drain()
    return ", ".join(f"{count} {status}" for status, count in sorted(outcomes.items())) or "nothing due"


@shared_task(name="monitoring.prune_feedback", is_periodic=True)
def prune_feedback():
    """Daily: bounces and complaints older than DOCKSPACE_TRAFFIC_DAYS, and their finished webhook deliveries."""
    return feedback_webhooks.feedback_prune().summary()
