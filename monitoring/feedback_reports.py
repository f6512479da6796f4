"""Bounces and complaints read from raw mail (issue "Sending policy"): a delivery status notification (DSN, RFC 3464)
or an abuse report (ARF, RFC 5965) parsed with the stdlib `email` package, classified hard / soft / complaint / other
with a one-line reason, and the identifiers that tie it back to the message we sent. Pure: bytes in, values out.

Hostile or broken input never raises: whatever is not a report, or cannot be read as one, is `other` with the reason."""

from __future__ import annotations

import contextlib
import email
import re
from dataclasses import dataclass
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import Parser
from email.utils import getaddresses, parseaddr

HARD, SOFT, COMPLAINT, OTHER = "hard", "soft", "complaint", "other"
KINDS = (HARD, SOFT, COMPLAINT, OTHER)
DELIVERY_STATUS, FEEDBACK_REPORT = "delivery-status", "feedback-report"
# A full mailbox is a 5.2.2 permanent failure by the letter of RFC 3463, but the address exists and will take mail
# again once emptied: most ESPs (Amazon SES, SendGrid, Mailgun) count it as a soft bounce, and so does Dockspace.
MAILBOX_FULL = "5.2.2"
# ARF feedback types (RFC 5965, 6591, 6650) that count as a complaint against the sender; the rest are `other`.
COMPLAINT_TYPES = {
    "abuse": "abuse complaint (the recipient reported it as spam)",
    "fraud": "fraud report (phishing or impersonation)",
    "virus": "virus report (the recipient's system found malware in it)",
}
NOT_COMPLAINT_TYPES = {
    "not-spam": "not-spam report: the recipient marked it as wanted mail, not a complaint",
    "auth-failure": "authentication failure report (SPF, DKIM or DMARC), not a complaint",
    "other": "feedback of type 'other', not a complaint",
}
# RFC 3463 (and 7372) subject and detail codes: what a status means, for the reason line. Not X.1.10: RFC 7505 made
# it "null MX", but Microsoft's NDRs use 5.1.10 for an unknown recipient; it reads as its subject, "addressing".
STATUS_DETAILS = {
    "1.0": "other address status",
    "1.1": "bad destination mailbox address (the address does not exist)",
    "1.2": "bad destination system address (the domain does not exist or takes no mail)",
    "1.3": "bad destination mailbox address syntax",
    "1.4": "destination mailbox address ambiguous",
    "1.6": "destination mailbox has moved, no forwarding address",
    "2.0": "other or undefined mailbox status",
    "2.1": "mailbox disabled, not accepting messages",
    "2.2": "mailbox full",
    "2.3": "message length exceeds the mailbox's limit",
    "2.4": "mailing list expansion problem",
    "3.0": "other or undefined mail system status",
    "3.1": "mail system full",
    "3.2": "system not accepting network messages",
    "3.4": "message too big for the system",
    "4.0": "other or undefined network or routing status",
    "4.1": "no answer from host",
    "4.2": "bad connection",
    "4.3": "directory server failure",
    "4.4": "unable to route",
    "4.6": "routing loop detected",
    "4.7": "delivery time expired",
    "5.0": "other or undefined protocol status",
    "6.0": "other or undefined media error",
    "7.0": "other or undefined security status",
    "7.1": "delivery not authorized, message refused (a policy or reputation block)",
    "7.8": "authentication credentials invalid",
    "7.26": "multiple authentication checks failed (SPF, DKIM, DMARC)",
}
STATUS_SUBJECTS = {
    "0": "other or undefined status",
    "1": "addressing status",
    "2": "mailbox status",
    "3": "mail system status",
    "4": "network or routing status",
    "5": "mail delivery protocol status",
    "6": "message content or media status",
    "7": "security or policy status",
}

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")
_POSTFIX_RECEIVED_ID = re.compile(r"\bid\s+([0-9A-Za-z]{5,20})\b")
# VERP (Postfix's default delimiters "+="): bounces+bob=example.org@example.com tells of bob@example.org.
_VERP = re.compile(r"\A[^+@]+\+(?P<tag>[^@]+)@[^@]+\Z")
_AUTO_REPLY_SUBJECT = re.compile(
    r"\A(auto(matic)?[ -]?reply|out of (the )?office|abwesenheitsnotiz|r[ée]ponse automatique|absence)\b", re.I
)
MAX_VALUE = 1000  # characters of one header value kept (a Diagnostic-Code can be long; nothing needs more)
# Per-recipient blocks read from one DSN: Postfix takes at most 1000 recipients per message (smtpd_recipient_limit),
# and each block read becomes a stored event and its webhook deliveries; the rest are ignored.
MAX_RECIPIENT_BLOCKS = 1000


