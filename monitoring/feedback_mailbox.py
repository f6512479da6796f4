"""Reading the feedback mailbox over IMAP (DOCKSPACE_FEEDBACK_MAILBOX), the one module that talks IMAP: each message
not yet seen is stored by feedback_ingest, and only then marked \\Seen and deleted, kept or moved to a folder as
DOCKSPACE_FEEDBACK_AFTER_READ says. A message stored twice (a run stopped between storing and flagging) changes
nothing: feedback_ingest knows it by its digest.

TLS is always on and verified (the system's store plus DOCKSPACE_OUTBOUND_CA_BUNDLE): imaps:// from the start,
imap:// by STARTTLS, refused when the server does not offer it. Errors name the server and the cause, never the
password."""

from __future__ import annotations

import contextlib
import imaplib
import logging
import re
import ssl
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError

from accounts.authz import SYSTEM, Actor, require_perm
from dockspace import outbound_http
from dockspace.env import ImapMailbox
from dockspace.validation import error_text
from monitoring.feedback import INGEST, MAX_REPORT_BYTES, feedback_ingest
from monitoring.feedback_models import SOURCE_MAX_LENGTH
from monitoring.feedback_reports import KINDS

log = logging.getLogger(__name__)

FETCH_BATCH = 200  # messages read per run; the next run (5 minutes later) reads on
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


class FeedbackMailboxError(Exception):
    """The feedback mailbox could not be read: the message says which server and why (never the password)."""


@dataclass
class MailboxRead:
    """What one run did: messages looked at, new and known ones stored, the events by kind, the refused ones."""

    mailbox: str
    after_read: str
    looked_at: int = 0
    stored: int = 0
    read_before: int = 0
    refused: list[str] = field(default_factory=list)
    events: Counter = field(default_factory=Counter)
    more_left: bool = False

    def summary(self):
        kinds = ", ".join(f"{kind} {self.events.get(kind, 0)}" for kind in KINDS)
        done = {"delete": "deleted", "keep": "kept, marked seen"}.get(
            self.after_read, f"moved to {self.after_read.removeprefix('move:')}"
        )
        text = (
            f"{self.mailbox}: {self.looked_at} new message(s), {self.stored} stored ({kinds}), {self.read_before} read "
            f"before; {done}"
        )
        if self.refused:
            text += f"; {len(self.refused)} refused, left marked seen: " + "; ".join(self.refused)
        if self.more_left:
            text += f"; more are waiting (at most {FETCH_BATCH} a run)"
        return text


def _quoted(name: str) -> str:
    return '"' + name + '"'  # env_imap_mailbox and the settings refuse quotes and backslashes in names


def _text(data) -> str:
    parts = [d.decode(errors="replace") if isinstance(d, bytes) else str(d) for d in (data or []) if d]
    return " ".join(" ".join(parts).split())[:300]


