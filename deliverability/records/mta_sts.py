"""MTA-STS (RFC 8461) and TLS-RPT (RFC 8460), both optional: when published, their records must be usable. Problems
are warnings, never failures; a domain publishing neither is ok.

The MTA-STS policy file is read through the caller's `fetch_policy(url) -> text` only: the DNS checks open no HTTPS
connection themselves (the outbound HTTP module that refuses non-public addresses belongs to monitoring, a sibling
layer), so without a fetcher the policy file is reported as not checked."""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from deliverability.records.common import OK, WARNING, Finding, Lookup, one_line, outcome

PolicyFetcher = Callable[[str], str]

_STS_ID = re.compile(r"[A-Za-z0-9]{1,32}")
MODES = ("enforce", "testing", "none")
MAX_AGE_LIMIT = 31557600  # RFC 8461 3.2: at most a year


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
    """The policy file's fields and the problems found (each a short phrase)."""
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), []).append(value.strip())
    problems = []
    version = (fields.get("version") or [""])[0]
    if version != "STSv1":
        problems.append(f"version is {version!r}, not STSv1" if version else "no version: STSv1 line")
    mode = (fields.get("mode") or [""])[0]
    if mode not in MODES:
        problems.append(f"mode {mode!r} is not one of {', '.join(MODES)}" if mode else "no mode line")
    raw_age = (fields.get("max_age") or [""])[0]
    max_age = int(raw_age) if raw_age.isdigit() else None
    if max_age is None or max_age > MAX_AGE_LIMIT:
        problems.append(f"max_age must be a number of seconds up to {MAX_AGE_LIMIT}")
    mx = tuple(pattern.rstrip(".").lower() for pattern in fields.get("mx", []))
    if not mx and mode in ("enforce", "testing"):
        problems.append("no mx line: no MX host is allowed")
    return MtaStsPolicy(version, mode, max_age, mx), problems


def _mx_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return host == pattern


def mta_sts_check(
    domain: str, lookup: Lookup, *, mx_hosts: Sequence[str], fetch_policy: PolicyFetcher | None = None
) -> Finding:
    """`_mta-sts.<domain>` TXT: none is ok (MTA-STS is optional); else exactly one v=STSv1 record with a valid
    id=, and its policy file (through `fetch_policy`) valid and allowing every MX host in `mx_hosts`."""
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
    if fetch_policy is None:
        return Finding(OK, f"{domain}: MTA-STS record id={sts_id}; the policy file {url} is not checked")
    try:
        text = fetch_policy(url)
    except (PolicyFetchError, OSError) as exc:
        return Finding(WARNING, f"{domain}: MTA-STS policy {url} cannot be read: {one_line(str(exc), 120)}")
    policy, problems = parse_mta_sts_policy(text)
    findings = [Finding(WARNING, f"{url}: {problem}") for problem in problems]
    if policy.mode in ("enforce", "testing") and policy.mx:
        for host in mx_hosts:
            if not any(_mx_matches(pattern, host) for pattern in policy.mx):
                findings.append(
                    Finding(WARNING, f"{url}: MX {host} is not among its mx lines ({', '.join(policy.mx)})")
                )
    return outcome(findings, f"{domain}: MTA-STS mode {policy.mode}, id={sts_id}")


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
