"""A domain's SPF record evaluated without a connecting client: includes and redirects followed through the
caller's lookup, DNS-querying terms and void lookups counted against RFC 7208's limits, the IP networks the record
authorises collected, and `spf_authorises` telling for one IP what a receiver would conclude.

Terms whose outcome depends on the client (ptr, and any term with a macro) are kept as not evaluable: they still count
as lookups, and an IP they might match gets "cannot tell" (None) rather than a guess."""

import ipaddress
from dataclasses import dataclass, field, replace

from deliverability.records.common import FAILED, WARNING, Finding, Lookup, worst_level
from deliverability.records.spf import (
    Network,
    SpfPermError,
    SpfRecord,
    SpfSyntaxError,
    SpfTerm,
    find_spf_record,
    parse_spf,
)

LOOKUP_LIMIT = 10  # RFC 7208 4.6.4: DNS-querying terms per check, through includes and redirects
VOID_LIMIT = 2  # RFC 7208 4.6.4: lookups answering NXDOMAIN or no records
MX_NAMES_LIMIT = 10  # RFC 7208 4.6.4: address lookups per mx mechanism
WALK_LOOKUP_CAP = 40  # past this a record is not walked further: receivers gave up at 11

# A record as found at a domain (SpfNode.status).
RECORD_OK = "ok"
RECORD_NONE = "none"  # no SPF record there
RECORD_PERMERROR = "permerror"  # unusable as published: syntax, two records, a loop
RECORD_TEMPERROR = "temperror"  # the TXT lookup failed

# What the walk could tell about one term (SpfStep.state).
EVALUATED = "evaluated"  # its networks are all there are
NOT_EVALUABLE = "not evaluable"  # ptr, macros: depends on the connecting client
TEMPERROR = "temperror"  # a lookup failed: its networks may be incomplete
PERMERROR = "permerror"  # the term itself makes receivers fail the record (an mx over 10 names)
NOT_WALKED = "not walked"  # beyond WALK_LOOKUP_CAP

EVERYWHERE: tuple[Network, ...] = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


@dataclass(frozen=True)
class SpfNode:
    """The SPF record at one domain as the walk found it; `steps` are its mechanisms in evaluation order up to
    the first `all`, then its redirect when that is used. `networks` are those it authorises (pass results)."""

    domain: str
    status: str
    record: SpfRecord | None = None
    steps: tuple["SpfStep", ...] = ()
    networks: frozenset[Network] = frozenset()
    lookup_count: int = 0  # DNS-querying terms of this record and those it reaches
    void_count: int = 0


@dataclass(frozen=True)
class SpfStep:
    """One term of the record at `domain`: the networks it matches (for include and redirect: its target's pass
    networks), the record it leads to, and what it costs against the limits, itself and its target included."""

    domain: str
    term: SpfTerm
    state: str = EVALUATED
    networks: tuple[Network, ...] = ()
    child: SpfNode | None = None
    is_void: bool = False
    lookup_count: int = 0
    void_count: int = 0

    def __str__(self) -> str:
        return f"{self.term.text} in {self.domain}"


@dataclass(frozen=True)
class SpfResult:
    """A walk of `domain`'s SPF record. `steps` lists every term seen, in walk order (an include's terms follow
    it). `networks` approximates what the record authorises (pass results reachable, order ignored);
    spf_authorises is exact for one IP. `is_truncated`: the record was not walked to its end (counts are then
    lower bounds)."""

    domain: str
    root: SpfNode
    steps: tuple[SpfStep, ...]
    lookup_count: int
    void_count: int
    problems: tuple[Finding, ...]
    networks: frozenset[Network]
    is_truncated: bool = False

    @property
    def record(self) -> SpfRecord | None:
        return self.root.record

    @property
    def level(self) -> str:
        return worst_level(self.problems)

    @property
    def not_evaluable(self) -> tuple[SpfStep, ...]:
        return tuple(step for step in self.steps if step.state == NOT_EVALUABLE)


