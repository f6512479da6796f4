"""Periodic housekeeping for people and sign-in. Thin tasks: the work is in accounts.housekeeping."""

from celery import shared_task

from accounts import housekeeping, outbox_delivery
from accounts.registration import registration_mail_send
from accounts.reset_mail import password_reset_mail_send


@shared_task(
    name="accounts.purge_audit_log", is_periodic=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=3
)
def purge_audit_log():
    deleted = housekeeping.audit_log_purge()
    return f"deleted {deleted} audit events past retention"


@shared_task(
    name="accounts.purge_expired_sessions",
    is_periodic=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=3,
)
def purge_expired_sessions():
    sessions, throttles = housekeeping.expired_sessions_purge()
    return f"deleted {sessions} expired sessions and {throttles} stale lockout counters"


@shared_task(name="accounts.send_password_reset", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_password_reset(email, by_administrator=False):
    sent = password_reset_mail_send(email, by_administrator=by_administrator)
    return f"sent {sent} password-reset message(s)"


@shared_task(name="accounts.send_registration_mail", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_registration_mail(email):
    sent = registration_mail_send(email)
    return f"sent {sent} registration message(s)"


# The outbox keeps its own retry schedule (next_attempt_at, drained every minute): no Celery retries or countdowns.
@shared_task(name="accounts.outbox_send")
def outbox_send(message_id):
    status = outbox_delivery.outbound_message_deliver(message_id)
    return f"outbound message {message_id}: {status or 'not due, or another worker has it'}"


@shared_task(name="accounts.outbox_drain", is_periodic=True)
def outbox_drain():
    outcomes = outbox_delivery.outbox_drain()
    return ", ".join(f"{count} {status}" for status, count in sorted(outcomes.items())) or "nothing due"


@shared_task(
    name="accounts.outbox_prune", is_periodic=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=3
)
def outbox_prune():
    deleted = outbox_delivery.outbox_prune()
    return f"deleted {deleted} outbound messages past retention"