def imap_connect(mailbox: ImapMailbox, password: str, *, timeout: float):
    """A signed-in IMAP client over verified TLS; FeedbackMailboxError otherwise."""
    where = f"{mailbox.host}:{mailbox.port}"
    client = None
    try:
        context = outbound_http.tls_context()
        if mailbox.is_implicit_tls:
            client = imaplib.IMAP4_SSL(mailbox.host, mailbox.port, ssl_context=context, timeout=timeout)
        else:
            client = imaplib.IMAP4(mailbox.host, mailbox.port, timeout=timeout)
            if "STARTTLS" not in client.capabilities:
                raise FeedbackMailboxError(
                    f"{where} does not offer STARTTLS on imap://: the password is never sent in clear (use imaps:// "
                    "if the server has TLS on port 993)"
                )
            client.starttls(ssl_context=context)
    except ssl.SSLCertVerificationError as exc:
        _drop(client)
        raise FeedbackMailboxError(
            f"{where}: the server's TLS certificate is not trusted ({exc.verify_message}); an internal CA goes in "
            "DOCKSPACE_OUTBOUND_CA_BUNDLE"
        ) from None
    except ssl.SSLError as exc:
        _drop(client)
        raise FeedbackMailboxError(f"{where}: TLS failed ({exc.reason or exc})") from None
    except TimeoutError:
        _drop(client)
        raise FeedbackMailboxError(f"{where} did not answer within {timeout:g} s") from None
    except OSError as exc:
        _drop(client)
        raise FeedbackMailboxError(f"cannot connect to {where} ({exc.strerror or exc})") from None
    except imaplib.IMAP4.error as exc:
        _drop(client)
        raise FeedbackMailboxError(f"{where}: the IMAP server answered {_text([str(exc)])!r}") from None
    except FeedbackMailboxError:
        _drop(client)
        raise
    try:
        client.login(mailbox.user, password)
    except imaplib.IMAP4.error as exc:
        _drop(client)
        raise FeedbackMailboxError(
            f"{where}: signing in as {mailbox.user} was refused ({_text([str(exc)])}); check "
            "DOCKSPACE_FEEDBACK_PASSWORD and the user in DOCKSPACE_FEEDBACK_MAILBOX"
        ) from None
    except (OSError, imaplib.IMAP4.abort) as exc:
        _drop(client)
        raise FeedbackMailboxError(f"{where}: the connection broke while signing in ({exc})") from None
    return client


def _drop(client):
    if client is not None:
        with contextlib.suppress(OSError):
            client.shutdown()


def _ok(answer, what):
    typ, data = answer
    if typ != "OK":
        raise FeedbackMailboxError(f"{what} failed: {_text(data)}")
    return data


def feedback_mailbox_fetch(
    *,
    actor: Actor = SYSTEM,
    mailbox: ImapMailbox | None = None,
    password: str | None = None,
    after_read: str | None = None,
    limit: int = FETCH_BATCH,
) -> MailboxRead:
    """Read the messages of the feedback mailbox not yet seen (at most `limit`) into bounces and complaints.
    FeedbackMailboxError when the mailbox cannot be reached, signed in to or opened; a database error is raised as it
    is, leaving the message it was storing untouched in the mailbox for the next run."""
    require_perm(actor, INGEST)
    mailbox = mailbox or settings.FEEDBACK_MAILBOX
    if mailbox is None:
        raise FeedbackMailboxError("DOCKSPACE_FEEDBACK_MAILBOX is not set: there is no feedback mailbox to read")
    password = settings.FEEDBACK_PASSWORD if password is None else password
    after_read = after_read or settings.FEEDBACK_AFTER_READ
    result = MailboxRead(mailbox=mailbox.describe(), after_read=after_read)
    client = imap_connect(mailbox, password, timeout=settings.FEEDBACK_TIMEOUT)
    try:
        _read(client, mailbox, after_read, limit, result, actor)
    except imaplib.IMAP4.abort as exc:
        raise FeedbackMailboxError(f"{mailbox.host}:{mailbox.port}: the connection broke ({exc})") from None
    except TimeoutError:
        raise FeedbackMailboxError(
            f"{mailbox.host}:{mailbox.port} stopped answering (no answer within {settings.FEEDBACK_TIMEOUT} s)"
        ) from None
    except imaplib.IMAP4.error as exc:
        raise FeedbackMailboxError(f"{mailbox.host}:{mailbox.port}: {exc}") from None
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            client.logout()
    log.info("Feedback mailbox read: %s", result.summary())
    return result


