"""The PTR (forward-confirmed reverse DNS) check of one sending IP: its PTR names a host whose A/AAAA holds the IP
again, and that name is the HELO name the mail host greets with."""

import ipaddress

from deliverability.dns.resolver import reverse_name
from deliverability.records.common import FAILED, OK, WARNING, Finding, Lookup, RecordToPublish, one_line

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def ptr_check(ip: IpAddress, lookup: Lookup, *, helo_name: str) -> Finding:
    """Failed: no PTR, or no PTR name resolving back to `ip` (receivers such as Gmail and Yahoo reject or junk
    such mail); warning: the lookup failed, the confirmed name is not `helo_name`, or no HELO name is configured.
    The record to publish is the PTR naming the HELO name (set at the IP's provider, not the domain's DNS)."""
    name = reverse_name(str(ip))
    helo_name = helo_name.rstrip(".").lower()
    publish = RecordToPublish(name, "PTR", f"{helo_name}.") if helo_name else None
    answer = lookup(name, "PTR")
    if answer.is_failure:
        return Finding(WARNING, f"{ip}: the PTR lookup failed ({answer.status}); checked again later")
    targets = [target.rstrip(".").lower() for target in (answer.records if answer.is_ok else ())]
    if not targets:
        return Finding(FAILED, f"{ip}: no PTR record: receivers distrust mail from an IP without reverse DNS", publish)
    rdtype = "A" if ip.version == 4 else "AAAA"
    confirmed, failed = [], []
    for target in targets:
        forward = lookup(target, rdtype)
        if forward.is_failure:
            failed.append(target)
            continue
        addresses = set()
        for record in forward.records if forward.is_ok else ():
            try:
                addresses.add(ipaddress.ip_address(record))
            except ValueError:
                continue
        if ip in addresses:
            confirmed.append(target)
    shown = ", ".join(one_line(target, 80) for target in targets)
    if not confirmed:
        if failed:
            return Finding(WARNING, f"{ip}: PTR {shown}: the {rdtype} lookup failed; checked again later")
        reason = f"{ip}: PTR {shown} does not resolve back to {ip} (forward-confirmed reverse DNS fails)"
        if helo_name and helo_name in targets:
            # The PTR is right already: the name's own address record is what is missing (at the name's DNS host).
            forward_record = RecordToPublish(helo_name, rdtype, str(ip))
            return Finding(FAILED, f"{reason}: publish {helo_name}'s {rdtype} record", forward_record)
        return Finding(FAILED, reason, publish)
    if not helo_name:
        return Finding(
            WARNING, f"{ip}: PTR {shown} resolves back; set DOCKSPACE_MAIL_HOSTNAME to check it is the HELO name"
        )
    if helo_name not in confirmed:
        return Finding(WARNING, f"{ip}: PTR {shown} is not the HELO name {helo_name}", publish)
    return Finding(OK, f"{ip}: PTR {helo_name} resolves back to {ip}")