@dataclass
class _Walk:
    lookup: Lookup
    lookups: int = 0
    voids: int = 0
    problems: list[Finding] = field(default_factory=list)
    steps: list[SpfStep] = field(default_factory=list)
    over_limit_at: str = ""
    void_terms: list[str] = field(default_factory=list)
    stack: list[str] = field(default_factory=list)
    is_truncated: bool = False  # an include or redirect past WALK_LOOKUP_CAP was not walked

    def problem(self, level: str, reason: str) -> None:
        self.problems.append(Finding(level, reason))

    def void(self, where: str) -> None:
        self.voids += 1
        self.void_terms.append(where)

    def node(self, domain: str, via: tuple[str, SpfTerm] | None, is_policy: bool) -> SpfNode:
        """The record at `domain`, reached from the term `via` (None: the domain checked)."""
        where = f"{via[0]}: {via[1].text}" if via else domain
        if domain in self.stack:
            self.problem(FAILED, f"{where} loops back to {domain}: receivers return permerror")
            return SpfNode(domain, RECORD_PERMERROR)
        answer = self.lookup(domain, "TXT")
        if via and answer.is_void:
            self.void(f"{via[1].text} in {via[0]}")
        if answer.is_failure:
            self.problem(WARNING, f"{where}: the TXT lookup of {domain} failed ({answer.status}); checked again later")
            return SpfNode(domain, RECORD_TEMPERROR)
        try:
            text = find_spf_record(answer.records if answer.is_ok else ())
        except SpfPermError as exc:
            self.problem(FAILED, f"{where}: {exc} at {domain}")
            return SpfNode(domain, RECORD_PERMERROR)
        if text is None:
            if via:
                self.problem(FAILED, f"{where}: {domain} has no SPF record: receivers return permerror")
            else:
                self.problem(FAILED, f"{domain}: no SPF record (a TXT record starting v=spf1)")
            return SpfNode(domain, RECORD_NONE)
        try:
            record = parse_spf(text)
        except SpfSyntaxError as exc:
            self.problem(FAILED, f"{domain}: {exc}")
            return SpfNode(domain, RECORD_PERMERROR)
        self.stack.append(domain)
        try:
            return self._record(domain, record, is_policy)
        finally:
            self.stack.pop()

    def _record(self, domain: str, record: SpfRecord, is_policy: bool) -> SpfNode:
        steps = []
        mechanisms = record.mechanisms
        for index, term in enumerate(mechanisms):
            steps.append(self.step(domain, term, is_policy))
            if term.name == "all":
                unused = " ".join(later.text for later in mechanisms[index + 1 :])
                if unused:
                    self.problem(WARNING, f"{domain}: {unused} after {term.text} is never evaluated")
                break
        redirect = record.redirect
        if redirect and record.all:
            self.problem(WARNING, f"{domain}: {redirect.text} is ignored because the record has {record.all.text}")
        elif redirect:
            steps.append(self.step(domain, redirect, is_policy))
        elif is_policy and not record.all:
            self.problem(
                WARNING,
                f"{domain}: the record ends without all or redirect, so mail from any other IP is neutral; "
                "end it with ~all or -all",
            )
        networks: set[Network] = set()
        for step in steps:
            if step.term.qualifier in ("+", ""):  # pass mechanisms, and a used redirect
                networks.update(step.networks)
        return SpfNode(
            domain,
            RECORD_OK,
            record,
            tuple(steps),
            frozenset(networks),
            lookup_count=sum(step.lookup_count for step in steps),
            void_count=sum(step.void_count for step in steps),
        )

    def step(self, domain: str, term: SpfTerm, is_policy: bool) -> SpfStep:
        lookups_before, voids_before = self.lookups, self.voids
        slot = len(self.steps)
        self.steps.append(SpfStep(domain, term))  # the included record's steps come after this one
        if term.queries_dns:
            self.lookups += 1
            if self.lookups == LOOKUP_LIMIT + 1:
                self.over_limit_at = f"{term.text} in {domain}"
        if term.queries_dns and self.lookups > WALK_LOOKUP_CAP:
            self.is_truncated = self.is_truncated or term.name in ("include", "redirect")
            step = SpfStep(domain, term, NOT_WALKED, lookup_count=1)
        else:
            step = replace(
                self._evaluate(domain, term, is_policy),
                lookup_count=self.lookups - lookups_before,
                void_count=self.voids - voids_before,
            )
        self.steps[slot] = step
        return step

    def _evaluate(self, domain: str, term: SpfTerm, is_policy: bool) -> SpfStep:
        name = term.name
        if name == "all":
            if term.qualifier == "+":
                self.problem(WARNING, f"{domain}: {term.text} authorises every IP on the internet")
            elif term.qualifier == "?" and is_policy:
                self.problem(
                    WARNING, f"{domain}: {term.text} makes mail from any other IP neutral; end with ~all or -all"
                )
            return SpfStep(domain, term, networks=EVERYWHERE)
        if name in ("ip4", "ip6"):
            assert term.network is not None
            return SpfStep(domain, term, networks=(term.network,))
        if name == "ptr":
            self.problem(
                WARNING,
                f"{domain}: ptr is deprecated (RFC 7208 5.5) and cannot be checked here: {term.text}; "
                "list the IPs with ip4:/ip6: instead",
            )
            return SpfStep(domain, term, NOT_EVALUABLE)
        if term.has_macros:
            return SpfStep(domain, term, NOT_EVALUABLE)
        target = term.target(domain)
        if name == "exists":
            # Without macros the answer is the same for every client: any A record matches them all.
            answer = self.lookup(target, "A")
            if answer.is_void:
                self.void(f"{term.text} in {domain}")
                return SpfStep(domain, term, is_void=True)
            if answer.is_failure:
                self.problem(WARNING, f"{domain}: {term.text}: the A lookup of {target} failed ({answer.status})")
                return SpfStep(domain, term, TEMPERROR)
            return SpfStep(domain, term, networks=EVERYWHERE if answer.records else ())
        if name in ("include", "redirect"):
            child = self.node(target, (domain, term), is_policy and name == "redirect")
            state = {RECORD_OK: EVALUATED, RECORD_TEMPERROR: TEMPERROR}.get(child.status, PERMERROR)
            return SpfStep(domain, term, state, tuple(sorted(child.networks, key=_network_order)), child)
        if name == "a":
            networks, failed, is_void = self._addresses(domain, term, target)
            if is_void:
                self.void(f"{term.text} in {domain}")
            return SpfStep(domain, term, TEMPERROR if failed else EVALUATED, networks, is_void=is_void)
        return self._mx(domain, term, target)

    def _mx(self, domain: str, term: SpfTerm, target: str) -> SpfStep:
        answer = self.lookup(target, "MX")
        if answer.is_void:
            self.void(f"{term.text} in {domain}")
            return SpfStep(domain, term, is_void=True)
        if answer.is_failure:
            self.problem(WARNING, f"{domain}: {term.text}: the MX lookup of {target} failed ({answer.status})")
            return SpfStep(domain, term, TEMPERROR)
        names = sorted({exchange for exchange in map(_mx_exchange, answer.records) if exchange})
        if len(names) > MX_NAMES_LIMIT:
            self.problem(
                FAILED,
                f"{domain}: {term.text}: {target} has {len(names)} MX names (limit {MX_NAMES_LIMIT}): "
                "receivers return permerror",
            )
            return SpfStep(domain, term, PERMERROR)
        networks: list[Network] = []
        any_failed = False
        for name in names:
            found, failed, _ = self._addresses(domain, term, name)
            networks.extend(found)
            any_failed = any_failed or failed
        return SpfStep(domain, term, TEMPERROR if any_failed else EVALUATED, tuple(networks))

    def _addresses(self, domain: str, term: SpfTerm, name: str) -> tuple[tuple[Network, ...], bool, bool]:
        """(networks, whether a lookup failed, whether both A and AAAA came back empty) for a or mx.

        Receivers ask only the client's family; without a client, a void lookup is one that finds neither."""
        answers = ((self.lookup(name, "A"), term.cidr4, 32), (self.lookup(name, "AAAA"), term.cidr6, 128))
        networks = []
        for answer, cidr, full in answers:
            if answer.is_failure:
                self.problem(
                    WARNING, f"{domain}: {term.text}: the {answer.rdtype} lookup of {name} failed ({answer.status})"
                )
            for address in answer.records if answer.is_ok else ():
                try:
                    networks.append(ipaddress.ip_network(f"{address}/{full if cidr is None else cidr}", strict=False))
                except ValueError:
                    continue  # the resolver gives addresses; anything else is not one
        failed = any(answer.is_failure for answer, _, _ in answers)
        is_void = all(answer.is_void for answer, _, _ in answers)
        return tuple(networks), failed, is_void


