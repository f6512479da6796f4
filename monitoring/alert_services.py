"""Alerts: installing the rules, evaluating them (the state machine), queueing and sending the notifications, and
what operators do (acknowledge, silence, send a test).

State machine, per rule and subject (one Alert row, kept and reopened):
  condition holds   none/resolved -> pending (pending_since = now); pending -> firing once it held for the rule's
                    "for"; firing: a "fired" notification when nobody was told yet, then a "repeat" every
                    repeat_seconds unless acknowledged.
  condition clears  pending -> resolved silently; firing -> resolved, with a "resolved" notification if the
                    rule asks for one and the firing was notified. Acknowledgement ends with the episode.
  silenced until T  nothing is sent until T (a firing not yet notified is notified then).
  muted             the kind says a broader alert covers it (Observation.muted_by: the host is down): no fired or
                    repeat notification while it lasts, as silenced.
Notifications are AlertEvent rows, one per channel, written with the state change and sent after commit by a
Celery task each (the watchdog sends those of the rules it evaluates itself, monitoring.watchdog); a sender claims a
row with a conditional UPDATE, so exactly one process sends it.
"""

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from accounts.audit import audit
from accounts.authz import acting, audit_actor, require_perm
from dockspace.alert_kinds import SUBJECT_MAX_LENGTH, Observation, declared_alert_kinds
from dockspace.celery import queue_task
from dockspace.validation import field_error
from monitoring import channels
from monitoring.alert_models import Alert, AlertEvent, AlertRule, NotificationChannel
from monitoring.durations import format_duration

log = logging.getLogger(__name__)

SEND_TASK = "monitoring.send_alert_notification"
ALERT_PERMISSION = "monitoring.change_alert"
CHANNEL_PERMISSION = "monitoring.change_notificationchannel"
RULE_PERMISSION = "monitoring.change_alertrule"
MAX_ATTEMPTS = 6
RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 15 * 60
# A notification claimed this long ago and still "sending" lost its worker; one due this long ago and still
# queued lost its task (a stopped worker, a lost message). Both are queued again by the next evaluation.
STALE_CLAIM = timedelta(minutes=10)
LOST_TASK = timedelta(minutes=5)
MIN_SILENCE_SECONDS = 60
MAX_SILENCE_SECONDS = 30 * 86400
DEFAULT_CHANNEL_NAME = "Staff email"

# The fields the evaluation writes: an operator's acknowledgement or silence saved meanwhile is never overwritten.
_EVALUATED_FIELDS = [
    "state",
    "value",
    "summary",
    "pending_since",
    "last_seen_at",
    "fired_at",
    "resolved_at",
    "last_notified_at",
    "reopen_count",
]


# --- rules --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RulesInstalled:
    created: list[str]
    unchanged: list[str]
    orphaned: list[str]


def alert_rules_install(kinds=None):
    """Create the rule of each declared kind that has none, with the kind's defaults and the channels marked
    "default for new rules". Existing rules are the operator's: never changed. Rules whose kind no app declares
    any more are reported (and skipped by the evaluation), not deleted: their alerts are history. On the very
    first install, a "Staff email" channel is created so alerts reach someone from the start."""
    kinds = declared_alert_kinds() if kinds is None else kinds
    existing = set(AlertRule.objects.values_list("kind", flat=True))
    created = []
    missing = [kind for kind in kinds if kind.name not in existing]
    if missing:
        with transaction.atomic():
            if not existing and not NotificationChannel.objects.exists():
                NotificationChannel.objects.get_or_create(
                    name=DEFAULT_CHANNEL_NAME,
                    defaults={"kind": NotificationChannel.EMAIL, "email_to_staff": True, "is_default": True},
                )
            defaults = list(NotificationChannel.objects.filter(is_default=True))
            for kind in missing:
                rule, made = AlertRule.objects.get_or_create(
                    kind=kind.name,
                    defaults={
                        "is_enabled": kind.enabled_by_default,
                        "thresholds": kind.default_thresholds(),
                        "for_seconds": kind.for_seconds,
                        "repeat_seconds": kind.repeat_seconds,
                        "notify_resolved": kind.notify_resolved,
                    },
                )
                if made:
                    rule.channels.set(defaults)
                    created.append(kind.name)
    declared = {kind.name for kind in kinds}
    return RulesInstalled(
        created=created,
        unchanged=sorted(existing & declared),
        orphaned=sorted(existing - declared),
    )


# --- evaluation ---------------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    rules: int = 0
    fired: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    notifications: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self):
        text = (
            f"{self.rules} rule(s) evaluated: {len(self.fired)} fired, {len(self.resolved)} resolved, "
            f"{self.notifications} notification(s) queued"
        )
        return text + (f"; {len(self.errors)} rule(s) failed: {'; '.join(self.errors)}" if self.errors else "")


