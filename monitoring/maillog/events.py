"""What one mail-log line says, as plain data: the parser (monitoring.maillog.parse) turns a line into one of these,
the correlator (monitoring.maillog.correlate) ties them into messages and delivery attempts by queue id. No ORM, no
settings, no clock: each event carries the time its line was written.

Postfix logs one line per step of a message, keyed by its queue id (QID): smtpd `client=`, cleanup `message-id=`,
qmgr `from=, size=, nrcpt=`, one `to=... status=` line per recipient per delivery attempt, qmgr `removed`. Lines
without a queue id (NOQUEUE rejects, postscreen) stand alone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# Delivery statuses, as Postfix writes them after `status=`.
SENT = "sent"
DEFERRED = "deferred"
BOUNCED = "bounced"
EXPIRED = "expired"  # qmgr: "status=expired, returned to sender" (the message, not one recipient)
DELIVERY_STATUSES = (SENT, DEFERRED, BOUNCED)


@dataclass(frozen=True)
class LogLine:
    """A syslog line split into its header and its text. `program` is the syslog tag without the pid:
    "postfix/smtpd", "postfix/submission/smtpd", "postfix/out-192-0-2-10/smtp", "dovecot", "rspamd_proxy"."""

    at: datetime  # timezone-aware
    host: str
    program: str
    pid: int | None
    text: str

    @property
    def service(self) -> str:
        """The Postfix service (master.cf name / syslog_name suffix) that wrote the line: "smtpd", "submission",
        "out-192-0-2-10", "smtp", "lmtp"... For "postfix/out-192-0-2-10/smtp" it is "out-192-0-2-10"; for
        "postfix/smtp" it is "smtp". Empty for programs that are not Postfix."""
        parts = self.program.split("/")
        if parts[0] != "postfix" or len(parts) < 2:
            return ""
        return parts[1] if len(parts) > 2 else parts[-1]

    @property
    def daemon(self) -> str:
        """The Postfix daemon: the last part of the tag ("smtpd", "smtp", "qmgr", "cleanup", "lmtp", "bounce")."""
        return self.program.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Event:
    """Base of every event: the line it came from (for its time, host and tag)."""

    line: LogLine


@dataclass(frozen=True)
class ClientConnected(Event):
    """smtpd: `QID: client=mail.example.net[203.0.113.5][, sasl_method=PLAIN, sasl_username=bob@example.com]`.
    A message submitted by one of our people carries the SASL user; one received from outside does not."""

    queue_id: str
    client_host: str
    client_ip: str
    sasl_method: str = ""
    sasl_username: str = ""


@dataclass(frozen=True)
class LocallyPicked(Event):
    """pickup: `QID: uid=0 from=<root>` (mail submitted on the host itself, e.g. by sendmail)."""

    queue_id: str
    uid: int | None
    sender: str


@dataclass(frozen=True)
class MessageIdSeen(Event):
    """cleanup: `QID: message-id=<...>` (the angle brackets removed; may be empty)."""

    queue_id: str
    message_id: str


@dataclass(frozen=True)
class Queued(Event):
    """qmgr: `QID: from=<sender>, size=N, nrcpt=N (queue active)`. The envelope sender is "" for a bounce."""

    queue_id: str
    sender: str
    size: int
    nrcpt: int


@dataclass(frozen=True)
class Delivery(Event):
    """smtp/lmtp/local/virtual/pipe/error/discard: one recipient, one attempt:
    `QID: to=<r>, [orig_to=<o>,] relay=host[ip]:port, [conn_use=N,] delay=S, delays=a/b/c/d, dsn=X.Y.Z,
    status=sent|deferred|bounced (reply)`. `service` is LogLine.service ("out-192-0-2-10" for a pooled IP's
    transport), `reply` the text in parentheses (the remote server's answer, or Postfix's reason)."""

    queue_id: str
    recipient: str
    orig_recipient: str
    relay: str  # "mx.example.net[198.51.100.7]:25", "none", "local", "dovecot"
    delay: float | None
    delays: str  # "a/b/c/d" as written
    dsn: str
    status: str  # SENT, DEFERRED or BOUNCED
    reply: str


@dataclass(frozen=True)
class Expired(Event):
    """qmgr: `QID: from=<sender>, status=expired, returned to sender`: the message stayed deferred past
    maximal_queue_lifetime; its recipients not yet delivered are given up (a bounce goes to the sender)."""

    queue_id: str
    sender: str


@dataclass(frozen=True)
class Removed(Event):
    """qmgr: `QID: removed`: the message left the queue (every recipient delivered, bounced or expired)."""

    queue_id: str


@dataclass(frozen=True)
class SessionStarted(Event):
    """smtpd: `connect from host[ip]`: one smtpd process begins another SMTP session (what the previous one left
    pending, such as a HOLD logged before its queue id, is over)."""


@dataclass(frozen=True)
class BounceCreated(Event):
    """bounce: `QID: sender non-delivery notification: NEWQID` (also "delivery status notification", "delay
    status notification"): Postfix queued NEWQID to tell the sender about QID. `kind` is the words before
    "notification"."""

    queue_id: str
    notification_queue_id: str
    kind: str


@dataclass(frozen=True)
class Rejected(Event):
    """A refusal at SMTP: smtpd `NOQUEUE: reject: RCPT from host[ip]: 554 5.7.1 <r>: Relay access denied;
    from=<s> to=<r> proto=ESMTP helo=<h>` (also `QID: reject:` once queued, e.g. at DATA or END-OF-MESSAGE,
    and cleanup's header/body checks), and postscreen's refusals (`NOQUEUE: reject: RCPT from [ip]:port: 550
    5.7.1 Service unavailable; client [ip] blocked using zen.spamhaus.org; ...`, stage "postscreen")."""

    queue_id: str  # "" for NOQUEUE
    stage: str  # "CONNECT", "HELO", "MAIL", "RCPT", "DATA", "END-OF-MESSAGE", "header", "body", "postscreen"
    code: int | None  # 554
    dsn: str  # "5.7.1" ("" when the reply has none)
    reply: str  # the reply text after the code and dsn, up to "; from="
    client_host: str
    client_ip: str
    sender: str = ""
    recipient: str = ""
    helo: str = ""
    proto: str = ""
    # Not refused: "warn:"/"reject_warning:"/"warning:" only log; "hold:" accepts the message into the hold queue
    # (until `postsuper -H`), "discard:" accepts it and drops it (the client is told "250 Ok" either way).
    is_warning: bool = False
    # The word before the stage, as logged: "reject", "reject_warning", "warn", "milter-reject", "hold", "discard",
    # "milter-hold", "milter-discard", and cleanup's "warning" (a header/body check's WARN). pflogsumm counts some of
    # them only (monitoring.maillog.counting).
    action: str = ""


@dataclass(frozen=True)
class PolicyUnreachable(Event):
    """smtpd: `warning: problem talking to server 127.0.0.1:10040: Connection refused` (util/attr_clnt.c): a
    check_policy_service query got no answer (the reason is the OS error's text: "Connection refused",
    "Connection timed out", or "Success" when the server closed the connection without answering). Postfix tries
    twice (logging a refused or timed-out try each time, a closed connection only the last) and then applies the
    check's default_action: DUNNO lets the message through unchecked. Postfix's own services that smtpd talks to
    this way (private/anvil, private/tlsmgr) are not policy services: the parser leaves their lines out."""

    server: str  # as Postfix names it: "127.0.0.1:10040", "policy:10040", "private/policyd-spf"
    reason: str


@dataclass(frozen=True)
class LoginSeen(Event):
    """Dovecot: `imap-login: Login: user=<bob@example.com>, method=PLAIN, rip=..., lip=..., ...` and the failed
    forms ("Disconnected (auth failed, 1 attempts in 2 secs): user=<...>"). `ok` is False for a failed login."""

    protocol: str  # "imap", "pop3", "managesieve", "submission"
    user: str
    remote_ip: str
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class Other(Event):
    """Any line the parser does not turn into one of the above (Rspamd, OpenDKIM, amavis, postfix lines of no
    interest such as `connect from`): counted by program, never an error."""