def _mx_exchange(record: str) -> str:
    """'10 mx.example.com' -> 'mx.example.com'; '' for a null MX (RFC 7505) or a malformed record."""
    parts = record.split()
    exchange = parts[1].rstrip(".").lower() if len(parts) == 2 else ""
    return exchange


def _network_order(network: Network) -> tuple[int, int, int]:
    return (network.version, int(network.network_address), network.prefixlen)


def spf_walk(domain: str, lookup: Lookup) -> SpfResult:
    """Walk `domain`'s SPF record through `lookup(name, rdtype) -> Answer`. Never raises for what DNS holds:
    every problem is a Finding naming the domain and the term."""
    domain = domain.rstrip(".").lower()
    walk = _Walk(lookup=lookup)
    root = walk.node(domain, None, is_policy=True)
    if walk.lookups > LOOKUP_LIMIT:
        count = f"at least {walk.lookups}" if walk.is_truncated else str(walk.lookups)
        walk.problem(
            FAILED,
            f"{domain}: SPF needs {count} DNS lookups (limit {LOOKUP_LIMIT}); the {LOOKUP_LIMIT + 1}th is "
            f"{walk.over_limit_at}: receivers return permerror",
        )
    if walk.voids > VOID_LIMIT:
        walk.problem(
            FAILED,
            f"{domain}: SPF has {walk.voids} void lookups (limit {VOID_LIMIT}): {', '.join(walk.void_terms)}: "
            "receivers return permerror",
        )
    else:
        for where in walk.void_terms:
            walk.problem(WARNING, f"{domain}: {where} finds nothing (a void lookup; limit {VOID_LIMIT})")
    return SpfResult(
        domain=domain,
        root=root,
        steps=tuple(walk.steps),
        lookup_count=walk.lookups,
        void_count=walk.voids,
        problems=tuple(walk.problems),
        networks=root.networks,
        is_truncated=walk.is_truncated,
    )