@dataclass(frozen=True)
class RecipientResult:
    """One per-recipient block of a DSN, or the reported recipient of a complaint."""

    recipient: str
    kind: str
    reason: str
    status: str = ""  # x.y.z, from Status or else the Diagnostic-Code
    action: str = ""  # failed, delayed, delivered, relayed, expanded (DSN); empty for a complaint
    diagnostic: str = ""  # the remote server's reply (Diagnostic-Code without its "smtp;" type)
    remote_mta: str = ""
    original_recipient: str = ""


@dataclass(frozen=True)
class FeedbackReport:
    """What a raw message comes to. `kind` and `reason` are the report's as a whole (the worst of its recipients:
    hard, then soft); `recipients` has one result per recipient reported (empty for what is not a report)."""

    kind: str
    reason: str
    report_type: str = ""  # "delivery-status", "feedback-report", or "" for anything else
    recipients: tuple[RecipientResult, ...] = ()
    reporter: str = ""  # Reporting-MTA of a DSN, User-Agent of a complaint, else the report's From address
    subject: str = ""
    feedback_type: str = ""
    # Tie-back identifiers.
    original_message_id: str = ""  # without its angle brackets, as the mail traffic stores it
    original_sender: str = ""
    queue_id: str = ""  # X-Postfix-Queue-ID: the queue id on the Postfix that wrote the DSN
    received_queue_ids: tuple[str, ...] = ()  # ids Postfix wrote in the original's Received headers, newest first
    envelope_id: str = ""  # Original-Envelope-Id (ENVID) the sender gave
    verp_tag: str = ""  # the return path's tag after "+", e.g. "bob=example.org"
    verp_recipient: str = ""  # the recipient a VERP tag stands for, e.g. "bob@example.org"
    trace: str = ""  # X-Dockspace-Trace of the original message
    source_ip: str = ""  # Source-IP of a complaint: the IP the reported message came from
    reported_domain: str = ""
    arrival_date: str = ""
    ignored_recipients: int = 0  # per-recipient blocks past MAX_RECIPIENT_BLOCKS, not read

    @property
    def recipient(self) -> str:
        """The first recipient of the report's kind (the one its reason tells of)."""
        for result in self.recipients:
            if result.kind == self.kind:
                return result.recipient
        return self.recipients[0].recipient if self.recipients else ""


def parse_report(raw: bytes) -> FeedbackReport:
    """The report in a raw message (bytes as received, headers and body). Never raises: a message that is not a
    report, or cannot be parsed, is `other` with a reason saying so."""
    if not isinstance(raw, bytes | bytearray):
        return FeedbackReport(OTHER, "not a message: expected the raw bytes of an email")
    if not raw.strip():
        return FeedbackReport(OTHER, "empty message")
    try:
        message = email.message_from_bytes(bytes(raw), policy=policy.compat32)
        return _read(message)
    except Exception as exc:  # noqa: BLE001 - hostile input of any shape must classify as other, never raise
        return FeedbackReport(OTHER, f"malformed message, not read as a report ({type(exc).__name__})")