def _read(client, mailbox, after_read, limit, result, actor):
    typ, data = client.select(_quoted(mailbox.folder))
    if typ != "OK":
        raise FeedbackMailboxError(
            f"the folder {mailbox.folder!r} of DOCKSPACE_FEEDBACK_MAILBOX cannot be opened: {_text(data)}"
        )
    destination = after_read[len("move:") :].strip() if after_read.startswith("move:") else ""
    if destination:
        typ, data = client.status(_quoted(destination), "(MESSAGES)")
        if typ != "OK":
            raise FeedbackMailboxError(
                f"the folder {destination!r} of DOCKSPACE_FEEDBACK_AFTER_READ does not exist in the mailbox: create "
                f"it, or choose keep or delete ({_text(data)})"
            )
    uids = _ok(client.uid("SEARCH", "UNSEEN", "UNDELETED"), "looking for new messages")[0].split()
    result.more_left = len(uids) > limit
    deleted = []
    for uid in uids[:limit]:
        uid = uid.decode()
        result.looked_at += 1
        raw, refusal = _fetch(client, uid)
        if refusal is None:
            try:
                done = feedback_ingest(actor=actor, raw=raw, source=mailbox.describe()[:SOURCE_MAX_LENGTH])
            except ValidationError as exc:
                refusal = error_text(exc)
        if refusal is not None:
            # Left where it is for a person to look at; seen, so the next run does not refuse it again.
            result.refused.append(f"UID {uid}: {refusal}")
            _ok(client.uid("STORE", uid, "+FLAGS.SILENT", r"(\Seen)"), f"marking message UID {uid} seen")
            continue
        if done.is_duplicate:
            result.read_before += 1
        else:
            result.stored += 1
            result.events.update(event.kind for event in done.events)
        # Stored (the transaction has committed): only now is the message marked, then moved or deleted.
        if after_read == "keep":
            _ok(client.uid("STORE", uid, "+FLAGS.SILENT", r"(\Seen)"), f"marking message UID {uid} seen")
        elif destination:
            _move(client, uid, destination)
        else:
            _ok(client.uid("STORE", uid, "+FLAGS.SILENT", r"(\Seen \Deleted)"), f"deleting message UID {uid}")
            deleted.append(uid)
    if deleted:
        _expunge(client, deleted)


def _fetch(client, uid):
    """(raw bytes, None), or (None, why it is not read): too large, or gone."""
    data = _ok(client.uid("FETCH", uid, "(RFC822.SIZE)"), f"reading the size of message UID {uid}")
    found = _SIZE.search(b" ".join(d if isinstance(d, bytes) else b"" for d in data))
    if found and int(found.group(1)) > MAX_REPORT_BYTES:
        return None, f"{int(found.group(1)):,} bytes; a report is at most {MAX_REPORT_BYTES:,} bytes"
    data = _ok(client.uid("FETCH", uid, "(BODY.PEEK[])"), f"reading message UID {uid}")
    parts = [item[1] for item in data if isinstance(item, tuple) and len(item) == 2]
    if not parts:
        return None, "the server sent no message (deleted meanwhile?)"
    return parts[0], None


def _move(client, uid, destination):
    _ok(client.uid("STORE", uid, "+FLAGS.SILENT", r"(\Seen)"), f"marking message UID {uid} seen")
    if "MOVE" in _capabilities(client):
        _ok(client.uid("MOVE", uid, _quoted(destination)), f"moving message UID {uid} to {destination!r}")
        return
    _ok(client.uid("COPY", uid, _quoted(destination)), f"copying message UID {uid} to {destination!r}")
    _ok(client.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)"), f"deleting message UID {uid} after its copy")
    _expunge(client, [uid])


def _capabilities(client):
    """What the server offers once signed in (imaplib keeps only the list from before: no MOVE, no UIDPLUS)."""
    if not hasattr(client, "_dockspace_capabilities"):
        data = _ok(client.capability(), "asking the server's capabilities")
        client._dockspace_capabilities = set(_text(data).upper().split())
    return client._dockspace_capabilities


def _expunge(client, uids):
    if "UIDPLUS" in _capabilities(client):
        # Only ours: a message another client flagged \Deleted is its business.
        _ok(client.uid("EXPUNGE", ",".join(uids)), "expunging the messages read")
    else:
        _ok(client.expunge(), "expunging the messages read")