def alerts_evaluate(*, now=None, kinds_only=None):
    """Evaluate every rule once (the periodic task does, every minute), then queue again the notifications whose
    task was lost. Each rule in its own transaction, holding its row: two evaluations never interleave on it.

    kinds_only: evaluate only the rules of these kinds, and queue no Celery task: the caller sends their
    notifications itself (the watchdog, which must not depend on the worker or the broker; notifications_due)."""
    now = now or timezone.now()
    kinds = declared_alert_kinds()
    alert_rules_install(kinds)
    by_name = {kind.name: kind for kind in kinds}
    result = Evaluation()
    rules = AlertRule.objects.order_by("kind")
    if kinds_only is not None:
        rules = rules.filter(kind__in=kinds_only)
    for rule_id in rules.values_list("pk", flat=True):
        _evaluate_rule(rule_id, by_name, now, result, queue_tasks=kinds_only is None)
    if kinds_only is None:
        notifications_requeue(now=now)
    return result


def _evaluate_rule(rule_id, kinds, now, result, *, queue_tasks):
    with transaction.atomic():
        rule = AlertRule.objects.select_for_update().filter(pk=rule_id).first()
        if rule is None:
            return
        kind = kinds.get(rule.kind)
        open_alerts = {alert.subject: alert for alert in rule.alerts.exclude(state=Alert.RESOLVED)}
        if kind is None or not rule.is_enabled:
            why = "the rule is disabled" if kind is not None else "no app declares this alert kind any more"
            for alert in open_alerts.values():
                _resolve(rule, alert, Observation(alert.subject, False, None, f"Closed: {why}."), now, result, False)
            rule.last_evaluated_at = now
            rule.last_error = "" if kind is not None else why
            rule.save(update_fields=["last_evaluated_at", "last_error"])
            return
        result.rules += 1
        try:
            with transaction.atomic():  # a database error inside evaluate() must not end this transaction
                observations = list(kind.evaluate(kind.view(rule.thresholds, now)))
        except Exception as exc:
            # The open alerts stay as they are: nobody knows whether the condition still holds.
            log.exception("alert rule %s: evaluating failed", rule.kind)
            rule.last_evaluated_at = now
            rule.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            rule.save(update_fields=["last_evaluated_at", "last_error"])
            result.errors.append(f"{rule.kind}: {type(exc).__name__}")
            return
        seen = {observation.subject[:SUBJECT_MAX_LENGTH]: observation for observation in observations}
        known = {alert.subject: alert for alert in rule.alerts.filter(subject__in=list(seen))}
        channel_list = [channel for channel in rule.channels.all() if channel.is_enabled]
        for subject, observation in seen.items():
            alert = known.get(subject)
            if observation.is_firing:
                _hold(rule, kind, alert, subject, observation, now, result, channel_list, queue_tasks)
            elif alert is not None and alert.is_open:
                _resolve(rule, alert, observation, now, result, True, channel_list, queue_tasks)
        for subject, alert in open_alerts.items():
            if subject not in seen:
                gone = Observation(subject, False, None, "Closed: the check no longer reports this subject.")
                _resolve(rule, alert, gone, now, result, True, channel_list, queue_tasks)
        rule.last_evaluated_at = now
        rule.last_error = ""
        rule.save(update_fields=["last_evaluated_at", "last_error"])


def _hold(rule, kind, alert, subject, observation, now, result, channel_list, queue_tasks):
    """The condition holds for `subject` now."""
    if alert is None:
        alert = Alert(rule=rule, subject=subject, state=Alert.RESOLVED, first_seen_at=now, pending_since=now)
    if alert.state == Alert.RESOLVED:
        alert.state, alert.pending_since, alert.last_notified_at, alert.resolved_at = Alert.PENDING, now, None, None
    summary = observation.summary + (f" Muted while {observation.muted_by}." if observation.muted_by else "")
    alert.value, alert.summary, alert.last_seen_at = observation.value, summary[:500], now
    if alert.state == Alert.PENDING and now - alert.pending_since >= timedelta(seconds=rule.for_seconds):
        if alert.fired_at is not None:
            alert.reopen_count += 1
        alert.state, alert.fired_at = Alert.FIRING, now
        result.fired.append(f"{rule.kind}: {subject}")
    notify = None
    if alert.state == Alert.FIRING and not alert.is_silenced(now) and not observation.muted_by:
        if alert.last_notified_at is None:
            notify = AlertEvent.FIRED
        elif alert.acknowledged_at is None and now - alert.last_notified_at >= timedelta(seconds=rule.repeat_seconds):
            notify = AlertEvent.REPEAT
    if notify:
        alert.last_notified_at = now
    if alert.pk is None:
        alert.save(force_insert=True)
    else:
        alert.save(update_fields=_EVALUATED_FIELDS)
    if notify:
        result.notifications += _queue_notifications(rule, alert, notify, now, channel_list, queue_tasks)


