"""How mail traffic is counted, as plain functions over stored values: pflogsumm's rules for its Grand Totals (read
from Debian's pflogsumm 1.1.5; bench/README.md "Mail traffic" lists them), so `manage.py traffic` agrees with it, and
the keys the breakdowns group by (a domain, a remote site, a reply with its particulars left out). No ORM, no
settings, no clock."""

from __future__ import annotations

import re

# --- pflogsumm's commands --------------------------------------------------------------------------------------


def pflogsumm_command(program: str) -> str | None:
    """The command pflogsumm files a line under: the syslog tag after "postfix/", with a "smtps/" or "submission/"
    dropped ("postfix/submission/smtpd" -> "smtpd") and any other syslog_name kept ("postfix/submissions/smtpd" ->
    "submissions/smtpd", "postfix/sender-cleanup/cleanup" -> "sender-cleanup/cleanup"). None: pflogsumm skips the
    line (not a "postfix/" tag)."""
    if not program.startswith("postfix/"):
        return None
    rest = program[len("postfix/") :]
    for prefix in ("smtps/", "submission/"):
        if rest.startswith(prefix):
            return rest[len(prefix) :]
    return rest


def is_received(received_by: str) -> bool:
    """Whether pflogsumm counts a message taken in by `received_by` (MailMessage.received_by) as received: smtpd's
    `client=` (ports 25 and 587, not submissions/smtpd on 465 nor an amavis re-injection) and pickup."""
    return pflogsumm_command(received_by) in ("smtpd", "pickup")


REJECTED, REJECT_WARNING, HELD, DISCARDED = "rejected", "reject_warning", "held", "discarded"
_CONTENT_STAGES = frozenset({"header", "body", "END-OF-MESSAGE"})
_CLEANUP_KINDS = {
    "reject": REJECTED,
    "milter-reject": REJECTED,
    "warning": REJECT_WARNING,
    "hold": HELD,
    "milter-hold": HELD,  # pflogsumm's cleanup pattern finds "hold: " after "milter-" (a word boundary)
    "discard": DISCARDED,
    "milter-discard": DISCARDED,
}
_SMTPD_KINDS = {"reject": REJECTED, "reject_warning": REJECT_WARNING, "hold": HELD, "discard": DISCARDED}


def rejection_kind(program: str, action: str, stage: str) -> str | None:
    """How pflogsumm counts an SMTP rejection row (a refusal, or a line of an action that only logs or keeps the
    message: warn, hold, discard): REJECTED, REJECT_WARNING, HELD, DISCARDED or None (not in its Grand Totals).
    smtpd's and postscreen's `reject:` / `reject_warning:` / `hold:` / `discard:`; cleanup's (exactly "cleanup",
    not sender-cleanup) `reject:` / `milter-reject:` / `warning:` / `hold:` / `discard:` (also milter-hold and
    milter-discard) at header, body or END-OF-MESSAGE. Not smtpd's `milter-*:` nor `warn:`."""
    command = pflogsumm_command(program)
    if command == "cleanup":
        return _CLEANUP_KINDS.get(action) if stage in _CONTENT_STAGES else None
    if command in ("smtpd", "postscreen"):
        return _SMTPD_KINDS.get(action)
    return None


def rejection_direction(program: str) -> str:
    """Whose attempt a refusal turned away: "out" for the submission services (our people, ports 587 and 465, and
    their sender-cleanup), "in" for the rest (mail from other servers)."""
    command = pflogsumm_command(program) or ""
    if program.startswith(("postfix/submission/", "postfix/submissions/", "postfix/smtps/")):
        return "out"
    return "out" if command.startswith("sender-cleanup/") else "in"


# --- addresses and domains, as pflogsumm folds them ------------------------------------------------------------

NULL_SENDER = "from=<>"  # how pflogsumm lists the null sender


def pflogsumm_address(address: str) -> str:
    """An address as pflogsumm counts distinct ones: the part from the first "@" on lowercased."""
    at = address.find("@")
    if at < 0 or at == len(address) - 1:
        return address
    return address[:at] + address[at:].lower()


def address_domain(address: str) -> str:
    """pflogsumm's domain of a (folded) address: what follows "@" after a non-empty local part, else the address
    itself."""
    local, sep, domain = address.partition("@")
    return domain if sep and local else address


_DOTTED_QUAD = re.compile(r"^([^\[]*)\[((?:\d{1,3}\.){3}\d{1,3})\]")
_ANY_BRACKET = re.compile(r"^([^\[\(/]*)[\[\(/]([^\]\)]+)[\]\)]:?\d*$")
_ORGANISATION = re.compile(r"^(.*)\.([^.]+)\.([^.]{3}|[^.]{2,3}\.[^.]{2})$")


def host_domain(host: str) -> str:
    """pflogsumm's gimme_domain on a host name: "mail-wr1-f54.google.com" -> "google.com", "mx1.example.co.uk" ->
    "example.co.uk" (its rule of thumb, no public suffix list); a name it cannot shorten is returned as given."""
    m = _ORGANISATION.match(host)
    return f"{m.group(2)}.{m.group(3)}".lower() if m else host


