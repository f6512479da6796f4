"""MTA-STS (RFC 8461) and TLS-RPT (RFC 8460), both optional: a domain publishing neither is ok; when published,
their records must be usable.

The MTA-STS policy file is read through the caller's `fetch_policy(url) -> text` (the DNS checks give one that
fetches it over HTTPS through dockspace.outbound_http); this module parses it and judges it:
- the TXT record without a readable policy (none served, not HTTPS, a redirect, an error) or with an invalid one:
  a warning (senders apply no policy they cannot fetch and validate; those holding a cached one keep it until its
  max_age ends, RFC 8461 3.3 and 5.1);
- mode enforce not allowing one of the domain's MX hosts: failed (senders that cached it refuse to deliver there);
  mode testing not allowing one: a warning (senders deliver and only report it);
- mode none: a warning (nothing is enforced: a policy being withdrawn); mode testing allowing every MX: ok, its
  reason says testing."""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from deliverability.records.common import FAILED, OK, WARNING, Finding, Lookup, one_line, outcome

PolicyFetcher = Callable[[str], str]
"""`fetch_policy(url) -> the policy file's text`, or PolicyFetchError saying why it cannot be read."""

_STS_ID = re.compile(r"[A-Za-z0-9]{1,32}")
MODES = ("enforce", "testing", "none")
MAX_AGE_LIMIT = 31557600  # RFC 8461 3.2: at most a year
# RFC 8461 3.2 and 4.1: a host name, or "*." and a name (the wildcard stands for exactly one leftmost label).
_MX_PATTERN = re.compile(r"(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}")


class PolicyFetchError(Exception):
    """A fetcher could not read the policy file: its message says why, in one line."""


def policy_url(domain: str) -> str:
    return f"https://mta-sts.{domain}/.well-known/mta-sts.txt"


def _tags(text: str) -> dict[str, str]:
    tags = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = value.strip()
    return tags


def _records(lookup: Lookup, name: str, version: str) -> tuple[list[str] | None, str]:
    """(the TXT records at `name` starting v=<version>, or None when the lookup failed; the failure's status)."""
    answer = lookup(name, "TXT")
    if answer.is_failure:
        return None, answer.status
    found = [record for record in (answer.records if answer.is_ok else ()) if re.match(rf"v={version}\s*(;|$)", record)]
    return found, ""


@dataclass(frozen=True)
class MtaStsPolicy:
    version: str
    mode: str
    max_age: int | None
    mx: tuple[str, ...]


def parse_mta_sts_policy(text: str) -> tuple[MtaStsPolicy, list[str]]:
    """The policy file's fields and the problems found (each a short phrase; none: senders apply it)."""
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), []).append(value.strip())
    problems = []
    version = (fields.get("version") or [""])[0]
    if version != "STSv1":
        problems.append(f"version is {one_line(version, 20)!r}, not STSv1" if version else "no version: STSv1 line")
    mode = (fields.get("mode") or [""])[0]
    if mode not in MODES:
        problems.append(f"mode {one_line(mode, 20)!r} is not one of {', '.join(MODES)}" if mode else "no mode line")
    raw_age = (fields.get("max_age") or [""])[0]
    max_age = int(raw_age) if raw_age.isdigit() and len(raw_age) <= 10 else None
    if max_age is None or max_age > MAX_AGE_LIMIT:
        problems.append(f"max_age must be a number of seconds up to {MAX_AGE_LIMIT}")
    mx = tuple(pattern.rstrip(".").lower() for pattern in fields.get("mx", []))
    bad = [pattern for pattern in mx if not _MX_PATTERN.fullmatch(pattern)]
    if bad:
        problems.append(f"mx {one_line(bad[0], 60)!r} is not a host name or *.name")
    if not mx and mode in ("enforce", "testing"):
        problems.append("no mx line: no MX host is allowed")
    return MtaStsPolicy(version, mode, max_age, mx), problems