def status_kind(action: str, status: str) -> tuple[str, str]:
    """(kind, reason) of one DSN recipient from its Action and its x.y.z status."""
    action = action.lower()
    meaning = status_meaning(status)
    if action == "failed":
        if not status:
            return HARD, "failed, without a status code"
        if status == MAILBOX_FULL:
            return SOFT, f"{status} failed: mailbox full; counted as soft, as most ESPs do (the address exists)"
        if status.startswith("5."):
            return HARD, f"{status} failed: {meaning}"
        if status.startswith("4."):
            return SOFT, f"{status} failed after retrying (the message expired in the queue): {meaning}"
        return OTHER, f"{status} failed with a success status: contradictory, not counted"
    if action == "delayed":
        return SOFT, f"{status + ' ' if status else ''}delayed: {meaning if status else 'still being retried'}"
    if action in ("delivered", "relayed", "expanded"):
        return OTHER, f"{action}: a success notification, not a bounce"
    if not action:
        return OTHER, "no Action field in the recipient's block"
    return OTHER, f"unknown action {action!r}"


def status_meaning(status: str) -> str:
    """What an x.y.z status means (RFC 3463), in words."""
    parts = status.split(".")
    if len(parts) != 3:
        return "no status given"
    detail = STATUS_DETAILS.get(f"{parts[1]}.{parts[2]}")
    return detail or STATUS_SUBJECTS.get(parts[1], "unknown status")


def find_status(text: str) -> str:
    """The first enhanced status code (x.y.z, class 2, 4 or 5) in a text, normalised ("5.01.1" -> "5.1.1")."""
    match = _STATUS.search(text or "")
    if not match:
        return ""
    return ".".join(str(int(part)) for part in match.groups())


def best_status(status_field: str, diagnostic: str) -> str:
    """The Status field, made more precise by the Diagnostic-Code when the field is generic (Exim writes 5.0.0 for
    a remote's 550 5.1.1) or missing; never changed to another class."""
    status = find_status(status_field)
    told = find_status(diagnostic)
    if not status:
        return told
    if told and status.endswith(".0.0") and told[0] == status[0] and not told.endswith(".0.0"):
        return told
    return status


def verp_recipient(address: str) -> tuple[str, str]:
    """(tag, recipient) of a VERP return path: "bounces+bob=example.org@example.com" -> ("bob=example.org",
    "bob@example.org"); a tag that is not `local=domain` gives ("tag", ""); no tag: ("", "")."""
    match = _VERP.match(address or "")
    if not match:
        return "", ""
    tag = match["tag"]
    local, _, domain = tag.rpartition("=")
    if local and domain and "." in domain and "=" not in domain:
        return tag, f"{local}@{domain}"
    return tag, ""


# --- reading -----------------------------------------------------------------------------------------------------


def _read(message: Message) -> FeedbackReport:
    if not message.keys():
        return FeedbackReport(OTHER, "not an email message: no header fields")
    subject = _header(message, "Subject")
    reporter = _address(_header(message, "From"))
    report = _report_part(message)
    if report is not None:
        report_type = (report.get_param("report-type") or "").lower() if report.get_param("report-type") else ""
        parts = _children(report)
        types = {part.get_content_type() for part in parts}
        if report_type == FEEDBACK_REPORT or (not report_type and "message/feedback-report" in types):
            return _complaint(message, parts, subject, reporter)
        if report_type == DELIVERY_STATUS or (not report_type and types & _DSN_TYPES):
            return _dsn(message, parts, subject, reporter)
        return FeedbackReport(
            OTHER, f"a report of type {report_type!r}, neither a DSN nor a complaint", subject=subject
        )
    if _is_auto_reply(message, subject):
        return FeedbackReport(OTHER, "auto-reply (out of office or similar), not a bounce", subject=subject)
    if _local(reporter) in ("mailer-daemon", "postmaster"):
        return FeedbackReport(
            OTHER,
            "a non-delivery notice without a machine-readable report (RFC 3464 multipart/report): not counted",
            subject=subject,
            reporter=reporter,
        )
    return FeedbackReport(OTHER, "not a delivery or feedback report (no multipart/report part)", subject=subject)


