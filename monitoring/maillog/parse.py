"""Mail-log lines into events (monitoring.maillog.events): the syslog header first (parse_syslog), then what the
program said (parse_event); a batch of lines at once for the ingest (parse_lines). Pure and fast: regexes compiled
once, a dispatch on the program before any text regex, and never an exception on any input: what is not understood
is an Other event, what is not a syslog line is None.

Line shapes, from the Postfix 3.7 sources (global/log_adhoc.c, global/opened.c, smtpd/smtpd.c and smtpd_check.c,
cleanup/cleanup_message.c, qmgr/qmgr_active.c, bounce/*, pickup/pickup.c, postscreen/postscreen_smtpd.c) and
Dovecot 2.3.19 (login-common: login_log_format_elements "user=<%u> method=%m rip=%r lip=%l mpid=%e %c
session=<%{session}>", joined by ", ")."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache

from monitoring.maillog.events import (
    BOUNCED,
    DEFERRED,
    SENT,
    BounceCreated,
    ClientConnected,
    Delivery,
    Event,
    Expired,
    LocallyPicked,
    LoginSeen,
    LogLine,
    MessageIdSeen,
    Other,
    PolicyUnreachable,
    Queued,
    Rejected,
    Removed,
    SessionStarted,
)

# --- the syslog header -------------------------------------------------------------------------------------------
# RFC 3339 (DMS since v14): `2026-12-06T10:15:02.123456+00:00 mail postfix/smtpd[1234]: text`; also `Z`, negative
# offsets, no fraction. Classic BSD: `Dec  6 10:15:02 mail postfix/smtpd[1234]: text`, the year given by the caller.
# The tag is what precedes `[pid]:` or `:`; Dovecot logs through syslog without a pid (`dovecot: imap-login: ...`).
_TAG = r" (\S+) ([^\s\[\]:]+)(?:\[(\d{1,10})\])?: ?(.*)\Z"
_RFC3339_LINE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d))" + _TAG, re.S)
_CLASSIC_LINE = re.compile(r"([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d)" + _TAG, re.S)
_MONTHS = {
    m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)
}

# Lines written in the same second share their timestamp text: parse it once.
_last_stamp: tuple[str, datetime | None] = ("", None)


def _rfc3339(stamp: str) -> datetime | None:
    global _last_stamp
    try:
        at: datetime | None = _plausible(datetime.fromisoformat(stamp))
    except ValueError:
        at = None
    _last_stamp = (stamp, at)
    return at


def parse_syslog(raw: str, *, year: int | None = None, tz: tzinfo = UTC) -> LogLine | None:
    """The header and text of one syslog line, or None when `raw` is not one (or is a classic line, with no year
    in it, and `year` was not given). `tz` is the zone of classic timestamps; RFC 3339 ones carry their offset."""
    if not isinstance(raw, str):
        return None
    if raw[-1:] == "\n":
        raw = raw.rstrip("\r\n")
    if raw[:1].isdigit():
        m = _RFC3339_LINE.match(raw)
        if m is None:
            return None
        stamp, host, program, pid, text = m.groups()
        at = _last_stamp[1] if _last_stamp[0] == stamp else _rfc3339(stamp)
        if at is None:
            return None
        return LogLine(at, host, program, int(pid) if pid else None, text)
    m = _CLASSIC_LINE.match(raw)
    if m is None or year is None:
        return None
    month = _MONTHS.get(m.group(1))
    if month is None:
        return None
    try:
        at = datetime(year, month, int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5)), tzinfo=tz)
    except (ValueError, OverflowError, TypeError):
        return None
    if _plausible(at) is None:
        return None
    pid = m.group(8)
    return LogLine(at, m.group(6), m.group(7), int(pid) if pid else None, m.group(9))


def classic_year(month: int, day: int, *, reference: datetime) -> int:
    """The year of a classic (year-less) timestamp in a log last written at `reference`: its year, or the one
    before when the month and day lie ahead of it (a December line in a file written in January)."""
    if (month, day) > (reference.month, reference.day + 1):
        return reference.year - 1
    return reference.year


# Times a log can tell of: years outside these overflow the date arithmetic and the database (a forged line).
_YEARS = range(1971, 9000)
MAX_DELAY = 1e9  # seconds (31 years): a delay= beyond it is not one Postfix wrote


def _plausible(at: datetime | None) -> datetime | None:
    return at if at is not None and at.year in _YEARS else None


# --- sending IPs -------------------------------------------------------------------------------------------------
_OUT_PREFIX = "out-"


@lru_cache(maxsize=1024)
def sending_ip(service: str) -> str | None:
    """The IP address a pooled transport sends from, read back from its name: "out-192-0-2-10" -> "192.0.2.10",
    "out-2001-db8--1" -> "2001:db8::1" (the name is "out-" + the address with "." and ":" replaced by "-");
    None for any other service."""
    if not service.startswith(_OUT_PREFIX):
        return None
    name = service[len(_OUT_PREFIX) :]
    parts = name.split("-")
    if len(parts) == 4 and all(p.isdigit() and len(p) <= 3 for p in parts):
        candidate = ".".join(parts)
    else:
        candidate = name.replace("-", ":")
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    # Only a name the transports would have written: the address's normal form, "." and ":" made "-".
    if str(address).replace(".", "-").replace(":", "-") != name:
        return None
    return str(address)


# --- Postfix -----------------------------------------------------------------------------------------------------
_QID = re.compile(r"([0-9A-Za-z]{5,20}|NOQUEUE): ")
_CLIENT = re.compile(
    r"client=([^\[\s,]*)\[([^\]\s]*)\](?::\d+)?(?:, sasl_method=([^,\s]*))?(?:, sasl_username=([^,]*))?"
)
_QUEUED = re.compile(r"from=<(.*)>, size=(\d{1,20}), nrcpt=(\d{1,10})(?: |\Z)", re.S)
_EXPIRED = re.compile(r"from=<(.*)>, status=(?:force-)?expired, returned to sender\Z", re.S)
# An address as Postfix logs it between < and > (its external form, info_log_address_format's default): a quoted
# local part may hold ">, relay=..." or "; from=<...>" (a sender's crafted recipient must not forge the rest of the
# line), so quoted strings are read whole, and outside them no quote, backslash, space, < or > (Postfix quotes a
# local part that holds one): a reading that starts inside a quoted string cannot close it.
_ADDRESS = r'((?:"(?:[^"\\]|\\.)*"|[^"\\\s<>])*)'
_DELIVERY = re.compile(
    rf"to=<{_ADDRESS}>, (?:orig_to=<{_ADDRESS}>, )?relay=([^,]*), (?:conn_use=\d+, )?delay=(\d+(?:\.\d*)?), "
    r"(?:delays=([\d./]*), )?(?:\w+=[^,]*, )*?(?:dsn=([\d.]*), )?status=([A-Za-z]+)(?: \((.*)\))?\Z",
    re.S,
)
_DELIVERY_STATUS = {SENT: SENT, DEFERRED: DEFERRED, BOUNCED: BOUNCED, "SOFTBOUNCE": DEFERRED}
_PICKUP = re.compile(r"(?:uid=(\d{1,10}) )?(?:from|sender)=<(.*)>(?: orig_id=\S*)?\Z", re.S)
_NOTIFICATION = re.compile(r"((?:sender|postmaster) (?:non-delivery|delivery status|delay)) notification: (\S+)\Z")
# `reject: RCPT from host[ip]: 554 5.7.1 text; from=<s> to=<r> proto=ESMTP helo=<h>` (smtpd_check.c log_whatsup)
# and postscreen's `..., from=<s>, to=<r>, proto=ESMTP, helo=<h>`.
_ACTION = re.compile(
    r"(reject|reject_warning|warn|milter-reject|hold|discard|milter-hold|milter-discard): ([A-Z][A-Z-]*) from (\S+?): "
    r"(.*)\Z",
    re.S,
)
# The actions that refuse the client; the others only log (warn), or accept the message and then keep it in the hold
# queue (hold) or drop it unseen (discard): the client was told "250 Ok" either way.
_REFUSALS = frozenset({"reject", "milter-reject"})
# The context after the reply, read from the end of the line: the reply before it is the longest text that leaves
# a whole context behind, so a recipient or sender whose quoted local part holds "; from=<...>" cannot stand for
# the real context (quoted strings are read whole by _ADDRESS; a HELO name holds no space).
_CONTEXT = (
    rf";(?: from=<{_ADDRESS}>)?(?:,? to=<{_ADDRESS}>)?(?:,? proto=([^\s,]+))?(?:,? helo=<([^>\s]*)>)?"
    r"(?:,? sasl_\w+=[^\s,]*)*"
)
_WHATSUP = re.compile(rf"(.*){_CONTEXT}\Z", re.S)
_REPLY = re.compile(r"(?:([245]\d\d)[ -])?(?:([245]\.\d{1,3}\.\d{1,3}) )?(.*)\Z", re.S)
_NAMADDR = re.compile(r"([^\[\s]*)\[([^\]\s]*)\](?::\d+)?\Z")
# cleanup_message.c cleanup_act_log: `reject: header Subject: ... from host[ip]; from=<s> to=<r> proto=ESMTP
# helo=<h>: 5.7.1 text`. The matched header or body text sits between the context and " from ": never kept.
# Read from the end too (the header text is the sender's): the client is the last " from X;" that leaves a whole
# context behind, and the text after it (the check's own, from main.cf) holds no < or >.
_CONTENT_ACTION = re.compile(
    rf"(reject|warning|milter-reject|hold|discard): (header|body) .* from ([^\s;]+)"
    rf"(?:; from=<{_ADDRESS}>)?(?: to=<{_ADDRESS}>)?(?: proto=(\S+))?(?: helo=<([^>\s]*)>)?(?:: ([^<>]*))?\Z",
    re.S,
)
_CONTENT_HEAD = re.compile(r"(reject|warning|milter-reject|hold|discard): (header|body) ")
_END_STAGES = frozenset({"DATA", "END-OF-MESSAGE", "BDAT"})
_CONNECT = "connect from "
# util/attr_clnt.c: `warning: problem talking to server %s: %m` (the _QID pattern reads "warning" as the queue id:
# no queue id has vowels). smtpd asks its policy services so, and Postfix's own anvil and tlsmgr: left out.
_POLICY_TROUBLE = "problem talking to server "
_POSTFIX_OWN_SERVERS = frozenset({"private/anvil", "private/tlsmgr"})
_CONTENT_ACTIONS = frozenset({"reject", "warning", "hold", "discard"})


def _is_forged(*addresses: str | None) -> bool:
    """Whether an address read from a context holds a context of its own (`; from=<victim@example.com> to=<...`):
    no address does, so the reading started inside a sender's quoted local part (a HELO name with a quote can
    close it). Its particulars are not kept then; the line still counts."""
    return any(address and "=<" in address for address in addresses)


def _reply_parts(reply: str) -> tuple[int | None, str, str]:
    m = _REPLY.match(reply)
    if m is None:  # pragma: no cover - the pattern matches any text
        return None, "", reply
    code = m.group(1)
    return (int(code) if code else None), (m.group(2) or ""), m.group(3)


def _client(namaddr: str) -> tuple[str, str]:
    m = _NAMADDR.match(namaddr)
    if m is None:
        return namaddr if namaddr != "local" else "", ""
    host = m.group(1)
    return ("" if host == "unknown" else host), m.group(2)


def _rejected(line: LogLine, queue_id: str, rest: str, *, stage: str | None = None) -> Event:
    m = _ACTION.match(rest)
    if m is None:
        return Other(line)
    action, where, namaddr, tail = m.groups()
    w = _WHATSUP.match(tail)
    reply, sender, recipient, proto, helo = (tail, "", "", "", "") if w is None else w.groups()
    if _is_forged(sender, recipient):
        reply, sender, recipient, proto, helo = tail, "", "", "", ""
    code, dsn, text = _reply_parts(reply)
    host, ip = _client(namaddr)
    return Rejected(
        line,
        queue_id,
        stage or where,
        code,
        dsn,
        text,
        host,
        ip,
        sender or "",
        recipient or "",
        helo or "",
        proto or "",
        action not in _REFUSALS,
        action,
    )


def _content_rejected(line: LogLine, queue_id: str, rest: str) -> Event:
    m = _CONTENT_ACTION.match(rest)
    if m is None:
        # A context that cannot be told apart (a reply text with < or >): the action still counts, without it.
        head = _CONTENT_HEAD.match(rest)
        if head is None:  # pragma: no cover - _cleanup sends only lines that start so
            return Other(line)
        action, context = head.groups()
        kept = action not in _REFUSALS
        return Rejected(line, queue_id, context, None, "", "", "", "", is_warning=kept, action=action)
    action, context, origin, sender, recipient, proto, helo, text = m.groups()
    if _is_forged(sender, recipient):
        kept = action not in _REFUSALS
        return Rejected(line, queue_id, context, None, "", "", "", "", is_warning=kept, action=action)
    code, dsn, reply = _reply_parts(text or "")
    host, ip = _client(origin)
    return Rejected(
        line,
        queue_id,
        context,
        code,
        dsn,
        reply,
        host,
        ip,
        sender or "",
        recipient or "",
        helo or "",
        proto or "",
        action not in _REFUSALS,
        action,
    )


def _delivery(line: LogLine, queue_id: str, rest: str) -> Event:
    if not rest.startswith("to=<"):
        return Other(line)
    m = _DELIVERY.match(rest)
    if m is None:
        return Other(line)
    status = _DELIVERY_STATUS.get(m.group(7))
    if status is None:  # address verification ("deliverable"), or something new
        return Other(line)
    try:
        delay: float | None = float(m.group(4))
    except ValueError:  # pragma: no cover - the pattern admits digits only
        delay = None
    if delay is not None and not delay < MAX_DELAY:  # hundreds of digits (a forged line) read as infinity
        delay = None
    return Delivery(
        line,
        queue_id,
        m.group(1),
        m.group(2) or "",
        m.group(3),
        delay,
        m.group(5) or "",
        m.group(6) or "",
        status,
        m.group(8) or "",
    )


def _smtpd(line: LogLine, queue_id: str, rest: str) -> Event:
    if rest.startswith("client="):
        m = _CLIENT.match(rest)
        if m is None or not queue_id:
            return Other(line)
        host, ip = m.group(1), m.group(2)
        return ClientConnected(
            line, queue_id, "" if host == "unknown" else host, ip, m.group(3) or "", (m.group(4) or "").strip()
        )
    if rest.startswith(("reject", "warn", "milter-", "hold: ", "discard: ")):
        return _rejected(line, queue_id, rest)
    if queue_id == "warning" and rest.startswith(_POLICY_TROUBLE):
        return _policy_unreachable(line, rest)
    return Other(line)


def _policy_unreachable(line: LogLine, rest: str) -> Event:
    server, sep, reason = rest[len(_POLICY_TROUBLE) :].partition(": ")
    if not sep or not server or server in _POSTFIX_OWN_SERVERS:
        return Other(line)
    return PolicyUnreachable(line, server, reason)


def _cleanup(line: LogLine, queue_id: str, rest: str) -> Event:
    if rest.startswith("message-id="):
        if not queue_id:
            return Other(line)
        value = rest[11:].strip()
        if value[:1] == "<" and value[-1:] == ">":
            value = value[1:-1]
        return MessageIdSeen(line, queue_id, value)
    if rest.startswith(("reject: ", "warning: ", "hold: ", "discard: ", "milter-")):
        action, _, stage = rest.partition(": ")
        if action in _CONTENT_ACTIONS and stage.startswith(("header ", "body ")):
            return _content_rejected(line, queue_id, rest)
        return _rejected(line, queue_id, rest)
    return Other(line)


def _qmgr(line: LogLine, queue_id: str, rest: str) -> Event:
    if not queue_id:
        return Other(line)
    if rest == "removed":
        return Removed(line, queue_id)
    if rest.startswith("from=<"):
        m = _QUEUED.match(rest)
        if m is not None:
            return Queued(line, queue_id, m.group(1), int(m.group(2)), int(m.group(3)))
        m = _EXPIRED.match(rest)
        if m is not None:
            return Expired(line, queue_id, m.group(1))
        return Other(line)
    return _delivery(line, queue_id, rest)


def _agent(line: LogLine, queue_id: str, rest: str) -> Event:
    if not queue_id:
        return Other(line)
    return _delivery(line, queue_id, rest)


def _bounce(line: LogLine, queue_id: str, rest: str) -> Event:
    m = _NOTIFICATION.match(rest)
    if m is None or not queue_id:
        return Other(line)
    return BounceCreated(line, queue_id, m.group(2), m.group(1))


def _pickup(line: LogLine, queue_id: str, rest: str) -> Event:
    m = _PICKUP.match(rest)
    if m is None or not queue_id:
        return Other(line)
    uid = m.group(1)
    return LocallyPicked(line, queue_id, int(uid) if uid else None, m.group(2))


def _postscreen(line: LogLine, queue_id: str, rest: str) -> Event:
    if queue_id or not rest.startswith("reject: "):
        return Other(line)
    return _rejected(line, "", rest, stage="postscreen")


def _postsuper(line: LogLine, queue_id: str, rest: str) -> Event:
    if queue_id and rest == "removed":
        return Removed(line, queue_id)
    return Other(line)


_POSTFIX_DAEMONS = {
    "smtpd": _smtpd,
    "cleanup": _cleanup,
    "qmgr": _qmgr,
    "smtp": _agent,
    "lmtp": _agent,
    "local": _agent,
    "virtual": _agent,
    "pipe": _agent,
    "error": _agent,
    "retry": _agent,
    "discard": _agent,
    "bounce": _bounce,
    "pickup": _pickup,
    "postscreen": _postscreen,
    "postsuper": _postsuper,
}


def _postfix(line: LogLine, handler: Callable[[LogLine, str, str], Event]) -> Event:
    text = line.text
    m = _QID.match(text)
    if m is None:
        return SessionStarted(line) if handler is _smtpd and text.startswith(_CONNECT) else Other(line)
    queue_id = m.group(1)
    return handler(line, "" if queue_id == "NOQUEUE" else queue_id, text[m.end() :])


# --- Dovecot -----------------------------------------------------------------------------------------------------
_LOGIN = re.compile(r"(imap|pop3|submission|managesieve)-login: (.*)\Z", re.S)
_LOGIN_USER = re.compile(r"(?:^|[:,] )user=<(.*?)>(?:,|\Z)")
_LOGIN_RIP = re.compile(r", rip=([0-9A-Fa-f:.]+)")
# login-common/client-common.c client_get_extra_disconnect_reason: the failures a person or a guesser caused.
_LOGIN_FAILURES = (
    "(auth failed",
    "(authorization failed",
    "(user disabled",
    "(password expired",
    "(login disabled",
    "(tried to use disallowed plaintext auth",
)


def _dovecot(line: LogLine, text: str) -> Event:
    m = _LOGIN.match(text)
    if m is None:
        return Other(line)
    return _login(line, m.group(1), m.group(2))


def _login(line: LogLine, protocol: str, rest: str) -> Event:
    rip = _LOGIN_RIP.search(rest)
    remote_ip = rip.group(1) if rip else ""
    if rest.startswith("Login: "):
        user = _LOGIN_USER.search(rest)
        return LoginSeen(line, protocol, user.group(1) if user else "", remote_ip, True)
    head, sep, _ = rest.partition(": user=<")
    if not sep or not any(failure in head for failure in _LOGIN_FAILURES):
        return Other(line)
    user = _LOGIN_USER.search(rest)
    reason = head[len("Disconnected: ") :] if head.startswith("Disconnected: ") else head
    return LoginSeen(line, protocol, user.group(1) if user else "", remote_ip, False, reason)


# --- dispatch ----------------------------------------------------------------------------------------------------
# How to read a program's lines: (_POSTFIX, its daemon's handler), (_DOVECOT, None) for `dovecot: imap-login: ...`,
# (_LOGIN_TAG, None) for Dovecot logging with the process name as its tag; None: nothing to read there (Other).
_POSTFIX, _DOVECOT, _LOGIN_TAG = 1, 2, 3
_Route = tuple[int, Callable[[LogLine, str, str], Event] | None] | None
_ROUTES: dict[str, _Route] = {}
_ROUTES_MAX = 4096  # programs are few; a fuzzed or hostile log must not grow the cache without end
_LOGIN_PROGRAMS = frozenset({"imap-login", "pop3-login", "submission-login", "managesieve-login"})
_PARSE_ERRORS = (ValueError, TypeError, OverflowError, IndexError)  # a shape not foreseen: an Other event


def _route(program: str) -> _Route:
    try:
        return _ROUTES[program]
    except KeyError:
        pass
    parts = program.split("/")
    route: _Route = None
    if len(parts) > 1 and parts[0].startswith("postfix"):
        handler = _POSTFIX_DAEMONS.get(parts[-1])
        route = None if handler is None else (_POSTFIX, handler)
    elif program == "dovecot":
        route = (_DOVECOT, None)
    elif program in _LOGIN_PROGRAMS:
        route = (_LOGIN_TAG, None)
    if len(_ROUTES) < _ROUTES_MAX:
        _ROUTES[program] = route
    return route


def parse_event(line: LogLine) -> Event:
    """What `line` says about the mail: one of the events of monitoring.maillog.events, Other when nothing."""
    route = _route(line.program)
    if route is None:
        return Other(line)
    kind, handler = route
    try:
        if handler is not None:
            return _postfix(line, handler)
        if kind == _DOVECOT:
            return _dovecot(line, line.text)
        return _dovecot(line, f"{line.program}: {line.text}")
    except _PARSE_ERRORS:  # pragma: no cover - a shape not foreseen
        return Other(line)


def parse_line(raw: str, *, year: int | None = None, tz: tzinfo = UTC) -> Event | None:
    """parse_syslog then parse_event: the event of one raw line, None when it is not a syslog line."""
    line = parse_syslog(raw, year=year, tz=tz)
    return None if line is None else parse_event(line)


# --- a batch of lines --------------------------------------------------------------------------------------------


@dataclass
class ParsedLines:
    """A batch of raw lines read: the events that tell of mail (every event but Other) with their lines, in log
    order, and counts of the rest."""

    pairs: list[tuple[Event, str]] = field(default_factory=list)  # (event, its line without its line ending)
    lines: int = 0  # lines read
    not_syslog: int = 0
    other_by_program: Counter[str] = field(default_factory=Counter)  # lines that tell nothing (Other), by program
    first_at: datetime | None = None  # the earliest and the latest time of the events
    last_at: datetime | None = None

    @property
    def other(self) -> int:
        return sum(self.other_by_program.values())


def _utf8(raw: str) -> str:
    # A line decoded with surrogateescape cannot be stored as UTF-8: its undecodable bytes become U+FFFD.
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raw = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return raw


def parse_lines(lines: Iterable[str], *, reference: datetime, tz: tzinfo = UTC) -> ParsedLines:
    """parse_line over a batch of lines (with or without their line endings), keeping the events that tell of mail
    with their lines (line endings removed, undecodable bytes made U+FFFD) and counting the rest. Gives what
    parse_syslog then parse_event give line by line, without building the header and event of a line that tells
    nothing (most of a mail log: connects, Rspamd, OpenDKIM, Dovecot sessions). Classic timestamps (no year) take
    the year of `reference` (when the log was written), or the one before for a date more than a day ahead of it."""
    pairs: list[tuple[Event, str]] = []
    append = pairs.append
    other: Counter[str] = Counter()
    routes = _ROUTES
    match_rfc3339, match_qid, match_login = _RFC3339_LINE.match, _QID.match, _LOGIN.match
    smtpd = _smtpd
    fromisoformat = datetime.fromisoformat
    year, limit = reference.year, reference + timedelta(days=1)
    last_stamp, last_stamp_at = "", None
    first_at = last_at = None
    read = not_syslog = 0
    for raw in lines:
        read += 1
        raw = raw.rstrip("\r\n")
        if not raw.isascii():
            raw = _utf8(raw)
        event: Event | None = None
        if raw[:1].isdigit():  # RFC 3339: parse_syslog and parse_event inlined, the line built for events only
            m = match_rfc3339(raw)
            if m is None:
                not_syslog += 1
                continue
            stamp, host, program, pid, text = m.groups()
            if stamp == last_stamp:
                at = last_stamp_at
            else:
                try:
                    at = _plausible(fromisoformat(stamp))
                except ValueError:
                    at = None
                last_stamp, last_stamp_at = stamp, at
            if at is None:
                not_syslog += 1
                continue
            try:
                route = routes[program]
            except KeyError:
                route = _route(program)
            if route is not None:
                kind, handler = route
                try:
                    if handler is not None:
                        q = match_qid(text)
                        if q is not None:
                            queue_id = q.group(1)
                            event = handler(
                                LogLine(at, host, program, int(pid) if pid else None, text),
                                "" if queue_id == "NOQUEUE" else queue_id,
                                text[q.end() :],
                            )
                        elif handler is smtpd and text.startswith(_CONNECT):
                            event = SessionStarted(LogLine(at, host, program, int(pid) if pid else None, text))
                    else:
                        login = match_login(text if kind == _DOVECOT else f"{program}: {text}")
                        if login is not None:
                            line = LogLine(at, host, program, int(pid) if pid else None, text)
                            event = _login(line, login.group(1), login.group(2))
                except _PARSE_ERRORS:  # pragma: no cover - a shape not foreseen
                    event = None
        else:  # classic: rare in DMS logs since v14
            parsed = parse_syslog(raw, year=year, tz=tz)
            if parsed is None:
                not_syslog += 1
                continue
            if parsed.at > limit:
                parsed = parse_syslog(raw, year=year - 1, tz=tz) or parsed
            program, at = parsed.program, parsed.at
            event = parse_event(parsed)
        if event is None or type(event) is Other:
            other[program] += 1
            continue
        append((event, raw))
        if first_at is None or at < first_at:
            first_at = at
        if last_at is None or at > last_at:
            last_at = at
    return ParsedLines(pairs, read, not_syslog, other, first_at, last_at)
