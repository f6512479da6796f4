"""Forwarding bounces and complaints to other systems: each new FeedbackEvent of a kind a FeedbackWebhook asks for
becomes one FeedbackWebhookDelivery, written with the event and sent after commit, signed the Standard Webhooks way
(monitoring.channels.post_signed, as alert webhooks are). A failure is tried again on the outbox's schedule
(accounts.outbox_delivery.retry_delay: 60 s, 120 s, 240 s...; DOCKSPACE_OUTBOX_MAX_ATTEMPTS attempts, given up after
DOCKSPACE_OUTBOX_EXPIRY_SECONDS) by the drain every minute, with the same webhook-id. The deliveries are the log.

Also the retention of bounces and complaints: kept DOCKSPACE_TRAFFIC_DAYS, as the mail traffic they are tied to."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.audit import audit
from accounts.authz import acting, audit_actor, require_perm
from accounts.outbox_delivery import retry_delay
from dockspace.celery import queue_task
from dockspace.validation import field_error
from monitoring import channels, standard_webhooks
from monitoring.alert_models import webhook_secret_problem
from monitoring.channel_secrets import SecretUnavailable
from monitoring.feedback_models import FeedbackEvent, FeedbackWebhook, FeedbackWebhookDelivery

log = logging.getLogger(__name__)

SEND_TASK = "monitoring.send_feedback_webhook"
CHANGE_PERMISSION = "monitoring.change_feedbackwebhook"
ADD_PERMISSION = "monitoring.add_feedbackwebhook"
# A delivery claimed this long ago and still "sending" lost its worker: the drain takes it again.
STALE_CLAIM = timedelta(minutes=10)
DRAIN_BATCH = 200
PRUNE_BATCH = 5000


def event_payload(event: FeedbackEvent, event_type: str) -> dict:
    """The webhook body of one bounce or complaint: {"type", "timestamp", "data"}, as alert webhooks send."""
    return {
        "type": event_type,
        "timestamp": event.received_at.isoformat(),
        "data": {
            "id": event.pk,
            "kind": event.kind,
            "reason": event.reason,
            "recipient": event.recipient,
            "status": event.status,
            "action": event.action,
            "diagnostic": event.diagnostic,
            "remote_mta": event.remote_mta,
            "report_type": event.report_type,
            "feedback_type": event.feedback_type,
            "reporter": event.reporter,
            "original_sender": event.original_sender,
            "sender_domain": event.sender_domain,
            "original_message_id": event.original_message_id,
            "queue_id": event.queue_id,
            "trace": event.trace,
            "verp_tag": event.verp_tag,
            "sending_ip": event.sending_ip,
            "source_ip": event.source_ip,
            "received_at": event.received_at.isoformat(),
            "source": event.source,
        },
    }


def feedback_webhooks_queue(events: list[FeedbackEvent], *, now: datetime | None = None) -> int:
    """One delivery per stored event and enabled webhook that asks for its kind, written in the caller's transaction
    (the events' own) and sent after it commits. Returns how many were queued."""
    wanted = [event for event in events if event.kind in FeedbackWebhook.EVENT_TYPES]
    if not wanted:
        return 0
    webhooks = list(FeedbackWebhook.objects.filter(is_enabled=True))
    if not webhooks:
        return 0
    now = now or timezone.now()
    rows = []
    for event in wanted:
        event_type = FeedbackWebhook.EVENT_TYPES[event.kind]
        payload = event_payload(event, event_type)
        for webhook in webhooks:
            if getattr(webhook, FeedbackWebhook.kind_field(event.kind)):
                rows.append(
                    FeedbackWebhookDelivery(
                        webhook=webhook,
                        webhook_name=webhook.name,
                        event=event,
                        event_type=event_type,
                        message_id=f"msg_{uuid.uuid4().hex}",
                        payload=payload,
                        created_at=now,
                        next_attempt_at=now,
                    )
                )
    if not rows:
        return 0
    created = FeedbackWebhookDelivery.objects.bulk_create(rows)
    ids = [row.pk for row in created]
    transaction.on_commit(lambda: _queue_sends(ids))
    return len(ids)


def _queue_sends(ids):
    for delivery_id in ids:
        try:
            queue_task(SEND_TASK, delivery_id)
        except Exception:  # the broker is down: the row stays queued and the drain (every minute) sends it
            log.warning("Task queue unreachable; webhook delivery %s waits for the drain.", delivery_id)


@dataclass(frozen=True)
class DeliveryOutcome:
    status: str | None  # None: nothing claimed (sent, being sent, not due, or gone)
    summary: str


def _expiry_cutoff(now):
    return now - timedelta(seconds=settings.DOCKSPACE_OUTBOX_EXPIRY_SECONDS)


def feedback_webhook_deliver(*, delivery_id: int, now: datetime | None = None) -> DeliveryOutcome:
    """Send one delivery if it is due and this process claims it (one conditional UPDATE: of two senders exactly one
    sends). A failure is queued again after the outbox's backoff, or marked failed after the last attempt or when
    retrying cannot help (no secret, a refused address)."""
    now = now or timezone.now()
    claimed = FeedbackWebhookDelivery.objects.filter(
        pk=delivery_id,
        status=FeedbackWebhookDelivery.QUEUED,
        next_attempt_at__lte=now,
        created_at__gt=_expiry_cutoff(now),
    ).update(status=FeedbackWebhookDelivery.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    if not claimed:
        return DeliveryOutcome(None, f"webhook delivery {delivery_id}: nothing to send (sent, being sent, not due)")
    delivery = FeedbackWebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)
    webhook = delivery.webhook
    if webhook is None or not webhook.is_enabled:
        return _finish(delivery, FeedbackWebhookDelivery.FAILED, now, "the webhook was removed or disabled")
    try:
        try:
            secret = webhook.secret()
        except SecretUnavailable as exc:
            raise channels.ChannelError(str(exc), permanent=True) from None
        answer = channels.post_signed(webhook.url.strip(), secret, delivery.payload, delivery.message_id)
    except channels.ChannelError as exc:
        error = str(exc)[:500]
        if exc.permanent or delivery.attempts >= settings.DOCKSPACE_OUTBOX_MAX_ATTEMPTS:
            log.warning("Webhook delivery %s to %s failed: %s", delivery.pk, webhook.name, error)
            return _finish(delivery, FeedbackWebhookDelivery.FAILED, now, error)
        delay = retry_delay(delivery.attempts)
        delivery.status, delivery.next_attempt_at, delivery.error = FeedbackWebhookDelivery.QUEUED, now + delay, error
        delivery.save(update_fields=["status", "next_attempt_at", "error"])
        log.warning(
            "Webhook delivery %s to %s, attempt %d of %d: %s; next in %d s",
            delivery.pk,
            webhook.name,
            delivery.attempts,
            settings.DOCKSPACE_OUTBOX_MAX_ATTEMPTS,
            error,
            delay.total_seconds(),
        )
        return DeliveryOutcome(FeedbackWebhookDelivery.QUEUED, f"retrying in {int(delay.total_seconds())} s: {error}")
    except Exception as exc:  # a bug must not leave the delivery claimed for ever
        log.exception("Webhook delivery %s to %s failed", delivery.pk, webhook.name)
        return _finish(delivery, FeedbackWebhookDelivery.FAILED, now, f"could not be sent ({type(exc).__name__})")
    return _finish(delivery, FeedbackWebhookDelivery.SENT, now, "", answer)


def _finish(delivery, status, now, error, answer=""):
    delivery.status, delivery.error, delivery.answer = status, error, answer[:200]
    delivery.sent_at = now if status == FeedbackWebhookDelivery.SENT else None
    delivery.save(update_fields=["status", "error", "answer", "sent_at"])
    return DeliveryOutcome(status, answer if status == FeedbackWebhookDelivery.SENT else f"failed: {error}")


def feedback_webhooks_drain(*, now: datetime | None = None, limit: int = DRAIN_BATCH) -> Counter:
    """The periodic pass: claims left by a dead worker go back to queued, deliveries past the outbox's expiry are
    given up, then what is due is sent (oldest first). Returns the outcomes counted by status."""
    now = now or timezone.now()
    FeedbackWebhookDelivery.objects.filter(
        status=FeedbackWebhookDelivery.SENDING, claimed_at__lt=now - STALE_CLAIM
    ).update(status=FeedbackWebhookDelivery.QUEUED)
    expired = FeedbackWebhookDelivery.objects.filter(
        status=FeedbackWebhookDelivery.QUEUED, created_at__lte=_expiry_cutoff(now)
    ).update(status=FeedbackWebhookDelivery.FAILED, error="given up: not delivered within the outbox's expiry")
    outcomes = Counter(expired=expired)
    due = FeedbackWebhookDelivery.objects.filter(status=FeedbackWebhookDelivery.QUEUED, next_attempt_at__lte=now)
    for delivery_id in list(due.order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:limit]):
        status = feedback_webhook_deliver(delivery_id=delivery_id, now=now).status
        if status:
            outcomes[status] += 1
    return outcomes


