"""Bounces and complaints into the database: a raw message from the feedback mailbox parsed and classified
(monitoring.feedback_reports), tied to the message we sent (by the queue ID the report names, else its Message-ID)
and to the IP it left from (that message's delivery attempt), stored once per recipient (feedback_ingest). Anyone
can write a report and quote a Message-ID: a recipient counts for a message and its IP only when it is one of that
message's own recipients (its delivery attempts); the rest is stored tied to nothing, and counts for no IP. Read
messages one at a time from a file, an mbox or a maildir for `manage.py feedback ingest` (messages_in_*).

Who acts: reading the feedback mailbox is the system's work (a command, a pipe from the mail host). A person would
need the permission to add bounces and complaints (monitoring.add_feedbackevent)."""

from __future__ import annotations

import hashlib
import ipaddress
import mailbox
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.authz import SYSTEM, Actor, require_perm
from monitoring.feedback_models import REASON_MAX_LENGTH, SOURCE_MAX_LENGTH, FeedbackEvent
from monitoring.feedback_reports import OTHER, FeedbackReport, RecipientResult, ignored_note, parse_report
from monitoring.feedback_webhooks import feedback_webhooks_queue
from monitoring.traffic_models import ADDRESS_MAX_LENGTH, QUEUE_ID_MAX_LENGTH, REPLY_MAX_LENGTH, MailMessage

INGEST = "monitoring.add_feedbackevent"
# A bounce carries at most the original message (Postfix: bounce_size_limit, 50 kB; others attach it whole):
# beyond this it is not a report worth reading, and it would sit in memory twice while parsed.
MAX_REPORT_BYTES = 40 * 1024 * 1024
_CANDIDATES = 5  # messages tried per queue ID (a queue ID is used again after its message left the queue)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass
class IngestedFeedback:
    """What one raw message came to: the report, the events stored (none when it had been read before)."""

    report: FeedbackReport
    events: list[FeedbackEvent] = field(default_factory=list)
    is_duplicate: bool = False
    digest: str = ""


def feedback_ingest(*, actor: Actor = SYSTEM, raw: bytes, source: str) -> IngestedFeedback:
    """Store the bounce or complaint in `raw` (the message's bytes as received), read from `source` (stdin, a file,
    a mailbox): one FeedbackEvent per recipient it reports (one of kind `other` for what is not a report). A message
    read before (same bytes, whatever the line endings) changes nothing and says so."""
    require_perm(actor, INGEST)
    if not isinstance(raw, bytes | bytearray):
        raise ValidationError({"raw": ["the message must be given as bytes."]})
    if not raw.strip():
        raise ValidationError({"raw": ["the message is empty."]})
    if len(raw) > MAX_REPORT_BYTES:
        raise ValidationError(
            {"raw": [f"the message is {len(raw):,} bytes; a report is at most {MAX_REPORT_BYTES:,} bytes."]}
        )
    source = (source or "").strip()
    if not source or len(source) > SOURCE_MAX_LENGTH:
        raise ValidationError({"source": [f"a source is 1 to {SOURCE_MAX_LENGTH} characters."]})
    digest = raw_digest(bytes(raw))
    report = parse_report(bytes(raw))
    if FeedbackEvent.objects.filter(digest=digest).exists():
        return IngestedFeedback(report, is_duplicate=True, digest=digest)
    now = timezone.now()
    message = tied_message(report, now)
    own = MessageRecipients.of(message) if message is not None else None
    results = report.recipients or (RecipientResult(recipient="", kind=report.kind, reason=report.reason),)
    events = [
        _event(report, result, position, message, own, now, source, digest) for position, result in enumerate(results)
    ]
    try:
        with transaction.atomic():
            events = FeedbackEvent.objects.bulk_create(events)
            # The webhooks' deliveries are written with the events, and sent once they commit.
            feedback_webhooks_queue(events, now=now)
    except IntegrityError:
        # Read at the same moment by another reader (two pipes of one message): theirs stands.
        if FeedbackEvent.objects.filter(digest=digest).exists():
            return IngestedFeedback(report, is_duplicate=True, digest=digest)
        raise
    return IngestedFeedback(report, events, digest=digest)


def raw_digest(raw: bytes) -> str:
    """sha256 of the message with CRLF line endings made LF: the same message piped by Postfix (LF) and fetched
    over IMAP (CRLF) is one message."""
    return hashlib.sha256(raw.replace(b"\r\n", b"\n")).hexdigest()