def _resolve(rule, alert, observation, now, result, may_notify, channel_list=(), queue_tasks=True):
    was_notified = alert.state == Alert.FIRING and alert.last_notified_at is not None
    if alert.state == Alert.FIRING:
        result.resolved.append(f"{rule.kind}: {alert.subject}")
    alert.state, alert.resolved_at = Alert.RESOLVED, now
    alert.value, alert.summary, alert.last_seen_at = observation.value, observation.summary[:500], now
    if may_notify and was_notified and rule.notify_resolved and not alert.is_silenced(now):
        # Built before the acknowledgement is cleared: the resolved notification says whether this episode was.
        result.notifications += _queue_notifications(rule, alert, AlertEvent.RESOLVED, now, channel_list, queue_tasks)
    alert.acknowledged_by, alert.acknowledged_at = None, None  # the next episode is acknowledged anew
    alert.save(update_fields=[*_EVALUATED_FIELDS, "acknowledged_by", "acknowledged_at"])


def _iso(moment):
    return moment.isoformat() if moment else None


def alert_url(alert):
    return settings.DOCKSPACE_URL + reverse("admin:monitoring_alert_change", args=[alert.pk])


def alert_payload(rule, alert, event_kind, now):
    """The notification as data: the webhook body, and what email and Telegram text is made of."""
    label = str(rule)
    return {
        "type": f"alert.{event_kind}",
        "timestamp": _iso(now),
        "data": {
            "alert_id": alert.pk,
            "kind": rule.kind,
            "rule": label,
            "subject": alert.subject,
            "title": f"{label}: {alert.subject}",
            "state": alert.state,
            "value": alert.value,
            "summary": alert.summary,
            "pending_since": _iso(alert.pending_since),
            "fired_at": _iso(alert.fired_at),
            "resolved_at": _iso(alert.resolved_at) if alert.state == Alert.RESOLVED else None,
            "reopen_count": alert.reopen_count,
            "acknowledged": alert.acknowledged_at is not None,
            "url": alert_url(alert),
        },
    }


def _new_event(*, channel, kind, title, payload, now, alert=None, **fields):
    return AlertEvent.objects.create(
        alert=alert,
        channel=channel,
        channel_name=channel.name,
        kind=kind,
        title=title[:300],
        message_id=f"msg_{uuid.uuid4().hex}",
        payload=payload,
        created_at=now,
        next_attempt_at=now,
        **fields,
    )


def _queue_notifications(rule, alert, event_kind, now, channel_list, queue_tasks):
    """One AlertEvent per channel; each sent after commit by a Celery task (queue_tasks), else by the caller."""
    if not channel_list:
        log.warning("alert %s (%s) %s, but its rule has no enabled channel", alert.pk, alert, event_kind)
        return 0
    payload = alert_payload(rule, alert, event_kind, now)
    for channel in channel_list:
        event = _new_event(
            channel=channel, kind=event_kind, title=payload["data"]["title"], payload=payload, now=now, alert=alert
        )
        if queue_tasks:
            transaction.on_commit(lambda event_id=event.pk: _queue_send(event_id))
    return len(channel_list)


def _queue_send(event_id):
    try:
        queue_task(SEND_TASK, event_id)
    except Exception:
        # The row stays queued: the next evaluation queues it again.
        log.exception("could not queue alert notification %s; the next evaluation retries", event_id)


def notifications_requeue(*, now=None):
    """Queue again what a lost task or a dead worker left: claims older than STALE_CLAIM go back to queued, and
    queued rows due for LOST_TASK get a new task (the claim keeps a duplicate task from sending twice)."""
    now = now or timezone.now()
    AlertEvent.objects.filter(status=AlertEvent.SENDING, claimed_at__lt=now - STALE_CLAIM).update(
        status=AlertEvent.QUEUED, next_attempt_at=now - LOST_TASK
    )
    lost = list(
        AlertEvent.objects.filter(status=AlertEvent.QUEUED, next_attempt_at__lte=now - LOST_TASK).values_list(
            "pk", flat=True
        )[:500]
    )
    if lost:
        # Due now: queued again at most once per LOST_TASK while no worker takes them.
        AlertEvent.objects.filter(pk__in=lost).update(next_attempt_at=now)
        for event_id in lost:
            transaction.on_commit(lambda event_id=event_id: _queue_send(event_id))
    return len(lost)


