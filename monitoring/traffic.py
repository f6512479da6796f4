"""Mail traffic into the database: a batch of mail-log lines parsed (monitoring.maillog.parse), tied into messages
(monitoring.maillog.correlate) and stored with the reader's checkpoint in one transaction (maillog_ingest_lines);
whole files for `manage.py maillog ingest` (maillog_ingest_file). The follower (monitoring.maillog.follow) calls
maillog_ingest_lines with each batch it reads.

Who acts: reading the mail log is the system's work (the follower, a command run on the host). The services take
an `actor` like every service; a person would need the model permission to add mail messages
(monitoring.add_mailmessage), which the system holds."""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import os
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.authz import SYSTEM, Actor, require_perm
from monitoring.maillog import correlate, follow
from monitoring.maillog.correlate import Batch, OpenMessage
from monitoring.maillog.events import PolicyUnreachable
from monitoring.maillog.parse import ParsedLines, parse_lines, parse_syslog
from monitoring.models import MailHost
from monitoring.traffic_models import (
    ADDRESS_MAX_LENGTH,
    POLICY_SERVER_MAX_LENGTH,
    PROGRAM_MAX_LENGTH,
    QUEUE_ID_MAX_LENGTH,
    REPLY_MAX_LENGTH,
    SOURCE_NAME_MAX_LENGTH,
    DeliveryAttempt,
    LogSource,
    MailMessage,
    PolicyUnreachableHourly,
    SmtpRejection,
)

INGEST = "monitoring.add_mailmessage"
LOCAL_SOURCE = "local"  # the log source of DOCKSPACE_MAIL_LOG
BATCH_LINES = 50_000  # lines per transaction when ingesting a file
_IN_CHUNK = 500  # values per `IN (...)` (SQLite's historical limit is 999 variables)
_BIG = 2**63 - 1
# Bytes: no message is a terabyte (Postfix's message_size_limit); a forged size= beyond it is left out, so that
# millions of them still add up within a 64-bit column.
MAX_MESSAGE_SIZE = 2**40
_MESSAGE_FIELDS = [
    "queue_id",
    "first_seen_at",
    "last_seen_at",
    "sender",
    "size",
    "nrcpt",
    "message_id",
    "sasl_username",
    "client_host",
    "client_ip",
    "direction",
    "state",
    "removed_at",
    "received_by",
    "notification_of_key",
]


class Checkpoint(Protocol):
    """Where a reader stands in its file (monitoring.maillog.follow.Checkpoint): stored on the LogSource."""

    path: str
    device: int
    inode: int
    head: str
    position: int


@dataclass
class IngestResult:
    """What a batch (or a whole file) came to: lines read, rows stored (new ones only: a line read twice counts
    once), and the lines that told nothing about a message, by program."""

    lines: int = 0
    not_syslog: int = 0
    messages_new: int = 0
    messages_updated: int = 0
    attempts: Counter[str] = field(default_factory=Counter)  # new attempts by status
    rejections: int = 0
    rejection_warnings: int = 0
    policy_unreachable: int = 0  # smtpd's "problem talking to server" lines about a policy service, new ones
    events: Counter[str] = field(default_factory=Counter)
    other_by_program: Counter[str] = field(default_factory=Counter)
    newest_at: datetime | None = None  # the time of the newest line that told of mail

    def add(self, other: IngestResult) -> None:
        self.lines += other.lines
        self.not_syslog += other.not_syslog
        self.messages_new += other.messages_new
        self.messages_updated += other.messages_updated
        self.attempts.update(other.attempts)
        self.rejections += other.rejections
        self.rejection_warnings += other.rejection_warnings
        self.policy_unreachable += other.policy_unreachable
        self.events.update(other.events)
        self.other_by_program.update(other.other_by_program)
        if other.newest_at is not None and (self.newest_at is None or other.newest_at > self.newest_at):
            self.newest_at = other.newest_at


