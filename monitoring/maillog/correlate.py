"""Events into messages: ties the events of monitoring.maillog.parse together by queue id, one batch of lines at a
time, and hands the store (monitoring.traffic) plain records: the messages a batch touched, one delivery attempt per
`to=` line (and per recipient given up when a message expires), the SMTP rejections.

A message's lines can span batches (a deferred message is retried for days), so a batch starts from the messages
already stored that it may continue: the store loads them (`restorable_queue_ids` names the queue ids to look up)
as OpenMessage values and a Correlator picks, for each line, the stored or new message it belongs to. Reading the
same lines again (an archive ingested after the follower read it) lands on the same messages: a message is known
by the key of the line that opened it, each attempt and rejection by its own line's key."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from monitoring.maillog import events as ev
from monitoring.maillog.parse import sending_ip

# Message states (MailMessage.state).
QUEUED, DELIVERED, DEFERRED, BOUNCED, EXPIRED, MIXED, REJECTED = (
    "queued",
    "delivered",
    "deferred",
    "bounced",
    "expired",
    "mixed",
    "rejected",
)
# Kept in the hold queue by a HOLD action (header_checks, an access table, a milter) until `postsuper -H` releases
# it; dropped unseen by a DISCARD action (the client was told it was queued).
HELD, DISCARDED = "held", "discarded"
_KEEPING = {"hold": HELD, "milter-hold": HELD, "discard": DISCARDED, "milter-discard": DISCARDED}
IN, OUT = "in", "out"
_FINAL_STATE = {ev.SENT: DELIVERED, ev.DEFERRED: DEFERRED, ev.BOUNCED: BOUNCED, ev.EXPIRED: EXPIRED}
# A refusal with a queue id at these stages ends the message: Postfix drops the queue file, logs no `removed`.
_ENDING_STAGES = frozenset({"DATA", "END-OF-MESSAGE", "BDAT", "header", "body"})
# A message not heard of for this long is dead (its `removed` line never came, e.g. the client left mid-message):
# a line with its queue id later belongs to a new message. Postfix retries a deferred message at least every
# maximal_backoff_time (4000 s by default) and gives up after maximal_queue_lifetime (5 days by default).
STALE_AFTER = timedelta(days=7)
# A message the queue manager never saw (no `from=, size=` line: the client left before the end of DATA) is dead
# once its SMTP session must have ended.
UNQUEUED_STALE_AFTER = timedelta(days=1)
# A recipient's RCPT and the `client=` line of the queue file it made come within one SMTP command's timeout
# (smtpd_timeout, 300 s by default).
SMTP_TRANSACTION = timedelta(seconds=300)


def line_key(source: str, raw: str) -> str:
    """The key of a stored line: 16-byte blake2b (hex) of the source's name and the raw line (without its line
    ending)."""
    return hashlib.blake2b(f"{source}\n{raw}".encode("utf-8", "backslashreplace"), digest_size=16).hexdigest()


def part_key(key: str, part: str) -> str:
    """The key of one of several rows a line makes (a recipient given up when its message expired)."""
    return hashlib.blake2b(f"{key}\n{part}".encode("utf-8", "backslashreplace"), digest_size=16).hexdigest()


@dataclass(eq=False)
class OpenMessage:
    """A message as the store keeps it (a MailMessage row's values) plus what the correlator needs to go on: the
    latest status of each recipient. `id` is the row's id once stored."""

    line_key: str
    queue_id: str
    first_seen_at: datetime
    last_seen_at: datetime
    sender: str = ""
    size: int | None = None
    nrcpt: int | None = None
    message_id: str = ""
    sasl_username: str = ""
    client_host: str = ""
    client_ip: str = ""
    direction: str = ""
    state: str = QUEUED
    removed_at: datetime | None = None
    received_by: str = ""  # the program whose line took it in: "postfix/smtpd", "postfix/submissions/smtpd", ...
    notification_of_key: str = ""  # a notification Postfix wrote: the line key of the message it tells of
    # recipient -> (latest status, its time): an older line read again does not undo a later outcome.
    recipients: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    id: int | None = None
    _stored: tuple | None = field(default=None, repr=False)

    def values(self) -> tuple:
        """The stored fields, to tell whether a batch changed a restored message."""
        return (
            self.queue_id,
            self.first_seen_at,
            self.last_seen_at,
            self.sender,
            self.size,
            self.nrcpt,
            self.message_id,
            self.sasl_username,
            self.client_host,
            self.client_ip,
            self.direction,
            self.state,
            self.removed_at,
            self.received_by,
            self.notification_of_key,
        )

    def mark_stored(self) -> OpenMessage:
        """Note the values as stored (a message restored from the database, or just written)."""
        self._stored = self.values()
        return self

    @property
    def is_changed(self) -> bool:
        return self._stored != self.values()


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """A DeliveryAttempt row to write (its message's id is known once the message is stored)."""

    message: OpenMessage
    at: datetime
    recipient: str
    orig_recipient: str
    relay: str
    service: str
    sending_ip: str | None
    delay: float | None
    delays: str
    dsn: str
    status: str  # sent, deferred, bounced, expired
    reply: str
    line_key: str


@dataclass(frozen=True, slots=True)
class RejectionRecord:
    """An SmtpRejection row to write."""

    event: ev.Rejected
    line_key: str


@dataclass
class Batch:
    """What a batch of lines comes to: the messages it created or changed, the rows to add, and counts."""

    messages: list[OpenMessage]
    attempts: list[AttemptRecord]
    rejections: list[RejectionRecord]
    other_by_program: Counter[str]
    events: Counter[str]  # by event class name ("Delivery", "Other", ...)
    # smtpd's "problem talking to server" lines about a policy service, in log order (no message of their own).
    policy_unreachable: list[ev.PolicyUnreachable] = field(default_factory=list)


def restorable_queue_ids(events: Iterable[ev.Event]) -> set[str]:
    """The queue ids a batch's events name: the stored messages to restore before correlating them."""
    ids = set()
    for event in events:
        queue_id = getattr(event, "queue_id", "")
        if queue_id:
            ids.add(queue_id)
        if isinstance(event, ev.BounceCreated):
            ids.add(event.notification_queue_id)
    return ids


def message_state(message: OpenMessage, *, expired: bool = False) -> str:
    """A message's state from its recipients' latest statuses: deferred while one waits in the queue, else the
    outcome they share, or mixed. Refused and discarded stay so; held stays so until a recipient is tried (the
    queue manager's `from=` line after a release makes it queued again)."""
    if message.state == REJECTED or (message.state == DISCARDED and not message.recipients):
        return message.state  # a delivery after a DISCARD means the DISCARD was some other message's
    latest = {status for status, _ in message.recipients.values()}
    if not latest:
        if expired or message.state == EXPIRED:
            return EXPIRED
        return HELD if message.state == HELD else QUEUED
    if message.removed_at is None:
        if DEFERRED in latest:
            return DEFERRED
        if message.nrcpt and len(message.recipients) < message.nrcpt:
            return QUEUED  # some recipients not tried yet
    outcomes = {_FINAL_STATE.get(status, MIXED) for status in latest}
    return outcomes.pop() if len(outcomes) == 1 else MIXED


class Correlator:
    """Feeds a batch's events in log order; `restored` are the stored messages their queue ids may continue
    (see restorable_queue_ids), `source` the LogSource name that keys the lines."""

    def __init__(self, source: str, restored: Iterable[OpenMessage] = (), *, stale_after: timedelta = STALE_AFTER):
        self.source = source
        self.stale_after = stale_after
        self.open: dict[str, OpenMessage] = {}
        self.candidates: dict[str, list[OpenMessage]] = {}
        for message in restored:
            message.mark_stored()
            self.candidates.setdefault(message.queue_id, []).append(message)
        for stored in self.candidates.values():
            stored.sort(key=lambda m: m.first_seen_at)
        self.touched: dict[str, OpenMessage] = {}
        self.attempts: list[AttemptRecord] = []
        self.rejections: list[RejectionRecord] = []
        self.other_by_program: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.policy_unreachable: list[ev.PolicyUnreachable] = []
        # A HOLD or DISCARD logged before its queue id (NOQUEUE), by the smtpd process that logged it: the index of
        # its record in self.rejections.
        self.pending_keep: dict[tuple[str, str, int | None], int] = {}

    # --- finding the message a line belongs to ---

    def _stored(self, queue_id: str, at: datetime, key: str, *, opening: bool) -> OpenMessage | None:
        """The stored message this line continues: the one it opened (read again), else the latest one opened
        before it and not yet removed then."""
        stored = self.candidates.get(queue_id)
        if not stored:
            return None
        for message in stored:
            if message.line_key == key:
                return message
        if opening:
            return None
        latest = None
        for message in stored:
            if message.first_seen_at <= at:
                latest = message
        if latest is None or (latest.removed_at is not None and latest.removed_at < at):
            return None
        if latest.removed_at is None and self._is_stale(latest, at):
            return None
        return latest

    def _is_stale(self, message: OpenMessage, at: datetime) -> bool:
        """Whether `message`, not removed, ended unseen before `at`."""
        silence = self.stale_after if message.size is not None else min(self.stale_after, UNQUEUED_STALE_AFTER)
        return message.last_seen_at < at - silence

    def _message(self, queue_id: str, at: datetime, key: str, *, opening: bool = False) -> OpenMessage:
        """The message a line belongs to: the open one, a stored one it continues, or a new one it opens. An
        opening line (smtpd's client=, pickup) with the queue id of an open message starts another message: the
        open one ended without a `removed` line (its client left mid-transaction)."""
        message = self.open.get(queue_id)
        if message is not None and message.line_key != key and (opening or self._is_stale(message, at)):
            message = None
        if message is None:
            message = self._stored(queue_id, at, key, opening=opening)
            if message is None:
                message = OpenMessage(key, queue_id, at, at)
                # Later lines of this queue id belong to it, or to a message after it: never to an older one.
                self.candidates.setdefault(queue_id, []).append(message)
            self.open[queue_id] = message
        if at > message.last_seen_at:
            message.last_seen_at = at
        self.touched[message.line_key] = message
        return message

    def _known(self, queue_id: str, at: datetime, key: str) -> OpenMessage | None:
        """The open or stored message of `queue_id`, without opening one."""
        message = self.open.get(queue_id)
        if message is None:
            message = self._stored(queue_id, at, key, opening=False)
        if message is not None:
            self.open[queue_id] = message
            if at > message.last_seen_at:
                message.last_seen_at = at
        return message

    def _close(self, message: OpenMessage, at: datetime) -> None:
        message.removed_at = at
        message.state = message_state(message)
        if self.open.get(message.queue_id) is message:
            del self.open[message.queue_id]

    # --- the events ---

    def feed(self, event: ev.Event, raw: str) -> None:
        """One event and the raw line it came from (without its line ending)."""
        kind = type(event)
        self.events[kind.__name__] += 1
        feeder = _FEEDERS.get(kind)
        if feeder is None:
            if kind is ev.Other:
                self.other_by_program[event.line.program] += 1
            return
        feeder(self, event, line_key(self.source, raw))

    def _client(self, event: ev.ClientConnected, key: str) -> None:
        message = self._message(event.queue_id, event.line.at, key, opening=True)
        if self.pending_keep:
            line = event.line
            index = self.pending_keep.pop((line.host, line.program, line.pid), None)
            if index is not None and line.at - self.rejections[index].event.line.at > SMTP_TRANSACTION:
                index = None  # from an earlier session of this process, whose recipient was not taken after all
            if index is not None:
                # The NOQUEUE line is filed under this message: its story and a search by recipient find it.
                record = self.rejections[index]
                self.rejections[index] = RejectionRecord(
                    replace(record.event, queue_id=event.queue_id), record.line_key
                )
                if not message.sender:
                    message.sender = record.event.sender
                message.first_seen_at = min(message.first_seen_at, record.event.line.at)  # its story begins there
                if message.state != DISCARDED:
                    message.state = _KEEPING[record.event.action]
        message.received_by = event.line.program
        message.client_host = event.client_host
        message.client_ip = event.client_ip
        if event.sasl_username:
            message.sasl_username = event.sasl_username
            message.direction = OUT
        elif not message.direction:
            message.direction = IN

    def _picked(self, event: ev.LocallyPicked, key: str) -> None:
        message = self._message(event.queue_id, event.line.at, key, opening=True)
        message.received_by = event.line.program
        message.direction = OUT
        if event.sender and not message.sender:
            message.sender = event.sender

    def _message_id(self, event: ev.MessageIdSeen, key: str) -> None:
        message = self._message(event.queue_id, event.line.at, key)
        if not message.message_id:
            message.message_id = event.message_id

    def _queued(self, event: ev.Queued, key: str) -> None:
        message = self._message(event.queue_id, event.line.at, key)
        if message.state == HELD:  # released from the hold queue: the queue manager has it
            message.state = QUEUED
        message.sender = event.sender
        message.size = event.size
        message.nrcpt = event.nrcpt
        message.state = message_state(message)

    def _delivery(self, event: ev.Delivery, key: str) -> None:
        message = self._message(event.queue_id, event.line.at, key)
        at = event.line.at
        known = message.recipients.get(event.recipient)
        if known is None or at >= known[1]:
            message.recipients[event.recipient] = (event.status, at)
        message.state = message_state(message)
        service = event.line.service
        self.attempts.append(
            AttemptRecord(
                message,
                event.line.at,
                event.recipient,
                event.orig_recipient,
                event.relay,
                service,
                sending_ip(service),
                event.delay,
                event.delays,
                event.dsn,
                event.status,
                event.reply,
                key,
            )
        )

    def _expired(self, event: ev.Expired, key: str) -> None:
        message = self._message(event.queue_id, event.line.at, key)
        if event.sender and not message.sender:
            message.sender = event.sender
        at = event.line.at
        for recipient, (status, when) in list(message.recipients.items()):
            if status != ev.DEFERRED or when > at:
                continue
            message.recipients[recipient] = (ev.EXPIRED, at)
            self.attempts.append(
                AttemptRecord(
                    message,
                    at,
                    recipient,
                    "",
                    "",
                    event.line.service,
                    None,
                    None,
                    "",
                    "",
                    ev.EXPIRED,
                    "message expired, returned to sender",
                    part_key(key, recipient),
                )
            )
        message.state = message_state(message, expired=True)

    def _removed(self, event: ev.Removed, key: str) -> None:
        at = event.line.at
        message = self._known(event.queue_id, at, key)
        if message is None:  # the log began after its other lines: nothing to tell
            return
        self.touched[message.line_key] = message
        self._close(message, at)

    def _bounce(self, event: ev.BounceCreated, key: str) -> None:
        notification = self._known(event.notification_queue_id, event.line.at, key)
        if notification is None:
            return
        if not notification.direction:
            notification.direction = OUT  # written by Postfix itself, to the sender
        # The message it tells of: looked up without making this line one of its lines.
        original = self.open.get(event.queue_id) or self._stored(event.queue_id, event.line.at, key, opening=False)
        if original is not None and original is not notification and not notification.notification_of_key:
            notification.notification_of_key = original.line_key
        self.touched[notification.line_key] = notification

    def _rejected(self, event: ev.Rejected, key: str) -> None:
        self.rejections.append(RejectionRecord(event, key))
        keeping = _KEEPING.get(event.action)
        if keeping is not None:
            if event.queue_id:
                self._kept(event, key, keeping)
            else:
                # At the first recipient smtpd has no queue file yet (NOQUEUE): the message is the one its next
                # line, `QID: client=`, opens (the HOLD or DISCARD accepted that recipient, so the file is made).
                line = event.line
                self.pending_keep[line.host, line.program, line.pid] = len(self.rejections) - 1
            return
        if not event.queue_id and not event.is_warning and self.pending_keep:
            # A later restriction refused that recipient after all (a HOLD does not end the checks): no file.
            line = event.line
            self.pending_keep.pop((line.host, line.program, line.pid), None)
        if not event.queue_id or event.is_warning or event.stage not in _ENDING_STAGES:
            return
        at = event.line.at
        message = self._known(event.queue_id, at, key) or self._message(event.queue_id, at, key)
        self.touched[message.line_key] = message
        if not message.sender and event.sender:
            message.sender = event.sender
        if not message.client_ip and event.client_ip:
            message.client_host, message.client_ip = event.client_host, event.client_ip
        message.state = REJECTED
        self._close(message, at)

    def _session(self, event: ev.SessionStarted, key: str) -> None:
        if self.pending_keep:  # the session that logged a HOLD or DISCARD without a queue id is over
            line = event.line
            self.pending_keep.pop((line.host, line.program, line.pid), None)

    def _policy_unreachable(self, event: ev.PolicyUnreachable, key: str) -> None:
        self.policy_unreachable.append(event)

    def _kept(self, event: ev.Rejected, key: str, state: str) -> None:
        """A HOLD or DISCARD action on a queued message: it is held (until released), or discarded (a DISCARD
        applies to the whole message, whichever recipient triggered it). Its later lines still belong to it."""
        message = self._known(event.queue_id, event.line.at, key) or self._message(event.queue_id, event.line.at, key)
        self.touched[message.line_key] = message
        if not message.sender and event.sender:
            message.sender = event.sender
        if message.state != DISCARDED:
            message.state = state

    def result(self) -> Batch:
        """The records of the batch fed so far: new messages and changed stored ones, attempts, rejections."""
        messages = [m for m in self.touched.values() if m.id is None or m.is_changed]
        return Batch(
            messages, self.attempts, self.rejections, self.other_by_program, self.events, self.policy_unreachable
        )


# What each event does to the messages. Functions, not bound methods: a Correlator holding its own methods would be a
# reference cycle, its whole batch freed only by the garbage collector's full passes.
_FEEDERS: dict[type[ev.Event], Callable[[Correlator, Any, str], None]] = {
    ev.ClientConnected: Correlator._client,
    ev.LocallyPicked: Correlator._picked,
    ev.MessageIdSeen: Correlator._message_id,
    ev.Queued: Correlator._queued,
    ev.Delivery: Correlator._delivery,
    ev.Expired: Correlator._expired,
    ev.Removed: Correlator._removed,
    ev.BounceCreated: Correlator._bounce,
    ev.Rejected: Correlator._rejected,
    ev.SessionStarted: Correlator._session,
    ev.PolicyUnreachable: Correlator._policy_unreachable,
}


def correlate(source: str, lines: Iterable[tuple[ev.Event, str]], restored: Iterable[OpenMessage] = ()) -> Batch:
    """Correlate one batch: (event, raw line) pairs in log order, continuing the `restored` messages."""
    correlator = Correlator(source, restored)
    for event, raw in lines:
        correlator.feed(event, raw)
    return correlator.result()