# --- what operators do ----------------------------------------------------------------------------------------


def feedback_webhook_save(*, webhook: FeedbackWebhook, new_secret: str = "", request=None, actor=None) -> str:
    """Save a webhook the admin edited. A new one without a secret gets a generated one; `new_secret` (whsec_...)
    replaces the stored one. Returns the secret when it was generated here, so it can be shown once; else ""."""
    actor = acting(request=request, actor=actor)
    require_perm(actor, CHANGE_PERMISSION if webhook.pk else ADD_PERMISSION)
    generated = ""
    if new_secret:
        problem = webhook_secret_problem(new_secret)
        if problem:
            raise field_error("new_secret", f"the signing secret {problem}")
        webhook.set_secret(new_secret)
    elif not webhook.secret_encrypted:
        generated = standard_webhooks.generate_secret()
        webhook.set_secret(generated)
    webhook.url = webhook.url.strip()
    webhook.full_clean()
    is_new = webhook.pk is None
    with transaction.atomic():
        webhook.save()
        what = "added" if is_new else "changed"
        secret_note = "; a new signing secret" if new_secret or generated else ""
        kinds, state = ", ".join(webhook.kinds()) or "no kind", "enabled" if webhook.is_enabled else "disabled"
        audit(
            "feedback_webhook.save",
            request=request,
            actor=audit_actor(actor),
            target=webhook,
            description=f"Bounce and complaint webhook {webhook.name} {what} ({kinds}, {state}){secret_note}.",
        )
    return generated