def notifications_due(*, kinds, now=None):
    """The ids of the notifications about rules of `kinds` that a sender may take now (oldest first), for a
    process that sends them itself with notification_send (the watchdog). A claim left by a sender that died
    (older than STALE_CLAIM) goes back to queued first, as notifications_requeue does for the worker."""
    now = now or timezone.now()
    about = AlertEvent.objects.filter(alert__rule__kind__in=kinds)
    about.filter(status=AlertEvent.SENDING, claimed_at__lt=now - STALE_CLAIM).update(
        status=AlertEvent.QUEUED, next_attempt_at=now
    )
    due = about.filter(status=AlertEvent.QUEUED, next_attempt_at__lte=now).order_by("next_attempt_at", "pk")
    return list(due.values_list("pk", flat=True)[:500])


# --- sending ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendOutcome:
    status: str | None  # None: nothing claimed
    summary: str
    retry_in: int | None = None


def notification_send(*, event_id, now=None):
    """Send one queued notification if it is due and nobody else claimed it. A failure is retried with backoff
    (30 s doubling, at most 15 min; Telegram's retry_after when it gives one), MAX_ATTEMPTS in all; retry_in says
    when the task should run again."""
    now = now or timezone.now()
    claimed = AlertEvent.objects.filter(pk=event_id, status=AlertEvent.QUEUED, next_attempt_at__lte=now).update(
        status=AlertEvent.SENDING, claimed_at=now, attempts=F("attempts") + 1
    )
    if not claimed:
        return SendOutcome(None, f"notification {event_id}: nothing to send (sent, being sent, or not due yet)")
    event = AlertEvent.objects.select_related("channel").get(pk=event_id)
    channel = event.channel
    if channel is None or not channel.is_enabled:
        return _finish(event, AlertEvent.FAILED, now, "the channel was removed or disabled")
    try:
        detail = channels.deliver(channel, event.payload, event.message_id)
    except channels.ChannelError as exc:
        error = str(exc)[:500]
        if exc.permanent or event.attempts >= MAX_ATTEMPTS:
            log.warning("alert notification %s (%s) to %s failed: %s", event.pk, event.kind, channel.name, error)
            return _finish(event, AlertEvent.FAILED, now, error)
        delay = exc.retry_after or min(RETRY_BASE_SECONDS * 2 ** (event.attempts - 1), RETRY_MAX_SECONDS)
        event.status, event.next_attempt_at, event.error = AlertEvent.QUEUED, now + timedelta(seconds=delay), error
        event.save(update_fields=["status", "next_attempt_at", "error"])
        log.warning(
            "alert notification %s (%s) to %s failed (attempt %d of %d), retrying in %d s: %s",
            event.pk,
            event.kind,
            channel.name,
            event.attempts,
            MAX_ATTEMPTS,
            delay,
            error,
        )
        return SendOutcome(AlertEvent.QUEUED, f"retrying in {delay} s: {error}", retry_in=min(delay, RETRY_MAX_SECONDS))
    except Exception as exc:  # a bug or a broken channel must not leave the notification claimed for ever
        log.exception("alert notification %s (%s) to %s failed", event.pk, event.kind, channel.name)
        return _finish(event, AlertEvent.FAILED, now, f"could not be sent ({type(exc).__name__}); see the log")
    return _finish(event, AlertEvent.SENT, now, "", detail)


def _finish(event, status, now, error, detail=""):
    event.status, event.error = status, error
    event.sent_at = now if status == AlertEvent.SENT else None
    event.save(update_fields=["status", "error", "sent_at"])
    return SendOutcome(status, detail if status == AlertEvent.SENT else f"failed: {error}")


def alert_events_purge(*, now=None):
    """Delete notifications older than AlertEvent.RETENTION_DAYS, and alerts resolved before that."""
    cutoff = (now or timezone.now()) - timedelta(days=AlertEvent.RETENTION_DAYS)
    events, _ = AlertEvent.objects.filter(created_at__lt=cutoff).delete()
    alerts, _ = Alert.objects.filter(state=Alert.RESOLVED, resolved_at__lt=cutoff).delete()
    return events, alerts


# --- what operators do --------------------------------------------------------------------------------------


def _who(request, actor, actor_label):
    actor = acting(request=request, actor=actor)
    return actor, {"request": request, "actor": audit_actor(actor), "actor_label": actor_label}