# --- sources -----------------------------------------------------------------------------------------------------


def logsource_for(*, name: str = "", host: MailHost | None = None, actor: Actor = SYSTEM) -> LogSource:
    """The log source called `name` (default: the mail host's name, else "local"), created on first use: a mail
    host's source is of kind host and points at it. Refused when the name belongs to another host's source."""
    require_perm(actor, INGEST)
    name = (name or (host.name if host else LOCAL_SOURCE)).strip()
    if not name or len(name) > SOURCE_NAME_MAX_LENGTH or not name.isprintable():
        raise ValidationError({"source": ["a log source name is 1 to 100 printable characters."]})
    kind = LogSource.HOST if host else LogSource.FILE
    source, _ = LogSource.objects.get_or_create(name=name, defaults={"kind": kind, "mail_host": host})
    if host is not None and source.mail_host_id not in (None, host.pk):
        raise ValidationError({"source": [f"the log source {name!r} belongs to another mail host."]})
    if host is not None and source.mail_host_id is None:
        source.mail_host, source.kind = host, LogSource.HOST
        source.save(update_fields=["mail_host", "kind"])
    return source


# --- one follower per source -------------------------------------------------------------------------------------

FOLLOWER_LEASE = timedelta(seconds=60)  # a follower not heard of for this long has died: another may take over


class FollowerReplaced(Exception):
    """Another follower holds the log source now (this one was silent for longer than FOLLOWER_LEASE)."""


@dataclass(frozen=True)
class Claim:
    """The outcome of claim_logsource: `held` when this follower holds the source (its row, with the checkpoint to
    go on from); else `follower` (who holds it) and `seen_at` (when it last said it was running)."""

    held: bool
    source: LogSource
    follower: str = ""
    seen_at: datetime | None = None


def claim_logsource(
    source: LogSource,
    token: str,
    follower: str,
    *,
    actor: Actor = SYSTEM,
    is_gone: Callable[[str], bool] | None = None,
) -> Claim:
    """Hold `source` for the follower `token` (described as `follower`: process and machine), unless another
    follower holds it and said it was running within FOLLOWER_LEASE: two followers of one source would each move
    its checkpoint back and forth. A follower that stopped cleanly let go (release_logsource); one that died is
    replaced once its lease ran out, or at once when `is_gone(its description)` says so (a process of this
    machine that no longer exists)."""
    require_perm(actor, INGEST)
    with transaction.atomic():
        row = LogSource.objects.select_for_update().get(pk=source.pk)
        now = timezone.now()
        alive = row.follower_seen_at is not None and row.follower_seen_at > now - FOLLOWER_LEASE
        if alive and is_gone is not None and is_gone(row.follower):
            alive = False
        if row.follower_token and row.follower_token != token and alive:
            return Claim(False, row, row.follower, row.follower_seen_at)
        row.follower_token, row.follower, row.follower_seen_at = token, follower[:200], now
        row.save(update_fields=["follower_token", "follower", "follower_seen_at"])
        return Claim(True, row)


def renew_logsource(source: LogSource, token: str, *, actor: Actor = SYSTEM) -> None:
    """Say the follower `token` still runs; FollowerReplaced when another holds the source now."""
    require_perm(actor, INGEST)
    held = LogSource.objects.filter(pk=source.pk, follower_token=token).update(follower_seen_at=timezone.now())
    if not held:
        raise FollowerReplaced(f"another follower holds log source {source.name!r} now")


def release_logsource(source: LogSource, token: str, *, actor: Actor = SYSTEM) -> None:
    """Let go of `source` (a follower stopping cleanly): the next follower need not wait for the lease to run out."""
    require_perm(actor, INGEST)
    LogSource.objects.filter(pk=source.pk, follower_token=token).update(
        follower_token="", follower="", follower_seen_at=None
    )


