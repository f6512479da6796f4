"""Delivering the outbox, the one module that talks SMTP. A worker claims a due message with one conditional UPDATE
(so exactly one worker sends it), sends it to the primary SMTP server, else the backup (`EMAIL_BACKUP_HOST`), or
writes it as a private file when no SMTP server is configured, then records the outcome: sent (body wiped), tried
again later with exponential backoff, or failed."""

import logging
import smtplib
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db.models import F
from django.utils import timezone

from accounts.models import OutboundMessage

logger = logging.getLogger(__name__)

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
FILE_BACKEND = "dockspace.outbox.PrivateFileEmailBackend"
RETRY_BASE_SECONDS = 60
# A worker that died while sending leaves its message 'sending': after this long another one may take it again.
# Far above two SMTP timeouts (EMAIL_TIMEOUT, 20 s each), so a slow send is never taken twice.
SENDING_LEASE_SECONDS = 10 * 60
DRAIN_BATCH = 100
# Sent, failed and expired rows (metadata only: bodies go when a message is sent or given up) are kept this long.
KEEP_DAYS = 30
ERROR_MAX_LENGTH = 300


# --- pure rules ---------------------------------------------------------------------------------------------------


def retry_delay(attempts):
    """The wait after the ATTEMPTS-th failed attempt: 60 s, 120 s, 240 s..."""
    return timedelta(seconds=RETRY_BASE_SECONDS * 2 ** (max(attempts, 1) - 1))