def tied_message(report: FeedbackReport, at: datetime) -> MailMessage | None:
    """The message a report tells of: by the queue ID Postfix named in the DSN, else by those in the original's
    Received headers (newest first), the latest message seen before `at` with that queue ID whose Message-ID agrees
    (or is unknown on either side); else the latest sent message with the original's Message-ID."""
    queue_ids = list(dict.fromkeys(q for q in (report.queue_id, *report.received_queue_ids) if q))
    wanted = report.original_message_id
    for queue_id in queue_ids:
        candidates = MailMessage.objects.filter(queue_id=queue_id[:QUEUE_ID_MAX_LENGTH], first_seen_at__lte=at)
        for message in candidates.order_by("-first_seen_at", "-id")[:_CANDIDATES]:
            if not wanted or not message.message_id or message.message_id == wanted:
                return message
    if wanted:
        found = MailMessage.objects.filter(message_id=wanted[:255], first_seen_at__lte=at)
        # A message sent (direction "out") before one the log could not place, the latest first.
        return found.order_by("-direction", "-first_seen_at", "-id").first()
    return None


@dataclass
class MessageRecipients:
    """A message's own recipients as its delivery attempts name them: {lower-cased address or original address: the
    recipient as logged}, and the IP each recipient last left from through an out-* transport."""

    by_address: dict[str, str] = field(default_factory=dict)
    sending_ips: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, message: MailMessage) -> MessageRecipients:
        own = cls()
        rows = list(message.attempts.order_by("at", "id").values_list("recipient", "orig_recipient", "sending_ip"))
        for recipient, _, sending_ip in rows:
            if not recipient:
                continue
            own.by_address[recipient.lower()] = recipient
            if sending_ip:
                own.sending_ips[recipient] = sending_ip
        for recipient, orig_recipient, _ in rows:
            if recipient and orig_recipient:
                own.by_address.setdefault(orig_recipient.lower(), recipient)
        return own

    def match(self, *addresses: str) -> str:
        """The recipient (as logged) one of `addresses` names; with no address at all, the message's only recipient
        (a complaint with the recipient redacted); else ""."""
        given = [address for address in addresses if address]
        if not given:
            recipients = set(self.by_address.values())
            return recipients.pop() if len(recipients) == 1 else ""
        return next((self.by_address[a.lower()] for a in given if a.lower() in self.by_address), "")


def _event(
    report: FeedbackReport,
    result: RecipientResult,
    position: int,
    message: MailMessage | None,
    own: MessageRecipients | None,
    now: datetime,
    source: str,
    digest: str,
) -> FeedbackEvent:
    recipient = result.recipient or (report.verp_recipient if len(report.recipients) <= 1 else "")
    # Anyone who received a message can quote its Message-ID (or a queue ID) in a report of their own: a result
    # counts for the message and its IP only for one of the message's own recipients.
    notes = []
    if message is not None and own is not None:
        mine = own.match(recipient, result.original_recipient)
        if mine:
            recipient = mine
        else:
            notes.append(
                f"{recipient or 'no recipient named'}: not a recipient of message {message.queue_id}; not counted"
            )
            message = None
    elif result.kind != OTHER:
        notes.append("tied to no message we sent: counted for no IP")
    if report.ignored_recipients:
        notes.append(ignored_note(report.ignored_recipients))
    sending_ip = own.sending_ips.get(recipient) if message is not None and own is not None else None
    sender = (message.sender if message is not None and message.sender else "") or report.original_sender
    return FeedbackEvent(
        received_at=now,
        source=_clip(source, SOURCE_MAX_LENGTH),
        kind=result.kind,
        reason=_noted(result.reason, notes),
        report_type=report.report_type,
        status=_clip(result.status, 16),
        action=_clip(result.action, 20),
        feedback_type=_clip(report.feedback_type, 40),
        diagnostic=_clip(result.diagnostic, REPLY_MAX_LENGTH),
        remote_mta=_clip(result.remote_mta, 255),
        reporter=_clip(report.reporter, 255),
        recipient=_clip(recipient, ADDRESS_MAX_LENGTH),
        original_sender=_clip(sender, ADDRESS_MAX_LENGTH),
        sender_domain=_clip(sender.rpartition("@")[2].lower() if "@" in sender else "", 253),
        original_message_id=_clip(report.original_message_id, 255),
        queue_id=message.queue_id if message is not None else _clip(report.queue_id, QUEUE_ID_MAX_LENGTH),
        trace=_clip(report.trace, 255),
        verp_tag=_clip(report.verp_tag, 255),
        source_ip=_ip(report.source_ip),
        message=message,
        sending_ip=sending_ip,
        digest=digest,
        position=position,
    )