_DSN_TYPES = {"message/delivery-status", "message/global-delivery-status"}
_ORIGINAL_TYPES = {"message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers"}


def _report_part(message: Message) -> Message | None:
    """The multipart/report: the message itself, or a part of it (not inside an attached message: that is the
    original, which may be a report of its own)."""
    stack = [message]
    seen = 0
    while stack and seen < 200:
        part = stack.pop(0)
        seen += 1
        if part.get_content_type() == "multipart/report":
            return part
        if part.is_multipart() and part.get_content_maintype() == "multipart":
            stack.extend(_children(part))
    return None


def _children(part: Message) -> list[Message]:
    payload = part.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _dsn(message: Message, parts: list[Message], subject: str, reporter: str) -> FeedbackReport:
    status_part = next((p for p in parts if p.get_content_type() in _DSN_TYPES), None)
    if status_part is None:
        return FeedbackReport(
            OTHER, "a delivery-status report without its message/delivery-status part", DELIVERY_STATUS, subject=subject
        )
    blocks, ignored = _blocks(status_part, MAX_RECIPIENT_BLOCKS + 1)
    if not blocks:
        return FeedbackReport(OTHER, "an empty delivery-status part", DELIVERY_STATUS, subject=subject)
    per_message, per_recipient = blocks[0], blocks[1:]
    if "final-recipient" in per_message and not per_recipient:
        per_message, per_recipient = {}, blocks  # a writer that left the per-message block out
    if len(per_recipient) > MAX_RECIPIENT_BLOCKS:
        ignored += len(per_recipient) - MAX_RECIPIENT_BLOCKS
        per_recipient = per_recipient[:MAX_RECIPIENT_BLOCKS]
    results = []
    for block in per_recipient:
        diagnostic = _typed(block.get("diagnostic-code", ""))
        status = best_status(block.get("status", ""), diagnostic)
        action = block.get("action", "").strip().lower()
        kind, reason = status_kind(action, status)
        recipient = _typed(block.get("final-recipient", "")) or _typed(block.get("original-recipient", ""))
        results.append(
            RecipientResult(
                recipient=_address(recipient),
                kind=kind,
                reason=reason,
                status=status,
                action=action,
                diagnostic=diagnostic,
                remote_mta=_typed(block.get("remote-mta", "")),
                original_recipient=_address(_typed(block.get("original-recipient", ""))),
            )
        )
    if not results:
        return FeedbackReport(
            OTHER, "a delivery-status report without a per-recipient block", DELIVERY_STATUS, subject=subject
        )
    original = _original(parts)
    sender = _address(_typed(per_message.get("x-postfix-sender", ""))) or _address(_header(original, "From"))
    kind, reason = _worst(results)
    if ignored:
        reason += f"; {ignored_note(ignored)}"
    return FeedbackReport(
        kind=kind,
        reason=reason,
        report_type=DELIVERY_STATUS,
        recipients=tuple(results),
        reporter=_typed(per_message.get("reporting-mta", "")) or reporter,
        subject=subject,
        original_message_id=_message_id(_header(original, "Message-ID"))
        or _message_id(per_message.get("x-original-message-id", "")),
        original_sender=sender,
        queue_id=_queue_id(per_message.get("x-postfix-queue-id", "")),
        envelope_id=per_message.get("original-envelope-id", "")[:255],
        arrival_date=per_message.get("arrival-date", ""),
        ignored_recipients=ignored,
        **_tie_backs(message, original, sender),
    )