def is_permanent_refusal(exc):
    """The server said no for good: it refused every recipient with a 5xx code (550 user unknown...)."""
    refused = getattr(exc, "recipients", None) if isinstance(exc, smtplib.SMTPRecipientsRefused) else None
    return bool(refused) and all(500 <= code < 600 for code, _ in refused.values())


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def error_text(exc):
    """A short account of a failed send for the admin and the log: the server's code and reply or the socket error.
    Never the message, never a password (smtplib's errors carry neither)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = exc.recipients.items()
        text = "refused " + ", ".join(f"{addr} ({code} {_text(reply)})" for addr, (code, reply) in refused)
    elif isinstance(exc, smtplib.SMTPResponseException):
        text = f"{exc.smtp_code} {_text(exc.smtp_error)}"
    elif isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())


# --- the stored message, as Django's mail backends take it ----------------------------------------------------------


class _StoredMime:
    """The MIME bytes as written by Django (lines end in \\n), given back with the line ending a backend asks for."""

    def __init__(self, raw):
        self.raw = raw

    def as_bytes(self, unixfrom=False, linesep="\n"):
        return self.raw if linesep == "\n" else self.raw.replace(b"\n", linesep.encode())

    def get_charset(self):
        return None  # the file backend then reads it as UTF-8, which is what Django writes


class StoredEmail(EmailMessage):
    """An outbox row for a mail backend: its envelope, and its MIME text exactly as stored (same Message-ID on every
    attempt, so a receiver can tell a repeat)."""

    def __init__(self, row):
        super().__init__(subject=row.subject, from_email=row.from_email, to=list(row.recipients))
        self.raw = bytes(row.mime)

    def recipients(self):
        return list(self.to)

    def message(self):
        return _StoredMime(self.raw)


# --- the transports -----------------------------------------------------------------------------------------------


def _smtp_servers():
    """(how it is recorded, get_connection's arguments): the primary (Django's EMAIL_ settings), then the backup."""
    servers = [(OutboundMessage.VIA_PRIMARY, {})]
    if settings.EMAIL_BACKUP_HOST:
        backup = {
            "host": settings.EMAIL_BACKUP_HOST,
            "port": settings.EMAIL_BACKUP_PORT,
            "username": settings.EMAIL_BACKUP_HOST_USER,
            "password": settings.EMAIL_BACKUP_HOST_PASSWORD,
            "use_tls": settings.EMAIL_BACKUP_USE_TLS,
            "use_ssl": settings.EMAIL_BACKUP_USE_SSL,
        }
        servers.append((OutboundMessage.VIA_BACKUP, backup))
    return servers


def _transmit(row):
    """Send ROW once over each configured way in turn until one takes it. Returns (via or None, error text,
    whether a server refused it for good)."""
    if not settings.EMAIL_HOST:
        # No SMTP server (`make run`): the private file under <data dir>/outbox is the delivery.
        servers = [(OutboundMessage.VIA_FILE, {"backend": FILE_BACKEND})]
    else:
        servers = [(via, {"backend": SMTP_BACKEND, **options}) for via, options in _smtp_servers()]
    errors = []
    for via, options in servers:
        try:
            if get_connection(fail_silently=False, **options).send_messages([StoredEmail(row)]):
                return via, "", False
            errors.append(f"{via}: not accepted")
        except Exception as exc:  # any failure of this way: recorded on the row, the next way is tried
            errors.append(f"{via}: {error_text(exc)}")
            if is_permanent_refusal(exc):
                return None, "; ".join(errors), True
    return None, "; ".join(errors), False


# --- the outbox ---------------------------------------------------------------------------------------------------


def _expiry_cutoff(now):
    return now - timedelta(seconds=settings.DOCKSPACE_OUTBOX_EXPIRY_SECONDS)


def _due(now):
    """Messages a worker may take now: queued (or left 'sending' by a worker that died) and not expired."""
    return OutboundMessage.objects.filter(
        status__in=[OutboundMessage.QUEUED, OutboundMessage.SENDING],
        next_attempt_at__lte=now,
        created_at__gt=_expiry_cutoff(now),
    )


def outbound_message_claim(message_id, *, now=None):
    """Take MESSAGE_ID for this worker if it is due: one conditional UPDATE, so of two workers asking at once exactly
    one gets it. Counts the attempt and holds the message for SENDING_LEASE_SECONDS."""
    now = now or timezone.now()
    taken = (
        _due(now)
        .filter(pk=message_id)
        .update(
            status=OutboundMessage.SENDING,
            attempts=F("attempts") + 1,
            next_attempt_at=now + timedelta(seconds=SENDING_LEASE_SECONDS),
        )
    )
    return taken == 1


def outbound_message_deliver(message_id):
    """Send one message if it is due and this worker claims it. Returns its new status, or None when it was not due
    or another worker has it."""
    if not outbound_message_claim(message_id):
        return None
    row = OutboundMessage.objects.get(pk=message_id)
    via, error, permanent = _transmit(row)
    now = timezone.now()
    if via:
        row.status, row.sent_at, row.sent_via, row.last_error = OutboundMessage.SENT, now, via, ""
        row.mime = b""  # sent: the body (a reset link) is not kept
    elif permanent or row.attempts >= settings.DOCKSPACE_OUTBOX_MAX_ATTEMPTS:
        row.status, row.last_error = OutboundMessage.FAILED, error[:ERROR_MAX_LENGTH]
    else:
        row.status, row.last_error = OutboundMessage.QUEUED, error[:ERROR_MAX_LENGTH]
        row.next_attempt_at = now + retry_delay(row.attempts)
    if not via:
        logger.warning("Outbound message %s, attempt %s: %s (%s).", row.pk, row.attempts, error, row.status)
    row.save(update_fields=["status", "sent_at", "sent_via", "last_error", "mime", "next_attempt_at"])
    return row.status


def outbound_messages_deliver(message_ids):
    """Send each of these messages that is due, as outbound_message_deliver (a process that delivers its own mail,
    accounts.outbox.delivered_here). Returns the ids still waiting: queued for a later attempt, or being sent."""
    for message_id in message_ids:
        outbound_message_deliver(message_id)
    waiting = OutboundMessage.objects.filter(
        pk__in=message_ids, status__in=[OutboundMessage.QUEUED, OutboundMessage.SENDING]
    )
    return list(waiting.values_list("pk", flat=True))


def outbound_messages_expire(now=None):
    """Give up on messages older than the expiry: queued ones become expired; they and failed ones lose their body
    (nothing can send them any more). Returns how many expired."""
    now = now or timezone.now()
    old = OutboundMessage.objects.filter(created_at__lte=_expiry_cutoff(now))
    expired = old.filter(status=OutboundMessage.QUEUED).update(status=OutboundMessage.EXPIRED, mime=b"")
    # 'sending' past its lease: the worker died; past the expiry nobody takes it again.
    expired += old.filter(status=OutboundMessage.SENDING, next_attempt_at__lte=now).update(
        status=OutboundMessage.EXPIRED, mime=b""
    )
    old.filter(status=OutboundMessage.FAILED).exclude(mime=b"").update(mime=b"")
    return expired


def outbox_drain(*, limit=DRAIN_BATCH):
    """The periodic pass: expire what is too old, then send what is due (oldest first). Returns the outcomes counted
    by status ("sent", "queued" for a retry later, "failed", "expired")."""
    outcomes = Counter(expired=outbound_messages_expire())
    due = _due(timezone.now()).order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:limit]
    for message_id in list(due):
        status = outbound_message_deliver(message_id)
        if status:
            outcomes[status] += 1
    return outcomes


def outbox_prune(now=None):
    """Delete sent, failed and expired messages older than KEEP_DAYS. Returns how many."""
    now = now or timezone.now()
    finished = [OutboundMessage.SENT, OutboundMessage.FAILED, OutboundMessage.EXPIRED]
    cutoff = now - timedelta(days=KEEP_DAYS)
    return OutboundMessage.objects.filter(status__in=finished, created_at__lt=cutoff).delete()[0]