def _noted(reason: str, notes: list[str]) -> str:
    """The reason with the notes after it, the reason clipped first so the notes are kept."""
    tail = "".join(f"; {note}" for note in notes)
    tail = _clip(tail, REASON_MAX_LENGTH)
    return _clip(reason, REASON_MAX_LENGTH - len(tail)) + tail


def _clip(value: str, length: int) -> str:
    """A value as stored: control characters (NUL, which PostgreSQL refuses; terminal escapes) made U+FFFD, clipped."""
    return _CONTROL.sub("\ufffd", value or "")[:length]


def _ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip())) if value and "%" not in value else None
    except ValueError:
        return None


# --- reading messages for the command ----------------------------------------------------------------------------


class FeedbackInputError(Exception):
    """Input that holds no message to read: the text names the file or stream and why."""


def message_in_file(path: str) -> bytes:
    """The one message a file holds (an .eml, a message saved from a mail client)."""
    try:
        with open(path, "rb") as stream:
            raw = stream.read(MAX_REPORT_BYTES + 1)
    except FileNotFoundError:
        raise FeedbackInputError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise FeedbackInputError(f"{path} is a directory; give --maildir for a maildir") from None
    except OSError as exc:
        raise FeedbackInputError(f"cannot read {path}: {exc.strerror}") from None
    raw = _without_mbox_line(raw)
    _check_message(raw, path)
    return raw


def message_in_stream(stream, name: str = "stdin") -> bytes:
    raw = _without_mbox_line(stream.read(MAX_REPORT_BYTES + 1))
    _check_message(raw, name)
    return raw


def messages_in_mbox(path: str) -> Iterator[bytes]:
    """Each message of an mbox file, in order. FeedbackInputError when it is missing or holds no message."""
    if not os.path.isfile(path):
        raise FeedbackInputError(f"no such file: {path}" if not os.path.exists(path) else f"{path} is not a file")
    with open(path, "rb") as stream:
        if not stream.read(5) == b"From ":
            raise FeedbackInputError(f"{path} is not an mbox: an mbox starts with a 'From ' line")
    box = mailbox.mbox(path, create=False)
    try:
        for key in box.iterkeys():
            yield box.get_bytes(key)
    finally:
        box.close()


def messages_in_maildir(path: str) -> Iterator[bytes]:
    """Each message of a maildir (its new/ and cur/). FeedbackInputError when it is not a maildir."""
    if not all(os.path.isdir(os.path.join(path, sub)) for sub in ("cur", "new", "tmp")):
        raise FeedbackInputError(f"{path} is not a maildir: it needs the folders cur, new and tmp")
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in sorted(box.iterkeys()):
        try:
            yield box.get_bytes(key)
        except KeyError:  # delivered elsewhere (moved to cur/, deleted) while we read
            continue


def _without_mbox_line(raw: bytes) -> bytes:
    """A message saved with the mbox 'From sender date' line on top (mutt, Thunderbird's export) without it."""
    return raw.split(b"\n", 1)[1] if raw.startswith(b"From ") and b"\n" in raw else raw


def _check_message(raw: bytes, name: str) -> None:
    if not raw.strip():
        raise FeedbackInputError(f"{name} is empty: give one message (headers, blank line, body)")
    if len(raw) > MAX_REPORT_BYTES:
        raise FeedbackInputError(f"{name} is over {MAX_REPORT_BYTES:,} bytes: no bounce or complaint is that large")
    head = raw.lstrip()[:2000].split(b"\n", 1)[0]
    name_part, colon, _ = head.partition(b":")
    if not colon or not name_part or any(c <= 32 or c > 126 for c in name_part):
        raise FeedbackInputError(
            f"{name} is not an email message: its first line is not a header field (Name: value); give the raw "
            "message as received, e.g. saved with 'Show original' or 'Save as .eml'"
        )