def mx_allowed(pattern: str, host: str) -> bool:
    """Whether an mx pattern allows an MX host (RFC 8461 4.1: "*." stands for exactly one leftmost label)."""
    host = host.rstrip(".").lower()
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return host == pattern


def mta_sts_check(domain: str, lookup: Lookup, *, mx_hosts: Sequence[str], fetch_policy: PolicyFetcher) -> Finding:
    """`_mta-sts.<domain>` TXT: none is ok (MTA-STS is optional); else exactly one v=STSv1 record with a valid
    id=, and its policy file (through `fetch_policy`) valid and allowing every MX host in `mx_hosts` (the levels:
    the module's docstring)."""
    domain = domain.rstrip(".").lower()
    name = f"_mta-sts.{domain}"
    records, failure = _records(lookup, name, "STSv1")
    if records is None:
        return Finding(WARNING, f"{name}: the TXT lookup failed ({failure}); checked again later")
    if not records:
        return Finding(OK, f"{domain}: no MTA-STS policy published (optional)")
    if len(records) > 1:
        return Finding(WARNING, f"{name}: {len(records)} v=STSv1 records: senders then apply no MTA-STS policy")
    sts_id = _tags(records[0]).get("id", "")
    if not _STS_ID.fullmatch(sts_id):
        return Finding(WARNING, f"{name}: id= must be 1 to 32 letters or digits; got {one_line(sts_id, 40)!r}")
    url = policy_url(domain)
    try:
        text = fetch_policy(url)
    except PolicyFetchError as exc:
        return Finding(
            WARNING,
            f"{domain}: MTA-STS record id={sts_id}, but its policy {url} cannot be read: {one_line(str(exc), 160)}; "
            "senders apply no policy they cannot fetch",
        )
    policy, problems = parse_mta_sts_policy(text)
    if problems:
        findings = [Finding(WARNING, f"{url}: {problem}: senders ignore an invalid policy") for problem in problems]
        return outcome(findings, f"{url}: valid")
    if policy.mode == "none":
        return Finding(WARNING, f"{url}: mode none: senders enforce nothing (a policy being withdrawn)")
    level = FAILED if policy.mode == "enforce" else WARNING
    effect = "senders that cached it refuse to deliver there" if level == FAILED else "senders report it"
    findings = [
        Finding(level, f"{url}: MX {host} is not among its mx lines ({', '.join(policy.mx)}): {effect}")
        for host in mx_hosts
        if not any(mx_allowed(pattern, host) for pattern in policy.mx)
    ]
    testing = " (failures are reported, not enforced)" if policy.mode == "testing" else ""
    return outcome(findings, f"{domain}: MTA-STS mode {policy.mode}{testing}, id={sts_id}, max_age={policy.max_age}")


def tls_rpt_check(domain: str, lookup: Lookup) -> Finding:
    """`_smtp._tls.<domain>` TXT: none is ok (optional); else exactly one v=TLSRPTv1 record with rua= of mailto:
    or https: addresses."""
    domain = domain.rstrip(".").lower()
    name = f"_smtp._tls.{domain}"
    records, failure = _records(lookup, name, "TLSRPTv1")
    if records is None:
        return Finding(WARNING, f"{name}: the TXT lookup failed ({failure}); checked again later")
    if not records:
        return Finding(OK, f"{domain}: no TLS-RPT record published (optional)")
    if len(records) > 1:
        return Finding(WARNING, f"{name}: {len(records)} v=TLSRPTv1 records: senders then send no reports")
    rua = _tags(records[0]).get("rua", "")
    addresses = [address.strip() for address in rua.split(",") if address.strip()]
    if not addresses:
        return Finding(WARNING, f"{name}: no rua= address: nobody receives the TLS reports")
    bad = [address for address in addresses if not address.lower().startswith(("mailto:", "https:"))]
    if bad:
        return Finding(WARNING, f"{name}: rua= {one_line(bad[0], 80)!r} is not a mailto: or https: address")
    return Finding(OK, f"{domain}: TLS reports go to {one_line(', '.join(addresses), 120)}")