def client_domain(client_host: str, client_ip: str) -> str:
    """pflogsumm's gimme_domain on smtpd's `client=host[ip]`: the client's IP when its name is unknown, else its
    name shortened by host_domain."""
    text = f"{client_host or 'unknown'}[{client_ip}]"
    m = _DOTTED_QUAD.match(text) or _ANY_BRACKET.match(text)
    domain, ip = (m.group(1), m.group(2)) if m else ("", "")
    if domain in ("", "unknown"):
        return ip
    return host_domain(domain)


def sending_domain(sender: str, received_by: str, client_host: str, client_ip: str) -> str:
    """The "sending host/domain" pflogsumm counts for a received message: the sender's domain, else (the null
    sender, an address without a domain) the sender itself for mail picked up on the host, or the client's domain."""
    address = pflogsumm_address(sender) if sender else NULL_SENDER
    local, sep, domain = address.partition("@")
    if sep and local and domain:
        return domain
    if pflogsumm_command(received_by) == "pickup":
        return address
    return client_domain(client_host, client_ip)


# --- breakdown keys -------------------------------------------------------------------------------------------

LOCAL_SERVICES = frozenset({"lmtp", "local", "virtual", "pipe"})


def is_local_delivery(service: str) -> bool:
    """Whether a delivery attempt's transport delivers here (LMTP to Dovecot, local, virtual, pipe) rather than to
    another server (smtp, a pooled IP's out-* transport, relay)."""
    return service in LOCAL_SERVICES


_RELAY_HOST = re.compile(r"([^\[\s]+)\[[^\]]*\](?::\d+)?\Z")


def remote_domain(relay: str, recipient: str) -> str:
    """The remote site an attempt went to: the domain of the server that answered (site_domain:
    gmail-smtp-in.l.google.com and aspmx.l.google.com are both google.com, mx-ha02.web.de and mx-ha03.web.de both
    web.de), or the recipient's domain when none answered (relay=none) or the relay is an IP."""
    m = _RELAY_HOST.match(relay)
    if m and not m.group(1).replace(".", "").isdigit() and m.group(1) != "unknown":
        return site_domain(m.group(1).lower().rstrip("."))
    return address_domain(pflogsumm_address(recipient)).lower()


# Second-level labels under which country-code domains are registered (example.co.uk, example.com.au): a rule of
# thumb without a public suffix list, enough to tell one provider's MX hosts apart from another's.
_GENERIC_SECOND_LEVEL = frozenset(
    {"ac", "co", "com", "edu", "gob", "go", "gov", "ltd", "mil", "ne", "net", "or", "org"}
)


def site_domain(host: str) -> str:
    """The provider a server belongs to: its last two labels ("mx-ha03.web.de" -> "web.de", "aspmx.l.google.com" ->
    "google.com"), three under a country code's generic second level ("mx1.example.co.uk" -> "example.co.uk")."""
    labels = host.split(".")
    if len(labels) < 3:
        return host
    if len(labels[-1]) == 2 and labels[-2] in _GENERIC_SECOND_LEVEL:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


_ADDRESS = re.compile(r"<[^<>\s]*>|\b[^\s<>@;,()\[\]]+@[^\s<>;,()\[\]]+")
_IPV4 = re.compile(r"\[?\b(?:\d{1,3}\.){3}\d{1,3}\b\]?")
_IPV6 = re.compile(r"\[?\b(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}\b\]?")
_TOKEN = re.compile(r"\b(?=[0-9A-Za-z._-]*\d)(?=[0-9A-Za-z._-]*[A-Za-z])[0-9A-Za-z._-]{10,}\b")
_SPACES = re.compile(r"\s+")
PATTERN_MAX_LENGTH = 200


def reply_pattern(reply: str) -> str:
    """A reply with its particulars left out, so the same refusal given for different recipients, from different IPs
    or with a fresh tracking id reads the same: addresses become <...>, IP addresses [...], long tokens mixing
    letters and digits (queue ids, Google's tracking ids) "..."; a leading "host X said: " is kept out too."""
    text = reply.split(" said: ", 1)[1] if " said: " in reply[:300] else reply
    text = text.removesuffix(")").rsplit(" (in reply to ", 1)[0]
    text = _ADDRESS.sub("<...>", text)
    text = _IPV6.sub("[...]", _IPV4.sub("[...]", text))
    text = _TOKEN.sub("...", text)
    return _SPACES.sub(" ", text).strip()[:PATTERN_MAX_LENGTH]


def rejection_reason(code: int | None, dsn: str, reply: str) -> str:
    """A refusal at SMTP as the reasons table groups it: "554 5.7.1 Relay access denied"."""
    head = " ".join(part for part in (str(code) if code else "", dsn) if part)
    pattern = reply_pattern(reply)
    pattern = pattern.removeprefix("<...>: ")
    return f"{head} {pattern}".strip() or "(no reply text)"


def is_refusal_of_us(dsn: str) -> bool:
    """A permanent failure about the sender or its server (policy, blocklists, authentication, content), not about
    one recipient: 5.x.x but not 5.1.x (bad address) nor 5.2.x (mailbox full, disabled)."""
    return dsn.startswith("5.") and not dsn.startswith(("5.1.", "5.2."))