# spf_authorises: the receiver's check_host() for one IP, on what the walk found.
_PASS, _PERMERROR, _TEMPERROR, _UNKNOWN = "pass", "permerror", "temperror", "unknown"


@dataclass
class _Counts:
    lookups: int = 0
    voids: int = 0


def spf_authorises(result: SpfResult, ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool | None:
    """True if a receiver's SPF check of mail from `ip` would pass; False if it would not (fail, softfail,
    neutral, no record, permerror); None if it cannot be told here (a lookup failed, or a term that depends on
    the client, such as ptr or exists, is reached before any match). Terms are evaluated in order and the limits
    counted as receivers do, so a match before the 11th lookup still passes. Raises ValueError naming 'ip'."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise ValueError(f"ip: {ip!r} is not an IP address.") from None
    verdict = check_host(result.root, address)
    if verdict == _PASS:
        return True
    if verdict in (_TEMPERROR, _UNKNOWN):
        return None
    return False


def check_host(node: SpfNode, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """RFC 7208 check_host() on a walked record: pass, fail, softfail, neutral, none, permerror, temperror, or
    "unknown" when a term that depends on the client decides."""
    return _check_host(node, address, _Counts())


def _check_host(node: SpfNode, address: ipaddress.IPv4Address | ipaddress.IPv6Address, counts: _Counts) -> str:
    if node.status == RECORD_TEMPERROR:
        return _TEMPERROR
    if node.status != RECORD_OK:
        return node.status
    for step in node.steps:
        term = step.term
        if term.queries_dns:
            counts.lookups += 1
            if counts.lookups > LOOKUP_LIMIT:
                return _PERMERROR
        if step.state == NOT_WALKED:
            return _PERMERROR  # only ever past the limit
        if term.name in ("include", "redirect"):
            assert step.child is not None
            child = step.child
            verdict = _PERMERROR if child.status == RECORD_NONE else _check_host(child, address, counts)
            if term.name == "redirect":
                return verdict
            if verdict in (_PERMERROR, _TEMPERROR, _UNKNOWN):
                return verdict
            if verdict == _PASS:
                return term.result
            continue
        if step.is_void:
            counts.voids += 1
            if counts.voids > VOID_LIMIT:
                return _PERMERROR
        if step.state == PERMERROR:
            return _PERMERROR
        if any(address in network for network in step.networks):
            return term.result
        if step.state == TEMPERROR:
            return _TEMPERROR
        if step.state == NOT_EVALUABLE:
            return _UNKNOWN
    return "neutral"