def feedback_webhook_new_secret(*, webhook: FeedbackWebhook, request=None, actor=None) -> str:
    """Replace the signing secret by a generated one and return it (shown once; the receiver must be told)."""
    actor = acting(request=request, actor=actor)
    require_perm(actor, CHANGE_PERMISSION)
    secret = standard_webhooks.generate_secret()
    with transaction.atomic():
        webhook.set_secret(secret)
        webhook.save(update_fields=["secret_encrypted"])
        audit(
            "feedback_webhook.new_secret",
            request=request,
            actor=audit_actor(actor),
            target=webhook,
            description=f"Bounce and complaint webhook {webhook.name}: a new signing secret.",
        )
    return secret


# --- retention ------------------------------------------------------------------------------------------------


@dataclass
class FeedbackPruned:
    events: int = 0
    deliveries: int = 0

    def summary(self):
        return (
            f"deleted {self.events} bounce(s) and complaint(s) and {self.deliveries} webhook delivery(ies) older than "
            f"{settings.TRAFFIC_DAYS} days"
        )


def feedback_prune(*, now: datetime | None = None) -> FeedbackPruned:
    """Delete bounces and complaints read more than DOCKSPACE_TRAFFIC_DAYS ago (the mail traffic they are tied to is
    gone by then) and the webhook deliveries made that long ago that are no longer waiting, in batches."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.TRAFFIC_DAYS)
    result = FeedbackPruned()
    finished = [FeedbackWebhookDelivery.SENT, FeedbackWebhookDelivery.FAILED]
    old_deliveries = FeedbackWebhookDelivery.objects.filter(created_at__lt=cutoff, status__in=finished)
    while ids := list(old_deliveries.values_list("pk", flat=True)[:PRUNE_BATCH]):
        result.deliveries += FeedbackWebhookDelivery.objects.filter(pk__in=ids).delete()[0]
    old_events = FeedbackEvent.objects.filter(received_at__lt=cutoff)
    while ids := list(old_events.values_list("pk", flat=True)[:PRUNE_BATCH]):
        result.events += FeedbackEvent.objects.filter(pk__in=ids).delete()[0]
    return result