def _complaint(message: Message, parts: list[Message], subject: str, reporter: str) -> FeedbackReport:
    feedback_part = next((p for p in parts if p.get_content_type() == "message/feedback-report"), None)
    if feedback_part is None:
        return FeedbackReport(
            OTHER, "a feedback report without its message/feedback-report part", FEEDBACK_REPORT, subject=subject
        )
    fields = _blocks(feedback_part)[0]
    report = fields[0] if fields else {}
    feedback_type = report.get("feedback-type", "").strip().lower()
    original = _original(parts)
    recipient = _address(report.get("original-rcpt-to", "")) or _address(
        _header(original, "X-HmXmrOriginalRecipient")  # Microsoft JMRP names the recipient only there
    )
    if recipient.lower().startswith("redacted"):
        recipient = ""  # AOL-like loops redact it
    if feedback_type in COMPLAINT_TYPES:
        kind, reason = COMPLAINT, COMPLAINT_TYPES[feedback_type]
    elif feedback_type in NOT_COMPLAINT_TYPES:
        kind, reason = OTHER, NOT_COMPLAINT_TYPES[feedback_type]
    elif not feedback_type:
        kind, reason = OTHER, "a feedback report without a Feedback-Type field"
    else:
        kind, reason = OTHER, f"feedback of unknown type {feedback_type[:40]!r}, not counted as a complaint"
    agent = report.get("user-agent", "")
    if kind == COMPLAINT and agent:
        reason += f", from {agent[:80]}"
    sender = _address(report.get("original-mail-from", "")) or _address(_header(original, "From"))
    return FeedbackReport(
        kind=kind,
        reason=reason,
        report_type=FEEDBACK_REPORT,
        recipients=(RecipientResult(recipient=recipient, kind=kind, reason=reason),),
        reporter=agent or reporter,
        subject=subject,
        feedback_type=feedback_type,
        original_message_id=_message_id(_header(original, "Message-ID")),
        original_sender=sender,
        source_ip=report.get("source-ip", "").strip()[:45],
        reported_domain=report.get("reported-domain", "").strip().lower()[:253],
        arrival_date=report.get("arrival-date", "") or report.get("received-date", ""),
        **_tie_backs(message, original, sender),
    )


def _tie_backs(message: Message, original: Message | None, sender: str) -> dict[str, object]:
    """The VERP tag (from the address the report was sent to, or the original's envelope sender), the trace header
    and the queue ids Postfix wrote in the original's Received headers."""
    tag, recipient = "", ""
    candidates = [_header(message, name) for name in ("Delivered-To", "X-Original-To", "To")]
    candidates += [sender, _header(original, "Return-Path")]
    for candidate in candidates:
        for _, address in getaddresses([candidate]) if candidate else []:
            tag, recipient = verp_recipient(address)
            if tag:
                break
        if tag:
            break
    received = []
    if original is not None:
        for value in original.get_all("Received") or []:
            text = _text(value)
            if "(Postfix" in text:
                received += [m for m in _POSTFIX_RECEIVED_ID.findall(text) if m not in received]
    return {
        "verp_tag": tag[:255],
        "verp_recipient": recipient[:320],
        "trace": _header(original, "X-Dockspace-Trace")[:255],
        "received_queue_ids": tuple(received[:10]),
    }


def _original(parts: list[Message]) -> Message | None:
    """The original message's headers: an attached message/rfc822, or a text/rfc822-headers part parsed."""
    for part in parts:
        kind = part.get_content_type()
        if kind not in _ORIGINAL_TYPES:
            continue
        attached = _children(part)
        if attached:
            return attached[0]
        text = _payload_text(part)
        if text.strip():
            return Parser(policy=policy.compat32).parsestr(text.lstrip("\r\n"), headersonly=True)
    return None


def ignored_note(ignored: int) -> str:
    """What a report's reason says of the per-recipient blocks past MAX_RECIPIENT_BLOCKS."""
    return (
        f"{ignored:,} more recipient block{'s' if ignored > 1 else ''} ignored (at most {MAX_RECIPIENT_BLOCKS:,} read)"
    )


