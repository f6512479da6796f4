"""The outbox, Django's EMAIL_BACKEND: every message Dockspace sends (send_mail, EmailMessage.send) becomes an
OutboundMessage row in the caller's transaction, and once that commits the worker delivers it with retries
(accounts.outbox_delivery), or the sending process itself inside `delivered_here()`. Also the operator's "retry
now"."""

import contextlib
import contextvars
import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.utils import timezone

from accounts import authz, outbox_delivery
from accounts.audit import audit
from accounts.models import OutboundMessage
from dockspace.celery import queue_task

logger = logging.getLogger(__name__)

RETRY_PERMISSION = "accounts.retry_outboundmessage"

_kind = contextvars.ContextVar("outbound_mail_kind", default="")
_delivered_here = contextvars.ContextVar("outbound_mail_delivered_here", default=None)


@contextlib.contextmanager
def mail_kind(kind):
    """Messages sent inside this block are labelled KIND in the outbox ("password reset", "alert")."""
    token = _kind.set(kind)
    try:
        yield
    finally:
        _kind.reset(token)


@contextlib.contextmanager
def delivered_here():
    """Messages stored inside this block are delivered by this process once their transaction commits (the
    worker's claim, transports and retry schedule: accounts.outbox_delivery) instead of being handed to the worker:
    for a process that must not depend on the worker (monitoring's watchdog). Yields the list of their ids; one
    that could not be sent stays queued for its next attempt (outbound_messages_deliver, or the worker's drain)."""
    stored = []
    token = _delivered_here.set(stored)
    try:
        yield stored
    finally:
        _delivered_here.reset(token)


class OutboxBackend(BaseEmailBackend):
    """Stores each message (its MIME text as Django would send it, and its envelope) instead of sending it."""

    def send_messages(self, email_messages):
        stored = []
        try:
            with transaction.atomic():
                for message in email_messages:
                    recipients = message.recipients()
                    if not recipients:
                        continue
                    stored.append(
                        OutboundMessage.objects.create(
                            recipients=recipients,
                            from_email=str(message.from_email)[:500],
                            subject=str(message.subject)[:255],
                            kind=_kind.get()[:40],
                            mime=message.message().as_bytes(),
                        ).pk
                    )
        except Exception:
            if not self.fail_silently:
                raise
            return 0
        here = _delivered_here.get()
        if stored and here is not None:
            here.extend(stored)
            transaction.on_commit(lambda: outbox_delivery.outbound_messages_deliver(stored))
        elif stored:
            transaction.on_commit(lambda: outbound_messages_schedule(stored))
        return len(stored)


def outbound_messages_schedule(message_ids):
    """Ask the worker to send these now. A message the broker cannot take stays queued: the drain task (every
    minute) sends it, so nothing is lost while Redis or the worker is down."""
    for message_id in message_ids:
        try:
            queue_task("accounts.outbox_send", message_id)
        except Exception:  # the broker is down; the row is safe in the database
            logger.warning("Task queue unreachable; outbound message %s waits for the outbox drain.", message_id)


def is_retryable(message, now):
    """Queued or failed, body still kept, and younger than the expiry: sending it again can still work."""
    too_old = message.created_at <= now - timedelta(seconds=settings.DOCKSPACE_OUTBOX_EXPIRY_SECONDS)
    return message.status in (OutboundMessage.QUEUED, OutboundMessage.FAILED) and message.has_body and not too_old


def outbound_messages_retry(*, messages, request=None, actor=None, actor_label=None):
    """Send these messages now, whatever their next attempt said ("Retry now" in the admin): each gets one more
    attempt, and the usual backoff after it. Needs the permission to retry outbound mail; sent, expired and
    in-flight messages are refused. All or nothing. Returns how many were queued."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, RETRY_PERMISSION)
    now = timezone.now()
    with transaction.atomic():
        rows = list(OutboundMessage.objects.select_for_update().filter(pk__in=[m.pk for m in messages]))
        refused = [row for row in rows if not is_retryable(row, now)]
        if refused:
            raise ValidationError(
                f"{len(refused)} of the selected messages cannot be sent again: only queued or failed messages "
                f"younger than {settings.DOCKSPACE_OUTBOX_EXPIRY_SECONDS // 3600} hours are (sent, expired and "
                "sending ones are not)."
            )
        OutboundMessage.objects.filter(pk__in=[row.pk for row in rows]).update(
            status=OutboundMessage.QUEUED, next_attempt_at=now
        )
        for row in rows:
            audit(
                "outbox.retry",
                request=request,
                actor=authz.audit_actor(actor),
                actor_label=actor_label,
                target=row,
                description=f"Retry now of outbound mail ({row.status}, {row.attempts} attempt(s) so far).",
            )
        ids = [row.pk for row in rows]
        transaction.on_commit(lambda: outbound_messages_schedule(ids))
    return len(rows)
