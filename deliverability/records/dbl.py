"""The domain on a domain blocklist (DBL): one list for now, Spamhaus DBL, with its documented return codes. Codes
that are not listings (an error code, an answer outside 127.0.0.0/8 from a resolver rewriting NXDOMAIN, any code
not in the map) are reported as errors, never as a listing. The DNSBL part configures lists later."""

import ipaddress
from collections.abc import Mapping

from deliverability.records.common import FAILED, OK, WARNING, Finding, Lookup, one_line

SPAMHAUS_DBL = "dbl.spamhaus.org"

# Spamhaus DBL: what each listing code means.
DBL_LISTED = {
    "127.0.1.2": "spam domain",
    "127.0.1.4": "phishing domain",
    "127.0.1.5": "malware domain",
    "127.0.1.6": "botnet C&C domain",
    "127.0.1.102": "abused legitimate spam",
    "127.0.1.103": "abused legitimate spammed redirector",
    "127.0.1.104": "abused legitimate phishing",
    "127.0.1.105": "abused legitimate malware",
    "127.0.1.106": "abused legitimate botnet C&C",
}
# Spamhaus's answers that are errors, not listings.
DBL_ERRORS = {
    "127.0.1.255": "an IP address was queried on the domain list",
    "127.255.255.252": "typing error in the DNSBL name",
    "127.255.255.254": "the query came through a public or open resolver: use a local resolver or a DQS key",
    "127.255.255.255": "too many queries",
    "127.0.0.1": "query refused",
}
LOOPBACK_NET = ipaddress.ip_network("127.0.0.0/8")


def dbl_check(
    domain: str,
    lookup: Lookup,
    *,
    zone: str = SPAMHAUS_DBL,
    listed: Mapping[str, str] = DBL_LISTED,
    errors: Mapping[str, str] = DBL_ERRORS,
) -> Finding:
    """Failed when `zone` lists the domain with a code of `listed`; warning when it answers an error code, anything
    outside 127.0.0.0/8 or not in `listed`, or the lookup failed; ok on NXDOMAIN (not listed)."""
    domain = domain.rstrip(".").lower()
    name = f"{domain}.{zone}"
    answer = lookup(name, "A")
    if answer.is_failure:
        return Finding(WARNING, f"{domain}: {zone} did not answer ({answer.status}); checked again later")
    if not answer.is_ok or not answer.records:
        return Finding(OK, f"{domain}: not listed on {zone}")
    meanings = []
    for code in answer.records:
        if code in listed:
            meanings.append(f"{code} {listed[code]}")
    if meanings:
        return Finding(FAILED, f"{domain}: listed on {zone}: {', '.join(meanings)}")
    code = answer.records[0]
    try:
        outside = ipaddress.ip_address(code) not in LOOPBACK_NET
    except ValueError:
        outside = True
    if code in errors:
        why = errors[code]
    elif outside:
        why = "an answer outside 127.0.0.0/8 (a resolver rewriting NXDOMAIN?)"
    else:
        why = "a code the list does not document"
    return Finding(WARNING, f"{domain}: {zone} answered {one_line(code, 60)}: {why}; not a listing")