def _blocks(part: Message, limit: int | None = None) -> tuple[list[dict[str, str]], int]:
    """The field blocks of a message/delivery-status or message/feedback-report part, as {lower-case name: value}
    (the first of a repeated field), the first `limit` of them, and how many more there were: `email` splits a
    delivery-status into one Message per block; a part it left as text (another type, or one sent base64-encoded) is
    split at its blank lines here."""
    attached = _children(part)
    if attached:
        found = [block for block in attached if block.keys()]
        return [_fields(block) for block in found[:limit]], len(found[limit:]) if limit is not None else 0
    text = _payload_text(part)
    blocks, more = [], 0
    for chunk in re.split(r"\r?\n[ \t]*\r?\n", text.strip()):
        if not chunk.strip():
            continue
        if limit is not None and len(blocks) >= limit:
            more += 1  # counted, not read (a chunk that holds no field is counted too)
            continue
        parsed = Parser(policy=policy.compat32).parsestr(chunk.strip() + "\n", headersonly=True)
        if parsed.keys():
            blocks.append(_fields(parsed))
    return blocks, more


def _fields(block: Message) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in block.items():
        fields.setdefault(name.strip().lower(), _text(value))
    return fields


def _payload_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    try:
        return payload.decode(part.get_content_charset() or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        return payload.decode("utf-8", "replace")


def _header(message: Message | None, name: str) -> str:
    if message is None:
        return ""
    value = message.get(name)
    return _text(value) if value is not None else ""


def _text(value: object) -> str:
    """A header value as one clean line: encoded words decoded, folding and control characters gone, clipped."""
    text = str(value)
    if "=?" in text:
        with contextlib.suppress(Exception):  # an undecodable encoded word stays as written
            text = str(make_header(decode_header(text)))
    text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates from undecodable bytes
    text = _CONTROL.sub(" ", text)
    return _SPACES.sub(" ", text).strip()[:MAX_VALUE]


def _typed(value: str) -> str:
    """A DSN value without its type: "rfc822; bob@example.org" -> "bob@example.org", "smtp; 550 ..." -> "550 ..."."""
    kind, sep, rest = value.partition(";")
    if sep and kind.strip() and " " not in kind.strip() and len(kind.strip()) <= 20:
        return rest.strip()
    return value.strip()


def _address(value: str) -> str:
    value = (value or "").strip()
    if not value:
        return ""
    _, address = parseaddr(value)
    address = (address or value).strip().strip("<>").strip()
    return address[:320] if "@" in address else ""


def _local(address: str) -> str:
    return address.rpartition("@")[0].lower() if "@" in address else ""


def _message_id(value: str) -> str:
    """A Message-ID without its angle brackets, as the mail traffic stores it (cleanup's message-id=)."""
    value = (value or "").strip()
    match = re.search(r"<([^<>\s]{1,250})>", value)
    if match:
        return match.group(1)
    token = value.split()[0].strip("<>") if value.split() else ""
    return token[:255]


def _queue_id(value: str) -> str:
    value = value.strip()
    return value if re.fullmatch(r"[0-9A-Za-z]{5,20}", value) else ""


def _is_auto_reply(message: Message, subject: str) -> bool:
    auto = _header(message, "Auto-Submitted").lower()
    if auto.startswith("auto-replied"):
        return True
    if any(message.get(name) for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress")):
        return bool(_AUTO_REPLY_SUBJECT.search(subject)) or message.get("X-Autoreply") is not None
    precedence = _header(message, "Precedence").lower()
    return precedence == "auto_reply" or bool(_AUTO_REPLY_SUBJECT.search(subject))


def _worst(results: list[RecipientResult]) -> tuple[str, str]:
    for kind in (HARD, SOFT, COMPLAINT):
        found = [r for r in results if r.kind == kind]
        if found:
            more = len(results) - 1
            suffix = f" (and {more} more recipient{'s' if more > 1 else ''} in the report)" if more else ""
            return kind, found[0].reason + suffix
    first = results[0]
    return first.kind, first.reason
