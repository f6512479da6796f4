"""The MX check: the domain has MX records and its mail reaches the mail host (the configured DMS host name, or an
exchange resolving to one of the sending IPs)."""

import ipaddress
from collections.abc import Sequence

from deliverability.records.common import FAILED, WARNING, Finding, Lookup, RecordToPublish, one_line, outcome

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def mx_exchanges(records: Sequence[str]) -> list[tuple[int, str]]:
    """(preference, exchange) of MX records as the resolver gives them ("10 mail.example.com"), by preference."""
    found = []
    for record in records:
        preference, _, exchange = record.partition(" ")
        try:
            found.append((int(preference), exchange.strip().rstrip(".").lower()))
        except ValueError:
            continue
    return sorted(found)


def mx_record_to_publish(domain: str, mail_hostname: str, preference: int = 10) -> RecordToPublish | None:
    """The MX record of `domain` (the domain checked: the record's name) naming the mail host."""
    return RecordToPublish(domain, "MX", f"{preference} {mail_hostname}.") if mail_hostname else None


def _not_most_preferred(domain: str, shown: str, ours: str, lowest: int) -> Finding:
    """The warning for the mail host's exchange `ours` behind a more preferred one, suggesting it below the lowest
    preference (senders try the lowest first); at 0 none is lower, so the other exchanges must be raised instead."""
    reason = f"{domain}: MX {shown}: {ours} is not the most preferred exchange"
    if lowest == 0:
        reason += "; publish it at preference 0 and raise the others above 0 (a lower number is tried first)"
        return Finding(WARNING, reason, mx_record_to_publish(domain, ours, 0))
    reason += f"; publish it below {lowest} (a lower number is tried first)"
    return Finding(WARNING, reason, mx_record_to_publish(domain, ours, lowest - 1))


def _addresses(name: str, lookup: Lookup) -> tuple[set[IpAddress], bool]:
    """(the A and AAAA addresses of `name`, whether a lookup failed)."""
    found: set[IpAddress] = set()
    failed = False
    for rdtype in ("A", "AAAA"):
        answer = lookup(name, rdtype)
        failed = failed or answer.is_failure
        for record in answer.records if answer.is_ok else ():
            try:
                found.add(ipaddress.ip_address(record))
            except ValueError:
                continue
    return found, failed


def mx_check(domain: str, lookup: Lookup, *, mail_hostname: str, sending_ips: Sequence[IpAddress]) -> Finding:
    """Failed: no MX, a null MX, no exchange that is the mail host, or the mail host's name has no address;
    warning: the lookup failed, the mail host is not the most preferred exchange, or nothing says which host is
    the mail host (DOCKSPACE_MAIL_HOSTNAME and DOCKSPACE_SENDING_IPS both empty)."""
    domain = domain.rstrip(".").lower()
    mail_hostname = mail_hostname.rstrip(".").lower()
    publish = mx_record_to_publish(domain, mail_hostname)
    answer = lookup(domain, "MX")
    if answer.is_failure:
        return Finding(WARNING, f"{domain}: the MX lookup failed ({answer.status}); checked again later")
    exchanges = mx_exchanges(answer.records if answer.is_ok else ())
    if not exchanges:
        return Finding(FAILED, f"{domain}: no MX record: mail to the domain goes to its A record, if any", publish)
    if all(exchange in ("", ".") for _, exchange in exchanges):
        return Finding(FAILED, f'{domain}: a null MX ("0 ."): the domain says it accepts no mail', publish)
    shown = ", ".join(f"{preference} {one_line(exchange, 80)}" for preference, exchange in exchanges)
    if not mail_hostname and not sending_ips:
        return Finding(
            WARNING,
            f"{domain}: MX {shown}; set DOCKSPACE_MAIL_HOSTNAME (or DOCKSPACE_SENDING_IPS) to check it points at the "
            "mail host",
        )
    problems: list[Finding] = []
    ours: list[tuple[int, str]] = []
    unknown: list[str] = []  # exchanges whose addresses could not be looked up: they may be the mail host
    for preference, exchange in exchanges:
        addresses, failed = _addresses(exchange, lookup)
        if exchange == mail_hostname:
            if not addresses and not failed:
                problems.append(Finding(FAILED, f"{domain}: MX {exchange} has no A or AAAA record"))
                continue
            ours.append((preference, exchange))
        elif addresses & set(sending_ips):
            ours.append((preference, exchange))
        elif failed:
            unknown.append(exchange)
    host = mail_hostname or "the mail host"
    if not ours and unknown:
        reason = f"{domain}: MX {shown}: the address lookup of {unknown[0]} failed; checked again later"
        problems.append(Finding(WARNING, reason))
    elif not ours:
        unset = (
            ""
            if mail_hostname
            else " (DOCKSPACE_MAIL_HOSTNAME is not set: only DOCKSPACE_SENDING_IPS' addresses count)"
        )
        problems.append(Finding(FAILED, f"{domain}: MX {shown}: none is {host}{unset}", publish))
    elif ours[0][0] > exchanges[0][0]:
        problems.append(_not_most_preferred(domain, shown, ours[0][1], exchanges[0][0]))
    return outcome(problems, f"{domain}: MX {shown} reaches {host}")
