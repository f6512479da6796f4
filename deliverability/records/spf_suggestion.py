"""The SPF record a domain should publish: its sending IPs authorised, what the existing record already allows kept,
within RFC 7208's limits; and the SPF check's one-line outcome with that record attached."""

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, replace

from deliverability.dns.answer import Answer
from deliverability.records.common import FAILED, WARNING, Finding, Lookup, RecordToPublish, outcome
from deliverability.records.spf import Network, SpfSyntaxError, is_spf_record, parse_spf
from deliverability.records.spf_walk import (
    EVALUATED,
    LOOKUP_LIMIT,
    PERMERROR,
    RECORD_OK,
    RECORD_TEMPERROR,
    VOID_LIMIT,
    SpfNode,
    SpfResult,
    SpfStep,
    check_host,
    spf_authorises,
)

SIZE_GUIDELINE = 450  # RFC 7208 3.4: a name and its records under 450 octets fit one UDP answer

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class SpfSuggestion:
    """The record text to publish, what it costs against the limits, the existing terms it leaves out (each
    "term: why") and, when it is still over a limit, why ("" when within them)."""

    text: str
    lookup_count: int
    void_count: int
    dropped: tuple[str, ...] = ()
    problem: str = ""

    @property
    def is_within_limits(self) -> bool:
        return not self.problem

    @property
    def is_over_size_guideline(self) -> bool:
        return len(self.text) > SIZE_GUIDELINE


def sending_addresses(sending_ips: Iterable[str | IpAddress]) -> list[IpAddress]:
    """Distinct addresses, IPv4 first, each family in numeric order. Raises ValueError naming 'sending_ips'."""
    addresses = set()
    for ip in sending_ips:
        try:
            addresses.add(ipaddress.ip_address(ip))
        except ValueError:
            raise ValueError(f"sending_ips: {ip!r} is not an IP address.") from None
    return sorted(addresses, key=lambda address: (address.version, int(address)))


def suggest_spf_record(
    sending_ips: Iterable[str | IpAddress], result: SpfResult | None = None, *, all_qualifier: str = "~"
) -> SpfSuggestion:
    """The SPF record to publish at `result.domain`.

    Starts with ip4:/ip6: for each sending IP the current record does not already pass, then keeps the existing
    mechanisms in order (includes, a, mx, ip4, ip6, exists) and modifiers, and ends with the existing redirect, or
    the existing -all/~all, or `all_qualifier`+"all" (~ by default: receivers treat unauthorised mail as suspect
    without rejecting it while a new sender settles in; - rejects it). Left out: +all and ?all (replaced), ptr
    (deprecated, RFC 7208 5.5), repeated terms, terms after all, includes and redirects of domains without a
    usable SPF record, a/mx that find nothing, and, only when over the lookup or void limit, a/mx whose addresses
    the ip4/ip6 terms already cover. Without a usable record (none, unreadable, two of them) it is built fresh.
    Raises ValueError naming 'sending_ips' or 'all_qualifier'."""
    if all_qualifier not in ("~", "-"):
        raise ValueError(f"all_qualifier: {all_qualifier!r} is not ~ or -.")
    addresses = sending_addresses(sending_ips)
    node = result.root if result is not None and result.root.status == RECORD_OK else None

    kept: list[SpfStep] = []
    dropped: list[str] = []
    ending = f"{all_qualifier}all"
    redirect: SpfStep | None = None
    modifiers: list[str] = []
    if node is not None and node.record is not None:
        seen = set()
        for step in node.steps:
            term = step.term
            if term.name == "all":
                if term.qualifier in ("~", "-"):
                    ending = f"{term.qualifier}all"
                else:
                    dropped.append(f"{term.text}: replaced by {ending}")
            elif term.name == "redirect":
                if step.state == PERMERROR:
                    dropped.append(f"{term.text}: {term.target(node.domain)} has no usable SPF record")
                else:
                    redirect = step
            elif term.text.lower() in seen:
                dropped.append(f"{term.text}: repeated")
            elif term.name == "ptr":
                dropped.append(f"{term.text}: ptr is deprecated")
            elif term.name == "include" and step.state == PERMERROR:
                dropped.append(f"{term.text}: {term.target(node.domain)} has no usable SPF record")
            elif term.name in ("a", "mx") and step.is_void:
                dropped.append(f"{term.text}: finds nothing")
            else:
                kept.append(step)
            seen.add(term.text.lower())
        evaluated = {id(step.term) for step in node.steps}
        dropped += [
            f"{term.text}: after all, never evaluated"
            for term in node.record.mechanisms
            if id(term) not in evaluated and term.name != "all"
        ]
        modifiers = [term.text for term in node.record.terms if term.is_modifier and term.name != "redirect"]

    def cost(steps: list[SpfStep]) -> tuple[int, int]:
        counted = steps + ([redirect] if redirect else [])
        return sum(step.lookup_count for step in counted), sum(step.void_count for step in counted)

    lookups, voids = cost(kept)
    if lookups > LOOKUP_LIMIT or voids > VOID_LIMIT:
        # Every sending IP ends up passing, through the terms kept or an ip4/ip6 term added below.
        explicit = [ipaddress.ip_network(address) for address in addresses]
        explicit += [step.term.network for step in kept if step.term.network is not None]
        for step in list(kept):
            if step.term.name in ("a", "mx") and step.state == EVALUATED and _is_covered(step.networks, explicit):
                kept.remove(step)
                dropped.append(f"{step.term.text}: its addresses are listed with ip4/ip6 already")
        lookups, voids = cost(kept)
    problem = ""
    if lookups > LOOKUP_LIMIT:
        heaviest = sorted((step for step in kept if step.lookup_count), key=lambda step: -step.lookup_count)
        problem = (
            f"still {lookups} DNS lookups (limit {LOOKUP_LIMIT}): "
            + ", ".join(f"{step.term.text} ({step.lookup_count})" for step in heaviest)
            + "; replace an include by the ip4/ip6 ranges its provider publishes, or drop one"
        )
    elif voids > VOID_LIMIT:
        problem = f"still {voids} void lookups (limit {VOID_LIMIT}) in the terms kept"
    # What the kept terms (and redirect) already pass needs no ip4/ip6 term; the new terms go first.
    domain = node.domain if node else ""
    kept_node = SpfNode(domain, RECORD_OK, steps=tuple(kept + ([redirect] if redirect else [])))
    missing = [address for address in addresses if check_host(kept_node, address) != "pass"]
    new_terms = [f"ip{address.version}:{address}" for address in missing]
    ending = redirect.term.text if redirect else ending
    text = " ".join(["v=spf1", *new_terms, *(step.term.text for step in kept), ending, *modifiers])
    return SpfSuggestion(text, lookups, voids, tuple(dropped), problem)


