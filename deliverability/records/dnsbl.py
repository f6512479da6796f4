"""What a blocklist's answer means (pure): listed with a documented code, clear (NXDOMAIN), or an error that is never
a listing (an error code, an answer outside 127.0.0.0/8 from a resolver rewriting NXDOMAIN, a code the list does not
document, a failed lookup). Also the RFC 5782 section 5 test points every list must pass (a list's own test point, such
as the Spamhaus DBL's dbltest.com, in place of the one that must be listed). Used by the DNSBL sweep
(deliverability.dnsbl) and the DNS checks' domain blocklist check (records.dbl)."""

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from deliverability.dns.answer import Answer

LISTED, CLEAR, ERROR = "listed", "clear", "error"
LOOPBACK_NET = ipaddress.ip_network("127.0.0.0/8")

# Answers that are never listings, whatever the list (reference: deliverability.md, DNSBLs).
ERROR_CODES = {
    "127.0.0.1": "query refused",
    "127.0.0.255": "query refused (DNSWL: too many queries or a public resolver)",
    "127.0.1.255": "an IP address was queried on the domain list",
    "127.255.255.252": "typing error in the DNSBL name",
    "127.255.255.254": "the query came through a public or open resolver: use a local resolver or a DQS key",
    "127.255.255.255": "too many queries",
}
# A code key "bit:N" matches any 127.0.0.x answer whose last octet has bit N set (SURBL, URIBL multi lists).
BIT_PREFIX = "bit:"

# RFC 5782 section 5: the test point that must be listed and the one that must not, per kind of list.
IP_TEST_POINTS = ("127.0.0.2", "127.0.0.1")
DOMAIN_TEST_POINTS = ("test", "invalid")


def test_points(is_ip_list: bool, own: str = "") -> tuple[str, str]:
    """The point a list must answer as listed (its `own` test point, else RFC 5782's) and the one it must not."""
    listed, unlisted = IP_TEST_POINTS if is_ip_list else DOMAIN_TEST_POINTS
    return own or listed, unlisted


@dataclass(frozen=True)
class Verdict:
    status: str  # LISTED, CLEAR or ERROR
    code: str = ""  # the answer's address(es), comma-separated ("" for clear or a failed lookup)
    meaning: str = ""  # the list's meaning of each listed code, or why this answer is an error

    @property
    def is_listed(self) -> bool:
        return self.status == LISTED


def code_problem(code: str) -> str:
    """Why `code` cannot be a listing code of a list ("" when it can)."""
    if code.startswith(BIT_PREFIX):
        bit = code[len(BIT_PREFIX) :]
        valid = bit in ("2", "4", "8", "16", "32", "64", "128")  # ASCII digits only: "bit:٨" is not bit:8
        return "" if valid else "a bit is 2, 4, 8, 16, 32, 64 or 128"
    try:
        address = ipaddress.ip_address(code)
    except ValueError:
        return "not an IPv4 address such as 127.0.0.2 (or bit:N)"
    if address not in LOOPBACK_NET:
        return "outside 127.0.0.0/8 (a list answers inside it)"
    if code in ERROR_CODES:
        return f"an error answer, never a listing ({ERROR_CODES[code]})"
    return ""


def _meaning(code: str, listed: Mapping[str, str]) -> str | None:
    if code in listed:
        return listed[code]
    bits = [key for key in listed if key.startswith(BIT_PREFIX)]
    if not bits or code in ERROR_CODES:
        return None
    try:
        address = ipaddress.ip_address(code)
    except ValueError:
        return None
    if address not in ipaddress.ip_network("127.0.0.0/24"):
        return None
    last = int(code.rsplit(".", 1)[1])
    found = [listed[key] for key in bits if last & int(key[len(BIT_PREFIX) :])]
    return " + ".join(found) or None


def verdict(answer: Answer, listed: Mapping[str, str], errors: Mapping[str, str] = ERROR_CODES) -> Verdict:
    """Listed when an answer record is a code of `listed` (exact, or bit:N); clear on NXDOMAIN or no record; an
    error otherwise: a failed lookup, an error code, an answer outside 127.0.0.0/8, an undocumented code."""
    if answer.is_failure:
        return Verdict(ERROR, "", f"no answer ({answer.status})" + (f": {answer.error}" if answer.error else ""))
    if not answer.is_ok or not answer.records:
        return Verdict(CLEAR)
    hits = [(code, meaning) for code in answer.records if (meaning := _meaning(code, listed)) is not None]
    if hits:
        return Verdict(LISTED, ", ".join(code for code, _ in hits), ", ".join(meaning for _, meaning in hits))
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
    return Verdict(ERROR, code[:60], why)


def rfc5782_problem(
    points: tuple[str, str], listed_answer: Answer, unlisted_answer: Answer, errors: Mapping[str, str] = ERROR_CODES
) -> str:
    """Why a list fails RFC 5782's test points `points` (listed one, unlisted one) ("" when it passes): the listed
    point must answer a code inside 127.0.0.0/8 that is not an error code; the unlisted point must not exist."""
    name, other = points
    if listed_answer.is_failure or unlisted_answer.is_failure:
        failed = listed_answer if listed_answer.is_failure else unlisted_answer
        return (
            f"the test point did not answer ({failed.status}: {failed.error})"
            if failed.error
            else (f"the test point did not answer ({failed.status})")
        )
    if not listed_answer.is_ok or not listed_answer.records:
        return f"test point {name} is not listed (the zone does not answer as a blocklist)"
    codes = listed_answer.records
    bad = [code for code in codes if code in errors or code_problem(code)]
    if bad:
        why = errors.get(bad[0]) or "an answer outside 127.0.0.0/8"
        return f"test point {name} answered {bad[0]}: {why}"
    if unlisted_answer.is_ok and unlisted_answer.records:
        return f"test point {other} is listed ({unlisted_answer.records[0]}): the list answers every query"
    return ""