# --- one batch ---------------------------------------------------------------------------------------------------


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _clip(value: str, length: int) -> str:
    """A logged value as stored: control characters (NUL, which PostgreSQL text refuses, and terminal escapes a
    hostile log writer could plant for an operator's terminal) become U+FFFD, and at most `length` characters."""
    if not value.isprintable():  # the fast common case skips the substitution
        value = _CONTROL.sub("\ufffd", value)
    return value[:length]


@lru_cache(maxsize=4096)
def _ip(value: str) -> str | None:
    """An address as GenericIPAddressField stores it, or None for what is not one (a zone, "unknown")."""
    if not value or "%" in value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _number(value: int | None, top: int = _BIG) -> int | None:
    return value if value is not None and 0 <= value <= top else None


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def _restorable(source: LogSource, parsed: ParsedLines) -> list[OpenMessage]:
    """The stored messages this batch's events may continue, with their recipients' latest statuses: of those the
    batch names by queue id, the ones still in the queue (seen within correlate.STALE_AFTER) and the ones seen
    since the batch's first event (lines read again). Two range scans on indexes, however many queue ids."""
    queue_ids = correlate.restorable_queue_ids(event for event, _ in parsed.pairs)
    if not queue_ids or parsed.first_at is None or parsed.last_at is None:
        return []
    first, last = parsed.first_at, parsed.last_at
    stored = MailMessage.objects.filter(source=source)
    columns = ("id", "line_key", *_MESSAGE_FIELDS)
    # Still in the queue: only their queue ids first (the queue may hold many), the whole rows of those named.
    waiting = stored.filter(removed_at__isnull=True, last_seen_at__gte=first - correlate.STALE_AFTER).filter(
        Q(size__isnull=False) | Q(last_seen_at__gte=first - correlate.UNQUEUED_STALE_AFTER)
    )
    named = [pk for pk, queue_id in waiting.values_list("id", "queue_id") if queue_id in queue_ids]
    rows = []
    for chunk in _chunks(named):
        rows += stored.filter(id__in=chunk).values_list(*columns)
    rows += stored.filter(last_seen_at__gte=first, first_seen_at__lte=last).values_list(*columns)
    restored: dict[int, OpenMessage] = {}
    for row in rows:
        values = dict(zip(_MESSAGE_FIELDS, row[2:], strict=True))
        if values["queue_id"] not in queue_ids or row[0] in restored:
            continue
        values["client_ip"] = values["client_ip"] or ""
        restored[row[0]] = OpenMessage(line_key=row[1], id=row[0], **values)
    for chunk in _chunks(sorted(restored)):
        attempts = (
            DeliveryAttempt.objects.filter(message_id__in=chunk)
            .order_by("at", "id")
            .values_list("message_id", "recipient", "status", "at")
        )
        for message_id, recipient, status, at in attempts:
            restored[message_id].recipients[recipient] = (status, at)
    return list(restored.values())