def _is_covered(networks: Iterable[Network], explicit: list[Network]) -> bool:
    networks = list(networks)
    return bool(networks) and all(
        any(network.version == other.version and network.subnet_of(other) for other in explicit)  # type: ignore[arg-type]
        for network in networks
    )


def spf_finding(result: SpfResult, sending_ips: Iterable[str | IpAddress]) -> Finding:
    """The SPF check's outcome: the walk's problems plus each sending IP the record does not pass, and, when not
    ok, the record to publish (unless the record could not be read, or no record within the limits exists)."""
    addresses = sending_addresses(sending_ips)
    domain = result.domain
    problems = list(result.problems)
    for address in addresses:
        verdict = spf_authorises(result, address)
        if verdict is False:
            problems.append(Finding(FAILED, f"{domain}: SPF does not authorise the sending IP {address}"))
        elif verdict is None:
            problems.append(Finding(WARNING, f"{domain}: cannot tell whether SPF authorises the sending IP {address}"))
    record = None
    beyond_limits = ""
    if result.root.status != RECORD_TEMPERROR:
        suggestion = suggest_spf_record(addresses, result)
        if not suggestion.is_within_limits:
            beyond_limits = suggestion.problem
        elif result.record is None or suggestion.text != result.record.text:
            record = RecordToPublish(domain, "TXT", suggestion.text)
    ok = f"{domain}: SPF authorises the sending IPs ({result.lookup_count} of {LOOKUP_LIMIT} DNS lookups)"
    finding = outcome(problems, ok, record)
    if beyond_limits and not finding.is_ok:
        # Say why there is no record to copy: every record keeping what this one allows is over a limit too.
        finding = replace(finding, reason=f"{finding.reason}; no record to suggest: {beyond_limits}")
    return finding


def merged_spf_lookup(domain: str, lookup: Lookup) -> Lookup | None:
    """When `domain` publishes several v=spf1 records (a permerror at every receiver), a lookup that answers its TXT
    question with one record holding all their mechanisms instead (in order, each once; redirect and exp left out;
    ending -all when one record ends so, else ~all), so that the suggestion keeps what each record allowed. None
    when the domain has at most one SPF record or its TXT lookup failed. A record that does not parse gives
    nothing: its terms cannot be trusted."""
    domain = domain.rstrip(".").lower()
    answer = lookup(domain, "TXT")
    texts = [text for text in (answer.records if answer.is_ok else ()) if is_spf_record(text)]
    if len(texts) < 2:
        return None
    terms: list[str] = []
    ending = "~all"
    for text in texts:
        try:
            record = parse_spf(text)
        except SpfSyntaxError:
            continue
        for term in record.mechanisms:
            if term.name == "all":
                if term.qualifier == "-":
                    ending = "-all"
                break
            if term.text.lower() not in {seen.lower() for seen in terms}:
                terms.append(term.text)
    merged = " ".join(["v=spf1", *terms, ending])
    others = tuple(text for text in answer.records if not is_spf_record(text))

    def merged_lookup(name: str, rdtype: str) -> Answer:
        if (name.rstrip(".").lower(), rdtype.upper()) == (domain, "TXT"):
            return replace(answer, records=(*others, merged))
        return lookup(name, rdtype)

    return merged_lookup
