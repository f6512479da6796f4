"""The domain on a domain blocklist (DBL): one list for now, Spamhaus DBL, with its documented return codes. Codes
that are not listings (an error code, an answer outside 127.0.0.0/8 from a resolver rewriting NXDOMAIN, any code
not in the map) are reported as errors, never as a listing. The code interpretation is records.dnsbl's, shared
with the DNSBL sweep."""

from collections.abc import Mapping

from deliverability.records.common import FAILED, OK, WARNING, Finding, Lookup, one_line
from deliverability.records.dnsbl import CLEAR, ERROR_CODES, LISTED, verdict

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
DBL_ERRORS = ERROR_CODES


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
    answer = lookup(f"{domain}.{zone}", "A")
    if answer.is_failure:
        return Finding(WARNING, f"{domain}: {zone} did not answer ({answer.status}); checked again later")
    found = verdict(answer, listed, errors)
    if found.status == CLEAR:
        return Finding(OK, f"{domain}: not listed on {zone}")
    if found.status == LISTED:
        codes = [f"{code} {listed[code]}" if code in listed else code for code in found.code.split(", ")]
        return Finding(FAILED, f"{domain}: listed on {zone}: {', '.join(codes)}")
    return Finding(WARNING, f"{domain}: {zone} answered {one_line(found.code, 60)}: {found.meaning}; not a listing")