def alert_acknowledge(*, alert, request=None, actor=None, actor_label=None):
    """Stop the repeats of a firing or pending alert (the resolved notification still comes)."""
    actor, who = _who(request, actor, actor_label)
    require_perm(actor, ALERT_PERMISSION, field="actor")
    with transaction.atomic():
        alert = Alert.objects.select_for_update().select_related("rule").get(pk=alert.pk)
        if not alert.is_open:
            raise field_error("alert", f"alert {alert.pk} is resolved: only an open alert can be acknowledged.")
        alert.acknowledged_by, alert.acknowledged_at = audit_actor(actor), timezone.now()
        alert.save(update_fields=["acknowledged_by", "acknowledged_at"])
        audit("monitoring.alert.acknowledge", target=alert, description="Acknowledged: no more repeats.", **who)
    return alert


def alert_silence(*, alert, seconds, request=None, actor=None, actor_label=None):
    """Send nothing about this alert (fired, repeat, resolved) for `seconds`; 0 ends a silence."""
    actor, who = _who(request, actor, actor_label)
    require_perm(actor, ALERT_PERMISSION, field="actor")
    if seconds and not MIN_SILENCE_SECONDS <= seconds <= MAX_SILENCE_SECONDS:
        raise field_error(
            "seconds",
            f"a silence lasts from {format_duration(MIN_SILENCE_SECONDS)} to {format_duration(MAX_SILENCE_SECONDS)}.",
        )
    with transaction.atomic():
        alert = Alert.objects.select_for_update().select_related("rule").get(pk=alert.pk)
        now = timezone.now()
        alert.silenced_until = now + timedelta(seconds=seconds) if seconds else None
        alert.save(update_fields=["silenced_until"])
        description = (
            f"Silenced for {format_duration(seconds)} (until {alert.silenced_until:%Y-%m-%d %H:%M} UTC)."
            if seconds
            else "Silence ended."
        )
        audit("monitoring.alert.silence", target=alert, description=description, **who)
    return alert


@dataclass(frozen=True)
class TestOutcome:
    is_sent: bool
    text: str


def channel_send_test(*, channel, request=None, actor=None, actor_label=None):
    """Send a test notification over `channel` now (not queued: the operator waits for the answer), log it, and
    audit the outcome without the secret."""
    actor, who = _who(request, actor, actor_label)
    require_perm(actor, CHANNEL_PERMISSION, field="actor")
    now = timezone.now()
    payload = {
        "type": "alert.test",
        "timestamp": _iso(now),
        "data": {
            "title": f"Test notification for channel {channel.name}",
            "summary": f"Sent by {who['actor_label'] or actor} to check that alerts reach you.",
            "state": "test",
            "value": None,
            "url": settings.DOCKSPACE_URL + reverse("admin:monitoring_notificationchannel_change", args=[channel.pk]),
        },
    }
    event = _new_event(
        channel=channel,
        kind=AlertEvent.TEST,
        title=payload["data"]["title"],
        payload=payload,
        now=now,
        status=AlertEvent.SENDING,
        attempts=1,
        claimed_at=now,
    )
    try:
        detail = channels.deliver(channel, payload, event.message_id)
    except channels.ChannelError as exc:
        outcome = TestOutcome(False, f"Test notification to {channel.name} failed: {str(exc)[:500]}")
        _finish(event, AlertEvent.FAILED, timezone.now(), str(exc)[:500])
    except Exception as exc:  # a bug or a broken channel: no 500, and the test does not stay "sending" for ever
        log.exception("test notification %s to %s failed", event.pk, channel.name)
        error = f"could not be sent ({type(exc).__name__}); see the log"
        outcome = TestOutcome(False, f"Test notification to {channel.name} failed: {error}")
        _finish(event, AlertEvent.FAILED, timezone.now(), error)
    else:
        outcome = TestOutcome(True, f"Test notification sent to {channel.name}: {detail}.")
        _finish(event, AlertEvent.SENT, timezone.now(), "", detail)
    audit("monitoring.channel.test", target=channel, description=outcome.text, **who)
    return outcome


def channel_attach_to_all_rules(*, channel, request=None, actor=None, actor_label=None):
    """Make every alert rule notify `channel` too (a channel added after the first start is on no rule yet).
    Returns how many rules gained it."""
    actor, who = _who(request, actor, actor_label)
    require_perm(actor, RULE_PERMISSION, field="actor")
    with transaction.atomic():
        rules = list(AlertRule.objects.exclude(channels=channel))
        for rule in rules:
            rule.channels.add(channel)
        if rules:
            audit(
                "monitoring.channel.attach",
                target=channel,
                description=f"Channel {channel.name} attached to {len(rules)} alert rule(s).",
                **who,
            )
    return len(rules)