def _insert(
    model: type[MailMessage] | type[DeliveryAttempt] | type[SmtpRejection],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """INSERT `rows` (values adapted for the database, IP addresses as text), skipping those whose unique line_key
    is stored already; the `returning` columns of the rows inserted. The ORM's bulk_create spends most of an ingest
    compiling each value: this writes the same rows at several times its speed."""
    if not rows:
        return []
    quote = connection.ops.quote_name
    fields = {f.name: f for f in model._meta.concrete_fields}
    table = quote(model._meta.db_table)
    names = ", ".join(quote(fields[c].column) for c in columns)
    tail = " ON CONFLICT DO NOTHING"
    if returning:
        tail += " RETURNING " + ", ".join(quote(fields[c].column) for c in returning)
    inserted: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY into a session's staging table, then one INSERT ... SELECT: PostgreSQL's fastest way in. The rows
            # are numbered as they come and inserted in that order, so their ids follow the log: a table's pages are
            # not read back in the order they were filled (later, smaller rows go to earlier pages' free space).
            stage = quote(f"{model._meta.db_table}_staged")
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "  # noqa: S608
                f"SELECT {names}, 0 AS staged_order FROM {table} WITH NO DATA"
            )
            with cursor.cursor.copy(f"COPY {stage} ({names}, staged_order) FROM STDIN") as copy:
                for number, row in enumerate(rows):
                    copy.write_row((*row, number))
            cursor.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} ORDER BY staged_order{tail}"  # noqa: S608
            )
            if returning:
                inserted = cursor.fetchall()
            cursor.execute(f"TRUNCATE {stage}")
            return inserted
        row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
        size = max(1, min(1000, (connection.features.max_query_params or 30_000) // len(columns)))
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            params = [value for row in chunk for value in row]
            sql = f"INSERT INTO {table} ({names}) VALUES {', '.join([row_sql] * len(chunk))}{tail}"  # noqa: S608
            cursor.execute(sql, params)  # names from the models, values as parameters
            if returning:
                inserted.extend(cursor.fetchall())
    return inserted


_MESSAGE_COLUMNS = ["source", "line_key", *_MESSAGE_FIELDS]


def _message_values(message: OpenMessage, source_id: int, when: Callable[[Any], Any]) -> tuple[Any, ...]:
    return (
        source_id,
        message.line_key,
        message.queue_id[:QUEUE_ID_MAX_LENGTH],
        when(message.first_seen_at),
        when(message.last_seen_at),
        _clip(message.sender, ADDRESS_MAX_LENGTH),
        _number(message.size, MAX_MESSAGE_SIZE),
        _number(message.nrcpt, 2**31 - 1),
        _clip(message.message_id, 255),
        _clip(message.sasl_username, ADDRESS_MAX_LENGTH),
        _clip(message.client_host, 253),
        _ip(message.client_ip),
        message.direction,
        message.state,
        when(message.removed_at),
        _clip(message.received_by, PROGRAM_MAX_LENGTH),
        message.notification_of_key,
    )


def _update_messages(messages: list[OpenMessage], when: Callable[[Any], Any]) -> None:
    """UPDATE the stored messages a batch changed: one UPDATE by id per message, sent together (executemany). The
    ORM's bulk_update builds a CASE per field and row: it took a third of the CPU time of a file's ingest."""
    quote = connection.ops.quote_name
    fields = {f.name: f for f in MailMessage._meta.concrete_fields}
    table, pk = quote(MailMessage._meta.db_table), quote(MailMessage._meta.pk.column)
    assignments = ", ".join(f"{quote(fields[name].column)} = %s" for name in _MESSAGE_FIELDS)
    sql = f"UPDATE {table} SET {assignments} WHERE {pk} = %s"  # noqa: S608 - names from the model, values as parameters
    with connection.cursor() as cursor:
        cursor.executemany(sql, [(*_message_values(m, 0, when)[2:], m.id) for m in messages])


def _store_messages(source: LogSource, messages: list[OpenMessage]) -> None:
    """Write the batch's new messages (learning their ids) and its changed stored ones."""
    new = [m for m in messages if m.id is None]
    changed = [m for m in messages if m.id is not None]
    when = connection.ops.adapt_datetimefield_value
    if new:
        ids = dict(
            (key, pk)
            for pk, key in _insert(
                MailMessage,
                _MESSAGE_COLUMNS,
                [_message_values(m, source.pk, when) for m in new],
                returning=("id", "line_key"),
            )
        )
        missing = [m.line_key for m in new if m.line_key not in ids]
        if missing:
            # Stored already, outside the window restored (an archive read long after its lines): update those.
            for chunk in _chunks(missing):
                found = dict(MailMessage.objects.filter(line_key__in=chunk).values_list("line_key", "id"))
                changed += [m for m in new if m.line_key in found]
                ids.update(found)
        for message in new:
            message.id = ids[message.line_key]
    if changed:
        _update_messages(changed, when)
    for message in messages:
        message.mark_stored()


_ATTEMPT_COLUMNS = [
    "message",
    "at",
    "recipient",
    "orig_recipient",
    "relay",
    "service",
    "sending_ip",
    "delay",
    "delays",
    "dsn",
    "status",
    "reply",
    "line_key",
]


def _store_attempts(batch: Batch) -> Counter[str]:
    """Write the batch's delivery attempts not stored yet: how many by status."""
    when = connection.ops.adapt_datetimefield_value
    rows = [
        (
            a.message.id,
            when(a.at),
            _clip(a.recipient, ADDRESS_MAX_LENGTH),
            _clip(a.orig_recipient, ADDRESS_MAX_LENGTH),
            _clip(a.relay, 255),
            _clip(a.service, 64),
            a.sending_ip,
            a.delay,
            _clip(a.delays, 64),
            _clip(a.dsn, 16),
            a.status,
            _clip(a.reply, REPLY_MAX_LENGTH),
            a.line_key,
        )
        for a in {a.line_key: a for a in batch.attempts}.values()
    ]
    return Counter(status for (status,) in _insert(DeliveryAttempt, _ATTEMPT_COLUMNS, rows, returning=("status",)))


_REJECTION_COLUMNS = [
    "source",
    "at",
    "queue_id",
    "stage",
    "code",
    "dsn",
    "reply",
    "client_host",
    "client_ip",
    "sender",
    "recipient",
    "helo",
    "is_warning",
    "program",
    "action",
    "line_key",
]


def _store_rejections(source: LogSource, batch: Batch) -> tuple[int, int]:
    """Write the batch's SMTP rejections not stored yet: (how many, of which warnings)."""
    when = connection.ops.adapt_datetimefield_value
    rows = [
        (
            source.pk,
            when(e.line.at),
            e.queue_id[:QUEUE_ID_MAX_LENGTH],
            _clip(e.stage, 20),
            e.code if e.code is not None and 0 <= e.code < 1000 else None,
            _clip(e.dsn, 16),
            _clip(e.reply, REPLY_MAX_LENGTH),
            _clip(e.client_host, 253),
            _ip(e.client_ip),
            _clip(e.sender, ADDRESS_MAX_LENGTH),
            _clip(e.recipient, ADDRESS_MAX_LENGTH),
            _clip(e.helo, 255),
            e.is_warning,
            _clip(e.line.program, PROGRAM_MAX_LENGTH),
            _clip(e.action, 20),
            key,
        )
        for key, e in {r.line_key: r.event for r in batch.rejections}.items()
    ]
    stored = _insert(SmtpRejection, _REJECTION_COLUMNS, rows, returning=("is_warning",))
    return len(stored), sum(1 for (is_warning,) in stored if is_warning)


def _hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _store_policy_unreachable(source: LogSource, events: list[PolicyUnreachable]) -> int:
    """Count the batch's "problem talking to server" lines into their hourly rows (PolicyUnreachableHourly): how
    many were new. A line at or before the latest one its row counted before this batch was read already."""
    if not events:
        return 0
    counted: dict[tuple[str, datetime], PolicyUnreachableHourly] = {}
    for row in PolicyUnreachableHourly.objects.filter(source=source, hour__in={_hour(e.line.at) for e in events}):
        counted[row.server, row.hour] = row
    read_until = {key: row.last_at for key, row in counted.items()}
    new = 0
    for event in events:
        at, server = event.line.at, _clip(event.server, POLICY_SERVER_MAX_LENGTH)
        key = (server, _hour(at))
        seen = read_until.get(key)
        if seen is not None and at <= seen:
            continue
        row = counted.get(key)
        if row is None:
            row = counted[key] = PolicyUnreachableHourly(source=source, server=server, hour=key[1], last_at=at)
        row.count += 1
        if at >= row.last_at:
            row.last_at, row.last_reason = at, _clip(event.reason, 200)
        new += 1
    for row in counted.values():
        if row.pk is None or row.last_at != read_until.get((row.server, row.hour)):
            row.save()
    return new


def maillog_ingest_lines(
    source: LogSource,
    lines: Iterable[str],
    checkpoint: Checkpoint | None = None,
    *,
    actor: Actor = SYSTEM,
    reference: datetime | None = None,
    tz: tzinfo = UTC,
    follower_token: str | None = None,
) -> IngestResult:
    """Store a batch of mail-log lines (in log order, with or without line endings) read from `source`, and the
    reader's `checkpoint` after them, in one transaction: either all of it is stored or nothing, so a reader
    restarting from its stored checkpoint neither loses nor repeats a line. A line stored already (read twice) is
    not stored again. `reference`: when the lines were written, for the year of classic timestamps (default now).
    `follower_token`: the follower holding the source (claim_logsource); FollowerReplaced, and nothing stored, when
    another holds it now."""
    require_perm(actor, INGEST)
    with _collector_paused():
        parsed = parse_lines(lines, reference=reference or timezone.now(), tz=tz)
        return _store(source, parsed, checkpoint, follower_token)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a batch is read and stored: a batch makes no reference cycles (what it
    holds is freed when it is done), but the objects it makes (an event per line of a message) start the
    collector's passes, which walk them and every other object of the process again and again: a fifth of the CPU
    time of an ingest. Turned on again after the batch, even when it fails; left off when it was off."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _store(
    source: LogSource, parsed: ParsedLines, checkpoint: Checkpoint | None, follower_token: str | None = None
) -> IngestResult:
    """Correlate and store one parsed batch with the reader's checkpoint, in one transaction."""
    result = IngestResult(lines=parsed.lines, not_syslog=parsed.not_syslog, newest_at=parsed.last_at)
    with transaction.atomic():
        source = LogSource.objects.select_for_update().get(pk=source.pk)  # one writer per source at a time
        if follower_token is not None and source.follower_token != follower_token:
            raise FollowerReplaced(f"another follower holds log source {source.name!r} now")
        batch = correlate.correlate(source.name, parsed.pairs, _restorable(source, parsed) if parsed.pairs else ())
        new = [m for m in batch.messages if m.id is None]
        result.messages_new = len(new)
        result.messages_updated = len(batch.messages) - len(new)
        _store_messages(source, batch.messages)
        result.attempts = _store_attempts(batch)
        result.rejections, result.rejection_warnings = _store_rejections(source, batch)
        result.policy_unreachable = _store_policy_unreachable(source, batch.policy_unreachable)
        result.events = batch.events
        result.other_by_program = parsed.other_by_program
        if parsed.other_by_program:
            result.events["Other"] += parsed.other
        source.lines_read += result.lines
        source.events_other += parsed.other
        source.last_read_at = timezone.now()
        fields = ["lines_read", "events_other", "last_read_at"]
        if follower_token is not None:
            source.follower_seen_at = source.last_read_at
            fields.append("follower_seen_at")
        if checkpoint is not None:
            source.path = checkpoint.path
            source.device = checkpoint.device
            source.inode = checkpoint.inode
            source.head = checkpoint.head
            source.position = checkpoint.position
            fields += ["path", "device", "inode", "head", "position"]
        source.save(update_fields=fields)
    return result


# --- whole files -------------------------------------------------------------------------------------------------


class LogFileError(Exception):
    """A file that cannot be read as a mail log: the message names the file and why."""


SNIFF_LINES = 1000  # a file none of whose first lines is a syslog line is not a mail log
MAX_LINE_BYTES = 64 * 1024


def _lines(path: str, on_progress: Callable[[int, int], None] | None = None) -> Iterator[str]:
    """The file's lines as the follower reads them (monitoring.maillog.follow.read_lines: gzip told by its first
    bytes, undecodable bytes become U+FFFD); a line longer than MAX_LINE_BYTES comes in pieces (no syslog line is
    that long: a file without line endings must not fill the memory). LogFileError names the file and what failed."""
    read = 0
    try:
        for line in follow.read_lines(path, on_progress, max_line_bytes=MAX_LINE_BYTES):
            read += 1
            yield line
    except FileNotFoundError:
        raise LogFileError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise LogFileError(f"{path} is a directory, not a log file") from None
    except (OSError, EOFError, zlib.error) as exc:
        detail = (exc.strerror if isinstance(exc, OSError) else None) or exc
        if read == 0:
            raise LogFileError(f"cannot read {path}: {detail}") from None
        raise LogFileError(f"{path} cannot be read to its end ({detail}); the lines before were stored") from None


def maillog_ingest_file(
    path: str,
    *,
    source: LogSource,
    actor: Actor = SYSTEM,
    batch_lines: int = BATCH_LINES,
    tz: tzinfo = UTC,
    on_progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Store a whole mail-log file (plain or gzip-compressed, its lines in log order), `batch_lines` lines per
    transaction. Raises LogFileError for a file that cannot be opened or holds no syslog line among its first
    lines (nothing stored then). `on_progress(bytes)` is told how far into the file reading got."""
    require_perm(actor, INGEST)
    try:
        reference = datetime.fromtimestamp(os.stat(path).st_mtime, UTC)
    except OSError:
        reference = timezone.now()  # the file is named by the error reading it below
    progress = None if on_progress is None else (lambda done, size: on_progress(done))
    batch: list[str] = []
    result = IngestResult()
    sniffed = False
    with contextlib.closing(_lines(path, progress)) as lines:
        for line in lines:
            batch.append(line)
            if len(batch) >= batch_lines:
                if not sniffed:
                    _sniff(batch, path, reference, tz)
                    sniffed = True
                result.add(maillog_ingest_lines(source, batch, actor=actor, reference=reference, tz=tz))
                batch = []
    if batch:
        if not sniffed:
            _sniff(batch, path, reference, tz)
        result.add(maillog_ingest_lines(source, batch, actor=actor, reference=reference, tz=tz))
    return result


def check_log_file(path: str, *, tz: tzinfo = UTC) -> None:
    """Raise LogFileError unless `path` opens (plain or gzip) and its first lines are syslog lines (or it is
    empty): what a command checks before it touches anything."""
    head = []
    with contextlib.closing(_lines(path)) as lines:
        for line in lines:
            head.append(line)
            if len(head) >= SNIFF_LINES:
                break
    _sniff(head, path, timezone.now(), tz)


def _sniff(lines: list[str], path: str, reference: datetime, tz: tzinfo) -> None:
    """A file with lines none of whose first ones is a syslog line is refused (blank ones too: what is left of a
    line of NUL bytes is blank)."""
    head = lines[:SNIFF_LINES]
    if head and not any(parse_syslog(line.rstrip("\r\n"), year=reference.year, tz=tz) for line in head):
        raise LogFileError(
            f"{path} is not a mail log: none of its first {len(head)} lines is a syslog line "
            "(e.g. 2026-12-06T10:15:02.123456+00:00 mail postfix/smtpd[1234]: ...)"
        )


def retention_start(now: datetime | None = None) -> datetime:
    """The oldest moment whose mail the next prune keeps (DOCKSPACE_TRAFFIC_DAYS back from now)."""
    return (now or timezone.now()) - timedelta(days=settings.TRAFFIC_DAYS)


def messages_past_retention(source: LogSource, now: datetime | None = None) -> int:
    """How many of the source's stored messages the next prune deletes (last seen before DOCKSPACE_TRAFFIC_DAYS):
    an archive ingested late says so instead of vanishing silently."""
    return MailMessage.objects.filter(source=source, last_seen_at__lt=retention_start(now)).count()
